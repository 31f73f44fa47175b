"""The GPU Monte Carlo without a GPU: numba's CUDA simulator runs the kernel (NUMBA_ENABLE_CUDASIM=1, set in a
child process before numba is imported), and numba-cuda compiles the real kernel to PTX for a Hopper GPU.

Under the simulator the kernel is Python calling the CPU-compiled transport, so it tests the GPU path's plumbing
(seeding, launches, ordering, scoring, the stack overflow hand-back, the hybrid queue), not GPU arithmetic; the
PTX compilation is what shows that the whole transport compiles for the device.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from fastshower.geometry import load_geometry
from fastshower.mc.rng import shower_seeds
from fastshower.mc.simulator import Primaries, Simulator

ROOT = Path(__file__).resolve().parents[1]


def _in_simulator(code: str, tmp_path: Path) -> dict:
    """Run ``code`` (which prints one JSON line last) in a child process with the CUDA simulator on."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=str(ROOT / "src"))
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


_SETUP = """
import json, numpy as np
from fastshower.geometry import load_geometry
from fastshower.mc.simulator import Primaries, Simulator
from fastshower.mc.rng import shower_seeds

calo = load_geometry("clic")

def primaries(n, seed):
    rng = np.random.default_rng(seed)
    return Primaries(pdg=np.array([11, 22, -11, 111] * (n // 4) + [11] * (n % 4)),
                     energy_GeV=rng.uniform(1.0, 2.0, n), theta_rad=rng.uniform(0.0, 0.3, n),
                     phi_rad=rng.uniform(0.0, 6.28, n), x_mm=np.zeros(n), y_mm=np.zeros(n))
"""


def test_gpu_showers_do_not_depend_on_launch_size_and_close_the_ledger(tmp_path: Path) -> None:
    out = _in_simulator(_SETUP + """
p = primaries(10, 3)
seeds = shower_seeds(5, 0, 10)
a = Simulator(calo, device="cuda", showers_per_launch=3).run(p, seeds)
b = Simulator(calo, device="cuda", showers_per_launch=7).run(p, seeds)
total = sum(a.ledger.values())
available = p.energy_GeV + np.where(p.pdg == -11, 2 * 0.51099895e-3, 0) + np.where(p.pdg == 111, 0.1349768, 0)
print(json.dumps({"same": bool(np.array_equal(a.images, b.images)
                               and all(np.array_equal(a.ledger[k], b.ledger[k]) for k in a.ledger)),
                  "ledger_error": float(np.max(np.abs(total / available - 1))),
                  "deposit": float(a.images.sum())}))
""", tmp_path)
    assert out["same"]
    assert out["ledger_error"] < 1e-6
    assert out["deposit"] > 0


@pytest.mark.slow  # a physics comparison (12 s under the simulator): make test-slow
def test_gpu_sampling_fraction_and_profile_agree_with_cpu_within_statistics(tmp_path: Path) -> None:
    # independent samples: the GPU path with one run seed, the CPU kernel with another (2 GeV electrons)
    out = _in_simulator(_SETUP + """
n = 80
p = Primaries(pdg=np.full(n, 11), energy_GeV=np.full(n, 2.0), theta_rad=np.zeros(n), phi_rad=np.zeros(n),
              x_mm=np.zeros(n), y_mm=np.zeros(n))
g = Simulator(calo, device="cuda", showers_per_launch=32).run(p, shower_seeds(1, 0, n))
c = Simulator(calo).run(p, shower_seeds(2, 0, n))
print(json.dumps({k: v.images.sum(axis=(1, 2)).tolist() for k, v in (("gpu", g), ("cpu", c))}))
""", tmp_path)
    gpu, cpu = np.array(out["gpu"]), np.array(out["cpu"])  # (showers, layers), GeV
    fractions = [x.sum(axis=1) / 2.0 for x in (gpu, cpu)]
    error = np.hypot(*(f.std(ddof=1) / np.sqrt(f.size) for f in fractions))
    assert abs(fractions[0].mean() - fractions[1].mean()) < 4 * error
    # longitudinal profile, layer by layer: chi2 per layer with the per-layer standard errors
    mean = [x.mean(axis=0) for x in (gpu, cpu)]
    sigma = np.hypot(*(x.std(axis=0, ddof=1) / np.sqrt(x.shape[0]) for x in (gpu, cpu)))
    used = sigma > 0
    chi2 = float(np.sum(((mean[0] - mean[1])[used] / sigma[used]) ** 2))
    assert chi2 < used.sum() + 4 * np.sqrt(2 * used.sum()), chi2


def test_showers_deeper_than_a_gpu_stack_are_redone_on_the_cpu(tmp_path: Path) -> None:
    out = _in_simulator("""
import fastshower.mc.gpu_kernel_constants as sizes
sizes.STACK_CAPACITY = 4  # before the kernel module reads it: every shower of a few GeV overflows
""" + _SETUP + """
p = primaries(6, 9)
seeds = shower_seeds(4, 0, 6)
g = Simulator(calo, device="cuda").run(p, seeds)
c = Simulator(calo).run(p, seeds)
print(json.dumps({"same": bool(np.array_equal(g.images, c.images))}))
""", tmp_path)
    assert out["same"]


