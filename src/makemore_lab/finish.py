"""What the driver does for each job once training has ended: evaluate, record, sample, say so.

A solo run and every job of a stacked group end the same way: each split's loss with the
trained network, every job's at once (`evaluate_jobs`), then per job (`finish_job`) the run's
HParams session, `metrics.json`, `samples.txt` and the end summary; a job whose loss stopped
being finite is recorded where it stopped (`record_diverged`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import Logger, WandbLogger
from torch import nn

from makemore_lab.data.names import Vocab
from makemore_lab.dynamics.callback import TrainingDynamics
from makemore_lab.errors import TrainingDiverged
from makemore_lab.network.sampling import sample_names
from makemore_lab.runs import hparams
from makemore_lab.runs import record as run_record
from makemore_lab.runs.job import Job
from makemore_lab.runs.summary import end_summary
from makemore_lab.training.divergence import blew_up, diverged
from makemore_lab.training.engine import Engine
from makemore_lab.training.evaluation import SPLITS, Losses, eval_threads, split_losses
from makemore_lab.training.graphs import steps_note

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """Every trained job's split losses (its exception if its evaluation raised, None if it
    diverged), the threads that computed them, and the networks evaluated (by job)."""

    losses: list[Losses | Exception | None]
    threads: int
    nets: dict[int, nn.Module]


def evaluate_jobs(engine: Engine) -> Evaluation:
    """The split losses of every job that trained to the end, computed together
    (`training/evaluation.py`: on `eval_threads` threads, each loss as one thread gives it)."""
    # Lightning hands the model back on the CPU after fit: evaluate (and sample) where the
    # splits live, the training device.
    device = engine.datamodule.splits["train"][0].device
    losses: list[Losses | Exception | None] = [None] * len(engine.jobs)
    nets: dict[int, nn.Module] = {}
    for job in range(len(engine.jobs)):
        if job not in engine.diverged:
            try:
                nets[job] = engine.network(job).to(device)
            except Exception as err:  # the job's own failure, recorded by `finish_or_fail`
                losses[job] = err
    threads = eval_threads(engine.jobs[0].cfg.get("eval_threads"), device)
    splits = {split: engine.datamodule.eval_batches(split) for split in SPLITS}
    for job, result in zip(nets, split_losses(list(nets.values()), splits, threads), strict=True):
        losses[job] = result
    return Evaluation(losses, threads, nets)


def finish_job(
    engine: Engine, job: int, fit_seconds: float, wall: float, evaluation: Evaluation
) -> dict[str, Any]:
    """Job `job`'s outputs: its losses recorded, samples drawn, summarised; its metrics."""
    if job in engine.diverged:
        return record_diverged(engine, job)
    losses = evaluation.losses[job]
    if isinstance(losses, Exception):
        raise losses
    assert losses is not None  # a job that did not diverge was evaluated
    resolved, vocab = engine.jobs[job], engine.datamodule.vocab
    net, steps = evaluation.nets[job], engine.trainer.global_step
    record_final_losses(losses, engine.loggers(job), steps, resolved.run_dir)
    metrics = final_metrics(
        resolved.run_dir,
        engine.step0_loss(job),
        losses,
        steps=steps,
        first_step=engine.module.resumed_from_step,
        fit_seconds=fit_seconds,
        wall_seconds=wall,
        vocab_size=vocab.size,
    )
    metrics["eval_threads"] = evaluation.threads
    metrics["cuda_graphs"] = steps_note(engine.module.graphs, engine.module.eager_reason)
    metrics["diagnosis"] = diagnosis_of(engine.trainer, job)
    if len(engine.jobs) > 1:
        metrics["stacked_group"] = {"jobs": len(engine.jobs), "index": job}
    finish(resolved, net, vocab, metrics)
    return metrics


def finish_or_fail(
    engine: Engine, job: int, fit_seconds: float, wall: float, evaluation: Evaluation
) -> dict[str, Any]:
    """`finish_job`; in a group, an error there (evaluation, samples, records) is the job's
    own: recorded `failed` with its cause, while the other jobs finish."""
    if len(engine.jobs) == 1:
        return finish_job(engine, job, fit_seconds, wall, evaluation)
    try:
        return finish_job(engine, job, fit_seconds, wall, evaluation)
    except Exception as err:
        run_dir = engine.jobs[job].run_dir
        log.exception("job %s failed after training", run_dir)
        run_record.write_failed(run_dir, err)
        return run_record.read(run_dir)


def divergence_error(engine: Engine, job: int) -> TrainingDiverged:
    """The error of job `job`'s divergence, with advice for its config."""
    info = engine.diverged[job]
    return diverged(engine.jobs[job].config, info["step"], info["loss"], info["last_finite"])


def record_diverged(engine: Engine, job: int) -> dict[str, Any]:
    """A job that diverged, recorded where it stopped (the end of that chunk)."""
    err, run_dir = divergence_error(engine, job), engine.jobs[job].run_dir
    hparams.log_session(engine.loggers(job), run_dir, completed=False)
    for logger in engine.loggers(job):
        logger.finalize("failed")
    if len(engine.jobs) > 1:  # a solo run's error is said by the caller
        log.warning("job %s: %s", run_dir, err)
    steps = engine.diverged[job]["steps"]
    return run_record.write_diverged(run_dir, err, engine.step0_loss(job), steps)


def finish(job: Job, net: nn.Module, vocab: Vocab, metrics: dict[str, Any]) -> None:
    """Sample (a completed run: a NaN model has no distribution), write metrics.json, say so."""
    if metrics["status"] == "completed":
        samples = job.cfg.samples
        names = sample_names(net, vocab, count=samples.count, seed=samples.seed)
        (job.run_dir / "samples.txt").write_text("\n".join(names) + "\n")
    run_record.write_finished(job.run_dir, metrics)
    log.info("finished\n%s", end_summary(metrics, str(job.run_dir)))


def record_final_losses(
    losses: Losses, loggers: Sequence[Logger], step: int, run_dir: Path
) -> None:
    """Each split's loss logged as final/<split>_loss beside the run's HParams session
    (`runs/hparams.py`); the loggers closed."""
    hparams.log_session(loggers, run_dir, completed=True)
    for logger in loggers:
        logger.log_metrics({f"final/{k}": v for k, v in losses.items()}, step=step)
        logger.finalize("success")
        if isinstance(logger, WandbLogger):
            logger.experiment.finish()  # each job of a multirun is its own W&B run


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

    `first_step` is the step a resumed run started from (None: it started at step 0). A run
    whose final losses say it did not train (`training.divergence.blew_up`) is `diverged`.
    """
    why = blew_up(losses, step0_loss, vocab_size)
    if why is not None:
        log.warning(why)
    trained = steps - (first_step or 0)
    return {
        "status": "diverged" if why is not None else "completed",
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
