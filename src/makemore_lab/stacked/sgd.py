"""The optimizer of a stacked group: each job's own SGD on its slice of the stacked weights.

Each job has its own optimizer settings and schedule (`JobSGD`: torch's SGD with momentum,
dampening, nesterov, weight decay, and any MultiStepLR), read from its config; `StackedSGD`
steps them all, bit for bit as each job's solo optimizer would, and leaves a frozen job (its
loss stopped being finite, `training/chunk_loop.py`) where it stopped while the others go on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch.optim.sgd import sgd

from makemore_lab.network.optim import StepUpdate, lecture_step, plain_step
from makemore_lab.stacked.network import StackedMLP


@dataclass(frozen=True)
class JobSGD:
    """One job's optimizer as its solo run builds it: torch's SGD settings and a MultiStepLR.

    Read from the job's own `optim.optimizer` and `optim.scheduler` (resolved), so whatever the
    solo run's optimizer gets (`optim.lr` or the optimizer's own `lr`, momentum, ...) this gets.
    """

    lr: float
    milestones: tuple[int, ...] = ()  # MultiStepLR's; () for a constant rate
    gamma: float = 0.1
    momentum: float = 0.0
    dampening: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False
    maximize: bool = False
    foreach: bool | None = None

    @classmethod
    def of(cls, cfg: DictConfig) -> JobSGD:
        """A job's optimizer from its config (the stacked engine checked it can reproduce it)."""
        settings = OmegaConf.to_container(cfg.optim.optimizer, resolve=True)
        settings = {k: v for k, v in settings.items() if not k.startswith("_")}
        scheduler = cfg.optim.get("scheduler")
        if scheduler is not None:
            settings["milestones"] = tuple(int(m) for m in scheduler.milestones)
            settings["gamma"] = float(scheduler.get("gamma", 0.1))
        return cls(**settings)

    @property
    def plain(self) -> bool:
        """No momentum, decay or sign flip: the update is `p - lr * grad` alone."""
        return not (self.momentum or self.weight_decay or self.maximize)

    def at(self, step: int) -> float:
        """The rate optimizer step `step` uses: MultiStepLR's, multiplied at each milestone
        passed, in order (`lr * gamma ** count` there), as it rounds."""
        rate = self.lr
        counts = Counter(self.milestones)
        for milestone in sorted(counts):
            if milestone <= step:
                rate = rate * self.gamma ** counts[milestone]
        return rate

    def settings(self) -> tuple[Any, ...]:
        """What, besides the rate, one call of torch's SGD takes: jobs alike share a call."""
        return (
            self.momentum,
            self.dampening,
            self.weight_decay,
            self.nesterov,
            self.maximize,
            self.foreach,
        )


