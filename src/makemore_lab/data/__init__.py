"""The names data: vocabulary, the lecture's split, training chunks and evaluation batches.

`makemore_lab.data.NamesDataModule` is the public name conf/data/names.yaml builds.
"""

from makemore_lab.data.datamodule import NamesDataModule
from makemore_lab.data.names import Vocab

__all__ = ["NamesDataModule", "Vocab"]
