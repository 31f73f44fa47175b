"""Tests of the command line (run in-process through ``main``) and of the demo."""

from __future__ import annotations

import subprocess
import sys
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

import fastshower.mc.production as production
from fastshower.cli import main
from fastshower.data import LEDGER_KEYS, inspect_showers, partial_path, read_showers
from fastshower.demo import run_demo
from fastshower.errors import ConfigError
from fastshower.mc.simulator import Simulator


def simulate_args(out: Path, *extra: str, n: int = 8, energy: str = "1") -> list[str]:
    return ["simulate", "--geometry", "clic", "--particle", "e-", "--energy", energy, "--n", str(n),
            "--seed", "5", "--out", str(out), "--quiet", *extra]


def assert_same_showers(a: Path, b: Path) -> None:
    x, y = read_showers(a), read_showers(b)
    assert np.array_equal(x.ecal, y.ecal)
    for name in ("energy_GeV", "theta_rad", "phi_rad", "pdg"):
        assert np.array_equal(getattr(x, name), getattr(y, name)), name
    assert set(x.ledger) == set(y.ledger) == set(LEDGER_KEYS)
    for key in LEDGER_KEYS:
        assert np.array_equal(x.ledger[key], y.ledger[key]), key


def one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("fastshower: error: ")
    return lines[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """8 showers of 1 GeV e-, one worker, chunks of 3."""
    out = tmp_path_factory.mktemp("ref") / "ref.h5"
    assert main(simulate_args(out, "--workers", "1", "--chunk-size", "3")) == 0
    return out


def test_simulate_writes_file_and_summary(reference, capsys, tmp_path):
    data = read_showers(reference)
    assert data.ecal.shape == (8, 25, 25, 25)
    assert np.all(data.energy_GeV == 1.0) and np.all(data.pdg == 11)
    assert np.array_equal(data.ledger["available"], data.energy_GeV)
    total = sum(data.ledger[k] for k in LEDGER_KEYS if k != "available")
    assert np.allclose(total, data.ledger["available"], rtol=1e-9)
    attrs = data.attrs
    assert attrs["seed"] == 5 and attrs["geometry"]["name"] == "clic"
    assert attrs["physics"]["range_cut_mm"] == 0.7
    assert attrs["request"] == {"particle": "e-", "energy_GeV": "1", "theta_deg": "0", "phi_deg": "0",
                                "entry_xy_mm": [0.0, 0.0], "entry_spread_mm": 0.0, "n": 8, "chunk_size": 3}
    assert "version" in attrs
    assert not partial_path(reference).exists()

    out = tmp_path / "small.h5"
    assert main(simulate_args(out, "--workers", "1", "--n", "2", "--theta", "10", "--range-cut-mm", "1.0")) == 0
    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 1
    assert summary[0].startswith(f"{out}: 2 showers")
    assert "showers/s" in summary[0] and "sampling fraction" in summary[0] and "ledger error" in summary[0]
    data = read_showers(out)
    assert np.allclose(data.theta_rad, np.deg2rad(10))  # degrees on the command line, radians in files
    assert data.attrs["physics"]["range_cut_mm"] == 1.0


def test_determinism_across_workers_and_chunks(reference, tmp_path):
    out = tmp_path / "two.h5"
    assert main(simulate_args(out, "--workers", "2", "--chunk-size", "2")) == 0
    assert_same_showers(reference, out)


def _interrupt_after_first_chunk(monkeypatch) -> list:
    real = production.run_production
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(list(args[4]))
        stream = real(*args, **kwargs)

        def gen():
            with closing(stream):
                for item in stream:
                    yield item
                    raise KeyboardInterrupt

        return gen()

    monkeypatch.setattr(production, "run_production", interrupted)
    return calls


def test_resume_after_interrupt(reference, tmp_path, monkeypatch, capsys):
    out = tmp_path / "resumed.h5"
    args = simulate_args(out, "--workers", "1", "--chunk-size", "3")
    calls = _interrupt_after_first_chunk(monkeypatch)
    assert main(args) == 1
    line = one_error_line(capsys)
    assert "interrupted" in line and "3 of 8 showers" in line and str(partial_path(out)) in line
    assert "resume" in line
    assert partial_path(out).exists() and not out.exists()
    assert calls == [[(0, 3), (3, 6), (6, 8)]]
    monkeypatch.undo()

    # rerun: only the undone chunks are simulated
    real_run, real_production = Simulator.run, production.run_production
    simulated, todo = [], []

    def counting_run(self, primaries, seeds, **kwargs):
        simulated.append(len(primaries))
        return real_run(self, primaries, seeds, **kwargs)

    def recording_production(*args, **kwargs):
        todo.append(list(args[4]))
        return real_production(*args, **kwargs)

    monkeypatch.setattr(Simulator, "run", counting_run)
    monkeypatch.setattr(production, "run_production", recording_production)
    assert main(args) == 0
    assert todo == [[(3, 6), (6, 8)]]
    assert simulated == [3, 2]
    assert "(3 resumed)" in capsys.readouterr().out
    assert out.exists() and not partial_path(out).exists()
    assert_same_showers(reference, out)


def test_resume_with_other_arguments_is_refused(tmp_path, monkeypatch, capsys):
    out = tmp_path / "x.h5"
    _interrupt_after_first_chunk(monkeypatch)
    assert main(simulate_args(out, "--workers", "1", "--chunk-size", "2", n=4)) == 1
    monkeypatch.undo()
    capsys.readouterr()
    assert main(simulate_args(out, "--workers", "1", "--chunk-size", "2", n=4, energy="2")) == 2
    line = one_error_line(capsys)
    assert "different configuration" in line and "request" in line
    # --no-resume starts over
    assert main(simulate_args(out, "--workers", "1", "--chunk-size", "2", "--no-resume", n=4, energy="2")) == 0
    assert np.all(read_showers(out).energy_GeV == 2.0)


@pytest.mark.parametrize(("extra", "expect"), [
    (["--geometry", "nowhere"], "geometry 'nowhere'"),
    (["--energy", "10:abc"], "--energy '10:abc': expected a number, A:B, A:B:log or A,B,C"),
    (["--energy", "-5"], "energy: must be"),
    (["--theta", "95"], "theta: must be in [0, 90) degrees"),
    (["--particle", "mu-"], "particle 'mu-': unsupported"),
    (["--n", "0"], "n 0: must be >= 1"),
    (["--workers", "0"], "workers 0: must be >= 1"),
    (["--chunk-size", "0"], "--chunk-size 0"),
    (["--physics", "missing.yaml"], "missing.yaml"),
    (["--range-cut-mm", "-1"], "range_cut_mm"),
    (["--entry-xy", "500,0"], "entry point"),
    (["--n", "x"], "argument --n: invalid int value"),
])
def test_simulate_errors(tmp_path, capsys, extra, expect):
    out = tmp_path / "e.h5"
    assert main(simulate_args(out, *extra)) == 2
    assert expect in one_error_line(capsys)
    assert not out.exists() and not partial_path(out).exists()  # nothing was started


def test_existing_output_needs_overwrite(reference, tmp_path, capsys):
    out = tmp_path / "exists.h5"
    out.write_bytes(reference.read_bytes())
    assert main(simulate_args(out, "--workers", "1", n=2)) == 2
    line = one_error_line(capsys)
    assert str(out) in line and "exists" in line and "--overwrite" in line
    assert main(simulate_args(out, "--workers", "1", "--overwrite", n=2)) == 0
    assert inspect_showers(out)["n"] == 2


def test_missing_command_and_unknown_command(capsys):
    assert main([]) == 2
    assert "command" in one_error_line(capsys)
    assert main(["fly"]) == 2
    assert "invalid choice: 'fly'" in one_error_line(capsys)


def test_help_and_version(capsys):
    assert main(["--version"]) == 0
    assert "fastshower" in capsys.readouterr().out
    assert main(["simulate", "--help"]) == 0
    assert "--scheduler" in capsys.readouterr().out


def test_physics_file(tmp_path, capsys):
    physics = tmp_path / "physics.yaml"
    physics.write_text("range_cut_mm: 1.5\nstraggling: false\n")
    out = tmp_path / "p.h5"
    assert main(simulate_args(out, "--workers", "1", "--physics", str(physics), n=1)) == 0
    attrs = read_showers(out).attrs
    assert attrs["physics"]["range_cut_mm"] == 1.5 and attrs["physics"]["straggling"] is False
    bad = tmp_path / "bad.yaml"
    bad.write_text("range_cutt_mm: 1.5\n")
    assert main(simulate_args(tmp_path / "q.h5", "--workers", "1", "--physics", str(bad), n=1)) == 2
    assert "unknown key(s) ['range_cutt_mm']" in one_error_line(capsys)


def test_the_old_physics_stays_selectable(tmp_path):
    # today's defaults are recorded; the shipped file of the physics before issue 10 reproduces old samples, and
    # --msc overrides a physics file
    new, old, mixed = tmp_path / "new.h5", tmp_path / "old.h5", tmp_path / "mixed.h5"
    before = str(Path(__file__).resolve().parents[1] / "configs" / "physics-highland-csda.yaml")
    assert main(simulate_args(new, "--workers", "1", n=1)) == 0
    assert main(simulate_args(old, "--workers", "1", "--physics", before, n=1)) == 0
    assert main(simulate_args(mixed, "--workers", "1", "--physics", before, "--msc", "wentzel", n=1)) == 0
    recorded = {p: read_showers(p).attrs["physics"] for p in (new, old, mixed)}
    assert (recorded[new]["msc"], recorded[new]["cut_conversion"]) == ("wentzel", "geant4")
    assert (recorded[old]["msc"], recorded[old]["cut_conversion"]) == ("highland", "csda")
    assert (recorded[mixed]["msc"], recorded[mixed]["cut_conversion"]) == ("wentzel", "csda")


def test_inspect(reference, capsys):
    assert main(["inspect", str(reference)]) == 0
    out = capsys.readouterr().out
    assert "showers:" in out and " 8" in out
    assert "25 x 25 x 25" in out and "fastshower" in out
    assert "1 .. 1 GeV" in out and "geometry:" in out and "clic" in out and "seed:" in out


def test_inspect_errors(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "none.h5")]) == 2
    assert "no such file" in one_error_line(capsys)
    partial = tmp_path / "p.h5.partial"
    partial.write_bytes(b"not hdf5")
    assert main(["inspect", str(partial)]) == 2
    one_error_line(capsys)


