"""The driver: a list of jobs trained start to end; a solo run is a list of one.

`prepare_job` checks a job, claims its run directory, writes Hydra's record there and resolves
the job once (`runs/job.py`); `train_jobs` builds the engine (`SoloEngine` for one job,
`StackedEngine` for a stacked group), fits it, records an interruption, evaluates every job
at once, then, per job, records, samples and summarises (`finish.py`). `train(cfg)` is both
for one run: tests call it with configs from Hydra's compose API, `app.py` for
`python train.py`, the stacked launcher per job and group.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf

from makemore_lab.config.checks import check_config, check_device
from makemore_lab.errors import RunInterrupted, StoppedAfterTraining
from makemore_lab.finish import divergence_error, evaluate_jobs, finish_or_fail, record_diverged
from makemore_lab.runs import claim as run_claim
from makemore_lab.runs import hydra_record
from makemore_lab.runs import record as run_record
from makemore_lab.runs.job import Job
from makemore_lab.runs.resume import check_resume, finished_run, resume_command
from makemore_lab.runs.summary import start_summary
from makemore_lab.stacked.engine import StackedEngine
from makemore_lab.training.engine import Engine
from makemore_lab.training.interrupts import HeldSignals
from makemore_lab.training.solo import SoloEngine

log = logging.getLogger(__name__)


def train(
    cfg: DictConfig, extra_callbacks: Sequence[Callback] = (), checked: bool = False
) -> dict[str, Any]:
    """One run: train the configured network, evaluate it and write the run's outputs; its
    metrics. A divergence is recorded, then raised (`extra_callbacks` join the configured
    ones: benchmarks and tests observe a run with them; `checked`: see `prepare_job`)."""
    job = prepare_job(cfg, checked)
    if job.finished is not None:
        return job.finished
    (metrics,) = train_jobs([job], extra_callbacks)
    run_claim.release(job.run_dir)  # on an error, the caller records it first
    return metrics


def prepare_job(cfg: DictConfig, checked: bool = False) -> Job:
    """Check the job and claim its directory, writing nothing until every check has passed;
    the job resolved. `checked`: `check_config` has passed already (the command line's)."""
    if not checked:
        check_config(cfg)
    check_device(cfg)
    finished = finished_run(cfg)  # before anything is written there
    if finished is not None:
        return Job(cfg, finished=finished)
    run_dir, resume = Path(cfg.run_dir), bool(cfg.get("resume"))
    run_claim.check(run_dir, resume)  # another run's directory: refused, before any write
    path, ckpt = check_resume(cfg)  # another run's settings: refused, still before any write
    run_claim.claim(run_dir, resume)
    hydra_record.write(cfg, run_dir)
    return Job(cfg, resume_from=path, ckpt=ckpt)


def train_jobs(
    jobs: list[Job], extra_callbacks: Sequence[Callback] = (), live_display: bool = True
) -> list[dict[str, Any]]:
    """Train prepared jobs (one: a solo run; several: a stacked group); each job's metrics."""
    started = time.perf_counter()
    for job in jobs:
        start_run_dir(job.cfg)
    threads = resolve_threads(jobs[0].cfg.get("threads"))
    if threads:
        torch.set_num_threads(threads)
    if len(jobs) == 1:
        engine: Engine = SoloEngine.build(jobs[0], extra_callbacks)
    else:
        engine = StackedEngine.build(jobs, extra_callbacks, live_display)
    with HeldSignals() as held:  # a signal once training has ended waits for the records
        fit_seconds = fit(engine, held)
        wall = time.perf_counter() - started
        evaluation = evaluate_jobs(engine)
        metrics = [
            finish_or_fail(engine, job, fit_seconds, wall, evaluation) for job in range(len(jobs))
        ]
    if held.signum is not None:
        raise StoppedAfterTraining(held.signum, resume_command(jobs[0].cfg))
    if len(jobs) == 1 and engine.diverged:  # a solo run stops with its error (exit status 2)
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
    steps, jobs = trainer.global_step, engine.jobs
    for index, job in enumerate(jobs):
        if index in engine.diverged:
            record_diverged(engine, index)
        else:
            run_record.write_interrupted(job.run_dir, steps, job.last, signal)
    where = str(engine.on_interrupt.path) if len(jobs) == 1 else "each job's checkpoints/last.ckpt"
    raise RunInterrupted(signal, steps, where, resume_command(jobs[0].cfg))


def start_run_dir(cfg: DictConfig) -> None:
    """Create the run directory, say what runs, save the resolved config."""
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    log.info("makemore-lab run\n%s", start_summary(cfg))
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)


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
