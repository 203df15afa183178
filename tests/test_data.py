"""The data path: download, vocabulary, the lecture's split and the batch stream."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from makemore_lab.data.datamodule import NamesDataModule
from makemore_lab.data.names import (
    Vocab,
    build_dataset,
    download_file,
    read_words,
    split_words,
)
from makemore_lab.errors import UserError


def test_real_file_gives_the_lectures_example_counts(real_names: Path) -> None:
    dm = NamesDataModule(path=str(real_names), download=False)
    dm.setup()
    assert dm.vocab.size == 27 and dm.vocab.itos(0) == "." and dm.vocab.itos(1) == "a"
    assert {k: x.shape[0] for k, (x, _) in dm.splits.items()} == {
        "train": 182625,
        "val": 22655,
        "test": 22866,
    }
    assert hashlib.sha256(real_names.read_bytes()).hexdigest().startswith("0a30b555")


def test_vocab_is_end_token_then_sorted_characters() -> None:
    vocab = Vocab.from_words(["emma", "ava", "zoe"])
    assert vocab.chars == "aemovz" and vocab.size == 7
    assert vocab.encode("ma.") == [3, 1, 0]
    with pytest.raises(UserError, match=r"contains \['Q'\].*'aemovz'"):
        vocab.encode("Qa")


def test_contexts_are_the_lectures_sliding_windows() -> None:
    vocab = Vocab.from_words(["emma"])
    x, y = build_dataset(["emma"], vocab, block_size=3)
    e, m, a = (vocab.stoi[c] for c in "ema")
    assert x.tolist() == [[0, 0, 0], [0, 0, e], [0, e, m], [e, m, m], [m, m, a]]
    assert y.tolist() == [e, m, m, a, 0]


def lecture_build_dataset(words: list[str], vocab: Vocab, block_size: int) -> tuple:
    """The lecture's own loop, as the notebook writes it."""
    xs, ys = [], []
    for w in words:
        context = [0] * block_size
        for ch in w + ".":
            ix = vocab.stoi[ch]
            xs.append(context)
            ys.append(ix)
            context = context[1:] + [ix]
    return torch.tensor(xs).view(-1, block_size), torch.tensor(ys)


@pytest.mark.parametrize("block_size", [1, 3, 8])
def test_every_name_gives_the_lectures_examples_in_its_order(
    real_names: Path, block_size: int
) -> None:
    words = real_names.read_text().split()
    words = [*words[:3000], "a", "zz"]  # the file's start, and names shorter than the context
    vocab = Vocab.from_words(words)
    x, y = build_dataset(words, vocab, block_size)
    want_x, want_y = lecture_build_dataset(words, vocab, block_size)
    assert torch.equal(x, want_x) and torch.equal(y, want_y) and x.dtype == torch.long
    empty_x, empty_y = build_dataset([], vocab, block_size)
    assert empty_x.shape == (0, block_size) and empty_y.shape == (0,)


def test_split_is_random_seed_42_then_80_10_10() -> None:
    import random

    words = [f"w{i}" for i in range(100)]
    expected = list(words)
    random.seed(42)
    random.shuffle(expected)
    train, val, test = split_words(words)
    assert (train, val, test) == (expected[:80], expected[80:90], expected[90:])


@pytest.mark.parametrize("jobs", [1, 3])
def test_training_chunks_are_each_jobs_lecture_randint_stream(names_file: Path, jobs: int) -> None:
    # One chunk of 5 minibatches is, for each job, the lecture's 5 consecutive randint calls
    # on its own generator; a solo run is one job.
    seeds = [7 + job for job in range(jobs)]
    dm = NamesDataModule(
        path=str(names_file),
        download=False,
        batch_size=8,
        chunk_size=5,
        generators=[torch.Generator().manual_seed(s) for s in seeds],
    )
    dm.setup()
    x_all, y_all = dm.splits["train"]
    refs = [torch.Generator().manual_seed(s) for s in seeds]
    chunks = iter(dm.train_dataloader())
    for _ in range(3):
        xs, ys, drawn = next(chunks)
        assert xs.shape == (jobs, 5, 8, 3) and ys.shape == (jobs, 5, 8)
        for job, ref in enumerate(refs):
            for x, y in zip(xs[job], ys[job], strict=True):
                ix = torch.randint(0, x_all.shape[0], (8,), generator=ref)
                assert torch.equal(x, x_all[ix]) and torch.equal(y, y_all[ix])
            # the state a checkpoint after this chunk resumes from: the reference's, now
            assert torch.equal(drawn.states[job], ref.get_state())


def test_evaluation_sees_every_example_of_the_split_once(names_file: Path) -> None:
    dm = NamesDataModule(path=str(names_file), download=False, eval_batch_size=7)
    dm.setup()
    chunks = list(dm.val_dataloader())
    assert len(chunks) == len(dm.val_dataloader())
    assert torch.equal(torch.cat([y for _, y in chunks]), dm.splits["val"][1])


def test_download_from_a_file_url_is_checked_and_atomic(names_file: Path, tmp_path: Path) -> None:
    target = tmp_path / "data" / "names.txt"
    digest = hashlib.sha256(names_file.read_bytes()).hexdigest()
    download_file(target, names_file.as_uri(), sha256=digest)
    assert target.read_bytes() == names_file.read_bytes()
    assert not list(target.parent.glob("*.part"))


def test_datamodule_downloads_a_missing_file(names_file: Path, tmp_path: Path) -> None:
    target = tmp_path / "names.txt"
    dm = NamesDataModule(path=str(target), url=names_file.as_uri())  # unknown URL: no checksum
    dm.prepare_data()
    dm.setup()
    assert target.is_file() and dm.vocab.chars == "abcdeilmnr"


def test_a_download_with_the_wrong_checksum_is_kept_aside_not_used(
    names_file: Path, tmp_path: Path
) -> None:
    target = tmp_path / "names.txt"
    with pytest.raises(UserError, match=r"sha256 .* not the expected 00ff.*kept aside"):
        download_file(target, names_file.as_uri(), sha256="00ff")
    assert not target.exists()
    assert (tmp_path / "names.txt.rejected").read_bytes() == names_file.read_bytes()


def test_a_failed_download_names_the_path_the_url_and_the_manual_fix(tmp_path: Path) -> None:
    target = tmp_path / "names.txt"
    url = (tmp_path / "nowhere.txt").as_uri()
    with pytest.raises(UserError) as err:
        download_file(target, url)
    assert str(target) in str(err.value) and url in str(err.value) and "yourself" in str(err.value)
    assert not target.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "holds no names"),
        (b"\n \n", "holds no names"),
        (b"\xff\xfe\x00a", "not UTF-8"),
        (b"ab\x00cd\n", "binary"),
        (b"anna\nj.r.\n", "reserves"),
    ],
)
def test_bad_data_files_are_named_with_the_problem(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "names.txt"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        read_words(path)


def test_a_missing_file_without_download_says_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"does not exist.*data\.path"):
        read_words(tmp_path / "absent.txt")


@pytest.mark.parametrize("key", ["batch_size", "eval_batch_size", "block_size"])
def test_non_positive_data_sizes_are_rejected(key: str) -> None:
    with pytest.raises(UserError, match=rf"data\.{key}=0"):
        NamesDataModule(**{key: 0})


def test_a_byte_order_mark_is_not_a_character_of_the_first_name(tmp_path: Path) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeffemma\nava\n".encode())
    assert read_words(path) == ["emma", "ava"]
