"""The plots of a sweep's table: each config's training loss and activations by depth (the mean
over its seeds with a 95% confidence band or error bars), and the lecture's distribution plots
with one panel per job.

Matplotlib's object API on the Agg canvas (no pyplot, no display), so the figures render the
same on a headless machine and leave no global state behind between calls.
"""

from __future__ import annotations

import csv
import json
import statistics
import struct
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from makemore_lab.dynamics.figures import plot_densities
from makemore_lab.reports.ablation import NONLINEARITIES
from makemore_lab.reports.intervals import LEVEL, t_interval

Groups = list[tuple[str, list[Path]]]  # (config, its seeds' job directories)


def loss_curves(groups: Groups) -> Figure:
    """Per config, the seeds' mean smoothed training loss, with its 95% confidence band where
    the config has several seeds; configs without logged losses are left out."""
    fig = Figure(figsize=(12, 5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for label, jobs in groups:
        curves = [smoothed(*read_train_loss(job)) for job in jobs]
        curves = [c for c in curves if c[0]]
        if not curves:
            continue
        steps = sorted(set.intersection(*(set(c[0]) for c in curves)))  # every seed's steps
        at = [dict(zip(*c, strict=True)) for c in curves]
        bands = [t_interval([a[step] for a in at]) for step in steps]
        n = len(curves)
        line = ax.plot(steps, [b.mean for b in bands], label=f"{label} (n={n})" if n > 1 else label)
        if n > 1:
            color = line[0].get_color()
            low, high = [b.low for b in bands], [b.high for b in bands]
            ax.fill_between(steps, low, high, color=color, alpha=0.2, linewidth=0)
    ax.set_xlabel("step")
    ax.set_ylabel("train loss (smoothed)")
    ax.set_title(f"training loss: mean over seeds, band = {LEVEL:.0%} confidence interval")
    if ax.lines:
        ax.legend(fontsize="small")
    return fig


def smoothed(steps: list[int], values: list[float]) -> tuple[list[int], list[float]]:
    """Means over windows of ~1% of the curve (~100 points, like the lecture's view)."""
    window = max(1, len(values) // 100)
    means = [statistics.mean(values[i : i + window]) for i in range(0, len(values), window)]
    return steps[::window][: len(means)], means


def read_train_loss(job: Path) -> tuple[list[int], list[float]]:
    """train/loss from the TensorBoard events, else from the CSV logger."""
    steps, values = scalar_series(job / "tensorboard", "train/loss")
    if steps:
        return steps, values
    metrics = job / "csv" / "metrics.csv"
    if metrics.is_file():
        with metrics.open() as f:
            rows = [r for r in csv.DictReader(f) if r.get("train/loss")]
        return [int(r["step"]) for r in rows], [float(r["train/loss"]) for r in rows]
    return [], []


def scalar_series(logdir: Path, tag: str) -> tuple[list[int], list[float]]:
    """(steps, values) of the scalar `tag` in the event files of `logdir`, in step order.

    TensorBoard's own reader checks each record's checksum in pure Python when TensorFlow is
    absent (~40 us a record: half a minute for a 25-job sweep's histograms and images); this
    walks the records as they lie (8-byte length, 4-byte length CRC, data, 4-byte data CRC)
    and parses only those that name the tag.
    """
    from tensorboard.compat.proto.event_pb2 import Event

    key, points = tag.encode(), {}
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        data, offset = path.read_bytes(), 0
        while offset + 12 <= len(data):
            (length,) = struct.unpack_from("<Q", data, offset)
            start, end = offset + 12, offset + 12 + length
            if end + 4 > len(data):  # a record still being written
                break
            if data.find(key, start, end) != -1:
                event = Event.FromString(data[start:end])
                for value in event.summary.value:
                    if value.tag == tag:
                        scalar = value.tensor.float_val if value.HasField("tensor") else None
                        points[event.step] = scalar[0] if scalar else value.simple_value
            offset = end + 4
    steps = sorted(points)
    return steps, [points[step] for step in steps]


def depth_stats(job: Path, end: bool = False) -> tuple[dict[int, float], dict[int, float]]:
    """Activation std and saturation % per nonlinearity layer at step 0 (or the last collected
    step), from dynamics.csv."""
    with (job / "dynamics.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["layer_type"] in NONLINEARITIES]
    step = max((int(r["step"]) for r in rows), default=0) if end else 0
    rows = [r for r in rows if int(r["step"]) == step]
    std = {int(r["layer"]): float(r["value"]) for r in rows if r["stat"] == "act_std"}
    sat = {int(r["layer"]): float(r["value"]) for r in rows if r["stat"] == "act_saturated_pct"}
    return std, sat


def depth_figure(groups: Groups, end: bool = False) -> Figure:
    """Activation std and tanh saturation against depth at init (or the end), a line per
    config: the seeds' mean, with error bars of its 95% confidence interval."""
    fig = Figure(figsize=(12, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax_std, ax_sat = fig.subplots(1, 2)
    deepest = 1
    for label, jobs in groups:
        stats = [depth_stats(job, end) for job in jobs if (job / "dynamics.csv").is_file()]
        if not stats:
            continue
        for ax, which in ((ax_std, 0), (ax_sat, 1)):
            per_seed = [s[which] for s in stats if s[which]]
            depths = sorted(set.intersection(*(set(d) for d in per_seed))) if per_seed else []
            if depths:
                depth_line(ax, depths, per_seed, label)
                deepest = max(deepest, len(depths))
    when = "the end" if end else "init"
    ax_std.set(title=f"activation std at {when}", xlabel="nonlinearity (depth)", ylabel="std")
    ax_sat.set(title=f"tanh saturation at {when}", xlabel="nonlinearity (depth)", ylabel="%")
    for ax in (ax_std, ax_sat):  # depths are whole numbers: no 1.5 on the axis
        ax.set_xticks(range(1, deepest + 1))
        ax.set_xlim(0.5, deepest + 0.5)
    if ax_std.lines:
        ax_std.legend(fontsize="small", title=f"error bars: {LEVEL:.0%} CI over seeds")
    return fig


def depth_line(ax: Any, depths: list[int], per_seed: list[dict[int, float]], label: str) -> None:
    """One config's mean by depth, error bars where it has several seeds."""
    estimates = [t_interval([seed[d] for seed in per_seed]) for d in depths]
    means = [e.mean for e in estimates]
    errors = [[0.0 if e.low is None else e.mean - e.low for e in estimates]]
    errors.append([0.0 if e.high is None else e.high - e.mean for e in estimates])
    positions = range(1, len(depths) + 1)
    n = len(per_seed)
    shown = f"{label} (n={n})" if n > 1 else label
    ax.errorbar(
        positions, means, yerr=errors if n > 1 else None, marker="o", capsize=3, label=shown
    )


def panels_figure(jobs: list[Path], labels: list[str], name: str) -> Figure | None:
    """The lecture's distribution plot `name` (e.g. activations_init) of every job, one panel
    each on shared axes, from the jobs' `distributions.json`; None if no job has it."""
    curves = [read_distributions(job).get(name) for job in jobs]
    shown = [(label, c) for label, c in zip(labels, curves, strict=True) if c]
    if not shown:
        return None
    cols = min(len(shown), 2)
    rows = -(-len(shown) // cols)
    height = 3 * rows
    fig = Figure(figsize=(7 * cols, height))  # margins in inches: constrained layout costs
    FigureCanvasAgg(fig)  # a second per figure at 25 panels
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True).flatten()
    fig.subplots_adjust(
        left=0.6 / (7 * cols), right=0.99, top=1 - 0.7 / height, bottom=0.5 / height,
        hspace=0.4, wspace=0.08,
    )  # fmt: skip
    for ax, (label, lines) in zip(axes, shown, strict=False):
        plot_densities(ax, {k: tuple(v) for k, v in lines.items()})
        ax.set_title(label, fontsize="small")
    for ax in axes[len(shown) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize="x-small")
    what, tag = name.rsplit("_", 1)
    fig.suptitle(
        f"{what.replace('_', ' ')} distribution at {'init' if tag == 'init' else 'the end'}"
    )
    return fig


def read_distributions(job: Path) -> dict[str, Any]:
    """A job's saved densities (`distributions.json`), {} if it has none or it is damaged."""
    try:
        return json.loads((job / "distributions.json").read_text())
    except (OSError, ValueError):
        return {}