def test_cli_gpu_and_cpu_workers_make_each_shower_once(tmp_path: Path) -> None:
    # under the simulator the GPU path is the CPU kernel: the files must then agree bit for bit, which shows
    # that every shower was made exactly once and written in its place, whoever made it
    out = _in_simulator("""
import json, subprocess, sys, h5py, numpy as np
common = [sys.executable, "-m", "fastshower", "simulate", "--particle", "e-", "--energy", "1:2", "--n", "24",
          "--seed", "3", "--quiet"]
for name, extra in (("gpu", ["--device", "cuda", "--workers", "1", "--chunk-size", "5", "--showers-per-launch", "8"]),
                    ("both", ["--device", "cuda", "--workers", "3", "--chunk-size", "2", "--showers-per-launch", "4"]),
                    ("cpu", ["--workers", "2", "--chunk-size", "7"])):
    done = subprocess.run(common + ["--out", name + ".h5", "-v"] + extra, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    if name == "both":
        by_gpu = [line for line in done.stderr.splitlines() if "GPU: showers [" in line]
images = [h5py.File(name + ".h5")["ECAL"][()] for name in ("gpu", "both", "cpu")]
print(json.dumps({"same": all(np.array_equal(images[0], x) for x in images[1:]), "n": len(images[1]),
                  "by_gpu": by_gpu}))
""", tmp_path)
    assert out["same"] and out["n"] == 24
    # both took part: the GPU some launches, the CPU workers the rest
    made = [re.search(r"\[(\d+), (\d+)\)", line).groups() for line in out["by_gpu"]]
    assert made and 0 < sum(int(b) - int(a) for a, b in made) < 24, out["by_gpu"]


def test_cpu_stack_overflow_redo_gives_the_same_showers(clic_simulator: Simulator) -> None:
    # the kernel's stack is bounded; simulate_batch doubles it and redoes a shower that overflows
    from fastshower.mc import transport

    sim = clic_simulator
    p = Primaries(pdg=np.array([11, 22]), energy_GeV=np.array([5.0, 5.0]), theta_rad=np.zeros(2),
                  phi_rad=np.zeros(2), x_mm=np.zeros(2), y_mm=np.zeros(2))
    seeds = shower_seeds(8, 0, 2)
    c = sim.kernel_constants()
    results = []
    for capacity in (2, 4096):
        images = np.zeros((2, *sim.calorimeter.cell_shape), dtype=np.float32)
        ledger, steps = np.zeros((2, transport.N_LEDGER)), np.zeros(2, dtype=np.int64)
        transport.simulate_batch(seeds, np.array([transport.ELECTRON, transport.GAMMA]), p.energy_GeV * 1e3,
                                 p.x_mm, p.y_mm, np.array([[0.0, 0.0, 1.0]] * 2), c["z_front"], c["z_back"],
                                 c["slab_mat"], c["slab_layer"], c["half_width"], c["half_x"], c["half_y"], c["pitch"],
                                 c["values"], c["cumulative"], c["element_data"], c["scalars"], c["settings"], images,
                                 ledger, steps, capacity)
        results.append((images, ledger, steps))
    assert np.array_equal(results[0][0], results[1][0]) and np.array_equal(results[0][1], results[1][1])
    assert np.array_equal(results[0][2], results[1][2]) and np.all(results[0][2] > 100)


def test_asking_for_a_gpu_without_one_is_a_one_line_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["CUDA_VISIBLE_DEVICES"] = ""  # hides a GPU, should the machine running the tests have one
    done = subprocess.run([sys.executable, "-m", "fastshower", "simulate", "--particle", "e-", "--energy", "1",
                           "--n", "2", "--out", str(tmp_path / "x.h5"), "--device", "cuda"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "device cuda: no CUDA GPU" in lines[0] and "Traceback" not in done.stderr
    assert not (tmp_path / "x.h5").exists() and not list(tmp_path.glob("*.partial"))


def test_unknown_device_is_refused() -> None:
    from fastshower.errors import ConfigError

    with pytest.raises(ConfigError, match="device 'tpu': unknown"):
        Simulator(load_geometry("clic"), device="tpu")


@pytest.mark.slow  # 40 s of NVVM + ptxas on 2 cores: make test-slow
def test_the_whole_transport_compiles_for_a_hopper_gpu(clic_simulator: Simulator) -> None:
    pytest.importorskip("numba.cuda")
    from fastshower.mc import gpu

    try:
        ptx = gpu.compile_ptx(clic_simulator.kernel_constants(), clic_simulator.calorimeter.cell_shape, (9, 0))
    except Exception as exc:  # numba-cuda present without the CUDA toolkit's compiler libraries
        if "nvvm" in str(exc).lower() or "nvrtc" in str(exc).lower():
            pytest.skip(f"CUDA toolkit compiler libraries missing: {exc}")
        raise
    assert ".target sm_90" in ptx
    assert "shower_kernel" in ptx
    # one source of physics: the step, the samplers and the look-ups are inside the kernel, not stubs
    for name in ("simulate_shower", "move_mixed", "sample_photon_energy", "straggled_loss"):
        assert name in ptx, name