def test_module_entry_point_one_line_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "fastshower", "inspect", str(tmp_path / "none.h5")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"fastshower: error: {tmp_path / 'none.h5'}: no such file"]


def test_demo_command_passes_arguments(monkeypatch, tmp_path):
    import fastshower.demo

    seen = {}
    monkeypatch.setattr(fastshower.demo, "run_demo", lambda out, n_per_energy, seed, model: seen.update(
        out=out, n=n_per_energy, seed=seed, model=model))
    assert main(["demo", "--out", str(tmp_path / "d"), "--n", "7"]) == 0
    assert seen == {"out": tmp_path / "d", "n": 7, "seed": 2026, "model": "3dvae-clic-electrons"}
    assert main(["demo", "--out", str(tmp_path / "d"), "--mc-only"]) == 0
    assert seen["model"] is None


def test_run_demo(tmp_path, capsys):
    result = run_demo(tmp_path / "demo", n_per_energy=3, energies=(1, 2), model=None)
    h5, png = Path(result["h5"]), Path(result["png"])
    assert h5 == tmp_path / "demo" / "mc_demo.h5" and png == tmp_path / "demo" / "mc_demo.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert not [p for p in png.parent.iterdir() if p.name.endswith(".tmp")]
    data = read_showers(h5)
    assert len(data) == 6 and list(data.energy_GeV) == [1, 1, 1, 2, 2, 2]
    rows = result["per_energy"]
    assert [r["energy_GeV"] for r in rows] == [1.0, 2.0]
    for r in rows:
        assert 0.005 < r["sampling_fraction"] < 0.05
        assert r["sampling_fraction_std"] >= 0 and r["showers_per_s"] > 0 and r["ms_per_shower"] > 0
        assert r["max_ledger_error"] < 1e-6
        profile = np.array(r["longitudinal_profile"])
        assert profile.shape == (25,) and abs(profile.sum() - 1) < 1e-6
    table = capsys.readouterr().out
    assert "sampling fraction" in table and "longitudinal profile" in table


