"""Hand-written layers of the makemore MLP, as in the lecture, but as real `nn.Module`s.

Each forward pass is written out (matmul, mean, var) rather than calling `nn.Linear` or
`F.batch_norm`, so the math the lecture explains is the math that runs. Unlike the notebook's
layers they keep no `.out`: the dynamics callback reads outputs and their gradients through
forward hooks, on the steps it collects only. Weights are created empty here;
`initialization.py` draws them, in layer order.
"""

from __future__ import annotations

import torch
from torch import nn

from makemore_lab.network.choices import ACTIVATION_NAMES, RUNNING_STATS


class Embedding(nn.Module):
    """A lookup table: row `i` of `weight` is the vector of character `i` (the lecture's `C`)."""

    def __init__(self, num_embeddings: int, embedding_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_embeddings, embedding_dim))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.weight[idx]

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, {self.weight.shape[1]}"


class Linear(nn.Module):
    """`x @ weight + bias`, with `weight` stored (fan_in, fan_out) as in the lecture."""

    def __init__(self, fan_in: int, fan_out: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(fan_in, fan_out))
        self.bias = nn.Parameter(torch.zeros(fan_out)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x @ self.weight
        if self.bias is not None:
            out = out + self.bias
        return out

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, {self.weight.shape[1]}, bias={self.bias is not None}"


class BatchNorm1d(nn.Module):
    """Batch normalization over dim 0: batch statistics in training, running ones in eval.

    `unbiased=True` is the lecture's choice (`x.var(0)`, Bessel-corrected) for both normalising
    and tracking. `unbiased=False` is `torch.nn.BatchNorm1d`'s: normalise by the biased variance,
    track the unbiased one. `running="std"` is the lecture's first network, which divides by the
    batch std (use `eps=0` for its exact form) and keeps a running *std* instead of a variance.
    """

    def __init__(
        self,
        dim: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        unbiased: bool = True,
        running: str = "var",
    ) -> None:
        super().__init__()
        if running not in RUNNING_STATS:
            raise ValueError(f"running must be one of {RUNNING_STATS}, got {running!r}")
        self.eps, self.momentum, self.unbiased, self.running = eps, momentum, unbiased, running
        self.gamma = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer(f"running_{running}", torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            mean = x.mean(0)
            var = x.var(0, correction=1 if self.unbiased else 0)
            scale = torch.sqrt(var + self.eps)
            self._update_running(mean, var if self.unbiased else x.var(0, correction=1), scale)
        elif self.running == "var":
            mean, scale = self.running_mean, torch.sqrt(self.running_var + self.eps)
        else:
            mean, scale = self.running_mean, self.running_std
        return self.gamma * (x - mean) / scale + self.beta

    def _update_running(self, mean: torch.Tensor, var: torch.Tensor, scale: torch.Tensor) -> None:
        update_running_stats(self, mean, var, scale)

    def extra_repr(self) -> str:
        return (
            f"{self.gamma.shape[0]}, eps={self.eps}, momentum={self.momentum}, "
            f"unbiased={self.unbiased}, running={self.running!r}"
        )


@torch.no_grad()
def update_running_stats(
    bn: nn.Module, mean: torch.Tensor, var: torch.Tensor, scale: torch.Tensor
) -> None:
    """The lecture's `(1 - m) * running + m * batch`, rounded the same way, in place.

    Shared by `BatchNorm1d` and its stacked form (whose buffers have a job dimension in front).
    """
    m = bn.momentum
    bn.running_mean.mul_(1 - m).add_(m * mean)
    if bn.running == "var":
        bn.running_var.mul_(1 - m).add_(m * var)
    else:
        bn.running_std.mul_(1 - m).add_(m * scale)


class Tanh(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x)


class ReLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp_min(x, 0.0)


class Identity(nn.Module):
    """No nonlinearity: the 'linear' ablation, showing what depth does without one."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


# model.activation: each name of ACTIVATION_NAMES (network/choices.py), in its order
ACTIVATIONS: dict[str, type[nn.Module]] = dict(
    zip(ACTIVATION_NAMES, (Tanh, ReLU, Identity), strict=True)
)


def layer_kind(layer: nn.Module) -> str:
    """A layer's type name ('Linear', 'BatchNorm1d', 'Tanh'): what statistics call it (a stacked
    layer names the solo layer it stacks, its `solo`)."""
    return getattr(layer, "solo", type(layer)).__name__
