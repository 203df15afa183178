"""The driver: a list of jobs trained start to end; a solo run is a list of one.

`prepare_job` checks a job, claims its run directory and writes Hydra's record there;
`train_jobs` builds the engine (`SoloEngine` for one job, `StackedEngine` for a stacked
group), fits it, records an interruption or a divergence, then, per job, evaluates, records,
samples and summarises. `train(cfg)` is both for one run: tests call it with configs from
Hydra's compose API, `app.py` for `python train.py`, the stacked launcher per job and group.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf
from torch import nn

from makemore_lab.config.checks import check_config, check_device
from makemore_lab.data.names import NamesDataModule, Vocab
from makemore_lab.dynamics.callback import TrainingDynamics
from makemore_lab.errors import RunInterrupted, StoppedAfterTraining, TrainingDiverged
from makemore_lab.network.sampling import sample_names
from makemore_lab.runs import claim as run_claim
from makemore_lab.runs import hparams
from makemore_lab.runs import record as run_record
from makemore_lab.runs.checkpoints import last_checkpoint
from makemore_lab.runs.resume import check_resume, finished_run, resume_command
from makemore_lab.runs.summary import end_summary, start_summary
from makemore_lab.stacked.engine import StackedEngine
from makemore_lab.training.engine import Engine
from makemore_lab.training.interrupts import HeldSignals
from makemore_lab.training.module import split_loss
from makemore_lab.training.solo import SoloEngine
from makemore_lab.training.step import diverged

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """A job after `prepare_job`: its directory claimed, or the record of a finished run."""

    cfg: DictConfig
    finished: dict[str, Any] | None  # a completed run being resumed: nothing to train
    ckpt: dict[str, Any] | None  # the checkpoint it continues from, read already

    @property
    def resume_step(self) -> int | None:
        return int(self.ckpt["global_step"]) if self.ckpt is not None else None


def train(cfg: DictConfig, extra_callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
    """One run: train the configured network, evaluate it and write the run's outputs; its
    metrics. A divergence is recorded, then raised (`extra_callbacks` join the configured
    ones: benchmarks and tests observe a run with them)."""
    prepared = prepare_job(cfg)
    if prepared.finished is not None:
        return prepared.finished
    (metrics,) = train_jobs([cfg], [prepared.ckpt], extra_callbacks)
    run_claim.release(Path(cfg.run_dir))  # on an error, the caller records it first
    return metrics


def prepare_job(cfg: DictConfig) -> Prepared:
    """Check the job and claim its directory, writing nothing until every check has passed."""
    check_config(cfg)
    check_device(cfg)
    finished = finished_run(cfg)  # before anything is written there
    if finished is not None:
        return Prepared(cfg, finished, None)
    run_dir, resume = Path(cfg.run_dir), bool(cfg.get("resume"))
    run_claim.check(run_dir, resume)  # another run's directory: refused, before any write
    ckpt = check_resume(cfg)  # another run's settings: refused, still before any write
    run_claim.claim(run_dir, resume)
    run_claim.write_hydra_record(cfg, run_dir)
    return Prepared(cfg, None, ckpt)


def train_jobs(
    cfgs: list[DictConfig],
    ckpts: Sequence[dict[str, Any] | None],
    extra_callbacks: Sequence[Callback] = (),
    live_display: bool = True,
) -> list[dict[str, Any]]:
    """Train prepared jobs (one: a solo run; several: a stacked group); each job's metrics."""
    started = time.perf_counter()
    for cfg in cfgs:
        start_run_dir(cfg)
    threads = resolve_threads(cfgs[0].get("threads"))
    if threads:
        torch.set_num_threads(threads)
    if len(cfgs) == 1:
        engine: Engine = SoloEngine.build(cfgs[0], ckpts[0], extra_callbacks)
    else:
        engine = StackedEngine.build(cfgs, ckpts, extra_callbacks, live_display)
    with HeldSignals() as held:  # a signal once training has ended waits for the records
        fit_seconds = fit(engine, held)
        wall = time.perf_counter() - started
        metrics = [finish_or_fail(engine, job, fit_seconds, wall) for job in range(len(cfgs))]
    if held.signum is not None:
        raise StoppedAfterTraining(held.signum, resume_command(cfgs[0]))
    if len(cfgs) == 1 and engine.diverged:  # a solo run stops with its error (exit status 2)
        raise divergence_error(engine, 0)
    return metrics


