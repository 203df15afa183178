"""`makemore_lab.optim.LectureSGD`: the public name that conf/, older configs and older
checkpoints use; the class lives in `makemore_lab.network.optim`."""

from makemore_lab.network.optim import LectureSGD

__all__ = ["LectureSGD"]
