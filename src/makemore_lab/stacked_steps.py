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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig

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

    @classmethod
    def of(cls, cfg: DictConfig) -> StepDecay:
        """A job's rate from its config: `optim.lr`, decayed at `optim.decay_step` if scheduled."""
        if cfg.optim.get("scheduler") is None:
            return cls(cfg.optim.lr)
        return cls(cfg.optim.lr, cfg.optim.decay_step, cfg.optim.decay_gamma)

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


class StackedSGD(torch.optim.Optimizer):
    """Plain SGD with one learning rate per job, rounded as the solo run's optimizer rounds.

    `lecture=True` is `optim.LectureSGD` (`p += -lr * grad`: the product, then the sum), one
    batched op per parameter with the rates as a tensor. `lecture=False` is `torch.optim.SGD`
    (`p.add_(grad, alpha=-lr)`, one rounding), which takes one rate per call: one foreach call
    per distinct rate, over the jobs' slices. Frozen jobs are not updated. The step count and
    the frozen jobs live in the param group, so checkpoints carry them.
    """

    def __init__(
        self, model: StackedMLP, schedules: Sequence[StepDecay], lecture: bool = False
    ) -> None:
        super().__init__(model.parameters(), {"lr": schedules[0].lr})
        self.schedules, self.lecture = list(schedules), lecture
        self.param_groups[0]["steps_done"] = 0
        self.param_groups[0]["active"] = [True] * len(self.schedules)

    @property
    def active(self) -> torch.Tensor:
        return torch.tensor(self.param_groups[0]["active"], dtype=torch.bool)

    def freeze(self, jobs: Sequence[int]) -> None:
        """Stop updating these jobs (they diverged)."""
        for job in jobs:
            self.param_groups[0]["active"][job] = False

    def rates(self, step: int) -> list[float]:
        """Each job's learning rate at optimizer step `step`."""
        return [s.at(step) for s in self.schedules]

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        if closure is not None:  # Lightning's: it runs the on_before_optimizer_step hooks
            with torch.enable_grad():
                closure()
        self.update()

    @torch.no_grad()
    def update(self) -> None:
        """One step of every active job: `step` without the closure and torch's step hooks."""
        group = self.param_groups[0]
        params, rates = group["params"], self.rates(group["steps_done"])
        active = group["active"]
        if len(set(rates)) == 1 and all(active):  # one rate, the solo optimizer's own calls
            grads = [p.grad for p in params]
            if self.lecture:
                torch._foreach_add_(params, torch._foreach_mul(grads, -rates[0]))
            else:
                torch._foreach_add_(params, grads, alpha=-rates[0])
        elif self.lecture:
            self._lecture_step(params, rates)
        else:
            for rate in sorted(set(rates)):
                jobs = [j for j, r in enumerate(rates) if r == rate and active[j]]
                if jobs:
                    torch._foreach_add_(
                        [p[j] for p in params for j in jobs],
                        [p.grad[j] for p in params for j in jobs],
                        alpha=-rate,
                    )
        group["steps_done"] += 1

    def _lecture_step(self, params: list[torch.Tensor], rates: list[float]) -> None:
        device, dtype = params[0].device, params[0].dtype
        neg = torch.tensor([-r for r in rates], dtype=dtype).to(device, non_blocking=True)
        updates = torch._foreach_mul([p.grad for p in params], [_per_job(neg, p) for p in params])
        active = self.active
        if not bool(active.all()):  # 0 * NaN is NaN: a frozen job's update is zeroed
            mask = active.to(device)
            updates = [torch.where(_per_job(mask, u), u, 0.0) for u in updates]
        torch._foreach_add_(params, updates)


def _per_job(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(N,) values shaped to broadcast over a stacked tensor (N, ...)."""
    return values.view(-1, *[1] * (like.dim() - 1))


def train_chunk(
    model: StackedMLP, optimizer: StackedSGD, xs: torch.Tensor, ys: torch.Tensor
) -> torch.Tensor:
    """One optimizer step per minibatch of the chunk; the jobs' losses (N, chunk), before each
    update. Jobs whose loss was not finite in this chunk are frozen from its end on."""
    losses = []
    params = list(model.parameters())
    for i in range(xs.shape[1]):
        loss = job_losses(model, xs[:, i], ys[:, i])
        for p in params:
            p.grad = None
        loss.sum().backward()  # a sum of per-job means: each job's gradient is its own
        optimizer.update()
        losses.append(loss.detach())
    chunk = torch.stack(losses, dim=1)
    optimizer.freeze(diverged_jobs(chunk))
    return chunk


def diverged_jobs(losses: torch.Tensor) -> list[int]:
    """The jobs with a loss that is not finite in `losses` (N, steps)."""
    return torch.nonzero(~torch.isfinite(losses).all(dim=1)).flatten().tolist()
