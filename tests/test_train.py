"""Tests of fastshower.train: config, losses, checkpoints, the loop (exact resume), bf16 and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import synthetic_showers
from fastshower.cli import main
from fastshower.data import ShowerData, write_showers
from fastshower.errors import ConfigError, DataFormatError
from fastshower.train import CHECKPOINT_KEYS, TrainConfig, load_checkpoint, load_config, train
from fastshower.train import checkpoint as ck
from fastshower.train import distributed as dd
from fastshower.train.checkpoint import save_checkpoint
from fastshower.train.losses import (
    LossWeights,
    SamplingFractionFit,
    cell_spectrum_loss,
    cells_above,
    flip_labels,
    gan_loss,
    mape,
)
from fastshower.train.physics_check import compare, summarise
from fastshower.train.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]


def synth(n: int, shape: tuple[int, int, int] = (8, 8, 8), seed: int = 0, pdg: tuple[int, ...] = (11,)) -> ShowerData:
    return synthetic_showers(n, shape, seed, pdg)


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory) -> Path:
    return write_showers(tmp_path_factory.mktemp("data") / "tiny.h5", synth(40))


def tiny_config(path: Path, **run: object) -> TrainConfig:
    """8^3 showers, 32 for training in batches of 4 (8 steps per epoch), 8 for the physics check."""
    return TrainConfig.from_dict({
        "model": {"name": "3dgan", "options": {"latent_dim": 8}},
        "data": {"path": str(path), "validation_fraction": 0.2},
        "optim": {"batch_size": 4, "epochs": 2},
        "run": {"precision": "fp32", "device": "cpu", "log_every": 1, **run},
    })


# --- config ----------------------------------------------------------------------------------------------


def test_config_defaults_presets_and_errors(tmp_path) -> None:
    cfg = TrainConfig()
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.batch_size, cfg.optim.epochs) == ("rmsprop", 1e-3, 128, 30)
    assert (cfg.loss.adversarial, cfg.loss.energy, cfg.loss.ecal, cfg.loss.theta) == (3.0, 0.1, 0.1, 25.0)
    clic = load_config(REPO / "configs/3dgan-clic.yaml", {"optim.epochs": 3, "data.path": "x.h5"})
    assert clic.run.precision == "bf16" and clic.data.power == 0.85 and clic.optim.epochs == 3
    assert TrainConfig.from_dict(clic.to_dict()) == clic
    load_config(REPO / "configs/3dgan-tiny.yaml")
    bad = tmp_path / "x.yaml"
    bad.write_text("optim:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match=r"x.yaml: unknown key optim.lrr"):
        load_config(bad)
    bad.write_text("optim:\n  batch_size: 1.5\n")
    with pytest.raises(ConfigError, match=r"optim.batch_size must be int"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"run.precision"):
        load_config(None, {"run.precision": "fp8"})


# --- losses ----------------------------------------------------------------------------------------------


def test_losses() -> None:
    assert math.isclose(float(mape(torch.tensor([1.1, 1.8]), torch.tensor([1.0, 2.0]))), 10.0, rel_tol=1e-5)
    assert torch.isfinite(mape(torch.tensor([1.0]), torch.tensor([0.0])))
    g = torch.Generator().manual_seed(0)
    flipped = flip_labels(torch.ones(20000), 0.05, g)
    assert abs(float(1 - flipped.mean()) - 0.05) < 0.01 and set(flipped.unique().tolist()) == {0.0, 1.0}
    out = {"logit": torch.zeros(4), "energy": torch.ones(4), "ecal_sum": torch.full((4,), 2.0)}
    targets = {"label": torch.ones(4), "energy": torch.ones(4), "ecal": torch.full((4,), 1.0)}
    total, parts = gan_loss(out, targets, LossWeights())
    assert math.isclose(float(parts["adversarial"]), math.log(2), rel_tol=1e-6) and float(parts["energy"]) == 0.0
    assert math.isclose(float(total), 3 * math.log(2) + 0.1 * 100.0, rel_tol=1e-6)
    energy = np.geomspace(10, 500, 50)
    ratio = 0.3 - 0.02 * np.log(energy) + 0.001 * np.log(energy) ** 2
    fit = SamplingFractionFit.fit(energy, ratio * energy, degree=2)
    assert torch.allclose(fit(torch.tensor([20.0, 300.0])), torch.tensor(np.interp([20, 300], energy, ratio * energy),
                                                                          dtype=torch.float32), rtol=1e-3)
    assert len(SamplingFractionFit.fit(np.full(5, 50.0), np.full(5, 10.0)).coefficients) == 1


def test_physics_check_is_zero_for_identical_sets() -> None:
    data = synth(16)
    s = summarise(data.ecal, data.energy_GeV)
    assert compare(s, s)["score"] == 0.0
    other = summarise(synth(16, seed=1).ecal * 2, data.energy_GeV)
    assert compare(s, other)["terms"]["sampling_fraction"] > 0.5


def _showers_for(energy: np.ndarray, seed: int) -> np.ndarray:
    """8^3 toy showers for these energies: depth growing with ln E, 5 % shower-to-shower fluctuations per cell."""
    rng = np.random.default_rng(seed)
    z = np.arange(8)[None, None, :]
    xy = (np.arange(8) - 3.5)
    core = np.exp(-(xy[:, None, None] ** 2 + xy[None, :, None] ** 2) / 2.0)
    out = []
    for e in energy:
        image = core * np.exp(-((z - 1.0 - np.log(e)) ** 2) / 8.0)
        out.append(image / image.sum() * 0.02 * e * rng.gamma(400.0, 1 / 400.0, size=(8, 8, 8)))
    return np.asarray(out)


def test_physics_check_measures_each_bin_against_its_floor_and_keeps_the_worst() -> None:
    energy = np.random.default_rng(0).uniform(10.0, 100.0, 400)
    real = summarise(_showers_for(energy, 1), energy)
    # an independent sample of the same showers sits at the statistical floor: about 1 in units of it
    same = compare(real, summarise(_showers_for(energy, 2), energy))
    assert same["bins"] == 4 and 0.2 < same["score"] < 3.0, same
    # 5 % too much energy in the lowest bin only: that bin decides the score, the others stay at the floor
    wrong = _showers_for(energy, 2)
    low = energy < np.quantile(energy, 0.25)
    wrong[low] *= 1.05
    check = compare(real, summarise(wrong, energy))
    assert check["score"] == check["bin_scores"][0] > 3 * max(check["bin_scores"][1:])
    assert check["score"] > 5 * same["score"]
    # averaging the bins would have hidden it behind the three good ones
    assert check["score"] > 2 * float(np.mean(check["bin_scores"]))


def test_physics_check_scores_the_fluctuations_not_only_the_means() -> None:
    energy = np.random.default_rng(0).uniform(10.0, 100.0, 400)

    def showers(seed: int, resolution: float) -> np.ndarray:
        # a per-shower response of mean 1 and width `resolution` (a sampling calorimeter's stochastic term)
        gain = 1.0 + resolution * np.random.default_rng(seed + 10).standard_normal(len(energy))
        return _showers_for(energy, seed) * gain[:, None, None, None]

    real = summarise(showers(1, 0.05), energy)
    same = compare(real, summarise(showers(2, 0.05), energy))
    # every shower at the average response: the means agree, the spread is 5x too small (a score of means alone
    # would put it at the floor, like the independent sample)
    average = compare(real, summarise(showers(2, 0.01), energy))
    assert abs(average["terms"]["sampling_fraction"]) < 0.02 and same["score"] < 3.0, same
    assert average["terms"]["resolution"] > 0.6 and average["score"] > 1.8 * same["score"], average
    # the floor of a standard deviation is its statistical error: about 1 for an independent sample
    pulls = [b for b in same["bin_scores"]]
    assert all(0.1 < p < 3.0 for p in pulls), pulls


# --- the loop, checkpoints and exact resume --------------------------------------------------------------


def test_resume_mid_epoch_gives_identical_weights(tiny_file, tmp_path) -> None:
    """REQUIRED: 2 epochs in one go == stopped after 5 steps (mid-epoch 1) and resumed, bit for bit."""
    full = train(tiny_config(tiny_file), tmp_path / "full")
    assert full.finished and (full.epoch, full.step) == (2, 16)
    stopped = train(tiny_config(tiny_file, max_steps=5), tmp_path / "cut")
    assert not stopped.finished and stopped.step == 5
    mid = load_checkpoint(tmp_path / "cut/last.pt")
    assert (mid["epoch"], mid["batch_in_epoch"], mid["samples_in_epoch"]) == (0, 5, 20)
    resumed = train(tiny_config(tiny_file), tmp_path / "cut", resume=True)
    assert resumed.finished and resumed.step == 16
    a, b = load_checkpoint(tmp_path / "full/last.pt"), load_checkpoint(tmp_path / "cut/last.pt")
    for net in ("generator", "discriminator"):
        assert a[net].keys() == b[net].keys()
        for key in a[net]:
            assert torch.equal(a[net][key], b[net][key]), f"{net}.{key}"
    assert a["best_score"] == b["best_score"] and a["best_epoch"] == b["best_epoch"]
    assert set(a) == set(CHECKPOINT_KEYS) and a["model"]["cell_shape"] == [8, 8, 8]
    run = tmp_path / "full"
    assert {p.name for p in run.iterdir()} >= {"resolved_config.yaml", "log.jsonl", "last.pt", "best.pt",
                                               "generator.pt"}
    assert load_config(run / "resolved_config.yaml") == tiny_config(tiny_file)
    # the best generator is also a bundle that generation loads without the training code
    import fastshower

    sampler = fastshower.load(str(run / "generator.pt"))
    low, high = sampler.bundle.energy_range_GeV
    assert sampler.bundle.provenance["epoch"] == a["best_epoch"]
    showers = sampler.sample(energy=0.5 * (low + high), n=3, seed=1)
    assert showers.shape == (3, 8, 8, 8) and np.all(showers >= 0)


def test_device_resident_batches_train_exactly_as_the_dataloader(tiny_file, tmp_path) -> None:
    """data.resident (the GPU's path: the set on the device, batches gathered there, losses read once per log_every)
    gives the DataLoader path's weights and logged losses bit for bit."""
    runs = {}
    for resident in (True, False):
        cfg = tiny_config(tiny_file)
        cfg.data.resident, cfg.optim.epochs, cfg.run.physics_check_every, cfg.loss.cells = resident, 1, 0, 0.1
        trainer = Trainer(cfg, tmp_path / f"r{resident}", False, dd.init_distributed("cpu"), progress=False)
        assert (trainer.resident is not None) == resident
        trainer.fit()
        log = [json.loads(line) for line in (tmp_path / f"r{resident}/log.jsonl").read_text().splitlines()]
        runs[resident] = ck.state_hash(trainer.gen, trainer.disc), [{k: v for k, v in r.items() if k not in (
            "showers_per_s", "seconds")} for r in log]
    assert runs[True] == runs[False]
    assert len(runs[True][1]) == 9 and all(type(runs[True][1][0][k]) is float for k in ("d_real", "g1", "g_cells"))


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step")
def test_learning_rate_scales_with_the_batch_and_warms_up_from_the_reference_rate(tiny_file, tmp_path) -> None:
    """optim.lr_reference_batch: lr x batch / reference (linear scaling rule, Goyal et al. arXiv:1706.02677), reached
    linearly from the unscaled lr over warmup_epochs (here 1 epoch = 8 steps)."""
    cfg = tiny_config(tiny_file)
    cfg.optim.lr_reference_batch, cfg.optim.warmup_epochs, cfg.run.physics_check_every = 1, 1.0, 0
    trainer = Trainer(cfg, tmp_path / "lr", False, dd.init_distributed("cpu"), progress=False)
    sched = trainer.sched["generator"]
    rates = []
    for _ in range(10):
        rates.append(sched.get_last_lr()[0])
        sched.step()
    assert rates[0] == pytest.approx(1e-3) and rates[4] == pytest.approx(1e-3 * (1 + 3 * 4 / 8))
    assert rates[8] == rates[9] == pytest.approx(4e-3)  # batch 4 / reference 1
    trainer.log_file.close()
    with pytest.raises(ConfigError, match="optim.lr_reference_batch must be >= 0"):
        load_config(None, {"optim.lr_reference_batch": -1})


def test_time_limit_stops_at_an_epoch_end_and_resume_finishes_the_run(tiny_file, tmp_path) -> None:
    # a budget far below one epoch: the first epoch's duration forecasts that a second would not fit
    stopped = train(tiny_config(tiny_file, time_limit_minutes=1e-6, physics_check_every=0), tmp_path / "t")
    assert not stopped.finished and (stopped.epoch, stopped.step) == (1, 8)
    assert load_checkpoint(tmp_path / "t/last.pt")["batch_in_epoch"] == 0
    resumed = train(tiny_config(tiny_file, physics_check_every=0), tmp_path / "t", resume=True)
    assert resumed.finished and (resumed.epoch, resumed.step) == (2, 16)
    with pytest.raises(ConfigError, match="run.time_limit_minutes must be >= 0"):
        tiny_config(tiny_file, time_limit_minutes=-1.0)


def test_angle_model_with_two_particles_trains_and_checks(tmp_path) -> None:
    path = write_showers(tmp_path / "two.h5", synth(12, pdg=(11, 22)))
    cfg = TrainConfig.from_dict({
        "model": {"name": "3dgan-angle", "options": {"latent_dim": 8}},
        "data": {"path": str(path), "validation_fraction": 0.34},
        "optim": {"batch_size": 4, "epochs": 1},
        "run": {"precision": "fp32", "device": "cpu"},
    })
    result = train(cfg, tmp_path / "run")
    ckpt = load_checkpoint(tmp_path / "run/last.pt")
    assert result.finished and result.step == 2 and math.isfinite(result.best_score)
    assert ckpt["model"]["particles"] == [11, 22] and ckpt["model"]["options"]["n_particles"] == 2
    assert "theta.weight" in ckpt["discriminator"]
    cfg.model.options["n_particles"] = 3
    with pytest.raises(ConfigError, match="n_particles is 3"):
        train(cfg, tmp_path / "bad")


def test_checkpoint_errors(tiny_file, tmp_path) -> None:
    with pytest.raises(DataFormatError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataFormatError, match="bad.pt: not a readable checkpoint"):
        load_checkpoint(tmp_path / "bad.pt")
    torch.save({"schema_version": 99}, tmp_path / "new.pt")
    with pytest.raises(DataFormatError, match="schema version 99"):
        load_checkpoint(tmp_path / "new.pt")
    with pytest.raises(ValueError, match="differ from the schema"):
        save_checkpoint(tmp_path / "x.pt", {"epoch": 1})
    with pytest.raises(ConfigError, match="no checkpoint last.pt"):
        train(tiny_config(tiny_file), tmp_path / "empty", resume=True)


def test_bf16_autocast_step_on_cpu(tiny_file, tmp_path) -> None:
    result = train(tiny_config(tiny_file, precision="bf16", max_steps=1, physics_check_every=0), tmp_path / "bf")
    assert result.step == 1
    record = json.loads((tmp_path / "bf/log.jsonl").read_text().splitlines()[0])
    assert all(math.isfinite(v) for k, v in record.items() if k.startswith(("d_", "g")))
    with pytest.raises(ConfigError, match="fp16 needs CUDA"):
        train(tiny_config(tiny_file, precision="fp16"), tmp_path / "fp16")


def test_auto_precision_is_bf16_on_a_cpu_only_where_it_computes_bf16_natively(monkeypatch) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setattr(dd, "cpu_has_native_bf16", lambda: True)
    assert dd.resolve_precision("auto", cpu) == torch.bfloat16
    monkeypatch.setattr(dd, "cpu_has_native_bf16", lambda: False)  # emulated bf16 would be ~3x slower: fp32
    assert dd.resolve_precision("auto", cpu) == torch.float32
    assert dd.resolve_precision("bf16", cpu) == torch.bfloat16  # an explicit choice stands
    with pytest.raises(ConfigError, match="fp16 needs CUDA"):
        dd.resolve_precision("fp16", cpu)


def test_cell_spectrum_counts_cells_above_thresholds_with_a_gradient() -> None:
    cells = torch.tensor([[0.0, 0.5, 5.0, 50.0], [0.0, 0.0, 0.2, 20.0]], requires_grad=True)  # MeV, 2 showers
    thresholds = torch.tensor([0.1, 1.0, 10.0])
    counts = cells_above(cells, thresholds)
    # soft edges: a cell half a threshold away counts sigmoid(-5) = 0.007
    np.testing.assert_allclose(counts.detach().numpy(), [(3 + 2) / 2, (2 + 1) / 2, (1 + 1) / 2], atol=0.01)
    assert float(cell_spectrum_loss(cells.detach(), cells.detach(), thresholds)) == 0.0
    # a sea of tiny cells below every threshold adds nothing; cells moved above one do
    sea = cells.detach() + 0.001
    assert float(cell_spectrum_loss(sea, cells.detach(), thresholds)) < 0.1
    louder = cells.detach() * torch.tensor([1.0, 1.0, 3.0, 1.0])
    assert float(cell_spectrum_loss(louder, cells.detach(), thresholds)) > 10.0
    # the soft count gives the generator a gradient: a cell just below a threshold is pushed towards it
    loss = cell_spectrum_loss(cells, torch.tensor([[0.0, 1.5, 5.0, 50.0], [0.0, 0.0, 0.2, 20.0]]), thresholds)
    loss.backward()
    assert cells.grad is not None and float(cells.grad[0, 1]) < 0


def test_training_with_the_cell_spectrum_term(tiny_file, tmp_path) -> None:
    cfg = tiny_config(tiny_file, max_steps=2, physics_check_every=0)
    cfg.loss.cells = 0.1
    assert train(cfg, tmp_path / "cells").step == 2
    record = json.loads((tmp_path / "cells/log.jsonl").read_text().splitlines()[-1])
    assert math.isfinite(record["g_cells"]) and record["g_cells"] > 0


def test_cli_train(tiny_file, tmp_path, capsys) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text((REPO / "configs/3dgan-tiny.yaml").read_text() + "  max_steps: 1\n  physics_check_every: 0\n")
    out = tmp_path / "run"
    args = ["train", "--config", str(cfg), "--data", str(tiny_file), "--out", str(out), "--batch-size", "4"]
    assert main(args) == 0
    assert "stopped (run.max_steps or time limit) at epoch 0, step 1" in capsys.readouterr().out
    assert main(args) == 2
    assert "run: exists; pass --resume to continue or choose another --out" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "nothing"), "--resume"]) == 2
    assert "error:" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--resume", "--lr", "0.5"]) == 2
    assert "optim.lr is 0.001 in the checkpoint but 0.5 now" in capsys.readouterr().err
    assert main(args[:-2] + ["--batch-size", "4", "--resume"]) == 0


def test_bundle_energy_range_comes_from_the_production_request() -> None:
    from fastshower.train.trainer import _energy_range

    energies = np.array([10.06, 250.0, 509.97])
    assert _energy_range({"request": {"energy_GeV": "10:510"}}, energies) == (10.0, 510.0)
    assert _energy_range({"request": {"energy_GeV": "10:510:log"}}, energies) == (10.0, 510.0)
    assert _energy_range({"request": {"energy_GeV": "10,50"}}, energies) == (10.06, 509.97)
    assert _energy_range({}, energies) == (10.06, 509.97)
