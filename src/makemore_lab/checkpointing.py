"""Checkpointing by optimizer step that also saves the final step.

Lightning's `ModelCheckpoint(every_n_train_steps=N)` saves only at multiples of N, and our
training stream is one endless epoch, so no epoch-end save happens either: a 1,001-step run
would end with no checkpoint of its final weights. This subclass saves once more at the end.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


class StepCheckpoint(ModelCheckpoint):
    """`ModelCheckpoint` that also writes the last step (top-k file and `last.ckpt`) at the end."""

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if not self._should_skip_saving_checkpoint(trainer):  # skips a step saved already
            candidates = self._monitor_candidates(trainer)
            self._save_topk_checkpoint(trainer, candidates)
            self._save_last_checkpoint(trainer, candidates)
