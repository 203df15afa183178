"""The names dataset: download, vocabulary, the lecture's split and its context windows.

Everything follows the lecture exactly (same vocabulary, `random.seed(42)` shuffle, 80/10/10
split, `block_size` contexts), so the example counts are 182,625 / 22,655 / 22,866.
Training chunks are drawn in `data/chunks.py`; `data/datamodule.py` is the Lightning DataModule.
"""

from __future__ import annotations

import hashlib
import os
import random
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import torch

from makemore_lab.errors import UserError

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
    """Every (context, next character) pair of every name, in the lecture's order.

    The lecture's double loop, as tensor ops (it took most of a second for 32k names, before
    every run's first step): each name becomes `block_size` zeros then its codes and END, and
    its examples are the windows of that stream that start within it.
    """
    if not words:
        return torch.zeros(0, block_size, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    codes = torch.tensor(vocab.encode(END.join(words) + END, "a name"), dtype=torch.long)
    lengths = torch.tensor([len(w) + 1 for w in words])  # examples of a name: its codes
    name_of = torch.repeat_interleave(torch.arange(len(words)), lengths)
    starts = torch.arange(len(codes)) + block_size * name_of  # example k's window start
    stream = torch.zeros(len(codes) + block_size * len(words), dtype=torch.long)
    stream[starts + block_size] = codes
    windows = stream.unfold(0, block_size + 1, 1)[starts]
    return windows[:, :block_size].contiguous(), windows[:, block_size].contiguous()


SPLITS = ("train", "val", "test")


def split_words(words: list[str], seed: int = 42) -> tuple[list[str], list[str], list[str]]:
    """The lecture's shuffle (`random.seed(42)`) and 80/10/10 split."""
    words = list(words)
    random.Random(seed).shuffle(words)  # same stream as random.seed(42); random.shuffle(words)
    n1, n2 = int(0.8 * len(words)), int(0.9 * len(words))
    return words[:n1], words[n1:n2], words[n2:]
