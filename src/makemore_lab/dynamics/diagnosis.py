"""The lecture's rules of thumb, applied to one collected step's statistics: a verdict in words.

Pure functions: `diagnose(values, layers, weights, ...)` reads the statistics the dynamics
callback collected at a step ((layer, stat) -> value) and returns a few lines, or one line
saying the step looks healthy. Each rule names what it looks at; its threshold lives in
`Thresholds` (the callback's `diagnosis:` config), with defaults taken from the lecture's own
statements (docs/reference.md, "The diagnosis", cites them).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from makemore_lab.dynamics.writer import chart_names
from makemore_lab.errors import UserError
from makemore_lab.network.gains import parse_gain
from makemore_lab.validation import number, require

Values = dict[tuple[str, str], float]


@dataclass(frozen=True)
class Thresholds:
    """When a rule fires. Defaults: the lecture's rules of thumb (see the module doc)."""

    saturated_pct: float = 20.0  # median tanh layer: a few % is healthy, tens of % too high
    vanishing_ratio: float = 0.6  # last / first nonlinearity std: shrinking with depth
    growing_ratio: float = 2.0  # last / first nonlinearity std: growing with depth
    update_low_log10: float = -4.0  # fastest hidden weight: far below the ~1e-3 rule
    update_high_log10: float = -2.0  # fastest hidden weight: far above the ~1e-3 rule
    diverging_log10: float = -1.0  # fastest hidden weight: a tenth of its size per step
    output_grad_ratio: float = 10.0  # output layer's grad:data over the hidden layers' median
    dead_pct: float = 10.0  # ReLU units dead for the whole batch


def thresholds_of(settings: dict[str, Any] | None) -> Thresholds:
    """`callbacks.dynamics.diagnosis` as Thresholds; an unknown key or a non-number refused."""
    known = Thresholds.__dataclass_fields__
    for key, value in (settings or {}).items():
        if key not in known:
            raise UserError(
                f"callbacks.dynamics.diagnosis.{key} is not a rule threshold; the thresholds "
                f"are {', '.join(known)} (conf/callbacks/default.yaml)."
            )
        require(f"callbacks.dynamics.diagnosis.{key}", value, number())
    return Thresholds(**(settings or {}))


def _nonlinear(values: Values, layers: dict[str, str], stat: str) -> list[tuple[str, float]]:
    """(chart name, value) of `stat` for each nonlinearity (Tanh, ReLU, Identity), in order."""
    kinds = ("Tanh", "ReLU", "Identity")
    names = chart_names(layers)
    return [
        (names[n], values[(n, stat)])
        for n, k in layers.items()
        if k in kinds and (n, stat) in values
    ]


def _linear_ratios(values: Values, weights: dict[str, Any], stat: str) -> list[tuple[str, float]]:
    """(chart name, value) of a weight statistic for every Linear weight, in network order."""
    names = chart_names({n: kind for n, (kind, _) in weights.items()})
    return [
        (names[n], values[(n, stat)])
        for n, (kind, _) in weights.items()
        if kind == "Linear" and (n, stat) in values
    ]


def saturation(values: Values, layers: dict[str, str], t: Thresholds, hint: str) -> list[str]:
    """Tanh layers' saturated share (act_saturated_pct), median over the layers."""
    sat = [(n, v) for n, v in _nonlinear(values, layers, "act_saturated_pct")]
    if not sat or statistics.median(v for _, v in sat) <= t.saturated_pct:
        return []
    name, worst = max(sat, key=lambda nv: nv[1])
    return [
        f"tanh saturation: median {statistics.median(v for _, v in sat):.0f}% of units in "
        f"the flat tails, {worst:.0f}% in {name} (healthy: a few %, up to ~{t.saturated_pct:g}%); "
        f"their gradients vanish. {hint}"
    ]


def depth_trend(values: Values, layers: dict[str, str], t: Thresholds, gain: Any) -> list[str]:
    """The nonlinearities' output std (act_std), first layer against last."""
    stds = _nonlinear(values, layers, "act_std")
    if len(stds) < 2 or stds[0][1] <= 0:
        return []
    (first, a), (last, b) = stds[0], stds[-1]
    ratio = b / a
    if ratio < t.vanishing_ratio:
        return [
            f"activations vanish with depth: std {a:.2f} in {first}, {b:.2f} in {last} "
            f"(x{ratio:.2f}); the gain is too small for the nonlinearity (init.gain={gain}; "
            f"5/3 is tanh's), or set model.batchnorm=true"
        ]
    if ratio > t.growing_ratio:
        return [
            f"activations grow with depth: std {a:.2f} in {first}, {b:.2f} in {last} "
            f"(x{ratio:.2f}); lower init.gain (it is {gain}), or set model.batchnorm=true"
        ]
    return []


