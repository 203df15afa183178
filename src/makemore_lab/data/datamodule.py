"""The Lightning DataModule: the names file's splits as tensors on the training device.

No per-example collation, ever: training chunks are drawn by index from the train split
(`data/chunks.py`, one generator per job), evaluation walks a split in consecutive views.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch

from makemore_lab.data.chunks import ChunkStream, SplitBatches
from makemore_lab.data.names import (
    SPLITS,
    Vocab,
    build_dataset,
    download_file,
    read_words,
    split_words,
)
from makemore_lab.errors import UserError
from makemore_lab.validation import POSITIVE_INT, require_all


class NamesDataModule(L.LightningDataModule):
    """Train/val/test context windows of the names file, held as tensors on the device."""

    def __init__(
        self,
        path: str = "data/names.txt",
        url: str = "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt",
        sha256: str | None = None,
        download: bool = True,
        block_size: int = 3,
        batch_size: int = 32,
        chunk_size: int = 500,
        eval_batch_size: int = 32768,
        split_seed: int = 42,
        generators: Sequence[torch.Generator] = (),
    ) -> None:
        super().__init__()
        require_all(
            "data",
            POSITIVE_INT,
            batch_size=batch_size,
            chunk_size=chunk_size,
            eval_batch_size=eval_batch_size,
            block_size=block_size,
        )
        self.path, self.url, self.sha256, self.download = Path(path), url, sha256, download
        self.block_size, self.batch_size, self.eval_batch_size = (
            block_size,
            batch_size,
            eval_batch_size,
        )
        # one per job (a solo run: one), each drawing its job's minibatches; the engine keeps
        # them, and the module restores their states on resume (`job_state.py`)
        self.generators, self.split_seed, self.chunk_size = list(generators), split_seed, chunk_size
        self.vocab: Vocab | None = None
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def prepare_data(self) -> None:
        if not self.path.exists() and self.download:
            download_file(self.path, self.url, self.sha256)

    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            words = read_words(self.path)
            self.vocab = Vocab.from_words(words)
            parts = split_words(words, self.split_seed)
            if not all(parts):
                sizes = ", ".join(f"{n} {len(p)}" for n, p in zip(SPLITS, parts, strict=True))
                raise UserError(
                    f"The data file {self.path} holds {len(words)} name(s): the lecture's "
                    f"80/10/10 split leaves a split empty ({sizes}), and a run trains on one "
                    f"split and reports the loss of each. Use a file of at least 10 names."
                )
            for name, part in zip(SPLITS, parts, strict=True):
                self.splits[name] = build_dataset(part, self.vocab, self.block_size)
        device = (
            self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        )
        self.splits = {k: (x.to(device), y.to(device)) for k, (x, y) in self.splits.items()}

    def train_dataloader(self) -> ChunkStream:
        x, y = self.splits["train"]
        return ChunkStream(x, y, self.batch_size, self.generators, self.chunk_size)

    def eval_batches(self, split: str) -> SplitBatches:
        return SplitBatches(*self.splits[split], self.eval_batch_size)

    def val_dataloader(self) -> SplitBatches:
        return self.eval_batches("val")
