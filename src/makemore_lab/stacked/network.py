"""Several networks as one: every parameter and buffer gets a leading job dimension.

A sweep's jobs whose Linear layers have the same shapes can run as one network whose matrix
products are batched (`torch.bmm`) and whose BatchNorm statistics are taken per job (over
dim 1). One step then costs about as many kernel launches as one job's, which is what a step
of these small networks is made of. Jobs may differ in values (init gain and scales, seed,
learning rate) and in which BatchNorm and activation layers they have: a layer only some jobs
have is applied to their rows alone (`JobSubset`; `layout.py` says where each job's layers
are). `StackedMLP.from_networks` stacks N solo `model.MLP`s, each initialised from its own
generator exactly as it would be alone; `network_state(i)` gives job i back in its solo
`MLP`'s state_dict form, so everything downstream (evaluation, sampling, checkpoints) reads a
stacked job as a solo one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from makemore_lab.network.layers import BatchNorm1d, Embedding, Linear, update_running_stats
from makemore_lab.network.model import MLP
from makemore_lab.stacked.layout import ELEMENTWISE, Layout, align


def _stack(tensors: Sequence[torch.Tensor]) -> nn.Parameter:
    return nn.Parameter(torch.stack([t.detach() for t in tensors]))


class StackedEmbedding(nn.Module):
    """N lookup tables (N, vocab, n_embd): job j's contexts read job j's table."""

    solo = Embedding

    def __init__(self, layers: Sequence[Embedding]) -> None:
        super().__init__()
        self.weight = _stack([m.weight for m in layers])

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """(N, B, block) indices -> (N, B, block, n_embd) vectors."""
        jobs = torch.arange(idx.shape[0], device=idx.device).view(-1, 1, 1)
        return self.weight[jobs, idx]


class StackedLinear(nn.Module):
    """N `x @ weight + bias` at once: weight (N, fan_in, fan_out), bias (M, 1, fan_out) for the
    M jobs whose layer has one (a Linear before BatchNorm has none)."""

    solo = Linear

    def __init__(self, layers: Sequence[Linear]) -> None:
        super().__init__()
        self.weight = _stack([m.weight for m in layers])
        owners = [j for j, m in enumerate(layers) if m.bias is not None]
        self.bias = _stack([layers[j].bias.view(1, -1) for j in owners]) if owners else None
        partial = 0 < len(owners) < len(layers)
        self.register_buffer("bias_rows", torch.tensor(owners) if partial else None, False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.bmm(x, self.weight)
        if self.bias is None:
            return out
        if self.bias_rows is None:
            return out + self.bias
        # the owners' rows get `out + bias` (the same sum), the others' stay `out`
        return out.index_add(0, self.bias_rows, self.bias.expand(-1, out.shape[1], -1))


class StackedBatchNorm1d(nn.Module):
    """N BatchNorm layers: statistics over each job's batch (dim 1), running stats per job."""

    solo = BatchNorm1d

    def __init__(self, layers: Sequence[BatchNorm1d]) -> None:
        super().__init__()
        first = layers[0]
        self.eps, self.momentum = first.eps, first.momentum
        self.unbiased, self.running = first.unbiased, first.running
        self.gamma = _stack([m.gamma.view(1, -1) for m in layers])
        self.beta = _stack([m.beta.view(1, -1) for m in layers])
        self.register_buffer("running_mean", torch.stack([m.running_mean for m in layers]))
        name = f"running_{self.running}"
        self.register_buffer(name, torch.stack([getattr(m, name) for m in layers]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The solo layer's arithmetic in the same order, with a job dimension in front.
        if self.training:
            mean = x.mean(1, keepdim=True)
            var = x.var(1, keepdim=True, correction=1 if self.unbiased else 0)
            scale = torch.sqrt(var + self.eps)
            tracked = var if self.unbiased else x.var(1, keepdim=True, correction=1)
            self._update_running(mean.squeeze(1), tracked.squeeze(1), scale.squeeze(1))
        elif self.running == "var":
            mean = self.running_mean.unsqueeze(1)
            scale = torch.sqrt(self.running_var.unsqueeze(1) + self.eps)
        else:
            mean, scale = self.running_mean.unsqueeze(1), self.running_std.unsqueeze(1)
        return self.gamma * (x - mean) / scale + self.beta

    def _update_running(self, mean: torch.Tensor, var: torch.Tensor, scale: torch.Tensor) -> None:
        update_running_stats(self, mean, var, scale)


class JobSubset(nn.Module):
    """A layer only some of the group's jobs have: it transforms their rows (`jobs`), and the
    other jobs' rows pass through unchanged, so each job meets its own layers only."""

    def __init__(self, module: nn.Module, jobs: Sequence[int]) -> None:
        super().__init__()
        self.module = module
        self.solo = getattr(module, "solo", type(module))  # what statistics call it
        self.register_buffer("rows", torch.tensor(list(jobs)), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.index_copy(0, self.rows, self.module(x.index_select(0, self.rows)))


STACKED = {Linear: StackedLinear, BatchNorm1d: StackedBatchNorm1d}


def stack_layers(layers: Sequence[nn.Module], jobs: Sequence[int], n_jobs: int) -> nn.Module:
    """One position of the group: the jobs' alike layers as one batched layer."""
    kind = type(layers[0])
    module = layers[0] if kind in ELEMENTWISE else STACKED[kind](layers)
    return module if len(jobs) == n_jobs else JobSubset(module, jobs)


class StackedMLP(nn.Module):
    """N `model.MLP`s trained as one: logits (N, B, vocab) for contexts (N, B, block).

    `layers` holds the group's positions (`layout.align`); `layout` names each job's own
    layers and tensors in them, so per-layer statistics and checkpoints are named as a solo
    run names them.
    """

    def __init__(self, networks: Sequence[MLP]) -> None:
        super().__init__()
        self.jobs, self.block_size = len(networks), networks[0].block_size
        self.embedding = StackedEmbedding([net.embedding for net in networks])
        positions = align([net.layers for net in networks])
        self.layers = nn.ModuleList(
            stack_layers(
                [networks[j].layers[i] for j, i in members], [j for j, _ in members], self.jobs
            )
            for members in positions
        )
        self.layout = Layout.of(self, networks, positions)

    @classmethod
    def from_networks(cls, networks: Sequence[MLP]) -> StackedMLP:
        """Stack `networks`, whose Linear layers must have the same shapes (one stacking group);
        their BatchNorm and activation layers may differ."""
        if len({net.embedding.weight.shape for net in networks}) != 1:
            raise ValueError("only networks with the same embedding table can be stacked")
        return cls(networks)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        emb = self.embedding(idx)  # (N, B, block, n_embd)
        x = emb.reshape(emb.shape[0], emb.shape[1], -1)  # concatenate each context's vectors
        for layer in self.layers:
            x = layer(x)
        return x

    def weights(self) -> dict[str, tuple[str, nn.Parameter]]:
        """The weights the dynamics statistics follow, named as in a solo run: name -> (kind, w)."""
        weights = {"embedding": ("Embedding", self.embedding.weight)}
        for i, layer in enumerate(self.layers):
            if isinstance(layer, StackedLinear):
                weights[str(i)] = ("Linear", layer.weight)
        return weights

    def network_state(self, job: int) -> dict[str, torch.Tensor]:
        """Job `job`'s parameters and buffers under its solo `MLP`'s state_dict names."""
        return self.layout.solo_state(self.state_dict(), job)


def job_losses(model: StackedMLP, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each job's mean cross-entropy on its own minibatch: (N,) for x (N, B, block), y (N, B)."""
    logits = model(x)
    losses = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
    return losses.view(y.shape).mean(1)
