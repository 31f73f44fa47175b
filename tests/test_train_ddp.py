"""DDP training with two gloo processes on the CPU, launched by torchrun like a user would."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

from fastshower.data import ShowerData, write_showers
from fastshower.data.dataset import split_indices

REPO = Path(__file__).resolve().parents[1]


def synth(n: int, shape: tuple[int, int, int] = (8, 8, 8), seed: int = 0) -> ShowerData:
    """Toy showers: a Gaussian core, ~2% of E deposited, gamma-smeared cells."""
    rng = np.random.default_rng(seed)
    energy = rng.uniform(10.0, 100.0, n)
    z = np.arange(shape[2])[None, None, :]
    r2 = ((np.arange(shape[0]) - 3.5) ** 2)[:, None, None] + ((np.arange(shape[1]) - 3.5) ** 2)[None, :, None]
    images = [np.exp(-((z - 1.0 - np.log(e)) ** 2) / 8.0 - r2 / 2.0) * 0.002 * e * rng.gamma(50.0, 0.02, size=shape)
              for e in energy]
    return ShowerData(np.asarray(images, np.float32), energy, np.zeros(n), np.zeros(n), np.full(n, 11))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_agree_and_split_the_data(tmp_path) -> None:
    """REQUIRED: 2 ranks end with identical weights and saw disjoint showers covering the train split."""
    data = write_showers(tmp_path / "d.h5", synth(36))  # 10% validation -> 32 train -> 16 per rank
    dump, out = tmp_path / "dump", tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", FASTSHOWER_DEBUG_DUMP=str(dump))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), "-m", "fastshower", "train", "--config",
           str(REPO / "configs/3dgan-tiny.yaml"), "--data", str(data), "--out", str(out), "--epochs", "1",
           "--batch-size", "4"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((dump / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["world_size"] == 2 and ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"]
    seen = [set(r["indices"]) for r in ranks]
    assert all(len(r["indices"]) == 16 for r in ranks)
    train_idx, _ = split_indices(36, 0.1, seed=1)
    assert not seen[0] & seen[1] and seen[0] | seen[1] == set(train_idx.tolist())
    # only rank 0 wrote the run directory; the log has one line per epoch record
    assert (out / "last.pt").is_file() and (out / "resolved_config.yaml").is_file()
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert sum(r["kind"] == "epoch" for r in records) == 1
    assert "finished at epoch 1, step 4" in proc.stdout
