"""A progress bar that counts optimizer steps, not Lightning batches.

A Lightning batch here is a chunk of `data.chunk_size` optimizer steps, so Lightning's bar,
which counts batches against a total of `max_steps`, would show 1 / 200000 after 500 steps and
a rate in chunks per second. This bar shows steps done out of `max_steps` and steps/s.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar


class StepProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar, advanced to `trainer.global_step` after each chunk."""

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        if self.train_progress_bar is not None and trainer.max_steps > 0:
            self.train_progress_bar.total = trainer.max_steps
            self.train_progress_bar.n = self.train_progress_bar.initial = trainer.global_step
            self.train_progress_bar.set_description("Steps")
            self.train_progress_bar.unit = "step"

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, i: int
    ) -> None:
        bar = self.train_progress_bar
        if bar is None or bar.disable or not self._should_update(i + 1, bar.total):
            return
        bar.n = trainer.global_step
        bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)
        bar.refresh()
