"""The solo LightningModule: cross-entropy training of one MLP, any optimizer and schedule.

The chunk loop, the job's record and its checkpoint keys are `ChunkModule`'s
(`training/chunk_loop.py`), shared with the stacked engine's module; this module says how one
job's loss is computed (compiled when asked) and its optimizer stepped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import Logger
from torch import nn

from makemore_lab.job_state import job_hparams
from makemore_lab.network.optim import StepUpdate, direct_update, plain_update
from makemore_lab.training.chunk_loop import ChunkModule


class MakemoreModule(ChunkModule):
    """Wraps the network; `config` and `vocab` go into the checkpoint so it can be rebuilt.

    Optimization is manual: `training_step` (the chunk loop) runs one optimizer step per
    minibatch of a chunk, and steps the schedule after each.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        generator: torch.Generator,
        scheduler: Callable[..., Any] | None = None,
        config: dict[str, Any] | None = None,
        vocab: str = "",
        compile: bool = False,
        cuda_graphs: bool = True,
    ) -> None:
        super().__init__([generator], cuda_graphs)
        self.save_hyperparameters(job_hparams(config, vocab, compile))
        self.net = net
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        # compile=true: the forward and loss of a step go through torch.compile (backward comes
        # with it, by AOTAutograd). Watched steps run uncompiled and through Lightning's
        # optimizer wrapper, so that hooks on the layers and Lightning's
        # `on_before_optimizer_step` (the dynamics callback's) see them, with no recompilation.
        self.compiled_loss = torch.compile(self.minibatch_loss) if compile else None
        self._scheduler: Any = None
        self._next_update: Callable[[], StepUpdate] | None = None

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.net(idx)

    def minibatch_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.net(x), y)

    def job_losses(self, xs: torch.Tensor, ys: torch.Tensor, i: int, watched: bool) -> Any:
        loss = self.minibatch_loss if self.compiled_loss is None or watched else self.compiled_loss
        return loss(xs[0, i], ys[0, i])

    def chunk_update(self) -> Callable[[], None]:
        optimizer = self.optimizers().optimizer
        self._scheduler = self.lr_schedulers()  # stepped after every update
        self._next_update = plain_update(optimizer)  # each captured step's (CUDA graphs)
        return direct_update(optimizer) or optimizer.step

    def next_update(self) -> StepUpdate:
        assert self._next_update is not None, "graph_refusal refuses other optimizers"
        return self._next_update()

    def graph_refusal(self) -> str | None:
        if self.compiled_loss is not None:
            return "compile=true (torch.compile's step is not captured here)"
        optimizer = self.optimizers().optimizer
        if plain_update(optimizer) is None:
            name = type(optimizer).__name__
            return f"optim.optimizer is {name} with these settings (plain SGD only)"
        return None

    def rates(self, step: int) -> list[float]:
        return [self.optimizers().param_groups[0]["lr"]]

    def after_update(self) -> None:
        if self._scheduler is not None:
            self._scheduler.step()

    def job_loggers(self, job: int) -> Sequence[Logger]:
        return self.loggers

    def validation_sums(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.net(x), y, reduction="sum").view(1)

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        # The chunk loop steps the scheduler after every optimizer step (manual optimization),
        # as the lecture decays the learning rate at an optimizer step, not an epoch.
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
