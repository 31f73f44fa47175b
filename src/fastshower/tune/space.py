"""Search spaces of hyper-parameter scans: ranges and choices for training-configuration keys, from YAML.

A space maps dotted keys of the training configuration (``fastshower.train.config``) to what a trial may take::

    optim.lr: {low: 1.0e-4, high: 3.0e-3, log: true}     # a float range (log: sampled in log)
    optim.batch_size: {choices: [32, 64, 128]}           # a categorical
    loss.energy: {low: 0.02, high: 0.5}
    optim.label_flip: {low: 0.0, high: 0.1, step: 0.01}  # a stepped range
    model.options.latent_dim: {choices: [100, 200]}      # the model's own options (checked when it is built)

An integer setting (``optim.batch_size``) takes an integer range (``{low: 16, high: 128, log: true}``). Every
parameter is checked before any trial runs: the key must be a training setting, ``low < high``, a log range needs
``low > 0``, choices must be a non-empty list, and the configuration must accept the range's ends and every choice
(the type and range checks of ``fastshower train``). Errors are one line naming the file and the key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastshower.config import read_mapping
from fastshower.errors import ConfigError

_RANGE_KEYS = {"low", "high", "log", "step"}


@dataclass(frozen=True)
class Parameter:
    """One dimension of a search space: a range (``low``, ``high``, ``log``, ``step``; ``integer`` when the setting
    is an int) or ``choices``."""

    key: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    integer: bool = False
    choices: tuple[Any, ...] | None = None

    def suggest(self, trial: Any) -> Any:
        """The value an optuna ``trial`` picks for this parameter."""
        if self.choices is not None:
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.key, int(self.low), int(self.high), log=self.log,
                                     step=int(self.step or 1))
        return trial.suggest_float(self.key, float(self.low), float(self.high), log=self.log, step=self.step)

    def corners(self) -> list[Any]:
        """Values that bound what the parameter can take: the range's ends, or every choice."""
        return list(self.choices) if self.choices is not None else [self.low, self.high]

    def describe(self) -> str:
        """``optim.lr in [0.0001, 0.003] (log)`` or ``optim.batch_size in {32, 64, 128}``."""
        if self.choices is not None:
            return f"{self.key} in {{{', '.join(map(str, self.choices))}}}"
        extra = " (log)" if self.log else (f" step {self.step:g}" if self.step else "")
        return f"{self.key} in [{self.low:g}, {self.high:g}]{extra}"


def _setting_default(key: str, defaults: Mapping[str, Any], source: str) -> Any:
    """The default of a dotted training setting (None for a model option), or a ConfigError naming the key."""
    if key.startswith("model.options.") and len(key) > len("model.options."):
        return None
    node: Any = defaults
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"{source}: unknown key {key} (not a training setting)")
        node = node[part]
    if isinstance(node, dict):
        raise ConfigError(f"{source}: {key} is a section, not a setting")
    return node


def _number(value: Any, source: str, key: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{source}: {key}: {name} must be a finite number, got {value!r}")
    return value


def parse_parameter(key: str, spec: Any, defaults: Mapping[str, Any], source: str) -> Parameter:
    """One parameter from its YAML mapping; ``defaults`` is ``TrainConfig().to_dict()``."""
    default = _setting_default(key, defaults, source)
    if not isinstance(spec, dict):
        raise ConfigError(f"{source}: {key} must be a mapping ({{low, high}} or {{choices}}), got {spec!r}")
    if "choices" in spec:
        if set(spec) != {"choices"}:
            raise ConfigError(f"{source}: {key}: choices cannot be combined with {sorted(set(spec) - {'choices'})}")
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{source}: {key}: choices must be a non-empty list, got {choices!r}")
        if any(isinstance(c, dict | list) for c in choices) or len({repr(c) for c in choices}) != len(choices):
            raise ConfigError(f"{source}: {key}: choices must be distinct numbers, strings or booleans")
        return Parameter(key, choices=tuple(choices))
    unknown = set(spec) - _RANGE_KEYS
    if unknown or not {"low", "high"} <= set(spec):
        missing = sorted({"low", "high"} - set(spec))
        what = f"unknown field(s) {sorted(unknown)}" if unknown else f"missing {', '.join(missing)}"
        raise ConfigError(f"{source}: {key}: {what} (a range has low, high and optional log, step; "
                          "or give choices)")
    low, high = _number(spec["low"], source, key, "low"), _number(spec["high"], source, key, "high")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{source}: {key}: log must be true or false, got {log!r}")
    step = spec.get("step")
    if step is not None and _number(step, source, key, "step") <= 0:
        raise ConfigError(f"{source}: {key}: step must be > 0, got {step!r}")
    if not low < high:
        raise ConfigError(f"{source}: {key}: low {low:g} must be below high {high:g}")
    if log and low <= 0:
        raise ConfigError(f"{source}: {key}: a log range needs low > 0, got {low:g}")
    if log and step is not None:
        raise ConfigError(f"{source}: {key}: a range cannot be both log and stepped")
    integer = isinstance(default, int) and not isinstance(default, bool) or default is None and all(
        isinstance(v, int) and not isinstance(v, bool) for v in (spec["low"], spec["high"], step or 1))
    if isinstance(default, bool | str):
        raise ConfigError(f"{source}: {key} is a {type(default).__name__} setting: give choices, not a range")
    if integer and not all(float(v).is_integer() for v in (low, high, step or 1)):
        raise ConfigError(f"{source}: {key} is an integer setting: low, high and step must be integers")
    return Parameter(key, low, high, log, step, bool(integer))


def load_space(path: str | Path) -> list[Parameter]:
    """Read and check a search space file (YAML/TOML); see the module docstring."""
    from fastshower.train.config import TrainConfig

    source = str(path)
    tree = read_mapping(path, "search space")
    if not tree:
        raise ConfigError(f"{source}: the search space is empty")
    defaults = TrainConfig().to_dict()
    return [parse_parameter(str(key), spec, defaults, source) for key, spec in tree.items()]


def check_space(space: list[Parameter], base: Mapping[str, Any], source: str) -> None:
    """Refuse a space the training configuration would refuse: every range end and every choice is put into
    ``base`` (a resolved training configuration dict) and checked as ``fastshower train`` checks it."""
    from fastshower.train.config import TrainConfig, _set_dotted

    for parameter in space:
        for value in parameter.corners():
            tree = _copy(base)
            _set_dotted(tree, parameter.key, int(value) if parameter.integer else value)
            try:
                TrainConfig.from_dict(tree, "trial")
            except ConfigError as err:
                reason = str(err).removeprefix("trial: ")
                raise ConfigError(f"{source}: {parameter.key} = {value!r} is refused by the training "
                                  f"configuration ({reason})") from None


def _copy(tree: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _copy(v) if isinstance(v, Mapping) else v for k, v in tree.items()}
