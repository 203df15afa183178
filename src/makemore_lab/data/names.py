"""The names dataset: download, vocabulary, context windows and the Lightning DataModule.

Everything follows the lecture exactly (same vocabulary, `random.seed(42)` shuffle, 80/10/10
split, `block_size` contexts), so the example counts are 182,625 / 22,655 / 22,866.
Training batches are drawn like the lecture's `torch.randint` from a shared generator, and
the splits live as tensors on the training device: no per-example collation, ever.
"""

from __future__ import annotations

import hashlib
import os
import random
import urllib.request
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch

from makemore_lab.errors import UserError
from makemore_lab.validation import POSITIVE_INT, require_all

# Checksums of files whose content we know; a download from any other URL is not checked.
KNOWN_SHA256 = {
    "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt": (
        "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"
    ),
}
END = "."  # the special token: index 0, starts every context and ends every name


def download_file(path: str | Path, url: str, sha256: str | None = None) -> Path:
    """Fetch `url` to `path` atomically, checking its sha256 (given, or known for the URL)."""
    path = Path(path)
    expected = sha256 or KNOWN_SHA256.get(url)
    how = (
        f"Download it yourself from {url} (or copy your own names file) to {path}, "
        f"or point data.path at an existing file."
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            payload = response.read()
    except (OSError, ValueError) as err:
        raise UserError(
            f"The data file {path} does not exist and downloading it from {url} "
            f"failed ({err}). {how}"
        ) from None
    digest = hashlib.sha256(payload).hexdigest()
    if expected is not None and digest != expected:
        rejected = path.with_name(path.name + ".rejected")
        rejected.write_bytes(payload)
        raise UserError(
            f"The file downloaded from {url} has sha256 {digest}, not the expected "
            f"{expected}; it was kept aside as {rejected} and not used. {how}"
        )
    tmp.write_bytes(payload)
    os.replace(tmp, path)  # atomic: a reader never sees half a file
    return path


def read_words(path: str | Path) -> list[str]:
    """One name per line; blank lines are skipped. Errors name the file and what is wrong."""
    path = Path(path)
    if path.is_dir():
        raise UserError(
            f"data.path={path} is a directory. Set data.path to a names file in it (one name "
            f"per line), e.g. data.path={path / 'names.txt'}."
        )
    if not path.is_file():
        raise UserError(
            f"The data file {path} does not exist. Set data.path to a names file "
            f"(one name per line), or set data.download=true to fetch the default."
        )
    try:
        # utf-8-sig: a byte-order mark some editors write is not a character of the first name
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as err:
        raise UserError(
            f"The data file {path} cannot be read ({err.strerror}). Check its permissions, "
            f"or set data.path to a names file you can read."
        ) from None
    except UnicodeDecodeError as err:
        raise UserError(
            f"The data file {path} is not UTF-8 text ({err}). It should hold one "
            f"name per line; check data.path."
        ) from None
    if "\x00" in text:
        raise UserError(
            f"The data file {path} looks binary (it holds NUL bytes), not one name "
            f"per line; check data.path."
        )
    words = [line.strip() for line in text.splitlines() if line.strip()]
    if not words:
        raise UserError(
            f"The data file {path} holds no names. Put one name per line in it, "
            f"or delete it so the default dataset is downloaded."
        )
    if any(END in w for w in words):
        raise UserError(
            f"The data file {path} contains '{END}', which this model reserves "
            f"for the end of a name. Remove it from the names."
        )
    return words


@dataclass(frozen=True)
class Vocab:
    """Characters of the data, sorted, after the end token: index 0 is '.'."""

    chars: str
    stoi: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stoi", {END: 0} | {c: i + 1 for i, c in enumerate(self.chars)})

    @classmethod
    def from_words(cls, words: list[str]) -> Vocab:
        return cls("".join(sorted(set("".join(words)))))

    @property
    def size(self) -> int:
        return len(self.chars) + 1

    def itos(self, i: int) -> str:
        return END if i == 0 else self.chars[i - 1]

    def encode(self, text: str, where: str = "the input") -> list[int]:
        """Indices of `text`; a character outside the vocabulary is a clear UserError."""
        unknown = sorted(set(text) - set(self.stoi))
        if unknown:
            raise UserError(
                f"{where} contains {unknown}, which the model's vocabulary does not "
                f"have (it knows {END!r} and {self.chars!r}). Use only those "
                f"characters, or train a model on data that contains them."
            )
        return [self.stoi[c] for c in text]


def build_dataset(
    words: list[str], vocab: Vocab, block_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (context, next character) pair of every name, as in the lecture."""
    xs, ys = [], []
    for w in words:
        context = [0] * block_size
        for ix in vocab.encode(w + END, "a name"):
            xs.append(context)
            ys.append(ix)
            context = context[1:] + [ix]
    return torch.tensor(xs, dtype=torch.long).view(-1, block_size), torch.tensor(
        ys, dtype=torch.long
    )


SPLITS = ("train", "val", "test")


def split_words(words: list[str], seed: int = 42) -> tuple[list[str], list[str], list[str]]:
    """The lecture's shuffle (`random.seed(42)`) and 80/10/10 split."""
    words = list(words)
    random.Random(seed).shuffle(words)  # same stream as random.seed(42); random.shuffle(words)
    n1, n2 = int(0.8 * len(words)), int(0.9 * len(words))
    return words[:n1], words[n1:n2], words[n2:]


class TrainingChunks:
    """Endless chunks of training minibatches, drawn like the lecture's `torch.randint`.

    Each item is `chunk_size` minibatches at once, `x` (chunk, batch, block) and `y` (chunk, batch):
    one `training_step` runs one optimizer step per minibatch, so Lightning's per-batch work is
    paid once per chunk. The indices of a chunk are one `randint` call of chunk * batch values,
    which on the CPU generator is the same stream as `chunk` calls of `batch` values: the
    minibatches are the lecture's, whatever the chunk size.

    `drawn` holds the generator state after each draw not yet trained on: Lightning fetches one
    chunk ahead, so the state a checkpoint needs is not the generator's current one but the
    one after the chunk just trained (see `NamesDataModule.state_dict`).
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        generator: torch.Generator | None,
        chunk_size: int = 1,
    ) -> None:
        self.x, self.y, self.batch_size, self.generator = x, y, batch_size, generator
        self.chunk_size = chunk_size
        self.drawn: deque[torch.Tensor] = deque()

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, shape = self.x.shape[0], (self.chunk_size, self.batch_size)
        while True:
            # The generator lives on the CPU (it is the one that drew the weights); one copy of
            # the chunk's indices to the device, then the gather happens there.
            ix = torch.randint(0, n, shape, generator=self.generator)
            if self.generator is not None:
                self.drawn.append(self.generator.get_state())
            ix = ix.to(self.x.device, non_blocking=True)
            yield self.x[ix], self.y[ix]


class SplitBatches:
    """A whole split as consecutive batches (views, no copies): evaluation sees every example."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, chunk_size: int) -> None:
        self.x, self.y, self.chunk_size = x, y, chunk_size

    def __len__(self) -> int:
        return -(-self.x.shape[0] // self.chunk_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i in range(0, self.x.shape[0], self.chunk_size):
            yield self.x[i : i + self.chunk_size], self.y[i : i + self.chunk_size]


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
        generator: torch.Generator | None = None,
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
        self.split_seed, self.generator, self.chunk_size = split_seed, generator, chunk_size
        self.vocab: Vocab | None = None
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.train_chunks: TrainingChunks | None = None
        # The generator state after the last chunk trained on: what resuming must restore.
        self.sampler_state: Any = None  # a generator state (a list of them when stacked)

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

    def train_dataloader(self) -> TrainingChunks:
        self.train_chunks = TrainingChunks(
            *self.splits["train"], self.batch_size, self.generator, self.chunk_size
        )
        return self.train_chunks

    # --- exact resume: the sampler's random state goes into every checkpoint ---------------

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Called when a chunk is about to be trained on (not when it is prefetched)."""
        training = self.trainer is not None and self.trainer.training
        if training and self.train_chunks is not None and self.train_chunks.drawn:
            self.sampler_state = self.train_chunks.drawn.popleft()
        return batch

    def state_dict(self) -> dict[str, Any]:
        if self.sampler_state is None:  # nothing trained yet: the state is the generator's own
            if self.generator is None:
                return {}
            return {"sampler_state": self.generator.get_state()}
        return {"sampler_state": self.sampler_state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue the batch stream where the checkpoint left it (read at the first draw)."""
        if self.generator is not None and "sampler_state" in state_dict:
            self.generator.set_state(state_dict["sampler_state"])
            self.sampler_state = state_dict["sampler_state"]

    def eval_batches(self, split: str) -> SplitBatches:
        return SplitBatches(*self.splits[split], self.eval_batch_size)

    def val_dataloader(self) -> SplitBatches:
        return self.eval_batches("val")
