"""The diagnosis reads the statistics as the lecture does: each rule fires on a run built to
trigger it, and stays quiet on the lecture's healthy default.

Pure-function cases pin each rule at its threshold; short real runs check that the configs the
lecture discusses (no BatchNorm with gain 3, gain 0.5, a tiny or a large learning rate) are
named for what they are, in `metrics.json`, `dynamics.md` and the ablation table.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from makemore_lab.dynamics.diagnosis import Thresholds, diagnose, thresholds_of
from makemore_lab.errors import UserError
from makemore_lab.reports.ablation import short_diagnosis
from makemore_lab.train import train

# A 2-block tanh network: Linear 0, Tanh 1, Linear 2, Tanh 3, output Linear 4.
LAYERS = {"0": "Linear", "1": "Tanh", "2": "Linear", "3": "Tanh", "4": "Linear"}
WEIGHTS = {"0": ("Linear", (30, 100)), "2": ("Linear", (100, 100)), "4": ("Linear", (100, 27))}
CONTEXT = {"gain": "5/3", "lr": 0.1, "batchnorm": False}


def healthy(**changes: float) -> dict[tuple[str, str], float]:
    """Statistics of a healthy step, with some values changed: {'1.act_std': 0.2, ...}."""
    values = {
        ("1", "act_std"): 0.65,
        ("3", "act_std"): 0.64,
        ("1", "act_saturated_pct"): 4.0,
        ("3", "act_saturated_pct"): 3.0,
        ("0", "update_data_ratio_log10"): -3.0,
        ("2", "update_data_ratio_log10"): -2.9,
        ("4", "update_data_ratio_log10"): -2.5,
        ("0", "grad_data_ratio"): 0.01,
        ("2", "grad_data_ratio"): 0.01,
        ("4", "grad_data_ratio"): 0.02,
    }
    for key, value in changes.items():
        layer, stat = key.split(".")
        values[(layer, stat)] = value
    return values


def verdict(values: dict, when: str = "init", **context) -> list[str]:
    return diagnose(values, LAYERS, WEIGHTS, {**CONTEXT, **context}, Thresholds(), when)


def test_a_healthy_step_says_so_in_one_line() -> None:
    assert verdict(healthy()) == [
        "init: healthy (saturation, activation std over depth and update:data within the "
        "lecture's ranges)"
    ]


@pytest.mark.parametrize(
    ("changes", "finding"),
    [
        ({"1.act_saturated_pct": 47, "3.act_saturated_pct": 40}, "tanh saturation: median 44%"),
        ({"3.act_std": 0.2}, "activations vanish with depth: std 0.65 in block1_Tanh"),
        ({"1.act_std": 0.2}, "activations grow with depth"),
        ({"2.update_data_ratio_log10": -4.5, "0.update_data_ratio_log10": -4.6}, "slow learning"),
        ({"2.update_data_ratio_log10": -1.5}, "fast learning: block2_Linear moves by 10^-1.5"),
        ({"2.update_data_ratio_log10": -0.5}, "divergence risk"),
        ({"4.grad_data_ratio": 1.2}, "output layer: its grad:data ratio is 120x"),
    ],
)
def test_each_rule_fires_past_its_threshold(changes: dict, finding: str) -> None:
    lines = verdict(healthy(**changes))
    assert any(finding in line for line in lines), lines
    assert all(line.startswith("init: ") for line in lines)


def test_rules_stay_quiet_at_their_thresholds() -> None:
    t = Thresholds()
    at = healthy(
        **{
            "1.act_saturated_pct": t.saturated_pct,
            "3.act_saturated_pct": t.saturated_pct,
            "3.act_std": 0.65 * t.vanishing_ratio,
            "2.update_data_ratio_log10": t.update_high_log10,
            "4.grad_data_ratio": 0.01 * t.output_grad_ratio,
        }
    )
    assert verdict(at)[0].startswith("init: healthy")


def test_the_advice_names_this_runs_settings() -> None:
    lines = verdict(healthy(**{"1.act_saturated_pct": 50, "3.act_saturated_pct": 50}), gain=3)
    assert "Lower init.gain (it is 3; 5/3 is tanh's gain) or set model.batchnorm=true" in lines[0]
    with_bn = verdict(
        healthy(**{"1.act_saturated_pct": 50, "3.act_saturated_pct": 50}), gain=3, batchnorm=True
    )
    assert "model.batchnorm=true" not in with_bn[0]


def test_the_output_layer_rule_speaks_at_init_only() -> None:
    assert verdict(healthy(**{"4.grad_data_ratio": 1.2}), when="end")[0].startswith("end: healthy")


def test_dead_relus_are_named() -> None:
    layers = {"0": "Linear", "1": "ReLU", "2": "Linear"}
    values = {("1", "act_dead_pct"): 35.0, ("1", "act_std"): 0.5}
    lines = diagnose(values, layers, {}, CONTEXT, Thresholds(), "end")
    assert lines == [
        "end: dead ReLUs: 35% of block1_ReLU's units output 0 for the whole batch (they no "
        "longer learn); lower optim.lr or init.gain"
    ]


def test_a_threshold_that_is_not_one_is_refused() -> None:
    with pytest.raises(UserError, match=r"diagnosis\.saturation is not a rule threshold"):
        thresholds_of({"saturation": 10})
    with pytest.raises(UserError, match=r"diagnosis\.dead_pct='a lot' is not valid"):
        thresholds_of({"dead_pct": "a lot"})


@pytest.mark.parametrize(
    ("overrides", "finding"),
    [
        ([], "init: healthy"),
        (["model.batchnorm=false", "init.gain=3"], "init: tanh saturation"),
        (["model.batchnorm=false", "init.gain=0.5"], "init: activations vanish with depth"),
        (["optim.lr=0.0001"], "init: slow learning"),
        (["optim.lr=3.0"], "init: fast learning"),
    ],
)
def test_real_runs_are_diagnosed_as_the_lecture_reads_them(
    make_cfg, tmp_path: Path, overrides: list[str], finding: str
) -> None:
    cfg = make_cfg(*overrides, f"run_dir={tmp_path / 'run'}")
    metrics = train(cfg)
    assert any(line.startswith(finding) for line in metrics["diagnosis"]), metrics["diagnosis"]
    assert f"- {finding}" in (tmp_path / "run" / "dynamics.md").read_text()
    assert short_diagnosis(metrics["diagnosis"]).startswith(finding.split(" (")[0])


def test_at_the_end_only_depth_dead_units_and_divergence_are_read() -> None:
    # Trained tanh layers saturate by choice, and a decayed learning rate slows every update.
    saturated_and_slow = healthy(
        **{"1.act_saturated_pct": 40, "3.act_saturated_pct": 40, "2.update_data_ratio_log10": -5}
    )
    saturated_and_slow[("0", "update_data_ratio_log10")] = -5
    assert verdict(saturated_and_slow, when="end") == [
        "end: healthy (activation std over depth and update:data within the lecture's ranges)"
    ]
    diverging = verdict(healthy(**{"2.update_data_ratio_log10": -0.5}), when="end")
    assert diverging[0].startswith("end: divergence risk")
