"""Where each job's own layers sit in a stacked group, and each group tensor's rows by job.

Jobs of one group may differ in which layers they have: BatchNorm on or off, tanh, ReLU or
none. `align` lays their layer lists side by side as one list of positions: a position all
jobs share (the same kind and shape: one batched layer), or one only some jobs have (their
BatchNorm, their activation), which the others' rows pass through unchanged. So job j's rows
meet exactly its own layers, in its own order, and its numbers are its solo run's.

`Layout` keeps what that means for names: group tensor `layers.1.module.gamma` holds, row by
row, the solo tensors `layers.1.gamma` of the jobs that have that BatchNorm. It is the one owner
of the conversion between a group's state and each job's solo state (`solo_state`,
`group_state`), which evaluation, checkpoints and the dynamics statistics read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from makemore_lab.network.layers import BatchNorm1d, Identity, Linear, ReLU, Tanh

ELEMENTWISE = (Tanh, ReLU, Identity)  # the same module serves any number of jobs
OPTIONAL = (BatchNorm1d, *ELEMENTWISE)  # layers a job may have and another not, at one place


def signature(layer: nn.Module) -> tuple[Any, ...]:
    """What layers must share to be one batched layer: kind and shapes (a Linear's bias may be
    some jobs' only), and a BatchNorm's settings."""
    if isinstance(layer, Linear):
        return (Linear, tuple(layer.weight.shape))
    if isinstance(layer, BatchNorm1d):
        settings = (layer.eps, layer.momentum, layer.unbiased, layer.running)
        return (BatchNorm1d, tuple(layer.gamma.shape), *settings)
    return (type(layer),)


def align(layers: Sequence[Sequence[nn.Module]]) -> list[list[tuple[int, int]]]:
    """The group's positions, each a list of (job, index of the job's layer there).

    Where every job's next layer is alike, one position takes them all; otherwise the jobs whose
    next layer is optional and alike (a BatchNorm first, else an activation) take one position
    of their own, and the others wait. Linear layers of other shapes cannot be aligned:
    ValueError.
    """
    cursors = [0] * len(layers)
    positions: list[list[tuple[int, int]]] = []
    while True:
        heads = {j: layers[j][c] for j, c in enumerate(cursors) if c < len(layers[j])}
        if not heads:
            return positions
        if len(heads) == len(layers) and len({signature(m) for m in heads.values()}) == 1:
            members = list(heads)
        else:
            # A BatchNorm first: it comes before its block's activation, which then may be
            # every job's (BatchNorm on and off, one tanh position for all).
            optional = [j for j, m in heads.items() if isinstance(m, BatchNorm1d)]
            optional = optional or [j for j, m in heads.items() if isinstance(m, OPTIONAL)]
            if not optional:
                raise ValueError(
                    "only networks whose Linear layers have the same shapes, in the same "
                    "order, can be stacked"
                )
            first = signature(heads[optional[0]])
            members = [j for j in optional if signature(heads[j]) == first]
        positions.append([(j, cursors[j]) for j in members])
        for j in members:
            cursors[j] += 1


@dataclass(frozen=True)
class Rows:
    """One group tensor: row k is job `jobs[k]`'s solo tensor `names[k]`, of shape `solo_shape`."""

    jobs: tuple[int, ...]
    names: tuple[str, ...]
    solo_shape: tuple[int, ...]
    row_shape: tuple[int, ...]  # how the group holds one job's (a bias as (1, features))


# A group module and, per job it serves, that job's module and its state_dict prefix.
Part = tuple[str, nn.Module, list[tuple[int, str, nn.Module]]]


@dataclass
class Layout:
    """A group's positions and tensors by job (see the module doc)."""

    n_jobs: int
    positions: list[list[tuple[int, int]]]
    tensors: dict[str, Rows]  # group state_dict name -> its rows
    params: list[str]  # the group's parameter names, in `parameters()` order

    @classmethod
    def of(cls, group: nn.Module, networks: Sequence[nn.Module], positions: list) -> Layout:
        """The layout of `group` (a `StackedMLP`) stacked from `networks` at `positions`."""
        jobs = range(len(networks))
        parts: list[Part] = [
            ("embedding", group.embedding, [(j, "embedding", networks[j].embedding) for j in jobs])
        ]
        for p, members in enumerate(positions):
            solo = [(j, f"layers.{i}", networks[j].layers[i]) for j, i in members]
            parts.append((f"layers.{p}", group.layers[p], solo))
        tensors = {}
        for prefix, module, solo in parts:
            for key, t in module.state_dict().items():
                local = key.removeprefix("module.")  # a `JobSubset` wraps the batched layer
                own = [(j, f"{sp}.{local}", m) for j, sp, m in solo if local in m.state_dict()]
                if not own:
                    continue  # a layer shared by reference (an activation) has no state
                shape = tuple(own[0][2].state_dict()[local].shape)
                jobs_, names = tuple(j for j, _, _ in own), tuple(n for _, n, _ in own)
                tensors[f"{prefix}.{key}"] = Rows(jobs_, names, shape, tuple(t.shape[1:]))
        params = [name for name, _ in group.named_parameters()]
        return cls(len(networks), positions, tensors, params)

    def owners(self, name: str) -> tuple[int, ...]:
        """The jobs group tensor `name` holds a row of, in row order."""
        return self.tensors[name].jobs

    def layer_names(self, job: int) -> dict[str, str]:
        """Group layer name -> the job's own (the dynamics statistics' names), for the layers
        the job has; the embedding keeps its name."""
        names = {"embedding": "embedding"}
        for p, members in enumerate(self.positions):
            names |= {str(p): str(i) for j, i in members if j == job}
        return names

    def solo_state(self, group: dict[str, torch.Tensor], job: int) -> dict[str, torch.Tensor]:
        """Job `job`'s tensors under its solo network's state_dict names, cut out of `group`."""
        state = {}
        for name, rows in self.tensors.items():
            if job in rows.jobs:
                k = rows.jobs.index(job)
                state[rows.names[k]] = group[name][k].reshape(rows.solo_shape).clone()
        return state

    def group_state(
        self, solos: Sequence[dict[str, torch.Tensor]], names: Sequence[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """The group's tensors (or those `names` ones) from each job's solo state:
        `solo_state`'s inverse."""
        group = {}
        for name in self.tensors if names is None else names:
            rows = self.tensors[name]
            own = zip(rows.jobs, rows.names, strict=True)
            group[name] = torch.stack([solos[j][n].reshape(rows.row_shape) for j, n in own])
        return group
