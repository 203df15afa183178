"""A progress bar that counts optimizer steps, not Lightning batches.

A Lightning batch here is a chunk of `data.chunk_size` optimizer steps, so Lightning's bars,
which count batches against a total of `max_steps`, would show 1 / 200000 after 500 steps and
a rate in chunks per second. This one shows steps done out of `max_steps`, steps/s and the loss.
It redraws once per chunk (about every second), which costs nothing measurable.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar
from rich.progress import ProgressColumn, Task
from rich.text import Text


class StepsPerSecondColumn(ProgressColumn):
    """Rich's measured rate of the task, which here advances by optimizer steps."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:,.0f} steps/s", style="progress.data.speed")


class StepRichProgressBar(RichProgressBar):
    """Lightning's rich bar: steps out of `max_steps`, steps/s, elapsed and left, the loss."""

    def configure_columns(self, trainer: L.Trainer) -> list:
        *columns, _ = super().configure_columns(trainer)  # drop the batches-per-second column
        return [*columns, StepsPerSecondColumn()]

    def _get_train_description(self, current_epoch: int) -> str:
        return "Steps"

    @property
    def total_train_batches(self) -> int | float:
        max_steps = self.trainer.max_steps
        return max_steps if max_steps > 0 else super().total_train_batches

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        if self.progress is not None and self.train_progress_bar_id is not None:
            # A resumed run starts part-way; the rate counts from here.
            self.progress.reset(self.train_progress_bar_id, completed=trainer.global_step)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, i: int
    ) -> None:
        if self.train_progress_bar_id is None and not self.is_disabled:
            self._initialize_train_progress_bar_id()
        self._update(self.train_progress_bar_id, trainer.global_step)
        self._update_metrics(trainer, pl_module)
        self.refresh()
