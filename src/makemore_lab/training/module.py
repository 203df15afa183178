"""The LightningModule: cross-entropy training of the MLP, with full-split evaluation."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from makemore_lab.network.optim import direct_update
from makemore_lab.training.step import divergence, lean_steps

Batch = tuple[torch.Tensor, torch.Tensor]


@torch.no_grad()
def split_loss(net: nn.Module, batches: Iterable[Batch]) -> float:
    """Mean cross-entropy over every example of `batches`, in eval mode (running BN stats)."""
    was_training = net.training
    net.eval()
    total, count = 0.0, 0
    for x, y in batches:
        total += F.cross_entropy(net(x), y, reduction="sum").item()
        count += y.numel()
    net.train(was_training)
    return total / count


class MakemoreModule(L.LightningModule):
    """Wraps the network; `config` and `vocab` go into the checkpoint so it can be rebuilt.

    Optimization is manual: a batch is a chunk of minibatches (see `data.TrainingChunks`) and
    `training_step` runs one optimizer step per minibatch, so Lightning's per-batch machinery
    is paid once per chunk while `trainer.global_step` still counts optimizer steps.
    `max_steps`, the learning-rate schedule, logging and the dynamics callback therefore keep
    their meaning in optimizer steps. Most steps take the lean path (`lean_steps`): torch's
    backward and optimizer directly, Lightning's step count advanced by hand; the steps a
    callback watches go through Lightning's optimizer wrapper, whose hooks it needs.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        config: dict[str, Any] | None = None,
        vocab: str = "",
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.automatic_optimization = False
        self.net = net
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        # compile=true: the forward and loss of a step go through torch.compile (backward comes
        # with it, by AOTAutograd). Steps in `watched_steps` run uncompiled and through
        # Lightning's optimizer wrapper, so that hooks on the layers and Lightning's
        # `on_before_optimizer_step` (the dynamics callback's) see them, with no recompilation.
        self.compiled_loss = torch.compile(self.minibatch_loss) if compile else None
        self.watched_steps: frozenset[int] = frozenset()
        self.before_watched: Callable[[int], None] | None = None
        # The first minibatch's loss, before any update, as the lecture prints it.
        self.step0_loss: torch.Tensor | None = None
        self.diverged: dict[int, dict[str, Any]] = {}  # {0: where} once the loss is not finite
        self.resumed_from_step: int | None = None  # set when Lightning restores a checkpoint
        self._unlogged_losses: list[float] = []  # the losses since the last logged point
        self._last_loss: float | None = None  # the last step's loss, for divergence reports
        self._eval_sum = torch.zeros(())
        self._eval_count = 0

    @property
    def step0_loss_value(self) -> float | None:
        """The loss before any update, as a number (None before step 0 ran)."""
        return None if self.step0_loss is None else self.step0_loss.item()

    def watch(self, steps: set[int], before: Callable[[int], None] | None = None) -> None:
        """Run these optimizer steps uncompiled, through Lightning's optimizer wrapper (its hooks
        fire), and call `before(step)` ahead of each one's forward: a callback watches them."""
        self.watched_steps, self.before_watched = frozenset(steps), before

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.net(idx)

    def minibatch_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.net(x), y)

    def training_step(self, batch: Batch, batch_idx: int) -> None:
        xs, ys = batch  # (chunk, batch, block), (chunk, batch)
        optimizer = self.optimizers()
        scheduler = self.lr_schedulers()
        max_steps = self.trainer.max_steps
        first = self.global_step  # each optimizer.step() below adds one to it
        n = xs.shape[0] if max_steps < 0 else min(xs.shape[0], max_steps - first)
        log_every = self.trainer.log_every_n_steps
        lean = lean_steps(self.trainer)
        params = [p for p in self.parameters() if p.requires_grad]
        update = direct_update(optimizer.optimizer) or optimizer.optimizer.step
        losses: list[torch.Tensor] = []
        log_points: list[tuple[int, float]] = []  # (step, the lr that step used)
        for step, x, y in zip(range(first, first + n), xs[:n], ys[:n], strict=True):
            watched = step in self.watched_steps
            if watched and self.before_watched is not None:
                self.before_watched(step)
            if self.compiled_loss is None or watched:
                loss = self.minibatch_loss(x, y)
            else:
                loss = self.compiled_loss(x, y)
            if step == 0 and self.step0_loss is None:
                self.step0_loss = loss.detach()
            # The lecture's order: clear the gradients, backward, update, then the schedule.
            lr = optimizer.param_groups[0]["lr"]
            if lean is not None and not watched:
                for p in params:
                    p.grad = None
                loss.backward()
                update()
                lean.increment_by(1)  # what Lightning's wrapper counts: one optimizer step
            else:
                optimizer.zero_grad(set_to_none=True)
                self.manual_backward(loss)
                optimizer.step()
            if scheduler is not None:
                scheduler.step()
            losses.append(loss.detach())  # no arithmetic, no device sync per step
            if log_every > 0 and (step + 1) % log_every == 0:
                log_points.append((step, lr))
        # One device sync per chunk: the chunk's losses, to check and to log.
        values = torch.stack(losses).tolist()
        self._check_finite(first, values)
        if log_every > 0:
            self._log_losses(first, values, log_points)
        self.log("train/loss", values[-1], prog_bar=True, logger=False)

    def _check_finite(self, first: int, values: list[float]) -> None:
        """Stop a diverging run at the end of the chunk, keeping where it diverged (the
        driver records it and raises the error)."""
        found = divergence(first, values, self._last_loss)
        if found is None:
            self._last_loss = values[-1]
            return
        self.diverged[0] = found
        self.trainer.should_stop = True

    def _log_losses(self, first: int, values: list[float], points: list[tuple[int, float]]) -> None:
        """Log the mean loss of each window ending at a logged step, at that optimizer step.

        We log to `self.loggers` directly rather than through `self.log`, whose x-axis is the
        number of Lightning batches, which a chunk of minibatches would make wrong.
        """
        start = 0
        for step, lr in points:
            end = step - first + 1
            window, self._unlogged_losses = self._unlogged_losses + values[start:end], []
            for logger in self.loggers:
                logger.log_metrics({"train/loss": sum(window) / len(window), "train/lr": lr}, step)
            start = end
        self._unlogged_losses += values[start:]

    # Exact resume: the loss-logging state between chunks travels in the checkpoint (the
    # model, optimizer, schedule and step counters are Lightning's to save and restore).
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["makemore"] = {
            "window": list(self._unlogged_losses),
            "last_loss": self._last_loss,
            "step0_loss": self.step0_loss_value,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.resumed_from_step = checkpoint["global_step"]
        state = checkpoint.get("makemore") or {}
        self._unlogged_losses = list(state.get("window", []))
        self._last_loss = state.get("last_loss")
        if state.get("step0_loss") is not None:
            self.step0_loss = torch.tensor(state["step0_loss"])

    # Validation: sum the loss over the whole split, then divide once, so the number is the
    # split's mean loss whatever the batching.
    def on_validation_epoch_start(self) -> None:
        self._eval_sum, self._eval_count = torch.zeros((), device=self.device), 0

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        x, y = batch
        self._eval_sum += F.cross_entropy(self.net(x), y, reduction="sum")
        self._eval_count += y.numel()

    def on_validation_epoch_end(self) -> None:
        loss = self._eval_sum / max(self._eval_count, 1)
        self.log("val/loss", loss, prog_bar=True, logger=False)
        if not self.trainer.sanity_checking and not self.diverged:  # it had stopped
            for logger in self.loggers:  # at the optimizer step, like train/loss
                logger.log_metrics({"val/loss": loss.item()}, step=self.global_step)

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        # `training_step` steps the scheduler after every optimizer step (manual optimization),
        # as the lecture decays the learning rate at an optimizer step, not an epoch.
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
