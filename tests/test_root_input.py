"""ROOT input through uproot (issue 13): a flat ntuple and an EDM4hep-like tree, written here with uproot, give the
images, conditions and errors expected of them; the reader is chosen by content and the mapping's mistakes are one
line naming the key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

uproot = pytest.importorskip("uproot")
ak = pytest.importorskip("awkward")

from fastshower.data import inspect_showers, iter_showers, read_showers  # noqa: E402
from fastshower.data.readers import layout_from_options  # noqa: E402
from fastshower.data.root import load_mapping  # noqa: E402
from fastshower.errors import ConfigError, DataFormatError  # noqa: E402

SHAPE = (3, 4, 5)
KINDS = ("TTree", "RNTuple")


def write_tree(path: Path, name: str, columns: dict[str, object], kind: str) -> Path:
    """``columns`` as a TTree (records one level deep, EDM4hep's split-branch names ``coll.field.x``) or an
    RNTuple (nested records)."""
    with uproot.recreate(path) as f:
        if kind == "RNTuple":
            f[name] = {k: ak.Array(v) if isinstance(v, list) else v for k, v in columns.items()}
            return path
        flat = {}
        for key, value in columns.items():
            if isinstance(value, list) and value and isinstance(value[0], list) and value[0] and \
                    isinstance(value[0][0], dict):
                value = ak.zip(dict(zip(*_flat_fields(value), strict=True)))
            elif isinstance(value, list):
                value = ak.Array(value)
            flat[key] = value
        f.mktree(name, {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in flat.items()},
                 field_name=lambda outer, inner: f"{outer}.{inner}")
        f[name].extend(flat)
    return path


def _flat_fields(events: list) -> tuple[list[str], list]:
    """Jagged records with nested fields -> dotted field names and their jagged arrays."""
    def leaves(record: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in record.items():
            out.update(leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    rows = [[leaves(r) for r in event] for event in events]
    names = next(list(r) for event in rows for r in event)
    return names, [ak.Array([[r[n] for r in event] for event in rows]) for n in names]


def write_ntuple(path: Path, n: int = 6, seed: int = 0, kind: str = "TTree", shape: tuple[int, int, int] = SHAPE
                 ) -> tuple[Path, np.ndarray, np.ndarray]:
    """A flat ntuple: cells in MeV stored layer-major (order [z, y, x]), primary energies in GeV."""
    rng = np.random.default_rng(seed)
    cells_GeV = rng.exponential(0.01, (n, *shape)).astype(np.float32)
    stored = cells_GeV.transpose(0, 3, 2, 1).reshape(n, -1) * 1000.0  # (N, z, y, x) flattened, MeV
    energy = rng.uniform(10, 100, n)
    write_tree(path, "showers", {"E0": energy, "cells": [list(c) for c in stored.astype(np.float64)],
                                 "theta_deg": np.full(n, 5.0)}, kind)
    return path, cells_GeV, energy


def ntuple_mapping(folder: Path, shape: tuple[int, int, int] = SHAPE, **extra: object) -> Path:
    text = ("format: ntuple\ntree: showers\n"
            f"cells: {{branch: cells, unit: MeV, shape: [{shape[0]}, {shape[1]}, {shape[2]}], order: [z, y, x]}}\n"
            "energy: {branch: E0, unit: GeV}\ntheta: {branch: theta_deg, unit: deg}\npdg: 22\n")
    text += "".join(f"{k}: {v}\n" for k, v in extra.items())
    path = folder / "ntuple.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("kind", KINDS)
def test_flat_ntuple_gives_the_cells_in_the_grid_order_and_units(tmp_path, kind) -> None:
    root, cells, energy = write_ntuple(tmp_path / "showers.root", kind=kind)
    mapping = load_mapping(ntuple_mapping(tmp_path))
    data = read_showers(root, binning=mapping)
    assert data.ecal.shape == (6, *SHAPE)
    np.testing.assert_allclose(data.ecal, cells, rtol=1e-6)
    np.testing.assert_allclose(data.energy_GeV, energy)
    np.testing.assert_allclose(data.theta_rad, np.radians(5.0))
    assert set(data.pdg.tolist()) == {22}
    info = inspect_showers(root, mapping)
    assert (info["format"], info["n"], info["cell_shape"]) == ("root", 6, SHAPE)
    parts = list(iter_showers(root, 4, mapping))
    assert [len(p) for p in parts] == [4, 2] and np.array_equal(np.concatenate([p.ecal for p in parts]), data.ecal)


def write_edm4hep(path: Path, kind: str) -> Path:
    """Two events of SimCalorimeterHit-like records (GeV, mm) and MCParticles with one primary each."""
    hits = [
        [{"cellID": 1, "energy": 0.5, "position": {"x": 0.5, "y": 0.5, "z": 100.5}},
         {"cellID": 2, "energy": 0.25, "position": {"x": 0.6, "y": 0.7, "z": 100.2}},   # same cell as the first
         {"cellID": 3, "energy": 0.125, "position": {"x": -1.5, "y": 1.5, "z": 102.9}},
         {"cellID": 4, "energy": 2.0, "position": {"x": 9.0, "y": 0.0, "z": 101.0}}],   # outside in x
        [{"cellID": 5, "energy": 1.0, "position": {"x": 1.9, "y": -2.0, "z": 100.0}}],
    ]
    particles = [
        [{"PDG": 22, "generatorStatus": 2, "mass": 0.0, "momentum": {"x": 0.0, "y": 0.0, "z": 1.0}},
         {"PDG": 11, "generatorStatus": 1, "mass": 0.000511, "momentum": {"x": 0.0, "y": 3.0, "z": 4.0}}],
        [{"PDG": -11, "generatorStatus": 1, "mass": 0.000511, "momentum": {"x": 0.0, "y": 0.0, "z": 20.0}}],
    ]
    return write_tree(path, "events", {"ECalHits": hits, "MCParticles": particles}, kind)


def edm4hep_mapping(folder: Path, grid_x: str = "{min: -2, max: 2, n: 4}") -> Path:
    path = folder / "edm4hep.yaml"
    path.write_text(f"format: edm4hep\ntree: events\nhits: ECalHits\nprimary: MCParticles\n"
                    f"grid:\n  x: {grid_x}\n  y: {{min: -2, max: 2, n: 2}}\n  z: {{min: 100, max: 103, n: 3}}\n")
    return path


@pytest.mark.parametrize("kind", KINDS)
def test_edm4hep_hits_are_voxelised_by_position_and_the_rest_is_booked(tmp_path, kind) -> None:
    data = read_showers(write_edm4hep(tmp_path / "events.root", kind),
                        binning=load_mapping(edm4hep_mapping(tmp_path)))
    assert data.ecal.shape == (2, 4, 2, 3)
    expected = np.zeros((2, 4, 2, 3), np.float32)
    expected[0, 2, 1, 0] = 0.75  # x 0.5-0.6 -> bin 2 of [-2, 2] in 4; y > 0 -> 1; z 100.x -> 0
    expected[0, 0, 1, 2] = 0.125
    expected[1, 3, 0, 0] = 1.0
    np.testing.assert_allclose(data.ecal, expected)
    np.testing.assert_allclose(data.ledger["outside_grid"], [2.0, 0.0])
    # the first particle with generatorStatus 1: E = sqrt(p^2 + m^2), theta from the momentum
    np.testing.assert_allclose(data.energy_GeV, [np.hypot(5.0, 0.000511), np.hypot(20.0, 0.000511)])
    np.testing.assert_allclose(data.theta_rad, [np.arctan2(3.0, 4.0), 0.0], atol=1e-12)
    assert data.pdg.tolist() == [11, -11]
    constant = tmp_path / "constant.yaml"  # a value the mapping gives wins over the primary's
    constant.write_text(edm4hep_mapping(tmp_path).read_text() + "pdg: 22\n")
    assert read_showers(tmp_path / "events.root", binning=load_mapping(constant)).pdg.tolist() == [22, 22]


def test_the_shipped_example_mappings_load() -> None:
    folder = Path(__file__).parents[1] / "configs/mappings"
    assert load_mapping(folder / "ntuple.yaml").cell_shape == (25, 25, 25)
    edm = load_mapping(folder / "edm4hep-ecal.yaml")
    assert (edm.hits, edm.primary, edm.grid[2].width_mm) == ("ECalBarrelCollection", "MCParticles", 6.0)


def test_root_errors_name_the_file_the_key_and_what_was_expected(tmp_path) -> None:
    root, _, _ = write_ntuple(tmp_path / "showers.root")
    with pytest.raises(DataFormatError, match=r"showers.root: ROOT file: pass --mapping FILE"):
        inspect_showers(root)
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    bad_shape = load_mapping(ntuple_mapping(wrong).rename(wrong / "m.yaml"))
    object.__setattr__(bad_shape, "cell_shape", (2, 2, 2))
    with pytest.raises(DataFormatError, match=r"branch 'cells' holds 60 values in entry 0 but the mapping's "
                                              r"cells.shape 2x2x2 needs 8"):
        read_showers(root, binning=bad_shape)
    mapping = ntuple_mapping(tmp_path)
    mapping.write_text(mapping.read_text().replace("tree: showers", "tree: events"))
    with pytest.raises(DataFormatError, match=r"no tree 'events' .* the file has 'showers'"):
        read_showers(root, binning=load_mapping(mapping))
    mapping.write_text(mapping.read_text().replace("tree: events", "tree: showers").replace("E0", "E_true"))
    with pytest.raises(DataFormatError, match=r"tree 'showers' has no branch 'E_true'"):
        read_showers(root, binning=load_mapping(mapping))
    for text, message in [
        ("format: csv\n", "format must be one of ntuple, edm4hep, got 'csv'"),
        ("format: ntuple\ntree: t\ncells: {branch: c, shape: [2, 2]}\nenergy: {branch: e}\n",
         r"cells.shape must be 3 positive integers"),
        ("format: ntuple\ntree: t\ncells: {branch: c, shape: [2, 2, 2]}\nenergy: {branch: e, unit: eV}\n",
         r"energy.unit must be one of keV, MeV, GeV, TeV, got 'eV'"),
        ("format: ntuple\ntree: t\ncells: {branch: c, shape: [2, 2, 2]}\nenergy: {branch: e}\ngrid: {}\n",
         r"unknown key 'grid' for format ntuple"),
        ("format: edm4hep\ntree: t\nhits: h\nprimary: p\ngrid: {x: {min: 1, max: 0, n: 2}, y: {min: 0, max: 1, n: 1}, "
         "z: {min: 0, max: 1, n: 1}}\n", r"grid.x must be \{min, max, n\} with max > min"),
    ]:
        path = tmp_path / "bad.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError, match=f"bad.yaml: {message}"):
            load_mapping(path)
    with pytest.raises(ConfigError, match="--binning and --mapping: give one"):
        layout_from_options("2,2,2", str(mapping))


def test_commands_read_root_files_with_mapping(tmp_path, capsys) -> None:
    from fastshower.cli import main

    root, cells, _ = write_ntuple(tmp_path / "showers.root", n=12)
    mapping = ntuple_mapping(tmp_path)
    assert main(["inspect", str(root), "--mapping", str(mapping)]) == 0
    rows = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    assert (rows["format"].strip(), rows["showers"].strip(), rows["cell shape"].strip()) == ("root", "12", "3 x 4 x 5")
    merged = tmp_path / "merged.h5"
    assert main(["merge", str(root), str(root), "--mapping", str(mapping), "--out", str(merged)]) == 0
    data = read_showers(merged)
    assert len(data) == 24 and np.allclose(data.ecal[12:], cells, rtol=1e-6)
    assert main(["inspect", str(root)]) == 2
    assert "pass --mapping FILE" in capsys.readouterr().err


def test_train_reads_a_root_file_through_its_mapping(tmp_path) -> None:
    from fastshower.cli import main
    from fastshower.train import load_checkpoint

    root, _, _ = write_ntuple(tmp_path / "showers.root", n=40, shape=(8, 8, 10))
    run = tmp_path / "run"
    tiny = Path(__file__).parents[1] / "configs/3dgan-tiny.yaml"
    assert main(["train", "-q", "--config", str(tiny), "--data", str(root), "--mapping",
                 str(ntuple_mapping(tmp_path, (8, 8, 10))), "--epochs", "1", "--out", str(run)]) == 0
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["model"]["cell_shape"] == [8, 8, 10] and ckpt["model"]["particles"] == [22]
    assert ckpt["config"]["data"]["mapping"] == str(tmp_path / "ntuple.yaml")
