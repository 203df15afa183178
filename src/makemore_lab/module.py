"""The LightningModule: cross-entropy training of the MLP, with full-split evaluation."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

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
    """Wraps the network; `config` and `vocab` go into the checkpoint so it can be rebuilt."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        config: dict[str, Any] | None = None,
        vocab: str = "",
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.net = net
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        # The first minibatch's loss, before any update, as the lecture prints it.
        self.step0_loss: torch.Tensor | None = None
        self._eval_sum = torch.zeros(())
        self._eval_count = 0

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.net(idx)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        if self.step0_loss is None and self.global_step == 0:
            self.step0_loss = loss.detach()
        self.log("train/loss", loss, prog_bar=True)
        return loss

    # Validation and test: sum the loss over the whole split, then divide once, so the
    # number is the split's mean loss whatever the chunking.
    def _eval_start(self) -> None:
        self._eval_sum, self._eval_count = torch.zeros((), device=self.device), 0

    def _eval_step(self, batch: Batch) -> None:
        x, y = batch
        self._eval_sum += F.cross_entropy(self.net(x), y, reduction="sum")
        self._eval_count += y.numel()

    def _eval_end(self, name: str) -> None:
        self.log(f"{name}/loss", self._eval_sum / max(self._eval_count, 1), prog_bar=True)

    def on_validation_epoch_start(self) -> None:
        self._eval_start()

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch)

    def on_validation_epoch_end(self) -> None:
        self._eval_end("val")

    def on_test_epoch_start(self) -> None:
        self._eval_start()

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch)

    def on_test_epoch_end(self) -> None:
        self._eval_end("test")

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        # interval="step": the lecture decays the learning rate at an optimizer step, not an epoch.
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