def update_speed(
    values: Values, weights: dict[str, Any], t: Thresholds, lr: Any, speed: bool = True
) -> list[str]:
    """update:data (update_data_ratio_log10) of the hidden Linear weights; the output layer's,
    scaled down at init by design, and the embedding are left out. `speed=False`: the
    divergence risk only (at the end a decayed learning rate makes slow updates expected)."""
    ratios = _linear_ratios(values, weights, "update_data_ratio_log10")[:-1]
    if not ratios:
        return []
    name, top = max(ratios, key=lambda nv: nv[1])
    if not speed and top <= t.diverging_log10:
        return []
    if top < t.update_low_log10:
        return [
            f"slow learning: the fastest hidden weight ({name}) moves by 10^{top:.1f} of its "
            f"size per step, far below ~10^-3: the learning rate may be too small "
            f"(optim.lr={lr})"
        ]
    if top > t.diverging_log10:
        return [
            f"divergence risk: {name} moves by 10^{top:.1f} of its size per step; lower "
            f"optim.lr (it is {lr})"
        ]
    if top > t.update_high_log10:
        return [
            f"fast learning: {name} moves by 10^{top:.1f} of its size per step, far above "
            f"~10^-3: the learning rate may be too large (optim.lr={lr}), or, with "
            f"BatchNorm, the weights too small for it (init.gain)"
        ]
    return []


def output_gradient(values: Values, weights: dict[str, Any], t: Thresholds) -> list[str]:
    """grad:data (grad_data_ratio) of the output layer against the hidden layers' median."""
    ratios = _linear_ratios(values, weights, "grad_data_ratio")
    if len(ratios) < 2:
        return []
    (name, last), hidden = ratios[-1], statistics.median(v for _, v in ratios[:-1])
    if hidden <= 0 or last / hidden <= t.output_grad_ratio:
        return []
    return [
        f"output layer: its grad:data ratio is {last / hidden:.0f}x the hidden layers' "
        f"({name}): its weights start scaled down (init.output_scale), so the first updates "
        f"go mostly there; the lecture expects this to settle as training goes on"
    ]


def dead_units(values: Values, layers: dict[str, str], t: Thresholds) -> list[str]:
    """ReLU units that output 0 for the whole batch (act_dead_pct)."""
    dead = [(n, v) for n, v in _nonlinear(values, layers, "act_dead_pct") if v > t.dead_pct]
    return [
        f"dead ReLUs: {v:.0f}% of {n}'s units output 0 for the whole batch (they no longer "
        f"learn); lower optim.lr or init.gain"
        for n, v in dead
    ]


def _at_most_tanh_gain(gain: Any) -> bool:
    """Whether init.gain is already tanh's 5/3 or below (then 5/3 is no advice)."""
    try:
        return parse_gain(gain) <= 5 / 3 + 1e-9
    except UserError:
        return False


def diagnose(
    values: Values,
    layers: dict[str, str],
    weights: dict[str, Any],
    context: dict[str, Any],
    thresholds: Thresholds,
    when: str,
) -> list[str]:
    """The rules' findings at one collected step, each prefixed with `when` ('init', 'end');
    one 'healthy' line when none fires. `context`: init.gain, optim.lr, model.batchnorm.

    Saturation, the update speed and the output layer are rules about the initialization and
    read at init; at the end, trained layers saturate by choice and a decayed learning rate
    slows the updates, so only depth trends, dead units and divergence risk are read there."""
    gain, lr = context.get("gain", "?"), context.get("lr", "?")
    fix = f"Lower init.gain (it is {gain}"
    fix += "" if _at_most_tanh_gain(gain) else "; 5/3 is tanh's gain"
    fix += ")" if context.get("batchnorm") else ") or set model.batchnorm=true"
    at_init = when == "init"
    found = [
        *(saturation(values, layers, thresholds, fix + ".") if at_init else []),
        *depth_trend(values, layers, thresholds, gain),
        *update_speed(values, weights, thresholds, lr, speed=at_init),
        *dead_units(values, layers, thresholds),
        *(output_gradient(values, weights, thresholds) if at_init else []),
    ]
    if not found:
        what = (
            "saturation, activation std over depth and update:data"
            if at_init
            else ("activation std over depth and update:data")
        )
        return [f"{when}: healthy ({what} within the lecture's ranges)"]
    return [f"{when}: {line}" for line in found]
