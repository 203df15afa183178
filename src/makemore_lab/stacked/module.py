"""The LightningModule of a stacked group: N jobs' optimizer steps at once, each job's own record.

Lightning drives the group as it drives a solo run (a batch is a chunk of optimizer steps,
`global_step` counts optimizer steps, checkpoints and signals work the same); this module
runs the chunk's steps on the `StackedMLP` and keeps, per job, what the solo module keeps:
the step-0 loss, the loss-logging window, and where it diverged. Each job's `train/loss`,
`train/lr` and `val/loss` go to that job's own loggers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import Logger

from makemore_lab.stacked.network import StackedMLP
from makemore_lab.stacked.steps import JobSGD, StackedSGD, job_losses
from makemore_lab.training.step import divergence, lean_steps

Batch = tuple[torch.Tensor, torch.Tensor]


class StackedModule(L.LightningModule):
    """N same-shaped jobs trained as one (see the module doc); `job_loggers[j]` are job j's."""

    def __init__(
        self,
        net: StackedMLP,
        optimizers: Sequence[JobSGD],
        lecture: bool,
        job_loggers: Sequence[Sequence[Logger]],
        job_hparams: Sequence[dict[str, Any]] = (),
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.net, self.job_optimizers, self.lecture = net, list(optimizers), lecture
        self.job_loggers = [list(loggers) for loggers in job_loggers]
        self.job_hparams = list(job_hparams)
        self.jobs = net.jobs
        self.step0_losses: list[float] | None = None
        self.unlogged: list[list[float]] = [[] for _ in range(self.jobs)]
        self.last_losses: list[float | None] = [None] * self.jobs
        self.diverged: dict[int, dict[str, Any]] = {}  # job -> where and how it diverged
        self.watched_steps: frozenset[int] = frozenset()
        self.before_watched: Callable[[int], None] | None = None
        self.resumed_from_step: int | None = None  # set when Lightning restores a checkpoint

    def watch(self, steps: set[int], before: Callable[[int], None] | None = None) -> None:
        """As `MakemoreModule.watch`: these steps go through Lightning's optimizer wrapper."""
        self.watched_steps, self.before_watched = frozenset(steps), before

    def configure_optimizers(self) -> StackedSGD:
        return StackedSGD(self.net, self.job_optimizers, lecture=self.lecture)

    def on_fit_start(self) -> None:
        """Each job's hyperparameters to its own loggers, as Lightning logs a solo run's."""
        for loggers, hparams in zip(self.job_loggers, self.job_hparams, strict=False):
            for logger in loggers:
                logger.log_hyperparams(hparams)
                logger.save()

    def training_step(self, batch: Batch, batch_idx: int) -> None:
        xs, ys = batch  # (N, chunk, B, block), (N, chunk, B)
        optimizer = self.optimizers()
        first, max_steps = self.global_step, self.trainer.max_steps
        n = xs.shape[1] if max_steps < 0 else min(xs.shape[1], max_steps - first)
        log_every = self.trainer.log_every_n_steps
        lean = lean_steps(self.trainer)  # as the solo module: torch directly, but watched steps
        params = list(self.net.parameters())
        losses, log_points = [], []
        for step in range(first, first + n):
            watched = step in self.watched_steps
            if watched and self.before_watched is not None:
                self.before_watched(step)
            loss = job_losses(self.net, xs[:, step - first], ys[:, step - first])
            if lean is not None and not watched:
                for p in params:
                    p.grad = None
                loss.sum().backward()  # a sum of per-job means: each job's own gradient
                optimizer.optimizer.update()
                lean.increment_by(1)
            else:
                optimizer.zero_grad(set_to_none=True)
                self.manual_backward(loss.sum())
                optimizer.step()
            losses.append(loss.detach())
            if log_every > 0 and (step + 1) % log_every == 0:
                log_points.append((step, optimizer.optimizer.rates(step)))
        values = torch.stack(losses, dim=1).tolist()  # one device sync per chunk
        if self.step0_losses is None and first == 0:
            self.step0_losses = [v[0] for v in values]
        self._check_finite(first, values, optimizer.optimizer)
        if log_every > 0:
            self._log_losses(first, values, log_points)
        alive = [v[-1] for j, v in enumerate(values) if j not in self.diverged]
        self.log("train/loss", sum(alive) / len(alive) if alive else math.nan, prog_bar=True)
        if len(self.diverged) == self.jobs:
            self.trainer.should_stop = True  # every job diverged: nothing left to train

    def _check_finite(self, first: int, values: list[list[float]], opt: StackedSGD) -> None:
        """Freeze the jobs whose loss stopped being finite in this chunk; keep their state."""
        for job, losses in enumerate(values):
            if job in self.diverged:
                continue
            found = divergence(first, losses, self.last_losses[job])
            if found is None:
                self.last_losses[job] = losses[-1]
                continue
            self.diverged[job] = found
            opt.freeze([job])

    def _log_losses(
        self, first: int, values: list[list[float]], points: list[tuple[int, list[float]]]
    ) -> None:
        """Each job's mean loss of every window ending at a logged step, as a solo run logs it."""
        for job, losses in enumerate(values):
            if job in self.diverged:
                continue
            start = 0
            for step, rates in points:
                end = step - first + 1
                window, self.unlogged[job] = self.unlogged[job] + losses[start:end], []
                metrics = {"train/loss": sum(window) / len(window), "train/lr": rates[job]}
                for logger in self.job_loggers[job]:
                    logger.log_metrics(metrics, step)
                start = end
            self.unlogged[job] += losses[start:]

    # Validation: every job on the whole split (the same examples for each), in eval mode.
    def on_validation_epoch_start(self) -> None:
        self._eval_sum = torch.zeros(self.jobs, device=self.device)
        self._eval_count = 0

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        x, y = batch
        logits = self.net(x.expand(self.jobs, *x.shape))
        losses = F.cross_entropy(logits.flatten(0, 1), y.repeat(self.jobs), reduction="none")
        self._eval_sum += losses.view(self.jobs, -1).sum(1)
        self._eval_count += y.numel()

    def on_validation_epoch_end(self) -> None:
        losses = (self._eval_sum / max(self._eval_count, 1)).tolist()
        if self.trainer.sanity_checking:
            return
        for job, loss in enumerate(losses):
            if job not in self.diverged:
                for logger in self.job_loggers[job]:
                    logger.log_metrics({"val/loss": loss}, step=self.global_step)

    # Exact resume: each job's logging state and fate travel in the group's checkpoint.
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["makemore_stacked"] = {
            "unlogged": self.unlogged,
            "last_losses": self.last_losses,
            "step0_losses": self.step0_losses,
            "diverged": self.diverged,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.resumed_from_step = checkpoint["global_step"]  # no second read of the file
        state = checkpoint["makemore_stacked"]
        self.unlogged = [list(u) for u in state["unlogged"]]
        self.last_losses = list(state["last_losses"])
        self.step0_losses = state["step0_losses"]
        self.diverged = dict(state["diverged"])
