"""Reading configuration files (YAML, JSON or TOML) into plain mappings, with one-line errors."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml

from fastshower.errors import ConfigError


def read_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """Parse ``path`` (``.toml`` as TOML, anything else as YAML, which includes JSON) into a dict.

    ``what`` names the file's role in error messages, e.g. ``"detector file"``. An empty file gives ``{}``.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read {what} ({err.strerror})") from None
    try:
        loaded = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except Exception as err:  # noqa: BLE001 - any parser error is a user error here
        kind = "TOML" if path.suffix == ".toml" else "YAML"
        raise ConfigError(f"{path}: not valid {kind}: {str(err).splitlines()[0]}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: a {what} must be a mapping of keys to values")
    return loaded
