"""Training configuration: a tree of dataclasses whose defaults (the original 3DGAN recipe) live here.

Presets (``configs/*.yaml``) only override; unknown keys are errors naming the key path. The resolved
configuration (``to_dict``) is written to ``resolved_config.yaml`` in the run directory and into every
checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastshower.config import read_mapping
from fastshower.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
OPTIMIZERS = ("rmsprop", "adam")


@dataclass
class ModelConfig:
    """Which registered model to build (``fastshower.models.build_model``) and its options."""

    name: str = "3dgan"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    """Training file and preprocessing. ``power``/``scale``: cells become ``scale * E_GeV**power``."""

    path: str = ""
    validation_fraction: float = 0.1
    power: float = 0.85
    scale: float = 1.0
    max_showers: int | None = None
    max_in_memory_gb: float = 8.0
    #: binning of a CaloChallenge training file: its XML, or "N_LAYERS,N_ALPHA,N_RADIAL" ("": other formats)
    binning: str = ""
    #: mapping file (YAML) of a ROOT training file: tree, branches and readout grid ("": not a ROOT file)
    mapping: str = ""
    #: hold the whole (in-memory) training set on the training device and gather batches there: no DataLoader,
    #: no per-batch host-to-device copy (a GPU's path to its matrix rate; falls back to the DataLoader when the set
    #: would take more than half the GPU's free memory). The numbers are the same either way.
    resident: bool = True


@dataclass
class OptimConfig:
    """Optimiser (one per network). ``batch_size`` is per process; ``lr`` is per process-batch and is multiplied
    by the world size when ``lr_scale_with_world``, and by ``batch_size / lr_reference_batch`` when
    ``lr_reference_batch`` > 0 (the linear scaling rule for a larger batch in one process: ``lr`` is then the rate of
    a batch of ``lr_reference_batch``); a scaled rate is warmed up linearly from ``lr`` over ``warmup_epochs``."""

    name: str = "rmsprop"
    lr: float = 1e-3
    batch_size: int = 128
    epochs: int = 30
    lr_scale_with_world: bool = True
    lr_reference_batch: int = 0
    warmup_epochs: float = 1.0
    label_flip: float = 0.05


@dataclass
class LossConfig:
    """Loss weights of the original 3DGAN, ``loss_weights=[3, 0.1, 0.1]`` for [BCE, energy MAPE, ecal MAPE],
    plus 25 for the angle MAE of ``3dgan-angle``. MAPEs are in percent, as Keras computes them (the weights were
    tuned for that); ``ecal_fit_degree`` is the degree of the sampling-fraction fit in log E."""

    adversarial: float = 3.0
    energy: float = 0.1
    ecal: float = 0.1
    theta: float = 25.0
    ecal_fit_degree: int = 2
    #: weight of the cell-spectrum term in the generator's loss (0: off, the original recipe); see
    #: fastshower.train.losses.cell_spectrum_loss
    cells: float = 0.0
    #: the VAE's (model 3dvae) weight of the KL divergence to the prior, against the cells' summed squared error in
    #: the transformed space (unused by the GANs)
    kl: float = 0.01


@dataclass
class RunConfig:
    """Execution: precision, device, seeds, checkpoints, logging. ``max_steps`` stops (with a checkpoint) after
    that many global steps, e.g. for smoke tests. ``time_limit_minutes`` (0: none) is a wall-clock budget for a
    batch-system slot: training stops at the end of the last epoch that is expected to finish inside it (the
    previous epoch's duration is the forecast), with its checkpoint written; ``--resume`` continues."""

    precision: str = "auto"
    device: str = "auto"
    seed: int = 1
    checkpoint_every_minutes: float = 10.0
    keep_epoch_checkpoints: bool = False
    num_workers: int = 0
    sync_batchnorm: bool = False
    tensorboard: bool = False
    compile: bool = False
    channels_last: bool = False
    physics_check_every: int = 1
    physics_check_max_showers: int = 2000
    log_every: int = 10
    max_steps: int | None = None
    time_limit_minutes: float = 0.0


@dataclass
class TrainConfig:
    """The whole training configuration."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON/torch-safe)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> TrainConfig:
        """Build from a nested mapping; unknown keys and wrong types raise ``ConfigError`` naming the key path."""
        cfg = _build(cls, values, source, "")
        validate(cfg, source)
        return cfg


def _build(kind: type, values: Any, source: str, prefix: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'config'} must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(kind)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        path = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(f"{source}: unknown key {path}")
        default = getattr(kind(), key)
        if dataclasses.is_dataclass(default):
            kwargs[key] = _build(type(default), value, source, f"{path}.")
        else:
            kwargs[key] = _coerce(value, default, source, path)
    return kind(**kwargs)


def _coerce(value: Any, default: Any, source: str, path: str) -> Any:
    # The default's type is the field's type; None defaults are the optional ints (max_steps, max_showers).
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif default is None:
        ok = value is None or (isinstance(value, int) and not isinstance(value, bool))
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, str):
        ok = isinstance(value, str)
        value = str(value) if isinstance(value, Path) else value
    elif isinstance(default, dict):
        ok = isinstance(value, dict)
    else:
        ok = True
    if not ok:
        want = "null or an integer" if default is None else type(default).__name__
        raise ConfigError(f"{source}: {path} must be {want}, got {value!r}")
    return value


def _check(cond: bool, source: str, message: str) -> None:
    if not cond:
        raise ConfigError(f"{source}: {message}")


def validate(cfg: TrainConfig, source: str = "config") -> None:
    """Range checks on values (the types were checked while building)."""
    o, r, d, w = cfg.optim, cfg.run, cfg.data, cfg.loss
    _check(o.name in OPTIMIZERS, source, f"optim.name must be one of {', '.join(OPTIMIZERS)}, got {o.name!r}")
    _check(o.lr > 0 and math.isfinite(o.lr), source, f"optim.lr must be > 0, got {o.lr}")
    _check(o.batch_size >= 1, source, f"optim.batch_size must be >= 1, got {o.batch_size}")
    _check(o.lr_reference_batch >= 0, source,
           f"optim.lr_reference_batch must be >= 0 (0: no batch scaling), got {o.lr_reference_batch}")
    _check(o.epochs >= 1, source, f"optim.epochs must be >= 1, got {o.epochs}")
    _check(o.warmup_epochs >= 0, source, f"optim.warmup_epochs must be >= 0, got {o.warmup_epochs}")
    _check(0 <= o.label_flip < 0.5, source, f"optim.label_flip must be in [0, 0.5), got {o.label_flip}")
    _check(0 <= d.validation_fraction < 1, source,
           f"data.validation_fraction must be in [0, 1), got {d.validation_fraction}")
    _check(d.power > 0 and d.scale > 0, source, "data.power and data.scale must be > 0")
    _check(d.max_showers is None or d.max_showers >= 2, source, "data.max_showers must be >= 2")
    _check(d.max_in_memory_gb > 0, source, "data.max_in_memory_gb must be > 0")
    _check(all(v >= 0 for v in (w.adversarial, w.energy, w.ecal, w.theta, w.cells, w.kl)), source,
           "loss weights must be >= 0")
    _check(0 <= w.ecal_fit_degree <= 5, source, f"loss.ecal_fit_degree must be in [0, 5], got {w.ecal_fit_degree}")
    _check(r.precision in PRECISIONS, source,
           f"run.precision must be one of {', '.join(PRECISIONS)}, got {r.precision!r}")
    _check(r.device in DEVICES, source, f"run.device must be one of {', '.join(DEVICES)}, got {r.device!r}")
    _check(r.seed >= 0, source, f"run.seed must be >= 0, got {r.seed}")
    _check(r.checkpoint_every_minutes > 0, source, "run.checkpoint_every_minutes must be > 0")
    _check(r.num_workers >= 0, source, f"run.num_workers must be >= 0, got {r.num_workers}")
    _check(r.physics_check_every >= 0, source, "run.physics_check_every must be >= 0 (0: never)")
    _check(r.physics_check_max_showers >= 1, source, "run.physics_check_max_showers must be >= 1")
    _check(r.log_every >= 1, source, f"run.log_every must be >= 1, got {r.log_every}")
    _check(r.max_steps is None or r.max_steps >= 1, source, "run.max_steps must be >= 1")
    _check(r.time_limit_minutes >= 0 and math.isfinite(r.time_limit_minutes), source,
           f"run.time_limit_minutes must be >= 0 (0: no limit), got {r.time_limit_minutes}")


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: {key} is not a section")
    node[leaf] = value


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a YAML/TOML preset (None: the defaults) and apply ``overrides`` (dotted keys, e.g. ``"optim.lr"``)."""
    tree = read_mapping(path, "training configuration") if path is not None else {}
    source = str(path) if path is not None else "config"
    for key, value in (overrides or {}).items():
        _set_dotted(tree, key, value)
    return TrainConfig.from_dict(tree, source)


#: Settings that decide what a checkpoint's state means; a resumed run must agree on all of them.
FINGERPRINT_KEYS = (
    "model",
    "data.validation_fraction",
    "data.power",
    "data.scale",
    "data.max_showers",
    "optim.name",
    "optim.lr",
    "optim.batch_size",
    "optim.lr_scale_with_world",
    "optim.lr_reference_batch",
    "optim.warmup_epochs",
    "optim.label_flip",
    "loss",
    "run.seed",
)


def fingerprint(cfg: dict[str, Any]) -> dict[str, Any]:
    """The ``FINGERPRINT_KEYS`` values of a resolved config dict; a key the dict lacks (a checkpoint written before
    the setting existed) takes its default, which is what that run used."""
    defaults = TrainConfig().to_dict()
    out = {}
    for key in FINGERPRINT_KEYS:
        node: Any = cfg
        default: Any = defaults
        for part in key.split("."):
            node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
            default = default.get(part) if isinstance(default, dict) else None
        if isinstance(node, dict) and isinstance(default, dict) and key != "model":
            node = {**default, **node}  # a section written before one of its settings existed: that one's default
        out[key] = default if node is _MISSING else node
    return out


_MISSING = object()
