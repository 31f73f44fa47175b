"""fastshower merge: the showers survive unchanged and files that do not belong together are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import synthetic_showers
from fastshower.cli import main
from fastshower.data import inspect_showers, merge_showers, partial_path, read_showers, write_showers
from fastshower.errors import DataFormatError

REQUEST = {"particle": "e-", "energy_GeV": "10:100", "theta_deg": "0", "n": 0, "chunk_size": 64}


def _production(path: Path, seed: int, n: int, shape: tuple[int, int, int] = (8, 8, 8),
                geometry: str = "clic", **request: object) -> Path:
    data = synthetic_showers(n, shape, seed=seed)
    data.ledger = {"sensor": data.ecal.sum(axis=(1, 2, 3)).astype(np.float64)}
    data.attrs = {"geometry": {"name": geometry}, "physics": {"range_cut_mm": 0.7}, "seed": seed,
                  "request": {**REQUEST, "n": n, **request}}
    return write_showers(path, data)


def test_merge_keeps_every_shower_in_order_and_records_its_sources(tmp_path: Path) -> None:
    a, b = _production(tmp_path / "a.h5", 1, 7), _production(tmp_path / "b.h5", 2, 5)
    out = merge_showers([a, b], tmp_path / "m.h5", batch_size=3)
    merged, first, second = read_showers(out), read_showers(a), read_showers(b)
    np.testing.assert_array_equal(merged.ecal, np.concatenate([first.ecal, second.ecal]))
    np.testing.assert_array_equal(merged.energy_GeV, np.concatenate([first.energy_GeV, second.energy_GeV]))
    np.testing.assert_array_equal(merged.ledger["sensor"], np.concatenate([first.ledger["sensor"],
                                                                           second.ledger["sensor"]]))
    attrs = inspect_showers(out)["attrs"]
    assert [(s["file"], s["n"], s["seed"]) for s in attrs["merged_from"]] == [("a.h5", 7, 1), ("b.h5", 5, 2)]
    assert attrs["request"]["energy_GeV"] == "10:100" and attrs["request"]["n"] == 12
    assert attrs["geometry"] == {"name": "clic"}
    assert not partial_path(out).exists()


def test_merge_drops_the_request_when_the_conditions_differ(tmp_path: Path) -> None:
    a = _production(tmp_path / "a.h5", 1, 4)
    b = _production(tmp_path / "b.h5", 2, 4, energy_GeV="100:200")
    assert "request" not in inspect_showers(merge_showers([a, b], tmp_path / "m.h5"))["attrs"]


@pytest.mark.parametrize("other, message", [
    (dict(seed=1), "same seed (1) and request"),
    (dict(seed=2, shape=(8, 8, 9)), "cell shape (8, 8, 9) differs"),
    (dict(seed=2, geometry="clic-wide"), "geometry settings differ"),
])
def test_merge_refuses_files_that_do_not_belong_together(tmp_path: Path, other: dict, message: str) -> None:
    a = _production(tmp_path / "a.h5", 1, 4)
    b = _production(tmp_path / "b.h5", n=4, **other)
    with pytest.raises(DataFormatError, match=message.replace("(", r"\(").replace(")", r"\)")):
        merge_showers([a, b], tmp_path / "m.h5")
    assert not (tmp_path / "m.h5").exists() and not partial_path(tmp_path / "m.h5").exists()


def test_merge_cli_errors_are_one_line_and_keep_existing_output(tmp_path: Path, capsys) -> None:
    a, b = _production(tmp_path / "a.h5", 1, 4), _production(tmp_path / "b.h5", 2, 4)
    existing = tmp_path / "m.h5"
    existing.write_bytes(b"keep me")
    assert main(["merge", str(a), str(b), "--out", str(existing)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "exists; pass --overwrite to replace it" in err
    assert existing.read_bytes() == b"keep me"
    assert main(["merge", str(a), "--out", str(tmp_path / "x.h5")]) == 2
    assert "at least two input files" in capsys.readouterr().err
    assert main(["merge", str(a), str(tmp_path / "missing.h5"), "--out", str(tmp_path / "y.h5")]) == 2
    assert "missing.h5" in capsys.readouterr().err
    assert main(["merge", str(a), str(b), "--out", str(tmp_path / "z.h5")]) == 0
    assert read_showers(tmp_path / "z.h5").ecal.shape == (8, 8, 8, 8)
