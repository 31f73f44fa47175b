"""Tests of the data layer: fastshower format round trip, resumable writer, external readers, errors."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from fastshower.data import (
    LEDGER_KEYS,
    ShowerData,
    ShowerWriter,
    inspect_showers,
    iter_showers,
    load_binning,
    partial_path,
    read_showers,
    write_showers,
)
from fastshower.errors import DataFormatError

CELLS = (4, 5, 6)


def make_data(n: int = 8, seed: int = 1, ledger: bool = True) -> ShowerData:
    rng = np.random.default_rng(seed)
    ecal = rng.exponential(0.01, size=(n, *CELLS)).astype(np.float32)
    ecal[ecal < 0.005] = 0.0  # sparse, like real showers
    energy = rng.uniform(1.0, 100.0, n)
    led = {k: rng.uniform(0.0, 1.0, n) for k in LEDGER_KEYS} if ledger else {}
    attrs = {
        "geometry": {"name": "tiny", "cells": list(CELLS), "layers": [{"absorber": "W", "mm": 2.5}]},
        "physics": {"ecut_MeV": 1.0},
        "seed": seed,
        "request": {"n": n, "energy_GeV": [1, 100]},
        "comment": "test [not json]",
        "scale": 0.5,
        "flag": True,
    }
    return ShowerData(
        ecal=ecal,
        energy_GeV=energy,
        theta_rad=rng.uniform(0.0, 0.5, n),
        phi_rad=rng.uniform(-np.pi, np.pi, n),
        pdg=rng.choice([11, -11, 22], n),
        ledger=led,
        attrs=attrs,
    )


def assert_same_showers(a: ShowerData, b: ShowerData) -> None:
    assert a.ecal.dtype == b.ecal.dtype == np.float32
    np.testing.assert_array_equal(a.ecal, b.ecal)
    np.testing.assert_array_equal(a.energy_GeV, b.energy_GeV)
    np.testing.assert_array_equal(a.theta_rad, b.theta_rad)
    np.testing.assert_array_equal(a.phi_rad, b.phi_rad)
    np.testing.assert_array_equal(a.pdg, b.pdg)
    assert set(a.ledger) == set(b.ledger)
    for k in a.ledger:
        np.testing.assert_array_equal(a.ledger[k], b.ledger[k])


# --- ShowerData ------------------------------------------------------------------------------------------


def test_showerdata_coerces_and_selects() -> None:
    data = make_data(6)
    assert len(data) == 6 and data.cell_shape == CELLS
    assert data.pdg.dtype == np.int32 and data.energy_GeV.dtype == np.float64
    mask = np.array([True, False, True, False, False, True])
    for sub in (data.select(mask), data.select([0, 2, 5]), data.select(slice(0, 6, 2)).select([0, 1, 0])):
        assert len(sub) == 3
    np.testing.assert_array_equal(data.select(mask).ecal, data.ecal[[0, 2, 5]])
    np.testing.assert_array_equal(data.select(mask).ledger["sensor"], data.ledger["sensor"][[0, 2, 5]])
    assert data.select(3).ecal.shape == (1, *CELLS)
    joined = ShowerData.concatenate([data.select(slice(0, 2)), data.select(slice(2, 6))])
    assert_same_showers(joined, data)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.__setitem__("ecal", np.zeros((3, 4, 5))), "has shape (3, 4, 5)"),
        (lambda d: d["ecal"].__setitem__((0, 0, 0, 0), np.nan), "'ECAL' contains NaN"),
        (lambda d: d["ecal"].__setitem__((0, 0, 0, 0), -0.1), "negative cell energies"),
        (lambda d: d["energy_GeV"].__setitem__(1, 0.0), "non-positive primary energy"),
        (lambda d: d.__setitem__("theta_rad", np.zeros(2)), "'theta' has shape (2,)"),
        (lambda d: d["phi_rad"].__setitem__(0, np.inf), "'phi' contains inf"),
    ],
)
def test_showerdata_validation(change, message: str) -> None:
    d = make_data(3, ledger=False)
    fields = {k: getattr(d, k).copy() for k in ("ecal", "energy_GeV", "theta_rad", "phi_rad", "pdg")}
    change(fields)
    with pytest.raises(DataFormatError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ShowerData(**fields)


def test_tiny_negative_cells_tolerated() -> None:
    d = make_data(2, ledger=False)
    d.ecal[0, 0, 0, 0] = -1e-13
    ShowerData(d.ecal, d.energy_GeV, d.theta_rad, d.phi_rad, d.pdg)


# --- our format: round trip and writer ------------------------------------------------------------------


def test_round_trip(tmp_path: Path) -> None:
    data = make_data()
    path = write_showers(tmp_path / "train.h5", data)
    assert path == tmp_path / "train.h5" and not partial_path(path).exists()
    back = read_showers(path)
    assert_same_showers(back, data)
    for key, value in data.attrs.items():
        assert back.attrs[key] == value, key
    assert back.attrs["format"] == "fastshower" and back.attrs["schema_version"] == 1
    assert isinstance(back.attrs["version"], str)
    assert isinstance(back.attrs["seed"], int) and isinstance(back.attrs["flag"], bool)
    with h5py.File(path, "r") as f:
        assert "_done" not in f
        assert f["ECAL"].chunks == (1, *CELLS) and f["ECAL"].shuffle
        assert f["ECAL"].compression in ("gzip", "lzf")
        assert f["pdgID"].dtype == np.int32 and f["ledger/leak_back"].dtype == np.float64
        assert isinstance(f.attrs["geometry"], str)  # JSON text on disk
    info = inspect_showers(path)
    assert info["n"] == 8 and info["cell_shape"] == CELLS and info["format"] == "fastshower"
    assert info["ledger_keys"] and set(info["ledger_keys"]) == set(LEDGER_KEYS)
    assert info["attrs"]["geometry"] == data.attrs["geometry"]


def test_round_trip_without_ledger_and_slice(tmp_path: Path) -> None:
    data = make_data(5, ledger=False)
    path = write_showers(tmp_path / "x.h5", data)
    assert_same_showers(read_showers(path, start=1, stop=4), data.select(slice(1, 4)))
    assert read_showers(path).ledger == {}
    assert len(read_showers(path, start=3, stop=100)) == 2


def test_writer_resume_equals_one_shot(tmp_path: Path) -> None:
    data = make_data(10)
    one_shot = read_showers(write_showers(tmp_path / "one.h5", data))

    out = tmp_path / "resumed.h5"
    w = ShowerWriter(out, 10, CELLS, data.attrs)
    w.write(0, data.select(slice(0, 5)))
    w.close()  # e.g. the job was stopped
    assert partial_path(out).exists() and not out.exists()

    with ShowerWriter(out, 10, CELLS, data.attrs) as w2:
        done = w2.done_mask()
        np.testing.assert_array_equal(done, np.arange(10) < 5)
        w2.write(5, data.select(slice(5, 10)))
        assert w2.finalize() == out
    assert not partial_path(out).exists()
    resumed = read_showers(out)
    assert_same_showers(resumed, one_shot)
    assert resumed.attrs == one_shot.attrs


def test_writer_refuses_mismatched_resume(tmp_path: Path) -> None:
    data = make_data(4)
    out = tmp_path / "run.h5"
    with ShowerWriter(out, 4, CELLS, data.attrs) as w:
        w.write(0, data.select(slice(0, 2)))
    other = dict(data.attrs, seed=99)
    with pytest.raises(
        DataFormatError, match=r"run\.h5\.partial: .*different configuration \(seed differs\)"
    ):
        ShowerWriter(out, 4, CELLS, other)
    with pytest.raises(DataFormatError, match="n_showers"):
        ShowerWriter(out, 5, CELLS, data.attrs)
    geometry = dict(data.attrs, geometry={"name": "other"})
    with pytest.raises(DataFormatError, match="geometry differs"):
        ShowerWriter(out, 4, CELLS, geometry)
    # the partial file survives the refusals and still resumes with the right configuration
    with ShowerWriter(out, 4, CELLS, data.attrs) as w:
        assert w.done_mask().tolist() == [True, True, False, False]


def test_writer_refuses_overwrite(tmp_path: Path) -> None:
    data = make_data(3)
    path = write_showers(tmp_path / "done.h5", data)
    before = path.read_bytes()
    with pytest.raises(DataFormatError, match=r"done\.h5: exists; refusing to overwrite"):
        write_showers(path, make_data(3, seed=2))
    with pytest.raises(DataFormatError, match="refusing to overwrite"):
        ShowerWriter(path, 3, CELLS, data.attrs)
    assert path.read_bytes() == before
    write_showers(path, make_data(3, seed=2), overwrite=True)
    assert_same_showers(read_showers(path), make_data(3, seed=2))


def test_finalize_with_missing_showers(tmp_path: Path) -> None:
    data = make_data(6)
    out = tmp_path / "prod.h5"
    w = ShowerWriter(out, 6, CELLS, data.attrs)
    w.write(0, data.select(slice(0, 2)))
    w.write(4, data.select(slice(4, 6)))
    with pytest.raises(DataFormatError, match=r"prod\.h5\.partial: 2 of 6 showers are missing"):
        w.finalize()
    w.close()
    assert partial_path(out).exists() and not out.exists()
    with pytest.raises(DataFormatError, match="unfinished production"):
        read_showers(partial_path(out))
    with ShowerWriter(out, 6, CELLS, data.attrs) as w:
        assert w.done_mask().tolist() == [True, True, False, False, True, True]
        w.write(2, data.select(slice(2, 4)))
        w.finalize()
    assert_same_showers(read_showers(out), data)


def test_writer_rejects_bad_batches(tmp_path: Path) -> None:
    data = make_data(4)
    with ShowerWriter(tmp_path / "a.h5", 4, CELLS, data.attrs) as w:
        with pytest.raises(DataFormatError, match=r"outside \[0, 4\)"):
            w.write(2, data)
        with pytest.raises(DataFormatError, match="ledger keys"):
            w.write(0, make_data(4, ledger=False))
        assert not w.done_mask().any()


def test_corrupt_partial_is_reported_not_deleted(tmp_path: Path) -> None:
    out = tmp_path / "c.h5"
    partial_path(out).write_bytes(b"garbage, not HDF5")
    with pytest.raises(DataFormatError, match=r"c\.h5\.partial: cannot be read as HDF5"):
        ShowerWriter(out, 2, CELLS, {})
    assert partial_path(out).read_bytes() == b"garbage, not HDF5"


def test_truncated_file(tmp_path: Path) -> None:
    path = write_showers(tmp_path / "trunc.h5", make_data(20))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataFormatError, match=r"trunc\.h5: .*truncated or corrupt") as info:
        read_showers(path)
    assert "\n" not in str(info.value)


def test_missing_and_non_hdf5_files(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match=r"nope\.h5: no such file"):
        read_showers(tmp_path / "nope.h5")
    text = tmp_path / "notes.h5"
    text.write_text("hello")
    with pytest.raises(DataFormatError, match=r"notes\.h5: cannot be read as HDF5"):
        read_showers(text)


# --- 3DGAN / LCD files -----------------------------------------------------------------------------------


def test_3dgan_target_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    ecal = rng.uniform(0, 0.1, (5, *CELLS))
    path = tmp_path / "EleEscan_1_1.h5"
    with h5py.File(path, "w") as f:
        f["ECAL"] = ecal  # float64 on disk, GeV
        f["target"] = np.stack([np.full(5, 11.0), [10, 20, 30, 40, 50], np.zeros(5)], axis=1)
    data = read_showers(path)
    assert data.attrs["format"] == "3dgan"
    np.testing.assert_array_equal(data.energy_GeV, [10, 20, 30, 40, 50])
    np.testing.assert_array_equal(data.pdg, [11] * 5)
    np.testing.assert_allclose(data.ecal, ecal.astype(np.float32))
    assert data.ecal.dtype == np.float32 and not data.theta_rad.any() and not data.phi_rad.any()


def test_3dgan_target_without_pdg_column(tmp_path: Path) -> None:
    path = tmp_path / "old.h5"
    with h5py.File(path, "w") as f:
        f["ECAL"] = np.zeros((3, *CELLS), np.float32)
        f["target"] = np.array([[[0.5, 2.0]], [[0.7, 4.0]], [[0.1, 6.0]]])  # (N, 1, 2)
    data = read_showers(path)
    np.testing.assert_array_equal(data.energy_GeV, [2, 4, 6])
    np.testing.assert_array_equal(data.pdg, [0, 0, 0])


def test_3dgan_angle_file(tmp_path: Path) -> None:
    path = tmp_path / "angle.h5"
    theta = np.array([1.2, 1.5, 1.9, 1.0])
    with h5py.File(path, "w") as f:
        f["ECAL"] = np.ones((4, 51, 51, 25), np.float32) * 1e-3
        f["energy"] = np.array([[100.0], [150.0], [200.0], [400.0]])
        f["theta"] = theta
    data = read_showers(path)
    assert data.cell_shape == (51, 51, 25)
    np.testing.assert_array_equal(data.energy_GeV, [100, 150, 200, 400])
    np.testing.assert_array_equal(data.theta_rad, theta)

    eta_path = tmp_path / "eta.h5"
    with h5py.File(eta_path, "w") as f:
        f["ECAL"] = np.zeros((2, *CELLS), np.float32)
        f["energy"] = np.array([1.0, 2.0])
        f["eta"] = np.array([0.0, 0.5])
        f["pdgID"] = np.array([22, 22])
    data = read_showers(eta_path)
    np.testing.assert_allclose(data.theta_rad, [np.pi / 2, 2 * np.arctan(np.exp(-0.5))])
    np.testing.assert_array_equal(data.pdg, [22, 22])


# --- CaloChallenge ---------------------------------------------------------------------------------------

N_LAYERS, N_ALPHA, N_RADIAL = 3, 4, 2
R_EDGES = "0,4.65,9.3"


def write_binning_xml(path: Path, irregular: bool = False) -> Path:
    layers = []
    for i in range(N_LAYERS):
        edges = "0,4.65,9.3,14.0" if irregular and i == 1 else R_EDGES
        layers.append(f'    <Layer id="{i}" r_edges="{edges}" n_bin_alpha="{N_ALPHA}"/>')
    path.write_text(
        '<Bins>\n  <Particle name="electron" pid="11">\n' + "\n".join(layers) + "\n  </Particle>\n</Bins>\n"
    )
    return path


def write_calochallenge(path: Path, n: int = 3) -> np.ndarray:
    showers = np.zeros((n, N_LAYERS * N_ALPHA * N_RADIAL))
    with h5py.File(path, "w") as f:
        f["showers"] = showers
        f["incident_energies"] = np.array([[1000.0 * (i + 1)] for i in range(n)])  # MeV
    return showers


def test_calochallenge_xml_binning(tmp_path: Path) -> None:
    path = tmp_path / "dataset_2_1.hdf5"
    n = 3
    showers = np.zeros((n, N_LAYERS * N_ALPHA * N_RADIAL))
    layer, alpha, r = 2, 1, 1
    showers[1, ((layer * N_ALPHA) + alpha) * N_RADIAL + r] = 1234.0  # MeV
    with h5py.File(path, "w") as f:
        f["showers"] = showers
        f["incident_energies"] = np.array([[1000.0], [2000.0], [65536.0]])
    xml = write_binning_xml(tmp_path / "binning.xml")

    data = read_showers(path, binning=xml)
    assert data.ecal.shape == (n, N_RADIAL, N_ALPHA, N_LAYERS)
    assert data.ecal[1, r, alpha, layer] == pytest.approx(1.234)
    assert np.count_nonzero(data.ecal) == 1
    np.testing.assert_allclose(data.energy_GeV, [1.0, 2.0, 65.536])
    np.testing.assert_array_equal(data.pdg, [11, 11, 11])
    assert data.attrs["format"] == "calochallenge"
    assert data.attrs["binning"] == {
        "kind": "cylindrical",
        "n_layers": N_LAYERS,
        "n_alpha": N_ALPHA,
        "n_radial": N_RADIAL,
        "r_edges_mm": [0.0, 4.65, 9.3],
    }
    # the tuple form gives the same images; the result can be stored in our format and read back
    same = read_showers(path, binning=(N_LAYERS, N_ALPHA, N_RADIAL))
    np.testing.assert_array_equal(same.ecal, data.ecal)
    back = read_showers(write_showers(tmp_path / "converted.h5", data))
    assert back.attrs["binning"] == data.attrs["binning"] and back.attrs["source_format"] == "calochallenge"
    info = inspect_showers(path)
    assert info["format"] == "calochallenge" and info["n"] == 3 and info["cell_shape"] is None


def test_calochallenge_binning_errors(tmp_path: Path) -> None:
    path = tmp_path / "cc.hdf5"
    write_calochallenge(path)
    with pytest.raises(DataFormatError, match=r"cc\.hdf5: .*--binning"):
        read_showers(path)
    bad = write_binning_xml(tmp_path / "binning.xml", irregular=True)
    with pytest.raises(
        DataFormatError,
        match=r"binning\.xml: layers have different numbers of bins; only regular binnings are supported",
    ):
        read_showers(path, binning=bad)
    with pytest.raises(DataFormatError, match=r"cc\.hdf5: dataset 'showers' has 24 voxels"):
        read_showers(path, binning=(2, 4, 2))
    broken = tmp_path / "broken.xml"
    broken.write_text("<Bins><Particle")
    with pytest.raises(DataFormatError, match=r"broken\.xml: not a valid binning XML"):
        load_binning(broken)


# --- bad inputs ------------------------------------------------------------------------------------------


def write_raw(path: Path, **datasets: np.ndarray) -> Path:
    with h5py.File(path, "w") as f:
        for key, value in datasets.items():
            f[key] = value
    return path


def test_bad_files(tmp_path: Path) -> None:
    good = np.zeros((3, *CELLS), np.float32)
    nan = good.copy()
    nan[1, 2, 3, 4] = np.nan
    cases = [
        (
            write_raw(tmp_path / "nan.h5", ECAL=nan, energy=np.ones(3)),
            r"nan\.h5: dataset 'ECAL' contains NaN",
        ),
        (
            write_raw(tmp_path / "neg.h5", ECAL=good, energy=np.array([1.0, -2.0, 3.0])),
            r"neg\.h5: dataset 'energy' has a non-positive primary energy \(-2 GeV at index 1\)",
        ),
        (
            write_raw(tmp_path / "negcell.h5", ECAL=good - 0.5, energy=np.ones(3)),
            r"negcell\.h5: dataset 'ECAL' has negative cell energies",
        ),
        (
            write_raw(tmp_path / "shape.h5", ECAL=np.zeros((3, 25, 25)), energy=np.ones(3)),
            r"shape\.h5: dataset 'ECAL' has shape \(3, 25, 25\) but \(N, nx, ny, nz\) is required",
        ),
        (
            write_raw(tmp_path / "count.h5", ECAL=good, energy=np.ones(4)),
            r"count\.h5: dataset 'energy' has shape \(4,\) but 'ECAL' holds 3 showers",
        ),
        (
            write_raw(tmp_path / "noenergy.h5", ECAL=good),
            r"noenergy\.h5: no primary energy found: expected dataset 'energy' or 'target'",
        ),
        (
            write_raw(tmp_path / "other.h5", images=good, labels=np.ones(3)),
            r"other\.h5: no recognised datasets \(found: 'images', 'labels'\)",
        ),
        (
            write_raw(tmp_path / "inftheta.h5", ECAL=good, energy=np.ones(3), theta=np.array([0, np.inf, 0])),
            r"inftheta\.h5: dataset 'theta' contains inf",
        ),
    ]
    for path, message in cases:
        with pytest.raises(DataFormatError, match=message) as info:
            read_showers(path)
        assert "\n" not in str(info.value)


def test_errors_in_our_format(tmp_path: Path) -> None:
    path = write_showers(tmp_path / "ours.h5", make_data(4))
    with h5py.File(path, "r+") as f:
        f["ledger/sensor"][2] = np.nan
    with pytest.raises(DataFormatError, match=r"ours\.h5: dataset 'ledger/sensor' contains NaN"):
        read_showers(path)
    with h5py.File(path, "r+") as f:
        del f["energy"]
    with pytest.raises(DataFormatError, match=r"ours\.h5: dataset 'energy' is missing"):
        read_showers(path)


# --- iteration -------------------------------------------------------------------------------------------


def test_iter_showers_in_order(tmp_path: Path) -> None:
    data = make_data(11)
    path = write_showers(tmp_path / "it.h5", data)
    batches = list(iter_showers(path, batch_size=4))
    assert [len(b) for b in batches] == [4, 4, 3]
    assert_same_showers(ShowerData.concatenate(batches), data)
    with pytest.raises(DataFormatError, match=r"gone\.h5: no such file"):
        iter_showers(tmp_path / "gone.h5", 4)  # raised at the call, before iteration

    cc = tmp_path / "cc.hdf5"
    write_calochallenge(cc, n=5)
    cc_batches = list(iter_showers(cc, 2, binning=(N_LAYERS, N_ALPHA, N_RADIAL)))
    energies = np.concatenate([b.energy_GeV for b in cc_batches])
    np.testing.assert_allclose(energies, [1, 2, 3, 4, 5])


def _write_calochallenge_showers(path: Path, n: int, seed: int) -> None:
    """CaloChallenge layout (MeV, voxel = (layer * n_alpha + alpha) * n_radial + r) of toy showers in 8 x 8 x 8:
    depth growing with ln E, falling with r, 5 % fluctuations."""
    rng = np.random.default_rng(seed)
    energy_MeV = rng.uniform(1e4, 1e5, n)
    layer = np.arange(8)[:, None, None]
    r = np.arange(8)[None, None, :]
    showers = []
    for e in energy_MeV:
        shape = np.exp(-((layer - 1.0 - np.log(e / 1e3) / 2) ** 2) / 4.0) * np.exp(-r) * np.ones((8, 8, 8))
        showers.append((shape / shape.sum() * 0.02 * e * rng.gamma(400.0, 1 / 400.0, (8, 8, 8))).reshape(-1))
    with h5py.File(path, "w") as f:
        f["showers"] = np.asarray(showers)
        f["incident_energies"] = energy_MeV[:, None]


def test_calochallenge_files_on_every_command_with_binning(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # the route of issue 13: inspect, train and validate a CaloChallenge file, all with the same --binning
    from fastshower.cli import main

    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)
    train_file, reference = tmp_path / "train.hdf5", tmp_path / "reference.hdf5"
    _write_calochallenge_showers(train_file, 48, 1)
    _write_calochallenge_showers(reference, 24, 2)
    tiny = str(repo / "configs/3dgan-tiny.yaml")

    assert main(["validate", "--reference", str(reference), "--candidate", str(train_file), "--out", "r0"]) != 0
    refused = capsys.readouterr().err.strip().splitlines()
    assert len(refused) == 1 and "pass --binning" in refused[0]
    assert main(["train", "--config", tiny, "--data", str(train_file), "--binning", "8,8,8", "--out", "run",
                 "--epochs", "1", "-q"]) == 0
    assert main(["validate", "--reference", str(reference), "--model", "run/generator.pt", "--binning", "8,8,8",
                 "--out", "report", "--energy-bins", "10,100", "--no-classifier"]) == 0
    assert "checks pass" in capsys.readouterr().out
    assert json.loads((tmp_path / "report/metrics.json").read_text())["summary"]
    assert main(["train", "--config", tiny, "--data", str(train_file), "--binning", "8,8,4", "--out", "run2"]) != 0
    assert "512 voxels per shower but the binning has" in capsys.readouterr().err
    # data out: the CaloChallenge layout, the same showers as the fastshower form of the same seed
    common = ["generate", "--model", "run/generator.pt", "--energy", "20:80", "--n", "6", "--seed", "4", "-q"]
    assert main([*common, "--out", "ours.h5"]) == 0
    assert main([*common, "--out", "theirs.h5", "--format", "calochallenge", "--binning", "8,8,8"]) == 0
    ours, theirs = read_showers("ours.h5"), read_showers("theirs.h5", binning=(8, 8, 8))
    np.testing.assert_allclose(theirs.ecal, ours.ecal, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(theirs.energy_GeV, ours.energy_GeV, rtol=1e-12)
    assert not list(tmp_path.glob(".theirs.h5*"))  # the work file is gone
    assert main([*common, "--out", "x.h5", "--format", "calochallenge"]) != 0
    assert "needs --binning" in capsys.readouterr().err
    assert main([*common, "--out", "y.h5", "--format", "calochallenge", "--binning", "4,8,16"]) != 0
    assert "are not (radial, alpha, layer)" in capsys.readouterr().err


def test_calochallenge_in_ours_and_out_again_gives_the_same_voxels(tmp_path: Path) -> None:
    from fastshower.data.calochallenge import write_calochallenge

    source = tmp_path / "in.hdf5"
    _write_calochallenge_showers(source, 5, 3)
    ours = write_showers(tmp_path / "ours.h5", read_showers(source, binning=(8, 8, 8)))
    back = write_calochallenge(ours, tmp_path / "out.hdf5", (8, 8, 8))
    with h5py.File(source) as a, h5py.File(back) as b:
        np.testing.assert_allclose(b["showers"][()], a["showers"][()], rtol=1e-6)
        np.testing.assert_allclose(b["incident_energies"][()], a["incident_energies"][()], rtol=1e-12)
    with pytest.raises(DataFormatError, match=r"do not match the binning's \(r, alpha, layer\)"):
        write_calochallenge(ours, tmp_path / "bad.hdf5", (4, 8, 16))


@pytest.mark.parametrize("config", ["3dgan-tiny", "3dgan-clic"])
def test_the_3dgan_trains_on_a_calochallenge_dataset_2_grid(tmp_path: Path, config: str) -> None:
    """Data set 2's readout, 45 layers x 16 alpha x 9 radial (6,480 voxels), with the tiny and the full recipe."""
    import fastshower
    from fastshower.train import load_checkpoint, load_config, train

    rng = np.random.default_rng(5)
    energy_MeV = rng.uniform(1e3, 1e5, 24)
    cells = rng.gamma(2.0, 1.0, (24, 45, 16, 9)) * np.exp(-np.arange(9) / 2.0)
    cells *= (0.5 * energy_MeV / cells.sum(axis=(1, 2, 3)))[:, None, None, None]
    with h5py.File(tmp_path / "ds2.hdf5", "w") as f:
        f["showers"], f["incident_energies"] = cells.reshape(24, -1), energy_MeV[:, None]
    repo = Path(__file__).resolve().parents[1]
    cfg = load_config(repo / f"configs/{config}.yaml", {
        "data.path": str(tmp_path / "ds2.hdf5"), "data.binning": "45,16,9", "optim.batch_size": 4,
        "optim.epochs": 1, "run.device": "cpu"})
    result = train(cfg, tmp_path / "run", progress=False)
    assert result.finished and result.step == 5  # 21 training showers in batches of 4
    assert load_checkpoint(tmp_path / "run/last.pt")["model"]["cell_shape"] == [9, 16, 45]
    showers = fastshower.load(str(tmp_path / "run/generator.pt")).sample(energy=50.0, n=2, seed=1)
    assert showers.shape == (2, 9, 16, 45) and np.all(showers >= 0)
