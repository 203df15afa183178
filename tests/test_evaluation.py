"""Evaluation after training: chunks on several threads, each loss the one a single thread gives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from makemore_lab.data.chunks import SplitBatches
from makemore_lab.network.model import MLP
from makemore_lab.train import train
from makemore_lab.training.evaluation import eval_threads, split_losses


def networks(n: int) -> list[MLP]:
    """`n` deep tanh + BatchNorm networks with running statistics away from their start."""
    nets = []
    for seed in range(n):
        net = MLP(vocab_size=27, n_hidden=64, n_layers=3, batchnorm=True, generator=seed_gen(seed))
        with torch.no_grad():  # a few training-mode forwards move the running statistics
            for _ in range(3):
                net(torch.randint(0, 27, (32, 3), generator=seed_gen(seed + 100)))
        nets.append(net)
    return nets


def seed_gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def splits(chunk: int) -> dict[str, SplitBatches]:
    g = seed_gen(7)
    sizes = {"train": 1000, "val": 130, "test": 77}  # chunks that do not divide the splits
    return {
        name: SplitBatches(
            torch.randint(0, 27, (n, 3), generator=g),
            torch.randint(0, 27, (n,), generator=g),
            chunk,
        )
        for name, n in sizes.items()
    }


def one_thread_loss(net: nn.Module, batches: SplitBatches) -> float:
    """The definition: chunk sums added in chunk order, over the split's examples, eval mode."""
    net.eval()
    with torch.no_grad():
        total = 0.0
        for x, y in batches:
            total += F.cross_entropy(net(x), y, reduction="sum").item()
    net.train()
    return total / batches.y.numel()


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_each_loss_is_the_one_thread_loss_bit_for_bit(threads: int) -> None:
    nets, data = networks(3), splits(chunk=128)
    results = split_losses(nets, data, threads)
    for net, losses in zip(nets, results, strict=True):
        expected = {f"{name}_loss": one_thread_loss(net, b) for name, b in data.items()}
        assert losses == expected
        assert net.training  # handed back in the mode it came in
        whole = F.cross_entropy(net.eval()(data["train"].x), data["train"].y).item()
        assert losses["train_loss"] == pytest.approx(whole, rel=1e-6)  # the mean, chunked


def test_a_network_whose_evaluation_raises_gets_its_error_and_the_others_their_losses() -> None:
    nets, data = networks(3), splits(chunk=256)
    broken = nn.Sequential(nn.Linear(5, 5))  # wrong input shape for (B, 3) contexts
    results = split_losses([nets[0], broken, nets[1]], data, threads=2)
    assert isinstance(results[1], RuntimeError)
    assert results[0] == split_losses([nets[0]], data, threads=1)[0]
    assert results[2] == split_losses([nets[1]], data, threads=1)[0]


def test_eval_threads_are_as_configured_or_the_cores_on_a_cpu_and_one_on_a_gpu() -> None:
    assert eval_threads(3, torch.device("cpu")) == 3
    assert eval_threads(None, torch.device("cuda")) == 1
    assert eval_threads(None, torch.device("cpu")) == len(os.sched_getaffinity(0))


def test_a_run_records_its_eval_threads_and_the_same_losses_with_any(
    make_cfg, tmp_path: Path
) -> None:
    one = train(
        make_cfg(f"run_dir={tmp_path / 'one'}", "eval_threads=1", "data.eval_batch_size=64")
    )
    three = train(
        make_cfg(f"run_dir={tmp_path / 'three'}", "eval_threads=3", "data.eval_batch_size=64")
    )
    assert (one["eval_threads"], three["eval_threads"]) == (1, 3)
    for key in ("train_loss", "val_loss", "test_loss"):
        assert one[key] == three[key]
