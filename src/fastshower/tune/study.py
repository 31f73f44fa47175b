"""Hyper-parameter studies on optuna: every trial is a normal training run, judged by its per-epoch physics score.

A study lives in an optuna storage: SQLite in the output folder by default (``sqlite:///DIR/study.db``), any
SQLAlchemy URL (PostgreSQL, MySQL) for several machines, or optuna's journal file (``journal:PATH``) on a shared
file system. ``trials`` is the study's total: a rerun of the same command resumes the study and runs only the
trials still missing (completed and pruned trials count; failed ones do not). Several processes (``workers``, or
``fastshower tune`` on several machines) can work on one study at once; each takes a next trial while the completed,
pruned and running ones fall short of the total (two processes asking at the same instant can pass it by one).

Each trial trains the base configuration with the trial's values into ``DIR/trial-NNNN/`` (its resolved config,
log and bundle, as ``fastshower train`` writes them) and reports the physics score of every epoch (lower is better)
to the pruner, which stops hopeless trials early; the trial's value is its best epoch's score. A trial whose process
dies is marked failed: at once by the next worker on the same machine (it checks the recorded process), through
optuna's heartbeat on SQL storages (after ``GRACE_PERIOD_S``) for other machines.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastshower.errors import ConfigError
from fastshower.tune.space import Parameter

logger = logging.getLogger(__name__)

PRUNERS = ("median", "hyperband", "none")
SAMPLERS = ("tpe", "random")
#: seconds between a running trial's heartbeats, and after which a silent trial is taken as dead (SQL storages)
HEARTBEAT_S, GRACE_PERIOD_S = 20, 60
#: a worker gives up after this many failed trials in a row (a broken setting fails every trial)
MAX_FAILURES_IN_A_ROW = 3
LOG_NAME = "tune.log"


@dataclass
class TuneOptions:
    """What ``fastshower tune`` was asked (see the CLI's help)."""

    config: Path
    space: list[Parameter]
    out: Path
    trials: int
    study: str = "fastshower"
    storage: str = ""
    data: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    workers: int = 1
    pruner: str = "median"
    sampler: str = "tpe"
    seed: int = 1

    def storage_url(self) -> str:
        """The storage as given, or the embedded default ``sqlite:///OUT/study.db``."""
        return self.storage or f"sqlite:///{(self.out / 'study.db').resolve()}"


def require_optuna() -> None:
    """One-line ``ConfigError`` unless optuna is installed."""
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise ConfigError("fastshower tune needs the optional extra: pip install 'fastshower[tune]'") from None


def open_storage(url: str) -> Any:
    """An optuna storage for ``url``: ``journal:PATH`` (a journal file), else an SQLAlchemy URL (with heartbeats)."""
    import optuna

    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    import warnings

    from optuna.exceptions import ExperimentalWarning

    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)  # the heartbeat is what marks dead trials failed
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_S,
                                              grace_period=GRACE_PERIOD_S)
    except Exception as err:  # noqa: BLE001 - SQLAlchemy raises many kinds for a bad URL or an unreachable server
        reason = " ".join(str(err).split())[:160]
        raise ConfigError(f"storage '{url}': cannot open ({type(err).__name__}: {reason})") from None


def _pruner(name: str, epochs: int) -> Any:
    import optuna

    if name == "median":  # a trial is compared from its second epoch on, once two trials have finished
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1), reduction_factor=3)
    return optuna.pruners.NopPruner()


def _sampler(name: str, seed: int) -> Any:
    import optuna

    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True)


