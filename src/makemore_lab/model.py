"""`makemore_lab.model.MLP`: the public name that conf/, older configs and older
checkpoints use; the class lives in `makemore_lab.network.model`."""

from makemore_lab.network.model import MLP

__all__ = ["MLP"]
