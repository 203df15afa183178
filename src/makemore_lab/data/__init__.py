"""The names data: vocabulary, the lecture's split, training chunks and evaluation batches.

`makemore_lab.data.NamesDataModule` is the public name conf/data/names.yaml builds.
"""

from makemore_lab.data.names import NamesDataModule, Vocab

__all__ = ["NamesDataModule", "Vocab"]
