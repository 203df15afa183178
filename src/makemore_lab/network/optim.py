"""The lecture's optimizer, written as the lecture writes it.

`torch.optim.SGD` updates with `p.add_(grad, alpha=-lr)`, which rounds once; the lecture's
`p.data += -lr * p.grad` rounds twice (the product, then the sum). The two differ in the last
bit, and the first network's "original" row is chaotic enough (initial loss 27.9) that the last
bit moves its final loss: after 1,000 steps, 4.0069 against 4.0721, and after 200k steps the
train loss by 0.005. The lecture presets use this class so that they follow the lecture's
arithmetic exactly; the default `optim=sgd` keeps torch's optimizer.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from functools import partial
from typing import Any, NamedTuple

import torch

Update = Callable[[], None]


class StepUpdate(NamedTuple):
    """One optimizer step split for CUDA-graph capture (`training/graphs.py`).

    `apply` is the device work alone; the host values it reads (learning rates as Python
    floats, which jobs are frozen) are fixed by `key`, so a graph captured for one key replays
    that step exactly. `done` is the host bookkeeping after each step (step counts).
    """

    key: Hashable
    apply: Update
    done: Update


class LectureSGD(torch.optim.Optimizer):
    """Plain SGD, `p.data += -lr * p.grad`, with no momentum or weight decay."""

    def __init__(
        self, params: Iterable[torch.nn.Parameter], lr: float = 0.1, foreach: bool = True
    ) -> None:
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr!r}")
        super().__init__(params, {"lr": lr})
        self.foreach = foreach

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.update()
        return loss

    @torch.no_grad()
    def update(self) -> None:
        """The update alone: what `step` does after the closure, without torch's step hooks."""
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            # Two roundings, as the lecture: the product `-lr * grad`, then the sum. The
            # foreach calls do each for all parameters at once (one call, not one per tensor).
            if self.foreach:
                lecture_step(params, [p.grad for p in params], -group["lr"])
            else:
                for p in params:
                    p += -group["lr"] * p.grad


def lecture_step(params: list[torch.Tensor], grads: list[torch.Tensor], scale: Any) -> None:
    """`p += scale * grad` for every parameter, rounded as the lecture: the product, then the
    sum (`scale`: -lr, or one tensor per parameter, e.g. per-job rates)."""
    torch._foreach_add_(params, torch._foreach_mul(grads, scale))


def plain_step(params: list[torch.Tensor], grads: list[torch.Tensor], lr: float) -> None:
    """torch's SGD with no momentum or decay, as its foreach path: `p.add_(g, alpha=-lr)`."""
    torch._foreach_add_(params, grads, alpha=-lr)


def direct_update(optimizer: torch.optim.Optimizer) -> Update | None:
    """`optimizer`'s update as a direct call, for plain SGD; None for any other optimizer.

    A training step that calls this instead of `optimizer.step()` skips torch's step wrapper
    (profiling, hooks), a noticeable share of a step this small. The arithmetic is the
    optimizer's own: `LectureSGD.update`, or, for `torch.optim.SGD` with no momentum, weight
    decay or other option, the one call its foreach path makes (`p.add_(grad, alpha=-lr)`).
    """
    math = _plain_sgd(optimizer)
    if math is None:
        return None

    def update() -> None:
        math()
        _called(optimizer)

    return update


def plain_update(optimizer: torch.optim.Optimizer) -> Callable[[], StepUpdate] | None:
    """For plain SGD (as `direct_update`), a function giving each next step as a `StepUpdate`
    keyed by the learning rates it uses; None for any other optimizer."""
    math = _plain_sgd(optimizer)
    if math is None:
        return None

    done = partial(_called, optimizer)

    def next_update() -> StepUpdate:
        rates = tuple(group["lr"] for group in optimizer.param_groups)
        return StepUpdate(rates, math, done)

    return next_update


def _called(optimizer: torch.optim.Optimizer) -> None:
    # What the step wrapper records for the learning-rate scheduler, which warns otherwise.
    optimizer._opt_called = True  # type: ignore[attr-defined]


def _plain_sgd(optimizer: torch.optim.Optimizer) -> Update | None:
    if isinstance(optimizer, LectureSGD):
        return optimizer.update
    if type(optimizer) is not torch.optim.SGD or len(optimizer.param_groups) != 1:
        return None
    group = optimizer.param_groups[0]
    options = ("momentum", "weight_decay", "dampening")
    if any(group[k] for k in options) or group["maximize"] or group["nesterov"]:
        return None
    if group["differentiable"] or group.get("fused") or isinstance(group["lr"], torch.Tensor):
        return None

    @torch.no_grad()
    def update() -> None:
        params = [p for p in group["params"] if p.grad is not None]
        plain_step(params, [p.grad for p in params], group["lr"])

    return update