def test_run_demo_compares_with_a_model(tmp_path, capsys):
    import torch

    from fastshower.models import build_model
    from fastshower.models.bundle import save_bundle

    torch.manual_seed(0)
    pair = build_model("3dgan", (25, 25, 25))
    bundle = save_bundle(tmp_path / "g.pt", pair.generator, model_name="3dgan", cell_shape=(25, 25, 25),
                         model_config=pair.config, transform_power=0.85, transform_scale=1.0,
                         energy_range_GeV=(1.0, 2.0))
    result = run_demo(tmp_path / "demo", n_per_energy=12, energies=(1, 2), model=str(bundle))
    model = result["model"]
    assert model["speedup"] > 0 and model["gen_ms_per_shower"] > 0
    assert Path(model["report"]).is_file() and (tmp_path / "demo" / "gen_demo.h5").is_file()
    assert [b["label"] for b in model["bins"]] and model["n_checks"] >= model["n_pass"]
    assert "faster" in capsys.readouterr().out
    # a model that does not exist is refused before the Monte Carlo runs: nothing is written
    with pytest.raises(ConfigError, match=r"^model 'no-such-model': no such file and not a shipped model"):
        run_demo(tmp_path / "demo2", n_per_energy=2, energies=(1,), model="no-such-model")
    assert not (tmp_path / "demo2").exists()


def test_models_lists_the_shipped_models_with_their_conditions(capsys) -> None:
    from fastshower.cli import main

    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "family", "detector", "particles", "energy", "[GeV]", "theta", "[deg]",
                                "cells"]
    assert lines[1].split() == ["3dgan-clic-electrons", "3dgan", "clic", "e-", "10-510", "0-0", "25x25x25"]
    assert lines[2].split() == ["3dvae-clic-electrons", "3dvae", "clic", "e-", "10-510", "0-0", "25x25x25"]


def test_progress_without_a_terminal_is_a_log_line_every_30_s_and_at_the_end(caplog, monkeypatch) -> None:
    import logging

    from fastshower.cli import common

    now = [0.0]
    monkeypatch.setattr(common.sys.stderr, "isatty", lambda: False, raising=False)
    bar = common.progress(100, 10, quiet=False, what="out.h5")
    bar.clock = lambda: now[0]
    bar.started = bar.last = 0.0
    with caplog.at_level(logging.INFO, logger="fastshower.progress"):
        for _ in range(9):
            now[0] += 10.0
            bar.update(10)
        bar.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "fastshower.progress"]
    assert lines == ["out.h5: 40/100 showers done, 1.0 showers/s", "out.h5: 70/100 showers done, 1.0 showers/s",
                     "out.h5: 100/100 showers done, 1.0 showers/s", "out.h5: 100/100 showers done, 1.0 showers/s"]
