"""The trained networks' loss on every split, their chunks computed on several threads at once.

A split's loss is the sum of its chunks' summed cross-entropies, added in chunk order, over
the split's examples. The chunks are independent and torch lets go of the GIL inside its
kernels, so threads compute them side by side, each with the run's own torch threads; the sums
are still added in chunk order, so each loss is the float one thread gives, bit for bit. The
jobs of a stacked group share one pool: after training, a group's 16 evaluations keep every
core it was given busy instead of one (`eval_threads` in conf/config.yaml).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import torch
import torch.nn.functional as F
from torch import nn

from makemore_lab.data.chunks import SplitBatches

SPLITS = ("train", "val", "test")
Losses = dict[str, float]  # "train_loss" -> the mean cross-entropy on the train split, ...


def eval_threads(configured: int | None, device: torch.device) -> int:
    """Threads that evaluate: as configured; null: one per core this process may use on a
    CPU, one on a GPU (whose kernels queue on one stream: threads would only wait there)."""
    if configured:
        return int(configured)
    return usable_cores() if device.type == "cpu" else 1


def usable_cores() -> int:
    """The cores this process may run on (a container's or a job's share, not the host's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@torch.no_grad()
def chunk_loss_sum(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The summed cross-entropy of one chunk (the network in eval mode)."""
    return F.cross_entropy(net(x), y, reduction="sum").item()


def split_losses(
    nets: Sequence[nn.Module], splits: dict[str, SplitBatches], threads: int
) -> list[Losses | Exception]:
    """Per network, `<split>_loss` for each split in `splits` (each network in eval mode, on
    the splits' device); a network whose evaluation raised gets its exception instead."""
    was_training = [net.training for net in nets]
    for net in nets:
        net.eval()  # running BatchNorm statistics; every chunk of a network only reads them
    torch_threads = torch.get_num_threads()
    with ThreadPoolExecutor(
        max(1, threads), initializer=torch.set_num_threads, initargs=(torch_threads,)
    ) as pool:
        futures = [
            {
                name: [pool.submit(chunk_loss_sum, net, x, y) for x, y in batches]
                for name, batches in splits.items()
            }
            for net in nets
        ]
        results = [_gathered(chunks, splits) for chunks in futures]
    for net, mode in zip(nets, was_training, strict=True):
        net.train(mode)
    return results


def _gathered(
    chunks: dict[str, list[Future[float]]], splits: dict[str, SplitBatches]
) -> Losses | Exception:
    """One network's chunk sums added in chunk order, per split, over the split's examples."""
    losses: Losses = {}
    for name, futures in chunks.items():
        total = 0.0
        for future in futures:
            error = future.exception()
            if error is not None:
                return error if isinstance(error, Exception) else RuntimeError(str(error))
            total += future.result()
        losses[f"{name}_loss"] = total / splits[name].y.numel()
    return losses
