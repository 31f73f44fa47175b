"""The 3DGAN training loop (one process or many under torchrun). Entry point: :func:`train`.

Per batch, as the original 3DGAN: one discriminator step on the real showers (labels 1, a random 5% flipped),
one on generated showers for the batch's conditions (generator without gradients; labels 0, flipped alike),
then two generator steps, each with fresh noise and conditions drawn from the batch. The models stay plain
``nn.Module``s: device, DDP (``distributed``), autocast and checkpoints (``checkpoint``) are applied here
from outside.

A step never waits for the device: the training set sits on it (``data.resident``), batches are gathered there,
and the loss terms stay device tensors, summed there and brought to the host once per ``run.log_every`` steps and
at the epoch's end, so that a GPU queues step after step at its own pace.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from fastshower.data.dataset import DeviceShowers, ResumableSampler, ShowerDataset, ShowerTransform, split_indices
from fastshower.data.readers import layout_from_options
from fastshower.errors import ConfigError
from fastshower.models import build_model
from fastshower.train import checkpoint as ck
from fastshower.train import distributed as dd
from fastshower.train.config import TrainConfig, fingerprint
from fastshower.train.losses import (
    CELL_THRESHOLDS_MeV,
    LossWeights,
    SamplingFractionFit,
)
from fastshower.train.objectives import objective_for
from fastshower.train.physics_check import physics_check, validation_set

logger = logging.getLogger(__name__)

#: Environment variable naming a directory where each rank writes its final weight hash and the dataset
#: indices it trained on (``rank<R>.json``); a debugging aid used by the DDP test.
DEBUG_DUMP_ENV = "FASTSHOWER_DEBUG_DUMP"
#: The best generator as a self-contained bundle for generation (see fastshower.models.bundle).
BUNDLE = "generator.pt"


@dataclass
class TrainResult:
    """Where training stopped. ``finished`` is False when ``run.max_steps`` stopped it early."""

    run_dir: Path
    epoch: int
    step: int
    finished: bool
    best_score: float | None


def train(config: TrainConfig, run_dir: str | Path, resume: bool = False, progress: bool = True,
          on_epoch: Callable[[int, dict[str, Any]], None] | None = None) -> TrainResult:
    """Train ``config`` into ``run_dir`` (``resume``: continue from its ``last.pt``); set up and tear down the
    process group when launched by torchrun. ``progress``: a progress bar on rank 0 when stderr is a terminal.
    ``on_epoch(epoch, record)`` is called after each epoch's record (losses, ``physics``) is logged and its
    checkpoint saved; an exception it raises stops the training there (a hyper-parameter scan's pruning).

    Only rank 0 logs below WARNING (the package logger's level is raised on the other ranks meanwhile).
    """
    info = dd.init_distributed(config.run.device)
    pkg_logger = logging.getLogger("fastshower")
    old_level = pkg_logger.level
    if not info.is_main:
        pkg_logger.setLevel(logging.WARNING)
    try:
        return Trainer(config, Path(run_dir), resume, info, progress, on_epoch).fit()
    finally:
        pkg_logger.setLevel(old_level)
        dd.cleanup(info)


class Trainer:
    """State and steps of one training run; ``fit`` runs it."""

    def __init__(
        self, config: TrainConfig, run_dir: Path, resume: bool, info: dd.DistInfo, progress: bool = True,
        on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
    ) -> None:
        self.cfg, self.run_dir, self.info, self.progress = config, run_dir, info, progress
        self.on_epoch = on_epoch
        ck.check_run_dir(run_dir, resume)
        dd.barrier(info)  # every rank checks before rank 0 creates the directory
        ckpt = ck.load_checkpoint(run_dir / ck.LAST) if resume else None
        if ckpt is not None:
            self._check_compatible(ckpt)
        self.device = info.device
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: cuDNN's measured choice of 3D conv kernels pays
        self.dtype = dd.resolve_precision(config.run.precision, self.device)
        self._build_data(ckpt)
        self._build_models(ckpt)
        self._build_optim()
        self.epoch = self.step = self.batch_in_epoch = self.samples_in_epoch = 0
        self.best_score: float | None = None
        self.best_epoch = -1
        if ckpt is not None:
            self._restore(ckpt)
        self.weights = LossWeights(config.loss.adversarial, config.loss.energy, config.loss.ecal, config.loss.theta,
                                   config.loss.cells)
        self.dump_dir = os.environ.get(DEBUG_DUMP_ENV)
        self.seen: list[int] = []
        self.log_file = self.tb = None
        if info.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            ck.write_resolved_config(run_dir, config.to_dict())
            # a new run may start over where a stopped one left no checkpoint: its log starts over too
            self.log_file = open(run_dir / "log.jsonl", "a" if resume else "w")  # noqa: SIM115 - closed in fit
            self.tb = self._tensorboard()

    # --- construction -------------------------------------------------------------------------------

    def _check_compatible(self, ckpt: dict[str, Any]) -> None:
        old, new = fingerprint(ckpt["config"]), fingerprint(self.cfg.to_dict())
        diff = [k for k in old if old[k] != new[k]]
        if diff:
            k = diff[0]
            raise ConfigError(f"{self.run_dir / ck.LAST}: {k} is {old[k]!r} in the checkpoint but {new[k]!r} now")
        if ckpt["world_size"] != self.info.world_size and ckpt["samples_in_epoch"]:
            raise ConfigError(f"{self.run_dir / ck.LAST}: written mid-epoch by {ckpt['world_size']} processes; "
                              f"resume it with the same number (now {self.info.world_size})")

    def _build_data(self, ckpt: dict[str, Any] | None) -> None:
        d, info = self.cfg.data, self.info
        if not d.path:
            raise ConfigError("data.path is not set (pass --data FILE)")
        self.transform = ShowerTransform(d.power, d.scale)
        # the cell-spectrum term's thresholds in the space the networks see (the transform is monotonic)
        self.cell_thresholds = self.transform(torch.tensor(CELL_THRESHOLDS_MeV) / 1000.0).to(self.device)
        self.binning = layout_from_options(d.binning, d.mapping, ("data.binning", "data.mapping"))
        self.dataset = ShowerDataset.from_file(d.path, self.transform, d.max_in_memory_gb, d.max_showers,
                                               self.binning)
        self.train_idx, self.val_idx = split_indices(len(self.dataset), d.validation_fraction, self.cfg.run.seed)
        bs = self.cfg.optim.batch_size
        self.sampler = ResumableSampler(self.train_idx, info.world_size, info.rank, self.cfg.run.seed)
        self.steps_per_epoch = self.sampler.per_rank // bs
        if self.steps_per_epoch < 1:
            raise ConfigError(f"{d.path}: {len(self.train_idx)} training showers are fewer than batch_size {bs} x "
                              f"{info.world_size} process(es)")
        if ckpt is not None:
            self.ecal_fit = SamplingFractionFit.from_dict(ckpt["sampling_fraction_fit"])
        else:
            self.ecal_fit = SamplingFractionFit.fit(self.dataset.energy_GeV[self.train_idx],
                                                    self.dataset.transformed_sum[self.train_idx],
                                                    self.cfg.loss.ecal_fit_degree)
        # the loader's own generator: creating an iterator must not consume the global RNG (exact resume)
        self.loader = DataLoader(self.dataset, batch_size=bs, sampler=self.sampler, drop_last=True,
                                 num_workers=self.cfg.run.num_workers, generator=torch.Generator().manual_seed(0),
                                 pin_memory=self.device.type == "cuda")
        self.resident = self._device_showers()

    def _device_showers(self) -> DeviceShowers | None:
        """The training set on the training device (``data.resident``), or None for the DataLoader's path."""
        if not self.cfg.data.resident or self.dataset.lazy:
            return None
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            need = DeviceShowers.nbytes(self.dataset)
            if need > free / 2:  # the networks' activations at large batches need the rest
                logger.info("%s: %.1f GiB of showers > half the GPU's free %.1f GiB: batches come from the host",
                            self.cfg.data.path, need / 2**30, free / 2**30)
                return None
        return self.dataset.to_device(self.device)

    def _build_models(self, ckpt: dict[str, Any] | None) -> None:
        m, run, info = self.cfg.model, self.cfg.run, self.info
        options = dict(m.options)
        self.particles = self.dataset.particles
        if m.name == "3dgan-angle":
            options.setdefault("n_particles", len(self.particles))
            if options["n_particles"] != len(self.particles):
                raise ConfigError(f"model.options.n_particles is {options['n_particles']} but {self.cfg.data.path} "
                                  f"holds {len(self.particles)} particle type(s) {self.particles}")
        if ckpt is not None and list(ckpt["model"]["particles"]) != self.particles:
            raise ConfigError(f"{self.cfg.data.path}: particles {self.particles} differ from the checkpoint's "
                              f"{list(ckpt['model']['particles'])}")
        torch.manual_seed(run.seed)  # identical initial weights on every rank
        pair = build_model(m.name, self.dataset.cell_shape, **options)
        pair.generator.use_transform(self.transform.power, self.transform.scale)
        self.pair, self.options = pair, dict(pair.config)
        self.objective = objective_for(pair.objective)
        self.n_particles: int | None = getattr(pair.generator, "n_particles", None)
        self.gen = pair.generator.to(self.device)
        self.disc = pair.discriminator.to(self.device)
        if ckpt is not None:
            self.gen.load_state_dict(ckpt["generator"])
            self.disc.load_state_dict(ckpt["discriminator"])
        if run.channels_last:  # NDHWC: oneDNN's preferred layout for 3D convolutions on the CPU
            self.gen.to(memory_format=torch.channels_last_3d)
            self.disc.to(memory_format=torch.channels_last_3d)
        self.gen_t = dd.wrap(self.gen, info, run.sync_batchnorm)
        self.disc_t = dd.wrap(self.disc, info, run.sync_batchnorm)
        self.gen, self.disc = dd.unwrap(self.gen_t), dd.unwrap(self.disc_t)  # SyncBatchNorm converts copy
        if run.compile:
            self.gen_t, self.disc_t = torch.compile(self.gen_t), torch.compile(self.disc_t)
        self.noise_gen = torch.Generator().manual_seed(dd.stream_seed(run.seed, info.rank, 0))
        self.flip_gen = torch.Generator().manual_seed(dd.stream_seed(run.seed, info.rank, 1))
        torch.manual_seed(dd.stream_seed(run.seed, info.rank, 2))  # dropout masks differ per rank

    def _build_optim(self) -> None:
        o = self.cfg.optim
        lr = dd.scaled_lr(o.lr, self.info, o.lr_scale_with_world)
        if o.lr_reference_batch:
            lr *= o.batch_size / o.lr_reference_batch
        scale = lr / o.lr
        warmup = round(o.warmup_epochs * self.steps_per_epoch)

        def make(params: Any) -> torch.optim.Optimizer:
            if o.name == "adam":  # one fused kernel per step on a GPU (RMSprop's default there is foreach)
                return torch.optim.Adam(params, lr=lr, fused=True if self.device.type == "cuda" else None)
            return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-7)  # Keras RMSprop defaults (rho, eps)

        self.opt = {"generator": make(self.gen.parameters()), "discriminator": make(self.disc.parameters())}
        self.sched = {k: torch.optim.lr_scheduler.LambdaLR(v, lambda s: dd.warmup_factor(s, warmup, scale))
                      for k, v in self.opt.items()}
        fp16 = self.dtype == torch.float16
        self.scaler = {k: torch.amp.GradScaler("cuda", enabled=fp16) for k in self.opt}

    def _restore(self, ckpt: dict[str, Any]) -> None:
        for k in self.opt:
            self.opt[k].load_state_dict(ckpt["optimizers"][k])
            self.sched[k].load_state_dict(ckpt["schedulers"][k])
            if ckpt["scaler"][k] is not None and self.scaler[k].is_enabled():
                self.scaler[k].load_state_dict(ckpt["scaler"][k])
        per_rank = ckpt["rng"]["per_rank"]
        if len(per_rank) == self.info.world_size:
            ck.set_rank_rng_state(per_rank[self.info.rank], self.noise_gen, self.flip_gen)
        else:
            logger.warning("checkpoint from %d processes, now %d: random streams restart", len(per_rank),
                           self.info.world_size)
        ck.set_host_rng_state(ckpt["rng"])
        self.epoch, self.step = int(ckpt["epoch"]), int(ckpt["step"])
        self.batch_in_epoch, self.samples_in_epoch = int(ckpt["batch_in_epoch"]), int(ckpt["samples_in_epoch"])
        self.best_score, self.best_epoch = ckpt["best_score"], int(ckpt["best_epoch"])
        if self.info.is_main:
            logger.info("resuming %s at epoch %d, batch %d (step %d)", self.run_dir, self.epoch + 1,
                        self.batch_in_epoch, self.step)

    def _tensorboard(self) -> Any:
        if not self.cfg.run.tensorboard:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            logger.warning("run.tensorboard: the tensorboard package is not installed; logging to log.jsonl only")
            return None
        return SummaryWriter(str(self.run_dir / "tensorboard"))

    # --- one batch ------------------------------------------------------------------------------------

    def autocast(self) -> Any:
        """The run's mixed-precision context (none in fp32)."""
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def targets(self, label: torch.Tensor, cond: dict[str, torch.Tensor], ecal: torch.Tensor) -> dict[str, Any]:
        """The discriminator's targets: real/fake label, energy / 100 GeV, summed deposit (and theta)."""
        t = {"label": label, "energy": cond["energy_GeV"] / 100.0, "ecal": ecal}
        if self.n_particles is not None:
            t["theta"] = cond["theta_rad"]
        return t

    def update(self, name: str, loss: torch.Tensor) -> None:
        """One optimiser step of network ``name`` (``generator`` or ``discriminator``) on ``loss``."""
        opt, scaler = self.opt[name], self.scaler[name]
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    def update_all(self, loss: torch.Tensor) -> None:
        """One step of both networks' optimisers on one ``loss`` (a VAE's encoder and decoder), one backward pass;
        the generator's scaler scales it (a GradScaler may serve several optimisers)."""
        scaler = self.scaler["generator"]
        for opt in self.opt.values():
            opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        for opt in self.opt.values():
            scaler.step(opt)
        scaler.update()

    def noise(self, n: int) -> torch.Tensor:
        """``n`` latent vectors from the rank's own seeded generator."""
        # drawn on the CPU from the rank's own generator: the same numbers on any device
        return torch.randn(n, self.pair.latent_dim, generator=self.noise_gen).to(self.device)

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The model's objective's updates on one batch (:mod:`fastshower.train.objectives`: two discriminator and
        two generator updates for the 3DGAN, one encoder-decoder update for the VAE), then the learning-rate
        schedules; returns the loss terms (0-d tensors on the device, detached; :func:`host_values` brings them to
        the host)."""
        real = batch["showers"].to(self.device, non_blocking=True)
        if self.cfg.run.channels_last:
            real = real.contiguous(memory_format=torch.channels_last_3d)
        cond = {k: batch[k].to(self.device) for k in ("energy_GeV", "theta_rad", "particle")}
        logs = self.objective.step(self, real, cond)
        for s in self.sched.values():
            s.step()
        return logs

    # --- the loop -------------------------------------------------------------------------------------------

    def fit(self) -> TrainResult:
        """Train until ``optim.epochs`` (or ``run.max_steps`` / ``run.time_limit_minutes``); checkpoints, logs and
        the physics check."""
        try:
            finished = self._loop()
            self._dump()
            return TrainResult(self.run_dir, self.epoch, self.step, finished, self.best_score)
        finally:
            if self.log_file is not None:
                self.log_file.close()
            if self.tb is not None:
                self.tb.close()

    def _loop(self) -> bool:
        run, epochs = self.cfg.run, self.cfg.optim.epochs
        self.real_val = None
        if self.info.is_main and run.physics_check_every:
            self.real_val = validation_set(self.dataset, self.val_idx[: run.physics_check_max_showers])
        last_save = started = time.monotonic()
        while self.epoch < epochs:
            self.sampler.set_epoch(self.epoch)
            self.sampler.set_start(self.samples_in_epoch)
            sums: dict[str, torch.Tensor] = {}
            t0, n0 = time.perf_counter(), self.batch_in_epoch
            bar = self._bar()
            for batch in self._batches():
                logs = self.train_step(batch)
                if self.dump_dir:
                    self.seen.extend(batch["index"].tolist())
                self.step += 1
                self.batch_in_epoch += 1
                self.samples_in_epoch += batch["showers"].shape[0]
                for k, v in logs.items():  # on the device, in double: no wait, no rounding over an epoch
                    sums[k] = sums[k] + v.double() if k in sums else v.double()
                rate = (self.batch_in_epoch - n0) * self.cfg.optim.batch_size * self.info.world_size / max(
                    time.perf_counter() - t0, 1e-9)
                if bar is not None:
                    bar.update(1)
                if self.step % run.log_every == 0:
                    values = host_values(logs)  # the only wait for the device in log_every steps
                    if bar is not None:
                        bar.set_postfix(d=f"{values['d_real']:.3g}", g=f"{values['g1']:.3g}", rate=f"{rate:.0f}/s")
                    self._log({"kind": "step", "epoch": self.epoch, "step": self.step,
                               "lr": self.sched["generator"].get_last_lr()[0], "showers_per_s": rate, **values})
                if run.max_steps is not None and self.step >= run.max_steps:
                    self._save()
                    if bar is not None:
                        bar.close()
                    return False
                due = time.monotonic() - last_save > 60.0 * run.checkpoint_every_minutes
                if dd.broadcast_flag(due, self.info):
                    self._save()
                    last_save = time.monotonic()
            if bar is not None:
                bar.close()
            epoch_seconds = time.perf_counter() - t0
            self._end_epoch(sums, epoch_seconds)
            last_save = time.monotonic()
            if self.epoch < epochs and self._out_of_time(last_save - started, epoch_seconds):
                return False
        return True

    def _batches(self) -> Iterator[dict[str, torch.Tensor]]:
        """This rank's batches for the rest of the epoch (the sampler's order, ``drop_last``): gathered on the
        device from the resident set, else through the DataLoader."""
        if self.resident is None:
            yield from self.loader
            return
        indices, bs = self.sampler.rank_indices()[self.sampler.start :], self.cfg.optim.batch_size
        for b in range(len(indices) // bs):
            yield self.resident.batch(indices[b * bs : (b + 1) * bs])

    def _out_of_time(self, elapsed_s: float, epoch_s: float) -> bool:
        """True when another epoch (forecast: as long as the last one) would end past ``run.time_limit_minutes``;
        every rank takes rank 0's decision."""
        limit_s = 60.0 * self.cfg.run.time_limit_minutes
        stop = dd.broadcast_flag(bool(limit_s) and elapsed_s + epoch_s > limit_s, self.info)
        if stop and self.info.is_main:
            logger.info("run.time_limit_minutes (%g): stopping after epoch %d, %.0f s in; --resume continues",
                        self.cfg.run.time_limit_minutes, self.epoch, elapsed_s)
        return stop

    def _bar(self) -> Any:
        if not (self.progress and self.info.is_main and sys.stderr.isatty()):
            return None
        from tqdm import tqdm

        return tqdm(total=self.steps_per_epoch, initial=self.batch_in_epoch, unit="batch", file=sys.stderr,
                    desc=f"epoch {self.epoch + 1}/{self.cfg.optim.epochs}", dynamic_ncols=True)

    def _end_epoch(self, sums: dict[str, torch.Tensor], seconds: float) -> None:
        dd.average_buffers(self.gen, self.info)
        dd.average_buffers(self.disc, self.info)
        n = max(self.batch_in_epoch, 1)
        record: dict[str, Any] = {"kind": "epoch", "epoch": self.epoch, "step": self.step, "seconds": seconds,
                                  **{k: v / n for k, v in host_values(sums).items()}}
        every, is_best = self.cfg.run.physics_check_every, False
        if self.real_val is not None and every and (self.epoch + 1) % every == 0:
            real, cond, summary = self.real_val
            check = physics_check(self.gen, real, cond, self.transform, self.pair.latent_dim, self.n_particles,
                                  self.cfg.run.seed, self.device, summary)
            record["physics"] = check
            is_best = self.best_score is None or check["score"] < self.best_score
            if is_best:
                self.best_score, self.best_epoch = check["score"], self.epoch
        self.epoch += 1
        self.batch_in_epoch = self.samples_in_epoch = 0
        self._log(record)
        if self.info.is_main:
            score = record.get("physics", {}).get("score")
            losses = (f"loss {record['loss']:.4g}" if "loss" in record  # one objective (the VAE's)
                      else f"d_real {record.get('d_real', float('nan')):.4g}, g {record.get('g1', float('nan')):.4g}")
            logger.info("epoch %d/%d: %s%s", self.epoch, self.cfg.optim.epochs, losses,
                        f", physics score {score:.4g}" if score is not None else "")
        self._save(best=is_best, epoch_end=True)
        if self.on_epoch is not None:
            self.on_epoch(record["epoch"], record)

    def _log(self, record: dict[str, Any]) -> None:
        if self.log_file is None:
            return
        self.log_file.write(json.dumps(record) + "\n")
        self.log_file.flush()
        if self.tb is not None:
            flat = {k: v for k, v in record.items() if isinstance(v, int | float) and k not in ("epoch", "step")}
            flat.update({f"physics/{k}": v for k, v in record.get("physics", {}).get("terms", {}).items()})
            for k, v in flat.items():
                self.tb.add_scalar(f"{record['kind']}/{k}", v, self.step)

    # --- checkpoints ----------------------------------------------------------------------------------------

    def _save(self, best: bool = False, epoch_end: bool = False) -> None:
        """Collective (every rank calls it); rank 0 writes ``last.pt`` (and ``best.pt`` / ``epoch-NNN.pt``)."""
        dd.average_buffers(self.gen, self.info)
        dd.average_buffers(self.disc, self.info)
        per_rank = dd.all_gather(ck.rank_rng_state(self.noise_gen, self.flip_gen), self.info)
        if not self.info.is_main:
            return
        ckpt = {
            "schema_version": ck.SCHEMA_VERSION,
            "model": {"name": self.cfg.model.name, "cell_shape": list(self.dataset.cell_shape),
                      "options": self.options, "particles": list(self.particles)},
            "generator": self.gen.state_dict(),
            "discriminator": self.disc.state_dict(),
            "optimizers": {k: v.state_dict() for k, v in self.opt.items()},
            "schedulers": {k: v.state_dict() for k, v in self.sched.items()},
            "scaler": {k: (v.state_dict() if v.is_enabled() else None) for k, v in self.scaler.items()},
            "rng": {"per_rank": per_rank, **ck.host_rng_state()},
            "epoch": self.epoch, "step": self.step, "batch_in_epoch": self.batch_in_epoch,
            "samples_in_epoch": self.samples_in_epoch, "world_size": self.info.world_size,
            "config": self.cfg.to_dict(), "sampling_fraction_fit": self.ecal_fit.to_dict(),
            "transform": self.transform.to_dict(), "best_score": self.best_score, "best_epoch": self.best_epoch,
        }
        ck.save_checkpoint(self.run_dir / ck.LAST, ckpt)
        if best:
            ck.save_checkpoint(self.run_dir / ck.BEST, ckpt)
            self._save_bundle()
        if epoch_end and self.cfg.run.keep_epoch_checkpoints:
            ck.save_checkpoint(self.run_dir / f"epoch-{self.epoch:03d}.pt", ckpt)

    def _save_bundle(self) -> None:
        """The best generator as a bundle (``generator.pt``): what ``fastshower generate`` and export read."""
        from fastshower.data import inspect_showers
        from fastshower.models.bundle import save_bundle

        attrs = inspect_showers(self.cfg.data.path, self.binning)["attrs"]
        thetas = self.dataset.theta_rad[self.train_idx]
        save_bundle(self.run_dir / BUNDLE, self.gen, model_name=self.cfg.model.name,
                    cell_shape=tuple(self.dataset.cell_shape), model_config=dict(self.options),
                    transform_power=self.transform.power, transform_scale=self.transform.scale,
                    energy_range_GeV=_energy_range(attrs, self.dataset.energy_GeV[self.train_idx]),
                    theta_range_rad=(float(thetas.min()), float(thetas.max())), particles=list(self.particles),
                    geometry=attrs.get("geometry", {}), physics=attrs.get("physics", {}),
                    provenance={"run_dir": str(self.run_dir), "epoch": self.best_epoch, "step": self.step,
                                "best_score": self.best_score, "data": str(self.cfg.data.path),
                                "config": self.cfg.to_dict()})

    def _dump(self) -> None:
        if not self.dump_dir:
            return
        out = Path(self.dump_dir)
        out.mkdir(parents=True, exist_ok=True)
        record = {"rank": self.info.rank, "world_size": self.info.world_size,
                  "weights_sha256": ck.state_hash(self.gen, self.disc), "indices": self.seen,
                  "train_indices": self.train_idx.tolist()}
        (out / f"rank{self.info.rank}.json").write_text(json.dumps(record))


def host_values(tensors: dict[str, torch.Tensor]) -> dict[str, float]:
    """0-d tensors (on one device) as Python floats, with a single transfer."""
    if not tensors:
        return {}
    values = torch.stack([t.double() for t in tensors.values()]).tolist()
    return dict(zip(tensors, values, strict=True))


def _energy_range(attrs: dict[str, Any], energies: Any) -> tuple[float, float]:
    """The energy range the training data was drawn from: the production request's ``A:B`` or ``A:B:log`` (e.g.
    10:510 GeV) when the file records one, else the smallest and largest training energy."""
    request = attrs.get("request")
    spec = str(request.get("energy_GeV", "") if isinstance(request, dict) else "")
    spec = spec[:-4] if spec.endswith(":log") else spec
    low, sep, high = spec.partition(":")
    try:
        return (float(low), float(high)) if sep else (float(energies.min()), float(energies.max()))
    except ValueError:
        return float(energies.min()), float(energies.max())
