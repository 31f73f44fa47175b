"""What the GPU shower kernel asks of a GPU, measured without one: registers, spills and stack per thread.

Run: ``.venv/bin/python benchmarks/gpu_kernel_resources.py [--cc 9.0]`` (needs ``fastshower[cuda]``: numba-cuda and
the CUDA toolkit's compilers from pip). It compiles the kernel, with the whole transport it calls, to PTX for the
given compute capability (:func:`fastshower.mc.gpu.compile_ptx`), assembles it with ``ptxas -v``, and prints the
resources of the kernel and the resident threads they allow on an H100/H200 (132 SMs, 64k registers per SM).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fastshower.geometry import load_geometry
from fastshower.mc import gpu
from fastshower.mc.simulator import Simulator


def ptxas_path() -> str | None:
    """ptxas from PATH or from the pip wheel nvidia-cuda-nvcc-cu12."""
    found = shutil.which("ptxas")
    if found:
        return found
    try:
        import nvidia.cuda_nvcc as nvcc  # type: ignore[import-not-found]
    except ImportError:
        return None
    candidate = Path(list(nvcc.__path__)[0]) / "bin" / "ptxas"
    return str(candidate) if candidate.exists() else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cc", default="9.0", help="compute capability (default: %(default)s, Hopper)")
    args = parser.parse_args()
    major, minor = (int(v) for v in args.cc.split("."))
    sim = Simulator(load_geometry("clic"))
    start = time.perf_counter()
    ptx = gpu.compile_ptx(sim.kernel_constants(), sim.calorimeter.cell_shape, (major, minor))
    compile_s = time.perf_counter() - start
    print(f"PTX for sm_{major}{minor}: {len(ptx.splitlines())} lines, compiled in {compile_s:.0f} s")
    ptxas = ptxas_path()
    if ptxas is None:
        print("ptxas not found: install fastshower[cuda] for registers and stack", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "kernel.ptx"
        source.write_text(ptx)
        done = subprocess.run([ptxas, f"-arch=sm_{major}{minor}", "-v", str(source), "-o", str(Path(tmp) / "k.o")],
                              capture_output=True, text=True, check=True)
    report = done.stderr
    entry = report[report.index("shower_kernel"):]
    registers = int(re.search(r"Used (\d+) registers", entry).group(1))
    stack = int(re.search(r"(\d+) bytes stack frame", entry).group(1))
    spills = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", entry).groups()
    warps = 65536 // (32 * ((registers + 7) // 8 * 8))  # registers are allocated per warp in units of 256
    print(f"shower_kernel: {registers} registers, {stack} bytes stack frame, spill stores/loads {spills[0]}/"
          f"{spills[1]} bytes")
    print(f"resident per SM (register-bound): {warps} warps = {32 * warps} threads; on 132 SMs (H100/H200): "
          f"{132 * 32 * warps} threads, {132 * 32 * warps * stack / 2**30:.1f} GiB of thread stacks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
