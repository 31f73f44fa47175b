"""Parallelism, kept apart from the models and the loop: torchrun init/cleanup, DDP wrapping, per-rank seeds.

Launch with ``torchrun --nproc_per_node N -m fastshower train ...`` (multi-node through torchrun's
rendezvous). Without torchrun's environment (RANK/WORLD_SIZE/LOCAL_RANK) everything runs in one process.

DDP and the 3DGAN: the discriminator runs twice per batch (real, fake) with one optimizer step each, and both
networks hold BatchNorm, whose running statistics change in every training forward. The networks are wrapped
with ``broadcast_buffers=False`` so that DDP does not overwrite buffers (from rank 0) before each forward -
with two forwards per step that in-place broadcast collides with autograd. Gradients are still all-reduced
exactly once per backward; the running statistics, which only matter in eval mode (generation, physics
check), drift apart per rank and are averaged over the ranks (``average_buffers``) before each checkpoint and
physics check.
"""

from __future__ import annotations

import datetime
import inspect
import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from fastshower.errors import ConfigError
from fastshower.hardware import cpu_has_native_bf16

logger = logging.getLogger(__name__)


@dataclass
class DistInfo:
    """Where this process stands: its rank among ``world_size`` processes and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the run directory (logs, checkpoints)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("device cuda: no CUDA device is available")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """fp32 / bf16 / fp16 -> dtype; ``auto`` is bf16 (fp16 without bf16 support) on CUDA, and on a CPU bf16 where
    it computes bf16 natively (AVX-512 BF16, AMX: a training step ~4x faster than fp32), else fp32 (emulated bf16
    is ~3x slower)."""
    if precision == "auto":
        if device.type != "cuda":
            return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("precision fp16 needs CUDA (use bf16 on the CPU)")
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def init_distributed(device: str = "auto") -> DistInfo:
    """Read torchrun's environment and start the process group (nccl on CUDA, gloo on CPU) when world > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    info = DistInfo(rank, world, local_rank, dev)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
        logger.debug("rank %d/%d: process group up (%s, %s)", rank, world, backend, dev)
    return info


def cleanup(info: DistInfo) -> None:
    """Tear down the process group (safe to call when none was started)."""
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap(module: nn.Module, info: DistInfo, sync_batchnorm: bool = False) -> nn.Module:
    """The module for training: DDP-wrapped (see module docstring) under world > 1, itself otherwise."""
    if not info.distributed:
        return module
    if sync_batchnorm:
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
    ids = [info.device.index] if info.device.type == "cuda" else None
    # buffers stay per rank during an epoch (averaged at its end); the initial ones are identical on every rank
    # (one seed), so syncing them at construction changes nothing. Newer torch names the option
    # forward_sync_buffers and warns, once per rank, about the old name.
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
        return DistributedDataParallel(module, device_ids=ids, forward_sync_buffers=False)
    return DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)


def unwrap(module: nn.Module) -> nn.Module:
    """The plain model under DDP and ``torch.compile`` wrappers (whose state_dict keys are those of the model)."""
    while True:
        if isinstance(module, DistributedDataParallel):
            module = module.module
        elif hasattr(module, "_orig_mod"):
            module = module._orig_mod  # type: ignore[assignment]
        else:
            return module


def average_buffers(module: nn.Module, info: DistInfo) -> None:
    """Replace floating-point buffers (BatchNorm running statistics) by their mean over the ranks."""
    if not info.distributed:
        return
    for buf in unwrap(module).buffers():
        if buf.is_floating_point():
            dist.all_reduce(buf, op=dist.ReduceOp.SUM)
            buf.div_(info.world_size)


def all_gather(obj: Any, info: DistInfo) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (picklable objects)."""
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_flag(flag: bool, info: DistInfo) -> bool:
    """Rank 0's ``flag`` on every rank (so that time-based decisions agree)."""
    if not info.distributed:
        return flag
    t = torch.tensor([int(flag)], device=info.device if info.device.type == "cuda" else "cpu")
    dist.broadcast(t, src=0)
    return bool(t.item())


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def stream_seed(seed: int, rank: int, stream: int) -> int:
    """Seed of random stream ``stream`` (0 noise, 1 label flips, 2 global torch RNG) of ``rank``: independent
    streams for every (run seed, rank, purpose), via numpy's SeedSequence."""
    return int(np.random.SeedSequence([seed, rank, stream]).generate_state(1, dtype=np.uint64)[0] >> 1)


def scaled_lr(lr: float, info: DistInfo, scale_with_world: bool) -> float:
    """Learning rate for ``world_size`` processes (linear scaling rule, Goyal et al. arXiv:1706.02677)."""
    return lr * info.world_size if scale_with_world else lr


def warmup_factor(step: int, warmup_steps: int, world_scale: float) -> float:
    """Multiplier of the scaled lr at optimizer step ``step``: linear from ``1/world_scale`` (the unscaled lr)
    to 1 over ``warmup_steps`` (gradual warm-up, Goyal et al.); identically 1 when nothing was scaled."""
    if world_scale <= 1 or warmup_steps <= 0 or step >= warmup_steps:
        return 1.0
    start = 1.0 / world_scale
    return start + (1.0 - start) * step / warmup_steps
