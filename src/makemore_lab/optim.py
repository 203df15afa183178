"""The lecture's optimizer, written as the lecture writes it.

`torch.optim.SGD` updates with `p.add_(grad, alpha=-lr)`, which rounds once; the lecture's
`p.data += -lr * p.grad` rounds twice (the product, then the sum). The two differ in the last
bit, and the first network's "original" row is chaotic enough (initial loss 27.9) that the last
bit moves its final loss: after 1,000 steps, 4.0069 against 4.0721, and after 200k steps the
train loss by 0.005. The lecture presets use this class so that they follow the lecture's
arithmetic exactly; the default `optim=sgd` keeps torch's optimizer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch


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
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            # Two roundings, as the lecture: the product `-lr * grad`, then the sum. The
            # foreach calls do each for all parameters at once (one call, not one per tensor).
            if self.foreach:
                torch._foreach_add_(
                    params, torch._foreach_mul([p.grad for p in params], -group["lr"])
                )
            else:
                for p in params:
                    p += -group["lr"] * p.grad
        return loss
