"""Checkpoints: one dict with fixed keys and a schema version, written atomically, loaded with weights_only.

Keys (``CHECKPOINT_KEYS``)::

    schema_version   int
    model            {"name", "cell_shape", "options", "particles" (PDG codes of the one-hot)}
    generator        state_dict of the plain generator (unwrapped from DDP/compile)
    discriminator    state_dict of the plain discriminator
    optimizers       {"generator", "discriminator"}: optimizer state_dicts
    schedulers       {"generator", "discriminator"}: LambdaLR state_dicts
    scaler           {"generator", "discriminator"}: GradScaler state_dicts (None unless fp16)
    rng              {"per_rank": [{"torch", "cuda", "noise", "flip"} per rank], "numpy", "python"}
    epoch            epoch in progress (0-based; == epochs when training is finished)
    step             global optimizer step (batches) so far
    batch_in_epoch   batches of ``epoch`` done
    samples_in_epoch showers of ``epoch`` done by each rank (the sampler restarts there)
    world_size       processes that wrote it
    config           the resolved TrainConfig as a dict
    sampling_fraction_fit   SamplingFractionFit.to_dict()
    transform        ShowerTransform.to_dict()
    best_score       best physics-check score so far (None before the first check)
    best_epoch       epoch of that score

Only tensors and primitive containers are stored, so ``torch.load(weights_only=True)`` reads it.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from fastshower.atomic import atomic_write
from fastshower.errors import ConfigError, DataFormatError

SCHEMA_VERSION = 1
CHECKPOINT_KEYS = (
    "schema_version", "model", "generator", "discriminator", "optimizers", "schedulers", "scaler", "rng",
    "epoch", "step", "batch_in_epoch", "samples_in_epoch", "world_size", "config", "sampling_fraction_fit",
    "transform", "best_score", "best_epoch",
)
LAST, BEST = "last.pt", "best.pt"


def save_checkpoint(path: Path, ckpt: dict[str, Any]) -> None:
    """Write ``ckpt`` (which must have exactly ``CHECKPOINT_KEYS``) atomically to ``path``."""
    if set(ckpt) != set(CHECKPOINT_KEYS):
        raise ValueError(f"checkpoint keys {sorted(set(ckpt) ^ set(CHECKPOINT_KEYS))} differ from the schema")
    atomic_write(path, lambda f: torch.save(ckpt, f))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint onto the CPU; ``DataFormatError`` (one line) when missing, corrupt or incompatible."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - unpickling errors come in many types; all mean "unreadable"
        reason = " ".join(str(err).split())[:200]
        raise DataFormatError(f"{path}: not a readable checkpoint ({type(err).__name__}: {reason})") from None
    if not isinstance(ckpt, dict) or "schema_version" not in ckpt:
        raise DataFormatError(f"{path}: not a fastshower training checkpoint")
    if ckpt["schema_version"] != SCHEMA_VERSION:
        raise DataFormatError(
            f"{path}: checkpoint schema version {ckpt['schema_version']} (this fastshower reads {SCHEMA_VERSION})"
        )
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
    if missing:
        raise DataFormatError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return ckpt


def state_hash(*modules: torch.nn.Module) -> str:
    """SHA-256 of the state_dicts (parameters and buffers) of ``modules``."""
    h = hashlib.sha256()
    for m in modules:
        for key, t in sorted(m.state_dict().items()):
            h.update(key.encode())
            h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# --- random number generator states (as tensors and lists, for weights_only loading) -------------------


def rank_rng_state(noise: torch.Generator, flip: torch.Generator) -> dict[str, Any]:
    """The RNG states that differ per rank: global torch (CPU, CUDA) and the noise/label-flip generators."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "noise": noise.get_state(),
        "flip": flip.get_state(),
    }


def set_rank_rng_state(state: dict[str, Any], noise: torch.Generator, flip: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    noise.set_state(state["noise"])
    flip.set_state(state["flip"])


def host_rng_state() -> dict[str, Any]:
    """numpy's and Python's global RNG states as plain lists (not used by training, kept for completeness)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "numpy": {"name": name, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
                  "gauss": float(gauss)},
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }


def set_host_rng_state(state: dict[str, Any]) -> None:
    n = state["numpy"]
    np.random.set_state((n["name"], np.asarray(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))


# --- run directory ----------------------------------------------------------------------------------------


#: What a run writes before its first checkpoint: a run stopped before one is started over, not refused.
_BEFORE_FIRST_CHECKPOINT = frozenset({"resolved_config.yaml", "log.jsonl", "tensorboard"})


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """A new run needs a new or empty directory, or one left by a run stopped before its first checkpoint
    (nothing in it to continue from); ``resume`` needs ``last.pt`` in it."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: is a file; a run needs a directory")
    if resume:
        if not (run_dir / LAST).is_file():
            raise ConfigError(f"{run_dir}: no checkpoint {LAST} to resume from")
    elif run_dir.exists() and not {p.name for p in run_dir.iterdir()} <= _BEFORE_FIRST_CHECKPOINT:
        raise ConfigError(f"{run_dir}: exists; pass --resume to continue or choose another --out")


def resume_hint(run_dir: Path) -> str:
    """How to continue a stopped run from ``run_dir``, for the one-line message of an interrupt or error ("" when
    the run had not begun writing)."""
    if not run_dir.is_dir():
        return ""
    if (run_dir / LAST).is_file():
        return f"{run_dir / LAST} holds the last checkpoint: continue with fastshower train --out {run_dir} --resume"
    return "no checkpoint was written yet: the same command starts the run over"


def write_resolved_config(run_dir: Path, config: dict[str, Any]) -> None:
    """``resolved_config.yaml``: every setting of the run, defaults included."""
    text = yaml.safe_dump(config, sort_keys=False).encode()
    atomic_write(run_dir / "resolved_config.yaml", lambda f: f.write(text))
