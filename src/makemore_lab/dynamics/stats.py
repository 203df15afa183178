"""The lecture's statistics of a network's insides, as pure functions: tensors in, named values out.

No Lightning, no I/O: the dynamics callback captures the tensors (layer outputs, their
gradients, weights before and after an update) and hands them here. Every tensor is one
network's, 2-D (batch x features, or a weight matrix), or several same-shaped networks' stacked
along a leading dimension (3-D): each statistic reduces over the last two dimensions, so it
comes out as a scalar, or as one value per stacked network.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

ONE_NETWORK = (-2, -1)  # the dimensions that belong to one network: reduce over these


class Stat(NamedTuple):
    """One statistic of one layer: e.g. ('2', 'Tanh', 'act_saturated_pct', tensor(21.4))."""

    layer: str
    kind: str
    name: str
    value: torch.Tensor


class WeightStep(NamedTuple):
    """A weight around one optimizer step: its gradient, and its values before and after."""

    kind: str
    grad: torch.Tensor
    before: torch.Tensor
    after: torch.Tensor


def activation_stats(out: torch.Tensor, kind: str, threshold: float) -> dict[str, torch.Tensor]:
    """Mean and std of a layer's output; tanh: % of units with |t| > threshold (saturated);
    ReLU: % of units that are 0 for the whole batch (dead)."""
    t = out.float()
    stats = {"act_mean": t.mean(ONE_NETWORK), "act_std": t.std(ONE_NETWORK)}
    if kind == "Tanh":
        stats["act_saturated_pct"] = (t.abs() > threshold).float().mean(ONE_NETWORK) * 100
    elif kind == "ReLU":
        stats["act_dead_pct"] = (t == 0).all(dim=-2).float().mean(-1) * 100
    return stats


def activation_grad_stats(grad: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean and std of d loss / d output: how much signal flows back through the layer."""
    g = grad.float()
    return {"act_grad_mean": g.mean(ONE_NETWORK), "act_grad_std": g.std(ONE_NETWORK)}


def weight_stats(step: WeightStep) -> dict[str, torch.Tensor]:
    """Gradient mean/std, grad:data ratio and log10 of the update:data ratio of a weight.

    The lecture's rule of thumb: updates about 1e-3 of the data (log10 -3) train well.
    """
    g, before = step.grad.float(), step.before.float()
    data_std = before.std(ONE_NETWORK)
    update = step.after.float() - before
    return {
        "weight_grad_mean": g.mean(ONE_NETWORK),
        "weight_grad_std": g.std(ONE_NETWORK),
        "grad_data_ratio": g.std(ONE_NETWORK) / data_std,
        "update_data_ratio_log10": torch.log10(update.std(ONE_NETWORK) / data_std),
    }


def collect(
    outputs: dict[str, torch.Tensor],
    output_grads: dict[str, torch.Tensor],
    kinds: dict[str, str],
    weights: dict[str, WeightStep],
    threshold: float,
) -> list[Stat]:
    """Every statistic of one collected step, layers in the order of `outputs`, then weights.

    `kinds` names each layer's type ('Tanh', 'Linear', ...); a layer whose output gradient was
    not captured (no gradient flows to it) gets activation statistics only.
    """
    stats: list[Stat] = []
    for layer, out in outputs.items():
        kind = kinds[layer]
        values = activation_stats(out, kind, threshold)
        if layer in output_grads:
            values |= activation_grad_stats(output_grads[layer])
        stats += [Stat(layer, kind, name, value) for name, value in values.items()]
    for layer, step in weights.items():
        stats += [Stat(layer, step.kind, n, v) for n, v in weight_stats(step).items()]
    return stats


def to_numbers(stats: list[Stat]) -> list[float] | list[list[float]]:
    """The values as Python numbers in one device sync (one list per network when stacked)."""
    if not stats:
        return []
    return torch.stack([s.value.detach().float() for s in stats]).tolist()
