"""The stacked engine: two or more jobs trained as one network with a leading job dimension.

The launcher groups only jobs whose every setting this engine reproduces (`launcher.grouping`). Each
job keeps its own generator, initialization, optimizer settings and schedule (`JobSGD`),
loggers (a W&B run of its own), checkpoints (its own `JobCheckpoint`, written in the solo
format by `JobCheckpointIO`) and dynamics statistics; each job's numbers are its solo run's
(tests/test_stacked*.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, ProgressBar
from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf
from torch import nn

from makemore_lab.dynamics.callback import TrainingDynamics
from makemore_lab.job_state import job_hparams
from makemore_lab.network.model import MLP
from makemore_lab.network.optim import LectureSGD
from makemore_lab.runs.checkpoints import check_resumable
from makemore_lab.runs.job import Job
from makemore_lab.stacked.checkpoint import GroupJobs, JobCheckpoint, JobCheckpointIO
from makemore_lab.stacked.module import StackedModule
from makemore_lab.stacked.network import StackedMLP
from makemore_lab.stacked.sgd import JobSGD
from makemore_lab.training.engine import Engine, build_trainer, check_optimizer, instantiate_all
from makemore_lab.training.interrupts import SaveOnInterrupt


@dataclass
class StackedEngine(Engine):
    """Several jobs: each job's network is cut out of the stacked one, its loggers its own."""

    nets: list[MLP] = field(default_factory=list)  # each job's solo network

    def network(self, job: int) -> nn.Module:
        net = self.nets[job]
        net.load_state_dict(self.module.net.network_state(job))
        return net

    @classmethod
    def build(
        cls, jobs: list[Job], extra_callbacks: Sequence[Callback] = (), live_display: bool = True
    ) -> StackedEngine:
        """Each job's network from its own generator, stacked; the group's data, module and
        Trainer. Every job continues from its own checkpoint (all at one step), or none does.

        `live_display=False` (groups side by side on one terminal): no progress bar or model
        table, whose redraws would interleave with the other groups' output.
        """
        cfgs = [job.cfg for job in jobs]
        generators = [torch.Generator().manual_seed(cfg.seed) for cfg in cfgs]
        datamodule = instantiate(cfgs[0].data, generators=generators)
        datamodule.prepare_data()
        datamodule.setup("fit")
        vocab = datamodule.vocab
        nets = [
            instantiate(
                cfg.model, vocab_size=vocab.size, init=cfg.init, generator=g, _convert_="all"
            )
            for cfg, g in zip(cfgs, generators, strict=True)
        ]
        check_jobs(jobs, nets, vocab.chars)
        loggers = [open_job_loggers(cfg) for cfg in cfgs]
        net = StackedMLP.from_networks(nets)
        module = StackedModule(
            net,
            [JobSGD.of(c) for c in cfgs],
            lecture=instantiate(cfgs[0].optim.optimizer).func is LectureSGD,
            generators=generators,
            job_loggers=loggers,
            job_hparams=[job_hparams(job.config, vocab.chars) for job in jobs],
            cuda_graphs=cfgs[0].cuda_graphs,
        )
        lasts = [job.last for job in jobs]  # None: checkpoints are off
        on_interrupt = SaveOnInterrupt(*lasts) if lasts[0] is not None else None
        interrupt = [on_interrupt] if on_interrupt is not None else []
        callbacks = [*group_callbacks(cfgs, loggers), *interrupt, *extra_callbacks]
        display = {}
        if not live_display:
            callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
            display = {"enable_progress_bar": False, "enable_model_summary": False}
        trainer = build_trainer(
            cfgs[0],
            **display,
            logger=False,
            callbacks=callbacks,
            plugins=[JobCheckpointIO(GroupJobs(list(jobs), nets, vocab.chars, net.layout))],
            default_root_dir=cfgs[0].run_dir,
        )
        # Every job continues from its own last.ckpt; the checkpoint plugin reads them all.
        ckpt_path = jobs[0].last if jobs[0].ckpt is not None else None
        return cls(list(jobs), datamodule, module, trainer, ckpt_path, on_interrupt, nets)


def check_jobs(jobs: list[Job], nets: list[MLP], vocab: str) -> None:
    """Refuse, per job, what its solo run refuses: an optimizer setting torch rejects, a
    checkpoint of another network or vocabulary."""
    for job, net in zip(jobs, nets, strict=True):
        check_optimizer(job.cfg, net)
        if job.ckpt is not None:
            own = {f"net.{k}": v for k, v in net.state_dict().items()}
            check_resumable(job.ckpt, job.resume_from, job.config["model"], own, vocab)


def group_callbacks(cfgs: list[DictConfig], loggers: list[list[Logger]]) -> list[L.Callback]:
    """The configured callbacks, for the group (`launcher.grouping.CALLBACKS` lists them):
    each job's own checkpoints, the dynamics callback writing each job's statistics to its
    directory."""
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


def open_job_loggers(cfg: DictConfig) -> list[Logger]:
    """The job's configured loggers; each W&B logger gets a run of its own at once (Lightning
    would hand the second job the first one's run, the process's `wandb.run`)."""
    loggers = instantiate_all(cfg.get("logger"))
    for logger in loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is None:
            import wandb

            init = {**logger._wandb_init, "reinit": "create_new"}
            if logger._offline:
                init["mode"] = "offline"
            run = wandb.init(**init)
            # the x-axis Lightning's WandbLogger defines for its own runs
            run.define_metric("trainer/global_step")
            run.define_metric("*", step_metric="trainer/global_step", step_sync=True)
            logger._experiment = run
    return loggers