def fit(engine: Engine, held: HeldSignals) -> float:
    """Train; on SIGTERM / Ctrl-C before the last step, record every job (`interrupted`, each
    with its own last.ckpt) and raise; after it, leave the signal to `held`. Returns the fit's
    seconds."""
    started = time.perf_counter()
    trainer = engine.trainer
    trainer.fit(
        engine.module, datamodule=engine.datamodule, ckpt_path=engine.ckpt_path, weights_only=True
    )
    seconds = time.perf_counter() - started
    signal = engine.on_interrupt.signal if engine.on_interrupt is not None else None
    if signal is None:
        return seconds
    if trainer.global_step >= trainer.max_steps:  # it came as the last chunk ended
        held.signum = signal
        return seconds
    steps, cfgs = trainer.global_step, engine.cfgs
    for job, cfg in enumerate(cfgs):
        if job in engine.diverged:
            record_diverged(engine, job)
        else:
            run_record.write_interrupted(cfg.run_dir, steps, last_checkpoint(cfg), signal)
    where = str(engine.on_interrupt.path) if len(cfgs) == 1 else "each job's checkpoints/last.ckpt"
    raise RunInterrupted(signal, steps, where, resume_command(cfgs[0]))


def finish_job(engine: Engine, job: int, fit_seconds: float, wall: float) -> dict[str, Any]:
    """Job `job`'s outputs: evaluated, recorded, sampled and summarised; its metrics."""
    if job in engine.diverged:
        return record_diverged(engine, job)
    cfg, vocab = engine.cfgs[job], engine.datamodule.vocab
    net, steps = engine.network(job), engine.trainer.global_step
    losses = evaluate(net, engine.datamodule, engine.loggers(job), steps, Path(cfg.run_dir))
    metrics = final_metrics(
        Path(cfg.run_dir),
        engine.step0_loss(job),
        losses,
        steps=steps,
        first_step=engine.module.resumed_from_step,
        fit_seconds=fit_seconds,
        wall_seconds=wall,
        vocab_size=vocab.size,
    )
    metrics["diagnosis"] = diagnosis_of(engine.trainer, job)
    if len(engine.cfgs) > 1:
        metrics["stacked_group"] = {"jobs": len(engine.cfgs), "index": job}
    finish(cfg, net, vocab, metrics)
    return metrics


def finish_or_fail(engine: Engine, job: int, fit_seconds: float, wall: float) -> dict[str, Any]:
    """`finish_job`; in a group, an error there (evaluation, samples, records) is the job's
    own: recorded `failed` with its cause, while the other jobs finish."""
    if len(engine.cfgs) == 1:
        return finish_job(engine, job, fit_seconds, wall)
    try:
        return finish_job(engine, job, fit_seconds, wall)
    except Exception as err:
        cfg = engine.cfgs[job]
        log.exception("job %s failed after training", cfg.run_dir)
        run_record.write_failed(cfg.run_dir, err)
        return run_record.read(cfg.run_dir)


def divergence_error(engine: Engine, job: int) -> TrainingDiverged:
    """The error of job `job`'s divergence, with advice for its config."""
    info, config = engine.diverged[job], OmegaConf.to_container(engine.cfgs[job], resolve=True)
    return diverged(config, info["step"], info["loss"], info["last_finite"])


def record_diverged(engine: Engine, job: int) -> dict[str, Any]:
    """A job that diverged, recorded where it stopped (the end of that chunk)."""
    err, cfg = divergence_error(engine, job), engine.cfgs[job]
    hparams.log_session(engine.loggers(job), Path(cfg.run_dir), completed=False)
    for logger in engine.loggers(job):
        logger.finalize("failed")
    if len(engine.cfgs) > 1:  # a solo run's error is said by the caller
        log.warning("job %s: %s", cfg.run_dir, err)
    steps = engine.diverged[job]["steps"]
    return run_record.write_diverged(cfg.run_dir, err, engine.step0_loss(job), steps)


