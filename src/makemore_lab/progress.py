"""`makemore_lab.progress.StepRichProgressBar`: the public name that conf/, older configs and older
checkpoints use; the class lives in `makemore_lab.training.progress`."""

from makemore_lab.training.progress import StepRichProgressBar

__all__ = ["StepRichProgressBar"]
