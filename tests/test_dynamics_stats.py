"""The dynamics statistics are pure functions: checked by hand on tiny tensors, and per network
when several networks' tensors are stacked along a leading dimension."""

from __future__ import annotations

import math

import pytest
import torch

from makemore_lab.dynamics.stats import (
    WeightStep,
    activation_stats,
    collect,
    to_numbers,
    weight_stats,
)


def test_tanh_saturation_is_the_share_of_units_beyond_the_threshold() -> None:
    t = torch.tensor([[0.5, -0.98], [0.99, 0.1]])
    stats = {k: v.item() for k, v in activation_stats(t, "Tanh", 0.97).items()}
    mean = (0.5 - 0.98 + 0.99 + 0.1) / 4
    var = sum((v - mean) ** 2 for v in (0.5, -0.98, 0.99, 0.1)) / 3  # Bessel, as torch.std
    assert stats["act_mean"] == pytest.approx(mean, rel=1e-6)
    assert stats["act_std"] == pytest.approx(math.sqrt(var), rel=1e-6)
    assert stats["act_saturated_pct"] == 50.0  # -0.98 and 0.99
    assert "act_dead_pct" not in stats


def test_a_dead_relu_unit_is_zero_for_the_whole_batch() -> None:
    t = torch.tensor([[0.0, 1.0, 0.0], [0.0, 2.0, 3.0]])  # unit 0 dead; unit 2 alive once
    stats = activation_stats(t, "ReLU", 0.97)
    assert stats["act_dead_pct"].item() == pytest.approx(100 / 3)
    assert "act_saturated_pct" not in stats


def test_weight_ratios_are_the_lectures_formulas() -> None:
    g = torch.Generator().manual_seed(0)
    before, grad, lr = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g), 0.1
    stats = weight_stats(WeightStep("Linear", grad, before, before - lr * grad))
    assert stats["grad_data_ratio"].item() == pytest.approx((grad.std() / before.std()).item())
    lecture = math.log10((lr * grad).std().item() / before.std().item())  # the notebook's ud
    assert stats["update_data_ratio_log10"].item() == pytest.approx(lecture, abs=1e-6)
    assert stats["weight_grad_mean"].item() == pytest.approx(grad.mean().item())


def test_stacked_networks_get_the_statistics_each_would_get_alone() -> None:
    g = torch.Generator().manual_seed(1)
    m = 3  # networks stacked along dim 0

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(m, *shape, generator=g)

    outputs = {"0": randn(8, 6), "1": torch.tanh(randn(8, 6) * 3), "2": randn(8, 6).relu()}
    grads = {"0": randn(8, 6), "1": randn(8, 6)}  # no gradient reached layer 2
    kinds = {"0": "Linear", "1": "Tanh", "2": "ReLU"}
    before, grad = randn(6, 4), randn(6, 4)
    weights = {"0": WeightStep("Linear", grad, before, before - 0.1 * grad)}
    stacked = to_numbers(collect(outputs, grads, kinds, weights, 0.97))
    for i in range(m):
        alone = collect(
            {k: v[i] for k, v in outputs.items()},
            {k: v[i] for k, v in grads.items()},
            kinds,
            {"0": WeightStep("Linear", grad[i], before[i], before[i] - 0.1 * grad[i])},
            0.97,
        )
        assert [s.value.item() for s in alone] == pytest.approx([row[i] for row in stacked])
    names = [(s.layer, s.name) for s in collect(outputs, grads, kinds, weights, 0.97)]
    assert ("2", "act_dead_pct") in names and ("2", "act_grad_std") not in names
    assert names[-1] == ("0", "update_data_ratio_log10")  # weights come after the layers
