"""`train_group(cfgs) -> [metrics]`: a stacked group's jobs trained as one, each written as a run.

The jobs of a group share the data, network shapes, optimizer kind and schedule of steps; each
has its own seed, initialization, learning rate and decay. Every job gets the run directory a
solo run writes (config.yaml, metrics.json, samples.txt, dynamics.csv / .md / figures, its own
logger runs, checkpoints/last.ckpt in the solo format), and its numbers are the ones its solo
run gives (tests/test_stacked.py). The group's own checkpoints, for resuming it, live in its
`group_dir`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf

from makemore_lab import run_record
from makemore_lab.checkpointing import SaveOnInterrupt, last_checkpoint
from makemore_lab.dynamics import TrainingDynamics
from makemore_lab.errors import RunInterrupted
from makemore_lab.lightning_module import diverged
from makemore_lab.model import MLP
from makemore_lab.optim import LectureSGD
from makemore_lab.resume import checkpoint_to_resume, resume_command
from makemore_lab.stacked import StackedMLP
from makemore_lab.stacked_checkpoint import GroupJobs, JobCheckpoint, JobCheckpointIO
from makemore_lab.stacked_data import StackedNamesDataModule
from makemore_lab.stacked_module import StackedModule
from makemore_lab.stacked_steps import JobSGD
from makemore_lab.train import (
    batch_cadences,
    diagnosis_of,
    evaluate,
    finish,
    instantiate_all,
    record,
    resolve_threads,
    start_run_dir,
)

log = logging.getLogger(__name__)


@dataclass
class Group:
    """What `build_group` makes of the jobs' configs."""

    cfgs: list[DictConfig]
    nets: list[MLP]  # each job's solo network (its final weights are loaded into it)
    datamodule: StackedNamesDataModule
    module: StackedModule
    trainer: L.Trainer
    on_interrupt: SaveOnInterrupt


def train_group(cfgs: list[DictConfig], live_display: bool = True) -> list[dict[str, Any]]:
    """Train `cfgs` (one stacking group, configs resolved) together; each job's metrics.

    `live_display=False` (groups side by side on one terminal): no progress bar or model table,
    whose redraws would interleave with the other groups' output.
    """
    started = time.perf_counter()
    for cfg in cfgs:
        start_run_dir(cfg)
    threads = resolve_threads(cfgs[0].get("threads"))
    if threads:
        torch.set_num_threads(threads)
    group = build_group(cfgs, live_display)
    # Every job resumes from its own last.ckpt (the launcher grouped jobs at one step).
    resume = checkpoint_to_resume(cfgs[0])
    fit_seconds = fit_group(group, resume)
    wall = time.perf_counter() - started
    first_step = group.module.resumed_from_step
    return [write_job(group, job, first_step, fit_seconds, wall) for job in range(len(cfgs))]


