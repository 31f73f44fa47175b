"""Tests of fastshower tune (issue 16): search spaces and their refusals, a study of trials with one pruned, its
resumption up to a new total, two processes on one SQLite study, a dead trial marked failed, the results."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import synthetic_showers
from fastshower.cli import main
from fastshower.data import write_showers
from fastshower.errors import ConfigError
from fastshower.train import TrainConfig, load_config
from fastshower.tune.space import check_space, load_space

optuna = pytest.importorskip("optuna")

REPO = Path(__file__).resolve().parents[1]
# the tiny recipe: 8^3 showers, 32 to train in batches of 8 (4 steps an epoch), 8 for the physics check
BASE = {"model": {"name": "3dgan", "options": {"latent_dim": 8}},
        "data": {"validation_fraction": 0.2},
        "optim": {"batch_size": 8, "epochs": 2},
        "run": {"precision": "fp32", "device": "cpu", "log_every": 4, "seed": 1}}
SPACE = {"optim.lr": {"low": 1e-4, "high": 3e-3, "log": True}, "loss.energy": {"low": 0.05, "high": 0.2},
         "model.options.latent_dim": {"choices": [8, 12]}}


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tune")
    data = write_showers(folder / "tiny.h5", synthetic_showers(40, (8, 8, 8), 0))
    config, space = folder / "base.yaml", folder / "space.yaml"
    config.write_text(yaml.safe_dump({**BASE, "data": {**BASE["data"], "path": str(data)}}))
    space.write_text(yaml.safe_dump(SPACE))
    return {"data": data, "config": config, "space": space, "folder": folder}


def tune_args(setup: dict[str, Path], out: Path, trials: int, *extra: str) -> list[str]:
    return ["tune", "--config", str(setup["config"]), "--space", str(setup["space"]), "--trials", str(trials),
            "--out", str(out), "--quiet", *extra]


def trials_of(out: Path, study: str = "fastshower") -> list:
    return optuna.load_study(study_name=study, storage=f"sqlite:///{out / 'study.db'}").get_trials()


# --- search spaces ------------------------------------------------------------------------------------------


def test_the_shipped_space_is_valid_for_the_recipe():
    space = load_space(REPO / "configs/tune-space.yaml")
    assert {p.key for p in space} >= {"optim.lr", "optim.batch_size", "loss.energy", "model.options.latent_dim"}
    lr = next(p for p in space if p.key == "optim.lr")
    assert lr.log and lr.low < 1e-3 < lr.high  # the original recipe's rate lies inside
    batch = next(p for p in space if p.key == "optim.batch_size")
    assert batch.choices is not None and 128 in batch.choices
    check_space(space, load_config(REPO / "configs/3dgan-clic.yaml").to_dict(), "configs/tune-space.yaml")


@pytest.mark.parametrize(("space", "message"), [
    ({"optim.lrr": {"low": 1e-4, "high": 1e-3}}, "unknown key optim.lrr (not a training setting)"),
    ({"optim": {"low": 1, "high": 2}}, "optim is a section, not a setting"),
    ({"optim.lr": {"low": 3e-3, "high": 1e-4}}, "optim.lr: low 0.003 must be below high 0.0001"),
    ({"optim.lr": {"low": 0.0, "high": 1e-3, "log": True}}, "optim.lr: a log range needs low > 0"),
    ({"optim.lr": {"low": "small", "high": 1e-3}}, "optim.lr: low must be a finite number, got 'small'"),
    ({"optim.lr": {"low": 1e-4}}, "optim.lr: missing high"),
    ({"optim.lr": {"low": 1e-4, "high": 1e-3, "scale": 2}}, "optim.lr: unknown field(s) ['scale']"),
    ({"optim.batch_size": {"low": 16.5, "high": 64}}, "optim.batch_size is an integer setting"),
    ({"optim.name": {"low": 1, "high": 2}}, "optim.name is a str setting: give choices, not a range"),
    ({"optim.batch_size": {"choices": []}}, "optim.batch_size: choices must be a non-empty list"),
    ({"optim.lr": 0.001}, "optim.lr must be a mapping"),
])
def test_bad_search_spaces_are_refused_with_one_line_naming_the_key(tmp_path, space, message):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    with pytest.raises(ConfigError) as err:
        load_space(path)
    assert message in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_values_the_training_configuration_refuses_are_caught_before_any_trial(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({"optim.label_flip": {"low": 0.1, "high": 0.7},
                                    "optim.name": {"choices": ["adam", "sgd"]}}))
    space = load_space(path)
    with pytest.raises(ConfigError, match=r"optim.label_flip = 0.7 is refused by the training configuration "
                                          r"\(optim.label_flip must be in \[0, 0.5\), got 0.7\)"):
        check_space(space, TrainConfig().to_dict(), str(path))
    with pytest.raises(ConfigError, match=r"optim.name = 'sgd' is refused"):
        check_space(space[1:], TrainConfig().to_dict(), str(path))


def test_bad_space_on_the_command_line_writes_nothing(setup, tmp_path, capsys):
    space = tmp_path / "bad.yaml"
    space.write_text("optim.lr: {low: 0.01, high: 0.001}\n")
    out = tmp_path / "study"
    args = tune_args(setup, out, 2)
    args[args.index("--space") + 1] = str(space)
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "optim.lr: low 0.01 must be below high 0.001" in err[0]
    assert not out.exists()


# --- studies --------------------------------------------------------------------------------------------------


class PruneTrial(optuna.pruners.BasePruner):
    """Prunes the trial with the given number at its first report (the median pruner's choice depends on the
    scores; this one makes the test's pruning certain)."""

    def __init__(self, number: int) -> None:
        self.number = number

    def prune(self, study, trial) -> bool:
        return trial.number == self.number


def test_a_study_prunes_resumes_to_a_new_total_and_writes_its_results(setup, tmp_path, capsys):
    from fastshower.tune.report import write_report
    from fastshower.tune.study import TuneOptions, load_study, run_trials

    out = tmp_path / "study"
    out.mkdir()
    options = TuneOptions(config=setup["config"], space=load_space(setup["space"]), out=out, trials=3)
    assert run_trials(options, quiet=True, pruner=PruneTrial(1)) == 3
    trials = trials_of(out)
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED", "COMPLETE"]
    pruned = trials[1]
    assert sorted(pruned.intermediate_values) == [0]  # stopped after its first epoch
    assert sorted(trials[0].intermediate_values) == [0, 1]  # the others report both epochs
    assert trials[0].value == pytest.approx(min(trials[0].intermediate_values.values()))
    for t in trials:  # each trial is a normal training run in its own folder
        run = out / f"trial-{t.number:04d}"
        assert (run / "resolved_config.yaml").is_file() and (run / "log.jsonl").is_file()
        resolved = yaml.safe_load((run / "resolved_config.yaml").read_text())
        assert resolved["optim"]["lr"] == pytest.approx(t.params["optim.lr"])
        assert resolved["model"]["options"]["latent_dim"] == t.params["model.options.latent_dim"]
    assert (out / "trial-0000" / "generator.pt").is_file()
    best = min((t for t in trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
    best_yaml = yaml.safe_load((out / "best.yaml").read_text())
    assert best_yaml["optim"]["lr"] == pytest.approx(best.params["optim.lr"])
    TrainConfig.from_dict(best_yaml)  # a whole configuration fastshower train takes
    log = (out / "tune.log").read_text().splitlines()
    assert len(log) == 3 and "trial 1: pruned after epoch 1" in log[1] and "trial 2: score" in log[2]

    # the same command with a new total runs only the missing trials (the pruned one counts)
    assert main(tune_args(setup, out, 5, "--pruner", "none")) == 0
    printed = capsys.readouterr().out
    assert [t.state.name for t in trials_of(out)] == ["COMPLETE", "PRUNED", "COMPLETE", "COMPLETE", "COMPLETE"]
    assert "5 complete" not in printed and "4 complete, 1 pruned" in printed
    for name in ("history.png", "importances.png", "parallel.png", "epochs.png", "index.html"):
        assert (out / "report" / name).stat().st_size > 1000, name
    assert len((out / "tune.log").read_text().splitlines()) == 5
    # and once the total is reached, nothing more
    assert main(tune_args(setup, out, 5)) == 0
    assert len(trials_of(out)) == 5
    page = write_report(load_study(options), out).read_text()
    assert "Study fastshower" in page and page.count("<tr>") == 6


def test_two_processes_share_one_sqlite_study(setup, tmp_path):
    out = tmp_path / "shared"
    assert main(tune_args(setup, out, 4, "--workers", "2", "--pruner", "none", "--epochs", "1")) == 0
    trials = trials_of(out)
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) and 4 <= len(trials) <= 5  # at most one extra when both ask at once
    assert all(t.state.name == "COMPLETE" for t in trials)
    owners = {t.user_attrs["process"]["pid"] for t in trials}
    assert len(owners) == 2  # both processes ran trials
    assert all((out / f"trial-{n:04d}" / "generator.pt").is_file() for n in numbers)


@pytest.mark.slow
def test_a_killed_trial_is_marked_failed_and_does_not_count(setup, tmp_path):
    """A worker killed with SIGKILL mid-trial: the rerun marks its trial failed and runs the missing ones."""
    out = tmp_path / "killed"
    script = (
        "import os, signal, sys\n"
        "from fastshower.cli import main\n"
        "import fastshower.train.trainer as t\n"
        "old = t.Trainer._end_epoch\n"
        "def end(self, *a, **k):\n"
        "    old(self, *a, **k)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"  # dies after the first epoch of the first trial
        "t.Trainer._end_epoch = end\n"
        f"sys.exit(main({tune_args(setup, out, 2)!r}))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == -9
    assert [t.state.name for t in trials_of(out)] == ["RUNNING"]
    assert main(tune_args(setup, out, 2, "--epochs", "1")) == 0
    states = [t.state.name for t in trials_of(out)]
    assert states == ["FAIL", "COMPLETE", "COMPLETE"]
    assert "trial 0: marked failed (its process is gone)" in (out / "tune.log").read_text()
    assert np.isfinite(trials_of(out)[1].value)