class StackedSGD(torch.optim.Optimizer):
    """Each job's own SGD (`JobSGD`) on its slice of the stacked parameters, bit for bit.

    `lecture=True` is `optim.LectureSGD` (`p += -lr * grad`: the product, then the sum), one
    batched op per parameter with the rates as a tensor. Otherwise each set of jobs that share
    a rate and settings gets one call of torch's own SGD function (`torch.optim.sgd.sgd`, what
    `torch.optim.SGD.step` calls) on their slices, which have the solo tensors' shapes: the same
    kernels on the same elements. Momentum buffers are stacked like the parameters; a parameter
    only some jobs have (a BatchNorm's, a bias) has rows for them alone. Frozen jobs
    are not updated. The step count, the frozen jobs and whose momentum has started live in the
    param group, so checkpoints carry them.
    """

    def __init__(self, model: StackedMLP, jobs: Sequence[JobSGD], lecture: bool = False) -> None:
        super().__init__(model.parameters(), {"lr": jobs[0].lr})
        self.jobs, self.lecture = list(jobs), lecture
        # each parameter's jobs, in row order (`stacked.layout`), and as an index for tensors
        self.owners = [model.layout.owners(name) for name in model.layout.params]
        every = tuple(range(len(self.jobs)))
        self.rows_of = [None if o == every else torch.tensor(o) for o in self.owners]
        self._device_tensors: dict[tuple[Any, ...], list[torch.Tensor]] = {}  # `_on_device`
        group = self.param_groups[0]
        group["steps_done"] = 0
        group["active"] = [True] * len(self.jobs)
        group["momentum_started"] = [False] * len(self.jobs)

    def freeze(self, jobs: Sequence[int]) -> None:
        """Stop updating these jobs (they diverged)."""
        for job in jobs:
            self.param_groups[0]["active"][job] = False

    def rates(self, step: int) -> list[float]:
        """Each job's learning rate at optimizer step `step`."""
        return [job.at(step) for job in self.jobs]

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
        self._apply(tuple(self.rates(group["steps_done"])), tuple(group["active"]))
        self._count()

    def next_update(self) -> StepUpdate:
        """The next step as a `StepUpdate`: keyed by each job's rate and which jobs train."""
        group = self.param_groups[0]
        rates, active = tuple(self.rates(group["steps_done"])), tuple(group["active"])
        return StepUpdate((rates, active), partial(self._apply, rates, active), self._count)

    def capture_refusal(self) -> str | None:
        """Why this optimizer's steps cannot be captured as CUDA graphs (None: they can)."""
        for j, job in enumerate(self.jobs):
            if not job.plain:  # torch's momentum path keeps host state (whose buffers started)
                return f"job #{j} uses momentum, weight decay or maximize (plain SGD only)"
        return None

    def _count(self) -> None:
        self.param_groups[0]["steps_done"] += 1

    @torch.no_grad()
    def _apply(self, rates: tuple[float, ...], active: tuple[bool, ...]) -> None:
        """The device work of one step with these rates, updating the `active` jobs."""
        params = self.param_groups[0]["params"]
        plain = all(job.plain and not job.nesterov for job in self.jobs)
        if len(set(rates)) == 1 and all(active) and plain:  # the solo optimizer's own calls
            grads = [p.grad for p in params]
            if self.lecture:
                lecture_step(params, grads, -rates[0])
            else:
                plain_step(params, grads, rates[0])
        elif self.lecture:
            self._lecture_step(params, rates, active)
        else:
            calls: dict[tuple[Any, ...], list[int]] = {}
            for j, job in enumerate(self.jobs):
                if active[j]:
                    calls.setdefault((rates[j], *job.settings()), []).append(j)
            for jobs in calls.values():
                self._sgd(params, jobs, rates[jobs[0]])

    def _rows(self, params: list[torch.Tensor], jobs: list[int]) -> list[tuple[int, int, int]]:
        """(parameter index, job, its row) for each of `jobs`' slices: a parameter only some
        jobs have (a BatchNorm's, a bias) holds a row for each of them alone."""
        return [
            (i, j, self.owners[i].index(j))
            for i in range(len(params))
            for j in jobs
            if j in self.owners[i]
        ]

    def _sgd(self, params: list[torch.Tensor], jobs: list[int], rate: float) -> None:
        """torch's SGD step for `jobs` (alike in rate and settings), on their slices."""
        job = self.jobs[jobs[0]]
        rows = self._rows(params, jobs)
        started = self.param_groups[0]["momentum_started"]
        buffers = [
            self.state[params[i]]["momentum_buffer"][r] if job.momentum and started[j] else None
            for i, j, r in rows
        ]
        sgd(
            [params[i][r] for i, _, r in rows],
            [params[i].grad[r] for i, _, r in rows],
            buffers,
            foreach=job.foreach,
            weight_decay=job.weight_decay,
            momentum=job.momentum,
            lr=rate,
            dampening=job.dampening,
            nesterov=job.nesterov,
            maximize=job.maximize,
        )
        if job.momentum:
            self._keep_momentum(params, rows, buffers)

    def _keep_momentum(self, params: list[torch.Tensor], rows: list, buffers: list) -> None:
        """Copy buffers torch created on a job's first step into the stacked ones."""
        started = self.param_groups[0]["momentum_started"]
        for (i, j, r), buffer in zip(rows, buffers, strict=True):
            if not started[j]:
                state = self.state[params[i]]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(params[i])
                state["momentum_buffer"][r].copy_(buffer)
        for _, j, _ in rows:
            started[j] = True

    def _lecture_step(
        self, params: list[torch.Tensor], rates: tuple[float, ...], active: tuple[bool, ...]
    ) -> None:
        scales = self._on_device(("scales", rates), lambda: self._scales(params, rates))
        if all(active):
            lecture_step(params, [p.grad for p in params], scales)
            return
        # 0 * NaN is NaN: a frozen job's update is zeroed instead
        masks = self._on_device(("masks", active), lambda: self._masks(params, active))
        updates = torch._foreach_mul([p.grad for p in params], scales)
        kept = [torch.where(m, u, 0.0) for m, u in zip(masks, updates, strict=True)]
        torch._foreach_add_(params, kept)

    def _on_device(self, key: tuple[Any, ...], make: Any) -> list[torch.Tensor]:
        """Per-parameter tensors made once per `key` (on the parameters' device): a step then
        copies nothing from the host, which a CUDA graph could not capture and which costs a
        GPU step a wait."""
        if key not in self._device_tensors:
            self._device_tensors[key] = make()
        return self._device_tensors[key]

    def _scales(self, params: list[torch.Tensor], rates: tuple[float, ...]) -> list[torch.Tensor]:
        device, dtype = params[0].device, params[0].dtype
        neg = torch.tensor([-r for r in rates], dtype=dtype).to(device)
        return [_per_job(self._of(neg, i), p) for i, p in enumerate(params)]

    def _masks(self, params: list[torch.Tensor], active: tuple[bool, ...]) -> list[torch.Tensor]:
        mask = torch.tensor(active, dtype=torch.bool).to(params[0].device)
        return [_per_job(self._of(mask, i), p) for i, p in enumerate(params)]

    def _of(self, values: torch.Tensor, param: int) -> torch.Tensor:
        """Per-job `values` (N,) for the rows of parameter `param`."""
        rows = self.rows_of[param]
        return values if rows is None else values[rows.to(values.device)]


def _per_job(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(N,) values shaped to broadcast over a stacked tensor (N, ...)."""
    return values.view(-1, *[1] * (like.dim() - 1))
