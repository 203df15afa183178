"""The lecture's diagnostic plots, drawn with matplotlib's object API (no pyplot state).

Each function returns a Figure on an Agg canvas at `DPI`, ready to render once (`render.draw`)
for both the PNG and the loggers. Margins are fixed rather than computed by a layout engine:
constrained layout measured about a third of a figure's cost, and these figures have a known
shape. Titles sit at a fixed height for the same reason (matplotlib otherwise measures every
tick label to see whether the title must move up), and the heat map's panels (17 for the deep
network) keep about four ticks an axis: most of a figure's time is its tick labels. Plain lists
and numpy arrays in, no torch: the figures are drawn in worker processes (`render.py`).
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

DPI = 80  # 960 x 280 pixels for the 12 x 3.5 inch plots


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _one_axes(title: str) -> tuple[Figure, Axes]:
    """A wide figure with one plot, margins fitted to a title and axis labels."""
    fig = _figure(12, 3.5)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.15, top=0.9)
    ax = fig.subplots()
    ax.set_title(title, y=1.0)
    return fig, ax


Density = tuple[list[float], list[float]]  # bin left edges, density


def plot_densities(ax: Axes, lines: dict[str, Density]) -> None:
    for label, (x, y) in lines.items():
        ax.plot(x, y, label=label)


def distribution_figure(lines: dict[str, Density], title: str) -> Figure:
    """One density line per layer, like the lecture's `torch.histogram(t, density=True)` plots."""
    fig, ax = _one_axes(title)
    plot_densities(ax, lines)
    if ax.lines:  # a diverged run may leave nothing finite to draw
        ax.legend(fontsize="small")
    return fig


def update_ratio_figure(series: dict[str, tuple[list[int], list[float]]]) -> Figure:
    """log10(update std / data std) per weight over training, with the lecture's 1e-3 line."""
    fig, ax = _one_axes("update:data ratio")
    for label, (steps, values) in series.items():
        ax.plot(steps, values, label=label)
    ax.axhline(-3, color="k", linewidth=1, label="1e-3 (the rule of thumb)")
    ax.set_xlabel("step")
    ax.set_ylabel("log10(update std / data std)")
    ax.legend(fontsize="small")
    return fig


def heatmap_figure(heatmaps: dict[str, tuple[list[int], np.ndarray, float, float]]) -> Figure:
    """Per layer, its activation histogram (x) at each collected step (y): how it evolves."""
    n = max(len(heatmaps), 1)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig = _figure(4.5 * cols, 3.2 * rows)
    # Fixed room in inches: the title (0.8) on top, labels below and between the plots.
    height = 3.2 * rows
    fig.subplots_adjust(
        left=0.08, right=0.98, bottom=0.5 / height, top=1 - 0.8 / height, hspace=0.6, wspace=0.35
    )
    axes = fig.subplots(rows, cols, squeeze=False).flatten()
    for ax, (label, (steps, counts, lo, hi)) in zip(axes, heatmaps.items(), strict=False):
        density = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        top = steps[-1] if len(steps) > 1 else steps[0] + 1
        ax.imshow(
            density,
            aspect="auto",
            origin="lower",
            cmap="viridis",
            extent=(lo, hi, steps[0], top),
            interpolation="nearest",
        )
        ax.set_title(label, fontsize="small", y=1.0)
        ax.set_xlabel("activation")
        ax.set_ylabel("step")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_locator(MaxNLocator(4, steps=[1, 2, 5, 10]))
    for ax in axes[len(heatmaps) :]:
        ax.set_visible(False)
    fig.suptitle("activation distribution over time", y=1 - 0.15 / height, va="top")
    return fig
