"""Join several shower files of the same detector and physics into one fastshower file (``fastshower merge``).

A production is often made in pieces (several seeds, several machines); training and validation read one
file. Merging streams the inputs in batches (constant memory), refuses files that cannot belong together
(other cell shape, geometry, physics settings or ledger) and refuses the same production twice (same seed and
request: identical showers). A merge that fails or is interrupted leaves no partial file behind (it is redone
whole). The output records its sources in the ``merged_from`` attribute and is written
atomically by :class:`~fastshower.data.writer.ShowerWriter`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastshower.data.readers import BinningSpec, inspect_showers, iter_showers
from fastshower.data.writer import ShowerWriter
from fastshower.errors import DataFormatError

#: Attributes that must be identical in every input: showers made with different detectors or physics
#: settings are different distributions and must not be mixed silently.
MUST_AGREE = ("geometry", "physics", "binning")


def merge_showers(inputs: Sequence[str | Path], out: str | Path, overwrite: bool = False,
                  batch_size: int = 256, binning: BinningSpec | None = None) -> Path:
    """Concatenate the showers of ``inputs`` (in order) into the fastshower file ``out``; returns its path.

    Inputs may be of any readable format (``binning``: the binning of CaloChallenge inputs or the mapping of ROOT
    inputs): e.g. the pieces of a CaloChallenge data set become one file that needs no binning any more.
    Raises ``DataFormatError`` (one line naming the file) when fewer than two inputs are given, an input is
    missing or unreadable, inputs disagree on cell shape, ledger keys, geometry, physics or binning, two inputs
    share a seed and production request, or ``out`` exists (without ``overwrite``) or is one of the inputs.
    """
    paths = [Path(p) for p in inputs]
    out = Path(out)
    if len(paths) < 2:
        raise DataFormatError(f"{out}: merging needs at least two input files (got {len(paths)})")
    if any(p.resolve() == out.resolve() for p in paths):
        raise DataFormatError(f"{out}: the output is also an input")
    infos = [inspect_showers(p, binning, require_binning=True) for p in paths]
    for path, info in zip(paths, infos, strict=True):
        if info["attrs"].get("content") == "events":  # see fastshower.data.events
            raise DataFormatError(f"{path}: is an event file; merging would drop its particle table (not supported)")
    _check_compatible(infos)
    first = infos[0]
    writer = ShowerWriter(out, sum(i["n"] for i in infos), tuple(first["cell_shape"]), _merged_attrs(infos),
                          ledger_keys=first["ledger_keys"], resume=False, overwrite=overwrite)
    try:
        start = 0
        for path in paths:
            for part in iter_showers(path, batch_size, binning):
                writer.write(start, part)
                start += len(part)
        return writer.finalize()
    except BaseException:  # a refused (e.g. a NaN in a later input) or interrupted merge is redone whole
        writer.discard()
        raise


def _check_compatible(infos: list[dict[str, Any]]) -> None:
    first = infos[0]
    seen: dict[str, str] = {}
    for info in infos:
        path, attrs = info["path"], info["attrs"]
        if info["cell_shape"] != first["cell_shape"]:
            raise DataFormatError(f"{path}: cell shape {tuple(info['cell_shape'])} differs from "
                                  f"{tuple(first['cell_shape'])} in {first['path']}")
        if sorted(info["ledger_keys"]) != sorted(first["ledger_keys"]):
            raise DataFormatError(f"{path}: ledger keys {sorted(info['ledger_keys'])} differ from "
                                  f"{sorted(first['ledger_keys'])} in {first['path']}")
        for key in MUST_AGREE:
            if _normalised(key, attrs.get(key)) != _normalised(key, first["attrs"].get(key)):
                raise DataFormatError(f"{path}: {key} settings differ from those of {first['path']}")
        if "seed" in attrs and "request" in attrs:
            production = f"{attrs['seed']!r} {attrs['request']!r}"
            if production in seen:
                raise DataFormatError(f"{path}: same seed ({attrs['seed']}) and request as {seen[production]}: "
                                      "the showers would be identical")
            seen[production] = path


def _normalised(key: str, value: Any) -> Any:
    """Physics settings with the settings added since a file was made filled in as it was made."""
    if key != "physics" or not isinstance(value, dict):
        return value
    from fastshower.mc.settings import recorded_physics

    return recorded_physics(value)


def _merged_attrs(infos: list[dict[str, Any]]) -> dict[str, Any]:
    first = infos[0]["attrs"]
    attrs: dict[str, Any] = {key: _normalised(key, first[key]) for key in MUST_AGREE if key in first}
    attrs["merged_from"] = [{"file": Path(i["path"]).name, "n": i["n"], "seed": i["attrs"].get("seed"),
                             "request": i["attrs"].get("request")} for i in infos]
    requests = [i["attrs"].get("request") for i in infos]
    if all(isinstance(r, dict) for r in requests):
        # keep the request when the inputs sampled the same conditions: trainers read the energy range from it
        conditions = [{k: v for k, v in r.items() if k not in ("n", "chunk_size")} for r in requests]
        if all(c == conditions[0] for c in conditions):
            attrs["request"] = {**conditions[0], "n": sum(i["n"] for i in infos)}
    return attrs