def load_study(options: TuneOptions, pruner: Any = None, seed_offset: int = 0) -> Any:
    """Create or open the study (its direction: minimise the physics score)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(study_name=options.study, storage=open_storage(options.storage_url()),
                               direction="minimize", load_if_exists=True,
                               pruner=pruner if pruner is not None else _pruner(options.pruner, _epochs(options)),
                               sampler=_sampler(options.sampler, options.seed + seed_offset))


def _epochs(options: TuneOptions) -> int:
    from fastshower.train import load_config

    return load_config(options.config, _base_overrides(options)).optim.epochs


def _base_overrides(options: TuneOptions) -> dict[str, Any]:
    return {**({"data.path": options.data} if options.data else {}), **options.overrides}


def counts(study: Any) -> dict[str, int]:
    """Trials of the study by state name (COMPLETE, PRUNED, FAIL, RUNNING, WAITING)."""
    out: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        out[trial.state.name] = out.get(trial.state.name, 0) + 1
    return out


def _done(study: Any) -> int:
    c = counts(study)
    return c.get("COMPLETE", 0) + c.get("PRUNED", 0)


def fail_dead_trials(study: Any) -> list[int]:
    """Mark failed the running trials whose process, on this machine, is gone (killed, or the machine rebooted);
    returns their numbers."""
    import optuna

    from fastshower.lifetime import ProcessIdentity

    host, failed = socket.gethostname(), []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        owner = trial.user_attrs.get("process")
        if trial.user_attrs.get("host") != host or not isinstance(owner, dict):
            continue
        try:
            alive = ProcessIdentity.from_dict(owner).is_running()
        except (KeyError, TypeError, ValueError):
            continue
        if not alive and study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL):
            failed.append(trial.number)
    return failed


class _Log:
    """One line per trial: on stdout and appended to ``DIR/tune.log`` (several processes append whole lines)."""

    def __init__(self, out: Path, quiet: bool) -> None:
        self.path, self.quiet = out / LOG_NAME, quiet

    def __call__(self, line: str) -> None:
        stamped = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(stamped + "\n")
        if not self.quiet:
            print(line, flush=True)


def _values_text(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def run_trials(options: TuneOptions, worker: int = 0, quiet: bool = False, pruner: Any = None,
               on_trial: Callable[[Any], None] | None = None) -> int:
    """Run trials of the study until it holds ``options.trials`` completed or pruned ones; returns how many this
    process ran. ``pruner``: an optuna pruner instead of ``options.pruner`` (tests); ``on_trial(frozen_trial)``
    after each."""
    import optuna

    from fastshower.lifetime import ProcessIdentity
    from fastshower.train import load_config, train

    study = load_study(options, pruner, seed_offset=worker)
    log = _Log(options.out, quiet)
    base = _base_overrides(options)
    ran = failures = 0

    def objective(trial: optuna.Trial) -> float:
        values = {p.key: p.suggest(trial) for p in options.space}
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("process", ProcessIdentity.current().to_dict())
        run_dir = options.out / f"trial-{trial.number:04d}"
        trial.set_user_attr("run_dir", str(run_dir))
        config = load_config(options.config, {**base, **values})

        def on_epoch(epoch: int, record: Mapping[str, Any]) -> None:
            score = record.get("physics", {}).get("score")
            if score is None:
                return
            trial.report(float(score), epoch)
            trial.set_user_attr("epochs", epoch + 1)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch + 1} (score {score:.4g})")

        try:
            result = train(config, run_dir, progress=False, on_epoch=on_epoch)
        except optuna.TrialPruned:
            raise
        except Exception as err:
            trial.set_user_attr("error", " ".join(str(err).split())[:300] or type(err).__name__)
            raise
        if result.best_score is None:
            raise ConfigError("the trial's training made no physics check (run.physics_check_every and "
                              "data.validation_fraction must allow one per epoch)")
        return float(result.best_score)

    while True:
        for number in fail_dead_trials(study):
            log(f"trial {number}: marked failed (its process is gone)")
        state = counts(study)
        if _done(study) + state.get("RUNNING", 0) >= options.trials:  # the rest is being run by other processes
            break
        if failures >= MAX_FAILURES_IN_A_ROW:
            raise ConfigError(f"study '{options.study}': {failures} trials in a row failed; see {log.path}")
        start = time.perf_counter()
        before = {t.number for t in study.get_trials(deepcopy=False)}
        try:
            study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=True)
        finally:
            ran += 1
        new = [t for t in study.get_trials(deepcopy=False) if t.number not in before]
        trial = max(new, key=lambda t: t.number) if new else None
        if trial is None:
            continue
        seconds = time.perf_counter() - start
        failures = failures + 1 if trial.state.name == "FAIL" else 0
        _log_trial(log, study, trial, seconds)
        if trial.state.name == "COMPLETE":
            write_best(study, options.out)
        if on_trial is not None:
            on_trial(trial)
    return ran


def _log_trial(log: _Log, study: Any, trial: Any, seconds: float) -> None:
    params = _values_text(trial.params)
    if trial.state.name == "COMPLETE":
        best = study.best_trial
        log(f"trial {trial.number}: score {trial.value:.4g} (best {best.value:.4g}, trial {best.number}) in "
            f"{seconds:.1f} s, {trial.user_attrs.get('epochs', '?')} epochs: {params}")
    elif trial.state.name == "PRUNED":
        steps = sorted(trial.intermediate_values)
        last = trial.intermediate_values[steps[-1]] if steps else float("nan")
        log(f"trial {trial.number}: pruned after epoch {len(steps)} (score {last:.4g}) in {seconds:.1f} s: {params}")
    else:
        reason = trial.user_attrs.get("error") or "interrupted, or see its run folder"
        log(f"trial {trial.number}: failed in {seconds:.1f} s ({' '.join(str(reason).split())[:200]}): {params}")


def write_best(study: Any, out: Path) -> Path | None:
    """``DIR/best.yaml``: the best completed trial's whole resolved configuration (a ``fastshower train --config``
    file), with a header naming the study, the trial and its score; None while no trial has completed."""
    import yaml

    from fastshower.atomic import atomic_write_text

    try:
        best = study.best_trial
    except ValueError:
        return None
    resolved = Path(best.user_attrs.get("run_dir", "")) / "resolved_config.yaml"
    try:
        config = yaml.safe_load(resolved.read_text())
    except (OSError, yaml.YAMLError):
        logger.warning("%s: cannot read the best trial's configuration", resolved)
        return None
    header = (f"# best trial of study '{study.study_name}': trial {best.number}, physics score {best.value:.6g}\n"
              f"# its run: {best.user_attrs.get('run_dir')}; train it further with fastshower train --config "
              "best.yaml\n")
    return atomic_write_text(out / "best.yaml", header + yaml.safe_dump(config, sort_keys=False))


def _worker_main(options: TuneOptions, worker: int, threads: int, gpu: int | None) -> int:
    if gpu is not None:  # before torch is imported in this process
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    import torch

    torch.set_num_threads(max(1, threads))
    return run_trials(options, worker, quiet=False)


def tune(options: TuneOptions) -> dict[str, int]:
    """Run the study with ``options.workers`` processes on this machine (one per GPU when the trials train on
    GPUs and there are enough); returns the study's trials by state at the end."""
    require_optuna()
    options.out.mkdir(parents=True, exist_ok=True)
    study = load_study(options)  # creates the study (and its tables) once, before the workers race for it
    if options.workers == 1:
        run_trials(options)
        return counts(study)
    gpus = _gpu_count() if _trains_on_gpu(options) else 0
    threads = max(1, (os.cpu_count() or 1) // options.workers)
    context = multiprocessing.get_context("spawn")  # torch and threads: a forked copy of this process is unsafe
    processes = [context.Process(target=_worker_main, name=f"fastshower-tune-{i}",
                                 args=(options, i, threads, i if i < gpus else None)) for i in range(options.workers)]
    for p in processes:
        p.start()
    try:
        for p in processes:
            p.join()
    except BaseException:
        for p in processes:
            p.terminate()
        for p in processes:
            p.join()
        raise
    bad = [p.exitcode for p in processes if p.exitcode]
    if bad:
        raise ConfigError(f"study '{options.study}': {len(bad)} of {options.workers} worker processes failed "
                          f"(exit codes {bad}); see {options.out / LOG_NAME}")
    return counts(study)


def _trains_on_gpu(options: TuneOptions) -> bool:
    from fastshower.train import load_config

    device = load_config(options.config, _base_overrides(options)).run.device
    return device in ("cuda", "auto") and _gpu_count() > 0


def _gpu_count() -> int:
    try:
        import torch

        return int(torch.cuda.device_count())
    except Exception:  # noqa: BLE001 - no usable CUDA runtime means no GPU
        return 0