def build_group(cfgs: list[DictConfig], live_display: bool = True) -> Group:
    """Each job's network from its own generator, stacked; the group's data, module, trainer."""
    generators = [torch.Generator().manual_seed(cfg.seed) for cfg in cfgs]
    data = OmegaConf.to_container(cfgs[0].data, resolve=True)
    data.pop("_target_")
    datamodule = StackedNamesDataModule(generators, **data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    nets = [
        instantiate(
            cfg.model, vocab_size=datamodule.vocab.size, init=cfg.init, generator=g, _convert_="all"
        )
        for cfg, g in zip(cfgs, generators, strict=True)
    ]
    for cfg, net in zip(cfgs, nets, strict=True):  # refuses what the solo optimizer refuses
        instantiate(cfg.optim.optimizer)(params=net.parameters())
    loggers = [open_job_loggers(cfg) for cfg in cfgs]
    lecture = instantiate(cfgs[0].optim.optimizer).func is LectureSGD
    hparams = [job_hparams(cfg, datamodule.vocab.chars) for cfg in cfgs]
    module = StackedModule(
        StackedMLP.from_networks(nets), [JobSGD.of(c) for c in cfgs], lecture, loggers, hparams
    )
    lasts = [last_checkpoint(cfg) for cfg in cfgs]
    on_interrupt = SaveOnInterrupt(*lasts)
    callbacks = group_callbacks(cfgs, loggers)
    display = {}
    if not live_display:
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
        display = {"enable_progress_bar": False, "enable_model_summary": False}
    jobs = GroupJobs(list(cfgs), nets, datamodule.vocab.chars)
    trainer = instantiate(
        cfgs[0].trainer,
        **batch_cadences(cfgs[0]),
        **display,
        logger=False,
        callbacks=[*callbacks, on_interrupt],
        plugins=[JobCheckpointIO(jobs)],
        default_root_dir=str(Path(cfgs[0].run_dir).parent),
    )
    return Group(cfgs, nets, datamodule, module, trainer, on_interrupt)


def group_callbacks(cfgs: list[DictConfig], loggers: list) -> list[L.Callback]:
    """The configured callbacks, for the group: each job's own checkpoints, the dynamics
    callback writing each job's statistics into its own run directory."""
    callbacks: list[L.Callback] = []
    configured = cfgs[0].get("callbacks") or {}
    if configured.get("progress_bar") is not None:
        callbacks.append(instantiate(configured.progress_bar))
    if configured.get("model_checkpoint") is not None:
        for job, cfg in enumerate(cfgs):
            settings = OmegaConf.to_container(cfg.callbacks.model_checkpoint, resolve=True)
            settings.pop("_target_")
            callbacks.append(JobCheckpoint(job, **settings))
    dynamics = configured.get("dynamics")
    if dynamics is not None:
        settings = OmegaConf.to_container(dynamics, resolve=True)
        settings.pop("_target_")
        settings["dirpath"] = [cfg.run_dir for cfg in cfgs]
        if settings.get("context") is not None:  # each job's own gain, lr, ...
            settings["context"] = [
                OmegaConf.to_container(cfg.callbacks.dynamics.context, resolve=True) for cfg in cfgs
            ]
        callbacks.append(TrainingDynamics(**settings, job_loggers=loggers))
    return callbacks


def job_hparams(cfg: DictConfig, vocab: str) -> dict[str, Any]:
    """What a solo run's module saves as its hyperparameters (`MakemoreModule`)."""
    return {"config": OmegaConf.to_container(cfg, resolve=True), "vocab": vocab, "compile": False}


def open_job_loggers(cfg: DictConfig) -> list[Logger]:
    """The job's configured loggers; each W&B logger gets a run of its own at once (Lightning
    would otherwise hand the second job the first one's run, `wandb.run`)."""
    loggers = instantiate_all(cfg.get("logger"))
    for logger in loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is None:
            import wandb

            init = {**logger._wandb_init, "reinit": "create_new"}
            if logger._offline:
                init["mode"] = "offline"
            logger._experiment = wandb.init(**init)
            logger._experiment.define_metric("trainer/global_step")
            logger._experiment.define_metric("*", step_metric="trainer/global_step", step_sync=True)
    return loggers


def fit_group(group: Group, resume: Path | None) -> float:
    """Train the group; on SIGTERM / Ctrl-C record every job `interrupted` and raise."""
    started = time.perf_counter()
    group.trainer.fit(
        group.module, datamodule=group.datamodule, ckpt_path=resume, weights_only=True
    )
    seconds = time.perf_counter() - started
    signal = group.on_interrupt.signal
    if signal is not None:
        steps = group.trainer.global_step
        for cfg in group.cfgs:
            run_record.write_interrupted(cfg.run_dir, steps, last_checkpoint(cfg), signal)
        raise RunInterrupted(
            signal, steps, str(group.on_interrupt.path), resume_command(group.cfgs[0])
        )
    return seconds


def write_job(
    group: Group, job: int, first_step: int | None, fit_seconds: float, wall_seconds: float
) -> dict[str, Any]:
    """Job `job`'s outputs, as its solo run writes them (its checkpoints are written already,
    by its own `JobCheckpoint`); its metrics."""
    cfg, module = group.cfgs[job], group.module
    if job in module.diverged:
        return write_diverged(group, job)
    net = group.nets[job]
    net.load_state_dict(module.net.network_state(job))
    steps = group.trainer.global_step
    losses = evaluate(net, group.datamodule, module.job_loggers[job], steps)
    step0 = module.step0_losses[job] if module.step0_losses else None
    metrics = record(
        Path(cfg.run_dir),
        step0,
        losses,
        steps,
        first_step,
        fit_seconds,
        wall_seconds,
        vocab_size=group.datamodule.vocab.size,
    )
    metrics["diagnosis"] = diagnosis_of(group.trainer, job)
    metrics["stacked_group"] = {"jobs": len(group.cfgs), "index": job}
    finish(cfg, net, group.datamodule.vocab, metrics)
    return metrics


def write_diverged(group: Group, job: int) -> dict[str, Any]:
    """A job that diverged: recorded as its solo run records it (it stopped there)."""
    info, module, cfg = group.module.diverged[job], group.module, group.cfgs[job]
    step0 = module.step0_losses[job] if module.step0_losses else None
    config = OmegaConf.to_container(cfg, resolve=True)
    err = diverged(config, info["step"], info["loss"], info["last_finite"])
    for logger in module.job_loggers[job]:
        logger.finalize("failed")
    log.warning("job %s: %s", cfg.run_dir, err)
    return run_record.write_diverged(cfg.run_dir, err, step0, info["steps"])
