"""Training of the generative models (3DGAN) on one process or many (torchrun).

Layers: ``config`` (dataclasses), ``losses`` (pure functions), ``checkpoint`` (one dict, atomic),
``distributed`` (process group, DDP wrapping), ``physics_check`` (epoch selection), ``trainer`` (the loop) and
``layer_energies`` (the 3dvae's layer-energy flows fitted on a trained decoder).
Uses ``fastshower.data`` and ``fastshower.models``; nothing below imports this package.
"""

from fastshower.train.checkpoint import CHECKPOINT_KEYS, load_checkpoint
from fastshower.train.config import TrainConfig, load_config
from fastshower.train.trainer import Trainer, TrainResult, train

__all__ = ["CHECKPOINT_KEYS", "TrainConfig", "TrainResult", "Trainer", "load_checkpoint", "load_config", "train"]
