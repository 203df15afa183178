"""`makemore_lab.checkpointing.StepCheckpoint`: the public name that conf/, older configs and older
checkpoints use; the class lives in `makemore_lab.runs.checkpoints`."""

from makemore_lab.runs.checkpoints import StepCheckpoint

__all__ = ["StepCheckpoint"]
