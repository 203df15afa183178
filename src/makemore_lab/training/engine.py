"""An engine trains a list of jobs for the driver (`train.train_jobs`).

A solo run and a stacked group differ only in their engine, and below it only in how a step's
losses and updates are computed: both modules run the one chunk loop (`training/chunk_loop.py`)
over the one chunk stream (`data/chunks.py`, a generator per job) and keep each job's
`JobState`. `SoloEngine` (training/solo.py) trains one job with `MakemoreModule`: any optimizer
and schedule, compiled or not, the reference every stacked result is compared with.
`StackedEngine` (stacked/engine.py) trains two or more jobs as one `StackedMLP`. Both build the
data, the module and Lightning's Trainer from the resolved jobs (`runs/job.py`), and answer the
driver's questions about each job once it has trained: its network, its loggers, its loss
before training, and where it diverged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger
from lightning.pytorch.plugins.environments import SLURMEnvironment
from omegaconf import DictConfig
from torch import nn

from makemore_lab.config.checks import step_cadences
from makemore_lab.data.datamodule import NamesDataModule
from makemore_lab.errors import UserError
from makemore_lab.runs.job import Job
from makemore_lab.training.chunk_loop import ChunkModule
from makemore_lab.training.interrupts import SaveOnInterrupt


@dataclass
class Engine:
    """The built pieces of a training: one Trainer fits one module on one datamodule."""

    jobs: list[Job]  # in order
    datamodule: NamesDataModule
    module: ChunkModule
    trainer: L.Trainer
    ckpt_path: Path | None  # the checkpoint the jobs continue from, if any
    on_interrupt: SaveOnInterrupt | None  # None when checkpoints are off

    @property
    def cfgs(self) -> list[DictConfig]:
        return [job.cfg for job in self.jobs]

    @property
    def diverged(self) -> dict[int, dict[str, Any]]:
        """job -> where its loss stopped being finite (`training.divergence.divergence`)."""
        return self.module.diverged

    def network(self, job: int) -> nn.Module:
        """Job `job`'s trained network, as a solo `MLP`."""
        raise NotImplementedError

    def loggers(self, job: int) -> Sequence[Logger]:
        """Job `job`'s own loggers."""
        return self.module.job_loggers(job)

    def step0_loss(self, job: int) -> float | None:
        """Job `job`'s loss on its first minibatch, before any update (None if not trained)."""
        return self.module.job_states[job].step0_loss


def instantiate_all(group: DictConfig | None) -> list[Any]:
    """Loggers and callbacks are dicts of named configs, so several can be selected at once."""
    return [instantiate(c) for c in (group or {}).values() if c is not None and "_target_" in c]


def batch_cadences(cfg: DictConfig) -> dict[str, Any]:
    """Lightning's batch-counted `val_check_interval` from our step-counted one.

    A Lightning batch is `data.chunk_size` optimizer steps (`check_cadences` made sure the
    step cadences are multiples of it).
    """
    interval = step_cadences(cfg)["trainer.val_check_interval"]
    return (
        {"val_check_interval": interval // cfg.data.chunk_size} if isinstance(interval, int) else {}
    )


def check_optimizer(cfg: DictConfig, net: nn.Module) -> None:
    """Build the job's optimizer and schedule once on `net`, so that a keyword or value they
    refuse is said now, naming its config group, not as a traceback from inside training."""
    optimizer = _built("optim.optimizer", cfg.optim.optimizer, params=net.parameters())
    if cfg.optim.get("scheduler") is not None:
        _built("optim.scheduler", cfg.optim.scheduler, optimizer=optimizer)


def _built(group: str, node: DictConfig, **arguments: Any) -> Any:
    try:
        return instantiate(node)(**arguments)
    except (TypeError, ValueError) as err:
        raise UserError(
            f"{group} ({node.get('_target_')}) cannot be built from its config: {err}. Check "
            f"the keys and values under {group} (`python train.py --cfg job` prints them; "
            f"conf/optim/ holds the presets)."
        ) from None


def build_trainer(cfg: DictConfig, **settings: Any) -> L.Trainer:
    """Lightning's Trainer as `cfg.trainer` configures it, with the engine's own `settings`
    (callbacks, loggers, plugins, where it writes). With `callbacks.model_checkpoint=null` no
    checkpoint is written (Lightning would add its own, `epoch=0-step=N.ckpt`)."""
    checkpoints = (cfg.get("callbacks") or {}).get("model_checkpoint") is not None
    if SLURMEnvironment.detect():  # one way to be requeued: training/interrupts.py's
        # Lightning's own (SIGUSR1: save mid-chunk, requeue) would resume otherwise
        settings["plugins"] = [*settings.get("plugins", []), SLURMEnvironment(auto_requeue=False)]
    return instantiate(
        cfg.trainer, **batch_cadences(cfg), enable_checkpointing=checkpoints, **settings
    )
