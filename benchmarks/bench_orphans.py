"""How long a production's workers outlive a killed parent: seconds from the kill until the last worker is gone.

Run: ``.venv/bin/python benchmarks/bench_orphans.py [--repeats 5] [--write]``. A real production
(``fastshower simulate``, 2 pool workers, 50 GeV electrons, workers busy in the transport kernel) is killed with
SIGKILL and with SIGTERM; also a parent whose workers are tied to it by one mechanism only (the kernel's
parent-death signal, the watchdog thread, the end-of-file of an idle worker's pipe), from
``tests/test_lifetime.py``'s parent script. ``--write`` replaces the section of benchmarks/RESULTS.md.
Linux only (/proc).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fastshower.bench import machine_description, write_results
from fastshower.lifetime import ProcessIdentity, child_pids

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from test_lifetime import PARENT  # noqa: E402  (the same parent the tests kill)


def seconds_until_gone(proc: subprocess.Popen, expected: int, signum: int, settle_s: float) -> float:
    deadline = time.monotonic() + 120
    workers: list[int] = []
    while len(workers) < expected and time.monotonic() < deadline:
        workers = child_pids(proc.pid)
        time.sleep(0.02)
    time.sleep(settle_s)
    identities = [ProcessIdentity.of(p) for p in workers]
    t0 = time.monotonic()
    proc.send_signal(signum)
    while any(i.is_running() for i in identities):
        if time.monotonic() - t0 > 60:
            for i in identities:
                os.kill(i.pid, signal.SIGKILL)
            return float("inf")
        time.sleep(0.005)
    elapsed = time.monotonic() - t0
    proc.wait()
    return elapsed


def production(signum: int, folder: Path, k: int) -> float:
    cmd = [sys.executable, "-m", "fastshower", "simulate", "--particle", "e-", "--energy", "50", "--n", "5000",
           "--workers", "2", "--chunk-size", "16", "--out", str(folder / f"p{k}.h5"), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return seconds_until_gone(proc, 2, signum, settle_s=2.0)


def one_mechanism(mode: str) -> float:
    proc = subprocess.Popen([sys.executable, "-c", PARENT, mode], stdout=subprocess.PIPE, text=True)
    proc.stdout.readline()
    return seconds_until_gone(proc, 2, signal.SIGKILL, settle_s=0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, signum in (("SIGKILL", signal.SIGKILL), ("SIGTERM", signal.SIGTERM)):
            times = [production(signum, Path(tmp), k) for k in range(args.repeats)]
            rows.append((f"`fastshower simulate --workers 2`, parent sent {name}", times))
    for mode, label in (("all", "all mechanisms"), ("watchdog", "watchdog thread only"),
                        ("eof", "pipe end-of-file only (idle workers)")):
        rows.append((f"pool parent sent SIGKILL, {label}", [one_mechanism(mode) for _ in range(args.repeats)]))
    lines = [
        "## Worker lifetime after the parent is killed",
        "",
        f"Machine: {machine_description()}. Command: `.venv/bin/python benchmarks/bench_orphans.py --repeats "
        f"{args.repeats} --write`. Seconds from the signal until no worker process is left (zombies count as gone).",
        "",
        "| case | median s | max s |",
        "|---|---|---|",
    ]
    lines += [f"| {label} | {statistics.median(t):.3f} | {max(t):.3f} |" for label, t in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        write_results(text, HERE / "RESULTS.md")


if __name__ == "__main__":
    main()
