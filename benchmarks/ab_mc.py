"""CPU speed of two versions of the Monte Carlo, interleaved: same showers, alternating runs, one core each.

Run: ``git worktree add /tmp/before <commit> && .venv/bin/python benchmarks/ab_mc.py /tmp/before/src src``. Each
version runs in its own process (its own numba cache); they take turns simulating the same six 100 GeV electrons
(CLIC preset, default physics) ``--rounds`` times, so that the load of a shared machine hits both alike. Prints
min and median ms/GeV of each. Timing noise on shared machines is +-15 % or more between separate runs; the
interleaving is what makes a comparison of two versions meaningful.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

_WORKER = """
import sys, time, numpy as np
from fastshower.geometry import load_geometry
from fastshower.mc.simulator import Primaries, Simulator
from fastshower.mc.rng import shower_seeds
sim = Simulator(load_geometry("clic"))
z = np.zeros(6)
p = Primaries(np.full(6, 11), np.full(6, 100.0), z, z, z, z)
sim.run(p.select(0, 1), shower_seeds(0, 0, 1))
print("ready", flush=True)
for line in sys.stdin:
    t = time.perf_counter()
    sim.run(p, shower_seeds(int(line), 0, 6))
    print((time.perf_counter() - t) / 6 / 100 * 1000, flush=True)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", help="src/ directory of the first version")
    parser.add_argument("after", help="src/ directory of the second version")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    procs = {}
    for name, src in (("before", args.before), ("after", args.after)):
        env = dict(os.environ, PYTHONPATH=os.path.abspath(src))
        procs[name] = subprocess.Popen([sys.executable, "-c", _WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       text=True, env=env)
        if procs[name].stdout.readline().strip() != "ready":
            print(f"ab_mc: the {name} version did not start", file=sys.stderr)
            return 1
    times: dict[str, list[float]] = {name: [] for name in procs}
    for r in range(args.rounds):
        for name, proc in procs.items():
            proc.stdin.write(f"{r + 1}\n")
            proc.stdin.flush()
            times[name].append(float(proc.stdout.readline()))
    for proc in procs.values():
        proc.stdin.close()
        proc.wait()
    for name, values in times.items():
        ordered = sorted(values)
        print(f"{name}: min {ordered[0]:.2f}, median {ordered[len(ordered) // 2]:.2f} ms/GeV (100 GeV e-, "
              f"{args.rounds} interleaved runs of 6 showers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
