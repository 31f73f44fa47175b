"""What this machine's CPU computes natively, for the choices that depend on it (training and generation precision)."""

from __future__ import annotations

import re
from pathlib import Path


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bf16 natively (the ``avx512_bf16`` or ``amx_bf16`` flag of ``/proc/cpuinfo``, or
    the given text). Without it bf16 is emulated and generation in bf16 is ~18x slower than in fp32
    (benchmarks/RESULTS.md, "Models side by side"); with it ~2x faster, and a training step ~4x faster."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", cpuinfo) is not None


def fastest_cpu_precision() -> str:
    """``bf16`` where the CPU computes it natively, else ``fp32``: the faster precision on this CPU."""
    return "bf16" if cpu_has_native_bf16() else "fp32"
