"""The lecture's diagnostic plots, drawn with matplotlib's object API (no pyplot state).

Each function returns a Figure on an Agg canvas, ready to save as PNG or to log as an image.
"""

from __future__ import annotations

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _figure(width: float, height: float, **kwargs) -> Figure:
    fig = Figure(figsize=(width, height), **kwargs)
    FigureCanvasAgg(fig)
    return fig


def distribution_figure(tensors: dict[str, torch.Tensor], title: str) -> Figure:
    """One density line per tensor, like the lecture's `torch.histogram(t, density=True)` plots."""
    fig = _figure(12, 3.5, layout="constrained")
    ax = fig.subplots()
    for label, t in tensors.items():
        t = t.detach().float().flatten().cpu()
        if t.numel() == 0 or not torch.isfinite(t).all():
            continue
        hy, hx = torch.histogram(t, bins=100, density=True)
        ax.plot(hx[:-1].numpy(), hy.numpy(), label=label)
    ax.set_title(title)
    if ax.lines:  # a diverged run may leave nothing finite to draw
        ax.legend(fontsize="small")
    return fig


def update_ratio_figure(series: dict[str, tuple[list[int], list[float]]]) -> Figure:
    """log10(update std / data std) per weight over training, with the lecture's 1e-3 line."""
    fig = _figure(12, 3.5, layout="constrained")
    ax = fig.subplots()
    for label, (steps, values) in series.items():
        ax.plot(steps, values, label=label)
    ax.axhline(-3, color="k", linewidth=1, label="1e-3 (the rule of thumb)")
    ax.set_xlabel("step")
    ax.set_ylabel("log10(update std / data std)")
    ax.set_title("update:data ratio")
    ax.legend(fontsize="small")
    return fig


def heatmap_figure(heatmaps: dict[str, tuple[list[int], torch.Tensor, float, float]]) -> Figure:
    """Per layer, its activation histogram (x) at each collected step (y): how it evolves."""
    n = max(len(heatmaps), 1)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig = _figure(4.5 * cols, 3.2 * rows, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).flatten()
    for ax, (label, (steps, counts, lo, hi)) in zip(axes, heatmaps.items(), strict=False):
        density = counts / counts.sum(dim=1, keepdim=True).clamp_min(1)
        top = steps[-1] if len(steps) > 1 else steps[0] + 1
        ax.imshow(
            density.numpy(),
            aspect="auto",
            origin="lower",
            cmap="viridis",
            extent=(lo, hi, steps[0], top),
            interpolation="nearest",
        )
        ax.set_title(label, fontsize="small")
        ax.set_xlabel("activation")
        ax.set_ylabel("step")
    for ax in axes[len(heatmaps) :]:
        ax.set_visible(False)
    fig.suptitle("activation distribution over time")
    return fig
