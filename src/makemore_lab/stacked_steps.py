"""The optimizer steps of a stacked group: each job's own batches, learning rate and fate.

`StackedMLP` computes N jobs at once; this module feeds it. Each job keeps its own generator
(the one that drew its weights) and draws its chunk of minibatch indices from it exactly as a
solo run does (one `randint` of chunk x batch values), so its data order is the one it would
see alone. The loss is the sum of the jobs' mean losses, so each job's gradient is its own.
Learning rates are a tensor with one entry per job (each job's `optim.lr` and step decay),
and a job whose loss stops being finite is frozen at the end of that chunk (its updates
masked) while the others go on, as a solo run stops at the end of its chunk.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from makemore_lab.stacked import StackedMLP


@dataclass(frozen=True)
class StepDecay:
    """One job's learning rate: `lr`, times `gamma` from optimizer step `decay_step` on.

    The solo runs' `MultiStepLR(milestones=[decay_step], gamma)`, stepped after every update:
    step s uses lr * gamma ** (s >= decay_step). `decay_step=None`: a constant rate.
    """

    lr: float
    decay_step: int | None = None
    gamma: float = 1.0

    def at(self, step: int) -> float:
        if self.decay_step is None or step < self.decay_step:
            return self.lr
        return self.lr * self.gamma


def draw_chunk(
    x: torch.Tensor,
    y: torch.Tensor,
    generators: Sequence[torch.Generator],
    chunk: int,
    batch_size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each job's next `chunk` minibatches, from its own generator.

    Returns x (N, chunk, B, block) and y (N, chunk, B).
    """
    ix = torch.stack(
        [torch.randint(0, x.shape[0], (chunk, batch_size), generator=g) for g in generators]
    )
    ix = ix.to(x.device, non_blocking=True)
    return x[ix], y[ix]


def job_losses(model: StackedMLP, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each job's mean cross-entropy on its own minibatch: (N,) for x (N, B, block), y (N, B)."""
    logits = model(x)
    losses = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
    return losses.view(y.shape).mean(1)


class StackedSGD:
    """Plain SGD with one learning rate per job, rounded as the solo run's optimizer rounds.

    `lecture=True` is `optim.LectureSGD` (`p += -lr * grad`: the product, then the sum), one
    batched op per parameter with the rates as a tensor. `lecture=False` is `torch.optim.SGD`
    (`p.add_(grad, alpha=-lr)`, one rounding), which takes one rate per call: one foreach call
    per distinct rate, over the jobs' slices. Frozen jobs (`active` False) are not updated.
    """

    def __init__(
        self, model: StackedMLP, schedules: Sequence[StepDecay], lecture: bool = False
    ) -> None:
        self.params = list(model.parameters())
        self.schedules, self.lecture = list(schedules), lecture
        self.active = torch.ones(len(schedules), dtype=torch.bool)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, step: int) -> None:
        rates = [s.at(step) for s in self.schedules]
        if self.lecture:
            self._lecture_step(rates)
            return
        for rate in sorted(set(rates)):
            jobs = [j for j, r in enumerate(rates) if r == rate and self.active[j]]
            params = [p[j] for p in self.params for j in jobs]
            grads = [p.grad[j] for p in self.params for j in jobs]
            if params:
                torch._foreach_add_(params, grads, alpha=-rate)

    def _lecture_step(self, rates: list[float]) -> None:
        device, dtype = self.params[0].device, self.params[0].dtype
        neg = torch.tensor([-r for r in rates], dtype=dtype).to(device, non_blocking=True)
        views = [neg.view(-1, *[1] * (p.dim() - 1)) for p in self.params]
        updates = torch._foreach_mul([p.grad for p in self.params], views)
        if not bool(self.active.all()):  # 0 * NaN is NaN: a frozen job's update is zeroed
            mask = self.active.to(device)
            updates = [torch.where(mask.view(-1, *[1] * (u.dim() - 1)), u, 0.0) for u in updates]
        torch._foreach_add_(self.params, updates)


def train_chunk(
    model: StackedMLP, optimizer: StackedSGD, xs: torch.Tensor, ys: torch.Tensor, first: int
) -> torch.Tensor:
    """One optimizer step per minibatch of the chunk; the jobs' losses (N, chunk), before each
    update. Jobs whose loss was not finite in this chunk are frozen from its end on."""
    losses = []
    for i in range(xs.shape[1]):
        loss = job_losses(model, xs[:, i], ys[:, i])
        optimizer.zero_grad()
        loss.sum().backward()  # a sum of per-job means: each job's gradient is its own
        optimizer.step(first + i)
        losses.append(loss.detach())
    chunk = torch.stack(losses, dim=1)
    finite = torch.isfinite(chunk).all(dim=1).cpu()
    optimizer.active &= finite
    return chunk


def first_non_finite(losses: Sequence[float]) -> int | None:
    """The index of the first loss that is NaN or infinite, if any."""
    return next((i for i, v in enumerate(losses) if not math.isfinite(v)), None)
