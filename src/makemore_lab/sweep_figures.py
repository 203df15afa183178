"""The plots of a sweep's table: every job's training loss, and activations by depth at init.

Matplotlib's object API on the Agg canvas (no pyplot, no display), so the figures render the
same on a headless machine and leave no global state behind between calls.
"""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from makemore_lab.ablation import NONLINEARITIES


def loss_curves(jobs: list[Path], labels: list[str]) -> Figure:
    """One smoothed training-loss curve per job; jobs without logged losses are left out."""
    fig = Figure(figsize=(12, 5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for job, label in zip(jobs, labels, strict=True):
        steps, values = read_train_loss(job)
        if not steps:
            continue
        window = max(1, len(values) // 100)  # smooth to ~100 points, like the lecture's view
        smooth = [statistics.mean(values[i : i + window]) for i in range(0, len(values), window)]
        ax.plot(steps[::window][: len(smooth)], smooth, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("train loss (smoothed)")
    ax.set_title("training loss")
    if ax.lines:
        ax.legend(fontsize="small")
    return fig


def read_train_loss(job: Path) -> tuple[list[int], list[float]]:
    """train/loss from the TensorBoard events, else from the CSV logger."""
    if (job / "tensorboard").is_dir():
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(job / "tensorboard"), size_guidance={"scalars": 0})
        events.Reload()
        if "train/loss" in events.Tags()["scalars"]:
            points = events.Scalars("train/loss")
            return [p.step for p in points], [p.value for p in points]
    metrics = job / "csv" / "metrics.csv"
    if metrics.is_file():
        with metrics.open() as f:
            rows = [r for r in csv.DictReader(f) if r.get("train/loss")]
        return [int(r["step"]) for r in rows], [float(r["train/loss"]) for r in rows]
    return [], []


def init_stats(job: Path) -> tuple[dict[int, float], dict[int, float]]:
    """Activation std and saturation % per nonlinearity layer at step 0, from dynamics.csv."""
    with (job / "dynamics.csv").open() as f:
        rows = [
            r for r in csv.DictReader(f) if r["step"] == "0" and r["layer_type"] in NONLINEARITIES
        ]
    std = {int(r["layer"]): float(r["value"]) for r in rows if r["stat"] == "act_std"}
    sat = {int(r["layer"]): float(r["value"]) for r in rows if r["stat"] == "act_saturated_pct"}
    return std, sat


def depth_figure(jobs: list[Path], labels: list[str]) -> Figure:
    """Activation std and tanh saturation at init against depth, one line per job."""
    fig = Figure(figsize=(12, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax_std, ax_sat = fig.subplots(1, 2)
    for job, label in zip(jobs, labels, strict=True):
        if not (job / "dynamics.csv").is_file():
            continue
        std, sat = init_stats(job)
        depth = sorted(std)
        positions = range(1, len(depth) + 1)
        ax_std.plot(positions, [std[d] for d in depth], marker="o", label=label)
        if sat:
            ax_sat.plot(
                positions, [sat.get(d, float("nan")) for d in depth], marker="o", label=label
            )
    ax_std.set(title="activation std at init", xlabel="nonlinearity (depth)", ylabel="std")
    ax_sat.set(title="tanh saturation at init", xlabel="nonlinearity (depth)", ylabel="saturated %")
    for ax in (ax_std, ax_sat):  # depths are whole numbers: no 1.5 on the axis
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if ax_std.lines:
        ax_std.legend(fontsize="small")
    return fig
