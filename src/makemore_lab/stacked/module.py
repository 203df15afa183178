"""The LightningModule of a stacked group: N jobs' optimizer steps at once, each job's own record.

Lightning drives the group as it drives a solo run: the chunk loop, each job's record (step-0
loss, loss window, divergence, sampler state) and its checkpoint keys are `ChunkModule`'s
(`training/chunk_loop.py`). This module says how N jobs' losses come out of the `StackedMLP`
and how `StackedSGD` updates them; each job's `train/loss`, `train/lr` and `val/loss` go to
that job's own loggers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import Logger

from makemore_lab.network.optim import StepUpdate
from makemore_lab.stacked.network import StackedMLP, job_losses
from makemore_lab.stacked.sgd import JobSGD, StackedSGD
from makemore_lab.training.chunk_loop import ChunkModule


class StackedModule(ChunkModule):
    """N same-shaped jobs trained as one (see the module doc); `loggers_of[j]` are job j's."""

    def __init__(
        self,
        net: StackedMLP,
        optimizers: Sequence[JobSGD],
        lecture: bool,
        generators: Sequence[torch.Generator],
        job_loggers: Sequence[Sequence[Logger]],
        job_hparams: Sequence[dict[str, Any]] = (),
        cuda_graphs: bool = True,
    ) -> None:
        super().__init__(generators, cuda_graphs)
        self.net, self.job_optimizers, self.lecture = net, list(optimizers), lecture
        self.loggers_of = [list(loggers) for loggers in job_loggers]
        self.job_hparams = list(job_hparams)

    def configure_optimizers(self) -> StackedSGD:
        # kept: the chunk loop calls its update directly (and a benchmark, with no Trainer)
        self.sgd = StackedSGD(self.net, self.job_optimizers, lecture=self.lecture)
        return self.sgd

    def on_fit_start(self) -> None:
        """Each job's hyperparameters to its own loggers, as Lightning logs a solo run's."""
        for loggers, hparams in zip(self.loggers_of, self.job_hparams, strict=False):
            for logger in loggers:
                logger.log_hyperparams(hparams)
                logger.save()

    def job_losses(self, xs: torch.Tensor, ys: torch.Tensor, i: int, watched: bool) -> Any:
        return job_losses(self.net, xs[:, i], ys[:, i])

    def chunk_update(self) -> Callable[[], None]:
        return self.sgd.update

    def next_update(self) -> StepUpdate:
        return self.sgd.next_update()

    def graph_refusal(self) -> str | None:
        return self.sgd.capture_refusal()

    def rates(self, step: int) -> list[float]:
        return self.sgd.rates(step)

    def stop_jobs(self, jobs: list[int]) -> None:
        self.sgd.freeze(jobs)

    def job_loggers(self, job: int) -> Sequence[Logger]:
        return self.loggers_of[job]

    def validation_sums(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = self.net(x.expand(self.n_jobs, *x.shape))  # the same examples for each job
        losses = F.cross_entropy(logits.flatten(0, 1), y.repeat(self.n_jobs), reduction="none")
        return losses.view(self.n_jobs, -1).sum(1)