def finish(cfg: DictConfig, net: nn.Module, vocab: Vocab, metrics: dict[str, Any]) -> None:
    """Sample (a completed run: a NaN model has no distribution), write metrics.json, say so."""
    run_dir = Path(cfg.run_dir)
    if metrics["status"] == "completed":
        names = sample_names(net, vocab, count=cfg.samples.count, seed=cfg.samples.seed)
        (run_dir / "samples.txt").write_text("\n".join(names) + "\n")
    run_record.write_finished(run_dir, metrics)
    log.info("finished\n%s", end_summary(metrics, str(run_dir)))


def start_run_dir(cfg: DictConfig) -> None:
    """Create the run directory, say what runs, save the resolved config."""
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    log.info("makemore-lab run\n%s", start_summary(cfg))
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)


def evaluate(
    net: nn.Module,
    datamodule: NamesDataModule,
    loggers: Sequence[Logger],
    step: int,
    run_dir: Path,
) -> dict[str, float]:
    """Each split's mean loss with the trained network, logged as final/<split>_loss beside
    the run's HParams session (`runs/hparams.py`)."""
    # Lightning hands the model back on the CPU after fit: evaluate (and sample) where the
    # splits live, the training device.
    net.to(datamodule.splits["train"][0].device)
    losses = {
        f"{split}_loss": split_loss(net, datamodule.eval_batches(split))
        for split in ("train", "val", "test")
    }
    hparams.log_session(loggers, run_dir, completed=True)
    for logger in loggers:
        logger.log_metrics({f"final/{k}": v for k, v in losses.items()}, step=step)
        logger.finalize("success")
        if isinstance(logger, WandbLogger):
            logger.experiment.finish()  # each job of a multirun is its own W&B run
    return losses


def final_metrics(
    run_dir: Path,
    step0_loss: float | None,
    losses: dict[str, float],
    steps: int,
    first_step: int | None,
    fit_seconds: float,
    wall_seconds: float,
    vocab_size: int | None = None,
) -> dict[str, Any]:
    """A trained run's metrics.json contents: status, losses, steps and speed.

    `first_step` is the step a resumed run started from (None: it started at step 0).
    `diverged` also covers a finite blow-up: a final train loss above both the loss before
    training and a uniform guess over the vocabulary (log `vocab_size`) did not train.
    """
    diverged = not all(math.isfinite(v) for v in losses.values())
    if diverged:
        log.warning(
            "the losses are not finite: the run diverged (try a smaller optim.lr or init.gain)"
        )
    elif step0_loss is not None and vocab_size:
        worse = max(step0_loss, math.log(vocab_size))
        if losses["train_loss"] > worse:
            diverged = True
            log.warning(
                "the final train loss %.4g is above the loss before training (%.4g) and a "
                "uniform guess (%.4g): the run diverged without overflowing (try a smaller "
                "optim.lr or init.gain)",
                losses["train_loss"],
                step0_loss,
                math.log(vocab_size),
            )
    trained = steps - (first_step or 0)
    return {
        "status": "diverged" if diverged else "completed",
        "step0_loss": step0_loss,
        **losses,
        "steps": steps,
        "fit_seconds": round(fit_seconds, 3),
        "resumed_from_step": first_step,
        "steps_per_second": round(trained / fit_seconds, 1) if fit_seconds > 0 else None,
        "wall_seconds": round(wall_seconds, 3),
        "threads": torch.get_num_threads(),
        "run_dir": str(run_dir),
    }


def diagnosis_of(trainer: L.Trainer, job: int) -> list[str]:
    """The dynamics callback's diagnosis of job `job` (none without the callback)."""
    for callback in trainer.callbacks:
        if isinstance(callback, TrainingDynamics):
            return callback.jobs[job].report.diagnosis_lines()
    return []


def resolve_threads(threads: int | None) -> int | None:
    """Torch threads for this job: as configured, or shared fairly under a parallel launcher.

    With `hydra/launcher=joblib` and `threads=null`, n jobs run at once; each leaving torch at
    its default (one thread per core) would oversubscribe the machine, so each gets
    cores // n (at least 1).
    """
    if threads:
        return int(threads)
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    n_jobs = OmegaConf.select(HydraConfig.get(), "launcher.n_jobs")
    if n_jobs is None:
        return None
    cores = os.cpu_count() or 1
    parallel = cores + 1 + n_jobs if n_jobs < 0 else n_jobs  # joblib: -1 = all cores
    return max(1, cores // max(1, parallel))
