"""The GPU slot recipe (scripts/gpu-slot.sh) run on the CPU at small scale: validation sample, training MC,
training, the report, what comes back, and a second slot that continues the run on fresh showers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # ~2 min on 2 cores: `make test-slow`
@pytest.mark.timeout(900)
def test_slot_recipe_on_cpu_makes_a_model_and_a_later_slot_continues_it(tmp_path: Path) -> None:
    detector = tmp_path / "tiny.yaml"
    detector.write_text("name: tiny-w-si\ngrid: {nx: 8, ny: 8, pitch_mm: 5.0, threshold_MeV: 0.05}\n"
                        "layers:\n  - {repeat: 8, absorber: W, absorber_mm: 3.5, sensor: Si, sensor_mm: 0.5}\n")
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), FASTSHOWER=f"{sys.executable} -m fastshower",
               DEVICE="cpu", MC_DEVICE="cpu", GEOMETRY=str(detector), CONFIG=str(REPO / "configs/3dgan-tiny.yaml"),
               SPECTRUM="1:4:log", N_TRAIN="96", PIECE="48", VALIDATION_ENERGIES="1,2,4", VALIDATION_N="12",
               SLOT_SECONDS="600", MC_SECONDS="300", VALIDATE_SECONDS="0", EPOCHS="1")
    first, second = tmp_path / "slot1", tmp_path / "slot2"
    for out, extra, slot, epochs in ((first, [], "1", "1"), (second, [str(first)], "2", "2")):
        done = subprocess.run(["bash", str(REPO / "scripts/gpu-slot.sh"), str(out), *extra],
                              env=dict(env, SLOT=slot, EPOCHS=epochs), cwd=REPO, capture_output=True, text=True,
                              timeout=800)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        names = {p.name for p in out.iterdir()}
        assert {"generator.pt", "last.pt", "log.jsonl", "metrics.json", "key-numbers.txt"} <= names
        assert len(names) <= 8  # what a device machine sends back
        key = (out / "key-numbers.txt").read_text()
        assert "checks pass" in key or " of " in key, key
        assert f"slot {slot}: 96 training showers (1:4:log GeV)" in key
    log = [json.loads(line) for line in (second / "log.jsonl").read_text().splitlines()]
    epochs = sorted({r["epoch"] for r in log if "epoch" in r})
    assert epochs[0] == 0 and epochs[-1] >= 1  # the second slot went on from the first one's epoch
    metrics = json.loads((second / "metrics.json").read_text())
    assert metrics["summary"]
