"""Hostile input across the commands: every failure comes first, as one line, exit 2 (1 for an interrupt), and
leaves nothing behind that cannot be resumed; a resumable leftover is named with how to resume or discard it."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

import fastshower.mc.production as production
from conftest import synthetic_showers
from fastshower.cli import main
from fastshower.data import ShowerData, partial_path, write_showers
from fastshower.data.lock import lock_path
from fastshower.errors import WorkerError
from fastshower.models import build_model
from fastshower.models.bundle import save_bundle
from fastshower.train import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
CELLS = (8, 8, 8)


def error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("fastshower: error: ")
    return lines[0]


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    torch.manual_seed(1)
    pair = build_model("3dgan", CELLS)
    return save_bundle(tmp_path_factory.mktemp("m") / "g.pt", pair.generator, model_name="3dgan", cell_shape=CELLS,
                       model_config=pair.config, transform_power=0.85, transform_scale=1.0,
                       energy_range_GeV=(10.0, 100.0))


@pytest.fixture(scope="module")
def showers(tmp_path_factory) -> Path:
    return write_showers(tmp_path_factory.mktemp("d") / "ref.h5", synthetic_showers(40, CELLS))


def simulate(out: Path, *extra: str) -> list[str]:
    return ["simulate", "--particle", "e-", "--energy", "1", "--n", "8", "--chunk-size", "3", "--workers", "1",
            "--out", str(out), "--quiet", *extra]


# --- options checked before any work --------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["simulate", "generate", "validate", "demo"])
def test_a_negative_seed_is_one_line_before_any_work(command, bundle, showers, tmp_path, capsys):
    out = tmp_path / "out"
    argv = {
        "simulate": simulate(out / "x.h5"),
        "generate": ["generate", "--model", str(bundle), "--energy", "50", "--n", "4", "--out", str(out / "x.h5")],
        "validate": ["validate", "--reference", str(showers), "--model", str(bundle), "--out", str(out)],
        "demo": ["demo", "--out", str(out), "--mc-only"],
    }[command]
    assert main([*argv, "--seed", "-1"]) == 2
    assert "--seed -1: must be an integer in [0, 2**63)" in error_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize("command", ["simulate", "generate", "merge"])
def test_an_output_that_is_a_folder_is_refused_first(command, bundle, showers, tmp_path, capsys):
    folder = tmp_path / "taken.h5"
    folder.mkdir()
    argv = {
        "simulate": simulate(folder, "--overwrite"),
        "generate": ["generate", "--model", str(bundle), "--energy", "50", "--n", "4", "--out", str(folder),
                     "--overwrite"],
        "merge": ["merge", str(showers), str(showers), "--out", str(folder), "--overwrite"],
    }[command]
    assert main(argv) == 2
    assert f"--out {folder}: is a folder; give a file name" in error_line(capsys)
    assert listing(tmp_path) == ["taken.h5"]  # no .partial, no lock record


def test_export_to_a_folder_is_refused(bundle, tmp_path, capsys):
    assert main(["export", "--model", str(bundle), "--onnx", str(tmp_path)]) == 2
    assert "is a folder" in error_line(capsys)


def test_demo_with_a_missing_model_fails_before_the_monte_carlo(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--n", "2", "--model", "no-such-model"]) == 2
    assert "model 'no-such-model': no such file and not a shipped model" in error_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--energy-bins", "50,10", "expected at least two increasing finite edges in GeV"),
    ("--energy-bins", "nan,10", "expected at least two increasing finite edges in GeV"),
    ("--energy-bins", "10", "expected at least two increasing finite edges in GeV"),
    ("--theta-bins", "0,x", "expected comma-separated numbers in degrees"),
    ("--threshold-MeV", "-1", "must be a finite number >= 0"),
])
def test_validate_options_are_checked_before_generation(option, value, message, bundle, showers, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["validate", "--reference", str(showers), "--model", str(bundle), "--out", str(out),
                 option, value]) == 2
    assert message in error_line(capsys)
    assert not out.exists()


def test_validate_with_a_missing_reference_or_tolerances_file_generates_nothing(bundle, showers, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["validate", "--reference", str(tmp_path / "gone.h5"), "--model", str(bundle),
                 "--out", str(out)]) == 2
    assert "gone.h5" in error_line(capsys)
    assert main(["validate", "--reference", str(showers), "--model", str(bundle), "--out", str(out),
                 "--tolerances", str(tmp_path / "none.yaml")]) == 2
    assert "none.yaml: cannot read tolerances file" in error_line(capsys)
    assert not out.exists()


# --- model bundles checked field by field ----------------------------------------------------------------------


def corrupt(bundle: Path, out: Path, edit) -> Path:
    payload = torch.load(bundle, weights_only=True)
    edit(payload)
    torch.save(payload, out)
    return out


@pytest.mark.parametrize(("edit", "message"), [
    (lambda p: p["conditions"].pop("energy_GeV"), "conditions.energy_GeV: expected [low, high] with low <= high, "
                                                  "both > 0, got None"),
    (lambda p: p["conditions"].update(energy_GeV=[100.0, 10.0]), "conditions.energy_GeV: expected [low, high]"),
    (lambda p: p["conditions"].update(theta_rad=[0.0, float("nan")]), "conditions.theta_rad: expected"),
    (lambda p: p["conditions"].update(particles=[]), "conditions.particles: expected a list of one or more"),
    (lambda p: p.update(conditions=[1, 2]), "conditions: expected a mapping with text keys"),
    (lambda p: p["transform"].update(power=-0.85), "transform.power: expected a finite number > 0, got -0.85"),
    (lambda p: p["transform"].pop("scale"), "transform.scale: expected a finite number > 0, got None"),
    (lambda p: p.update(cell_shape=[8, 8]), "cell_shape: expected a list of 3 integers >= 1"),
    (lambda p: p.update(schema_version="1"), "schema_version: expected an integer >= 1"),
    (lambda p: p.update(model_name="vae"), "model 'vae': unknown"),
    (lambda p: p["model_config"].update(wings=3), "model '3dgan': unknown option(s) wings"),
    (lambda p: p["model_config"].update(latent_dim="x"), "model '3dgan': latent_dim must be a positive integer"),
    (lambda p: p.update(generator={"w": 1}), "generator: expected a state_dict of tensors"),
    (lambda p: p.update(geometry="clic"), "geometry: expected a mapping with text keys"),
])
def test_a_malformed_bundle_is_one_line_naming_the_field(edit, message, bundle, tmp_path, capsys):
    bad = corrupt(bundle, tmp_path / "bad.pt", edit)
    assert main(["generate", "--model", str(bad), "--energy", "50", "--n", "2", "--out", str(tmp_path / "x.h5")]) == 2
    line = error_line(capsys)
    assert f"{bad}: " in line and message in line
    assert listing(tmp_path) == ["bad.pt"]


# --- partial files: none that cannot be resumed, and a resumable one named ----------------------------------------


def test_merge_refused_for_a_nan_in_a_later_input_leaves_nothing(showers, tmp_path, capsys):
    data = synthetic_showers(6, CELLS, seed=4)
    ecal = data.ecal.copy()
    bad = tmp_path / "bad.h5"
    write_showers(bad, ShowerData(ecal, data.energy_GeV, data.theta_rad, data.phi_rad, data.pdg))
    import h5py

    with h5py.File(bad, "r+") as f:
        f["ECAL"][3, 1, 1, 1] = np.nan
    out = tmp_path / "merged.h5"
    assert main(["merge", str(showers), str(bad), "--out", str(out)]) == 2
    assert "bad.h5" in error_line(capsys)
    assert not out.exists() and not partial_path(out).exists() and not lock_path(partial_path(out)).exists()


def test_an_interrupt_before_anything_is_saved_leaves_no_partial_file(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(production, "run_production", interrupted)
    out = tmp_path / "x.h5"
    assert main(simulate(out)) == 1
    assert error_line(capsys) == "fastshower: error: interrupted; nothing was saved"
    assert listing(tmp_path) == []


def test_a_worker_failure_names_the_resumable_file(tmp_path, monkeypatch, capsys):
    real = production.run_production

    def dies_after_the_first_chunk(*args, **kwargs):
        stream = real(*args, **kwargs)
        yield next(stream)
        stream.close()
        raise WorkerError("worker process 123 was killed by signal 9 while running showers [3, 6)")

    monkeypatch.setattr(production, "run_production", dies_after_the_first_chunk)
    out = tmp_path / "x.h5"
    assert main(simulate(out)) == 2
    line = error_line(capsys)
    assert "killed by signal 9" in line
    assert (f"3 of 8 showers are saved in {partial_path(out)}: run the same command again to resume, or delete it "
            "to start over") in line
    assert partial_path(out).exists() and not lock_path(partial_path(out)).exists()
    monkeypatch.undo()
    assert main(simulate(out)) == 0


# --- training: interrupts at awkward moments ------------------------------------------------------------------


def train_args(data: Path, out: Path) -> list[str]:
    return ["train", "--config", str(REPO / "configs/3dgan-tiny.yaml"), "--data", str(data), "--out", str(out),
            "--epochs", "1", "--batch-size", "4", "--quiet"]


@pytest.mark.usefixtures("sigint_raises")
def test_ctrl_c_while_a_checkpoint_is_written_is_one_line_and_the_checkpoint_survives(showers, tmp_path,
                                                                                        monkeypatch, capsys):
    import fastshower.train.checkpoint as ck

    real_save = torch.save

    def save_and_interrupt(obj, f, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # lands inside torch.save's writer
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(ck.torch, "save", save_and_interrupt)
    out = tmp_path / "run"
    assert main(train_args(showers, out)) == 1
    line = error_line(capsys)
    assert line == (f"fastshower: error: interrupted; {out / 'last.pt'} holds the last checkpoint: continue with "
                    f"fastshower train --out {out} --resume")
    monkeypatch.undo()
    assert load_checkpoint(out / "last.pt")["epoch"] == 1
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_a_run_stopped_before_its_first_checkpoint_starts_over(showers, tmp_path, monkeypatch, capsys):
    from fastshower.train import trainer

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer.Trainer, "fit", interrupted)
    out = tmp_path / "run"
    assert main(train_args(showers, out)) == 1
    assert "no checkpoint was written yet: the same command starts the run over" in error_line(capsys)
    monkeypatch.undo()
    assert main(train_args(showers, out)) == 0
    assert (out / "last.pt").is_file()


def test_train_into_a_file_is_refused(showers, tmp_path, capsys):
    target = tmp_path / "run"
    target.write_text("not a folder")
    assert main(train_args(showers, target)) == 2
    assert "is a file; a run needs a directory" in error_line(capsys)
    assert target.read_text() == "not a folder"


@pytest.mark.parametrize(("text", "message"), [
    ("msc: urban\n", "physics setting msc: 'urban' is not one of wentzel, highland"),
    ("msc: wentzel\nmsc_c1: 0.7\n", "physics setting msc_c1: must be in (0, 0.2], got 0.7"),
    ("cut_conversion: g4\n", "physics setting cut_conversion: 'g4' is not one of geant4, csda"),
    ("msc_soft_fraction: 0\n", "physics setting msc_soft_fraction: must be in (0, 1], got 0"),
])
def test_a_bad_physics_file_is_one_line_naming_the_setting_and_the_choices(text, message, tmp_path, capsys):
    physics = tmp_path / "physics.yaml"
    physics.write_text(text)
    assert main(simulate(tmp_path / "x.h5", "--physics", str(physics))) == 2
    assert message in error_line(capsys)
    assert listing(tmp_path) == ["physics.yaml"]
