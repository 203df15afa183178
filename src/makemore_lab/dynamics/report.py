"""The dynamics callback's reading aids: `dynamics.md`, the diagnosis and the lecture's figures.

At step 0 and at the end: the lecture's printouts, one line per layer, and the diagnosis
(`diagnosis.py`) into `dynamics.md`, the log and the loggers' text, and the activation /
gradient / weight-gradient distributions as figures. At the end: the update:data ratio over
training and each layer's activation distribution over time. Figures go to `figures/*.png`
and to the loggers as images.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.loggers import Logger
from matplotlib.figure import Figure

from makemore_lab.atomic import write_json
from makemore_lab.dynamics.diagnosis import Thresholds, diagnose
from makemore_lab.dynamics.figures import (
    Density,
    distribution_figure,
    heatmap_figure,
    update_ratio_figure,
)
from makemore_lab.dynamics.media import log_image, log_text
from makemore_lab.dynamics.render import FigurePool
from makemore_lab.dynamics.writer import Row, chart_names

log = logging.getLogger(__name__)
NONLINEARITIES = ("Tanh", "ReLU", "Identity")
Shape = tuple[int, ...]


def densities(tensors: dict[str, torch.Tensor]) -> dict[str, Density]:
    """Each tensor's `torch.histogram(t, bins=100, density=True)`, as the lecture plots it;
    tensors that are empty or not finite (a diverged run) are left out."""
    out = {}
    for label, t in tensors.items():
        t = t.detach().float().flatten().cpu()
        if t.numel() == 0 or not torch.isfinite(t).all():
            continue
        hy, hx = torch.histogram(t, bins=100, density=True)
        out[label] = (hx[:-1].tolist(), hy.tolist())
    return out


PERCENTILES = torch.linspace(0, 1, 101)  # what a heat-map row keeps of a layer's outputs


def bin_percentiles(rows: torch.Tensor, bins: int) -> tuple[np.ndarray, float, float]:
    """Histograms (steps, bins) of the rows' distributions, given as percentiles (steps, 101),
    over the range of all of them; each 1% between two percentiles is spread evenly."""
    finite = rows[torch.isfinite(rows[:, 0]) & torch.isfinite(rows[:, -1])]
    lo = finite[:, 0].min().item() if len(finite) else -1.0
    hi = finite[:, -1].max().item() if len(finite) else 1.0
    if not hi > lo:  # a constant output: one narrow range around it
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    probs = PERCENTILES.numpy()
    counts = [
        np.diff(np.interp(edges, row, probs)) if np.isfinite(row).all() else np.zeros(bins)
        for row in rows.numpy()
    ]
    return np.array(counts, dtype=np.float32).reshape(len(counts), bins), lo, hi


class DynamicsReport:
    """The collected history the report and figures need; it travels in checkpoints."""

    def __init__(
        self,
        dirpath: Path,
        figures: bool = True,
        heatmap_bins: int = 50,
        thresholds: Thresholds | None = None,
        context: dict[str, Any] | None = None,
    ) -> None:
        self.dirpath, self.figures, self.heatmap_bins = dirpath, figures, heatmap_bins
        self.thresholds, self.context = thresholds or Thresholds(), context or {}
        self.diagnosis: dict[str, list[str]] = {}  # 'init' / 'end' -> the rules' findings
        self.layers: dict[str, str] = {}  # layer name -> kind, in network order
        self.weights: dict[str, tuple[str, Shape]] = {}  # weight name -> (kind, shape)
        self.reports: list[str] = []  # the Markdown sections written so far
        self.last_values: dict[tuple[str, str], float] = {}  # (layer, stat) of the last step
        self.last_step = 0
        self.update_series: dict[str, tuple[list[int], list[float]]] = {}
        self.heatmaps: dict[str, tuple[list[int], list[torch.Tensor]]] = {}  # steps, percentiles
        self.snapshot: dict[str, dict[str, torch.Tensor]] = {}  # the last step's tensors
        self.pool = FigurePool(0)  # who draws the figures (the callback shares one of workers)

    def state_dict(self) -> dict[str, Any]:
        return {
            "reports": self.reports,
            "latest": self.last_values,
            "last_step": self.last_step,
            "update_series": self.update_series,
            "heatmaps": self.heatmaps,
            "diagnosis": self.diagnosis,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reports = list(state["reports"])
        self.last_values = dict(state["latest"])
        self.last_step = state["last_step"]
        self.update_series = dict(state["update_series"])
        # Older checkpoints kept step-0-binned histograms (4-tuples): those rows are dropped.
        self.heatmaps = {k: v for k, v in state["heatmaps"].items() if len(v) == 2}
        self.diagnosis = dict(state.get("diagnosis", {}))  # absent from older checkpoints

    def add(
        self,
        step: int,
        rows: Sequence[Row],
        outputs: dict[str, torch.Tensor],
        output_grads: dict[str, torch.Tensor],
        weight_grads: dict[str, torch.Tensor],
    ) -> None:
        """Remember one collected step: its values, update ratios, heat-map rows and tensors."""
        self.last_values = {(layer, stat): value for _, layer, _, stat, value in rows}
        self.last_step = step
        names = chart_names(self.layers)
        for _, layer, _, stat, value in rows:
            if stat == "update_data_ratio_log10":
                label = f"{names.get(layer, layer)} {self.weights[layer][1]}"
                steps, series = self.update_series.setdefault(label, ([], []))
                steps.append(step)
                series.append(value)
        labels = names  # depth-aligned, as the charts
        nonlinear = [n for n, kind in self.layers.items() if kind in NONLINEARITIES]
        self.snapshot = {
            "activations": {labels[n]: outputs[n].cpu() for n in nonlinear if n in outputs},
            "gradients": {labels[n]: output_grads[n].cpu() for n in nonlinear if n in output_grads},
            "weight_gradients": {
                f"{names.get(n, n)} {tuple(g.shape)}": g.cpu() for n, g in weight_grads.items()
            },
        }
        for name, t in outputs.items():
            self._add_heatmap_row(labels[name], t, step)

    def _add_heatmap_row(self, label: str, t: torch.Tensor, step: int) -> None:
        # A row keeps the layer's percentiles, not a histogram: the bins are chosen when the
        # figure is drawn, over the range of the whole run, so nothing piles into edge bins.
        t = t.detach().float().flatten().cpu()
        t = t[torch.isfinite(t)]  # a diverging run: what is still finite
        steps, rows = self.heatmaps.setdefault(label, ([], []))
        steps.append(step)
        rows.append(torch.quantile(t, PERCENTILES) if t.numel() else PERCENTILES * math.nan)

    def summarise(self, loggers: Sequence[Logger], step: int, when: str) -> None:
        """The printout of the last collected step into dynamics.md and the log; its figures."""
        lines = self.lines()
        tag = "init" if step == 0 else "end"
        verdict = diagnose(
            self.last_values, self.layers, self.weights, self.context, self.thresholds, tag
        )
        self.diagnosis[tag] = verdict
        self.reports.append(
            f"## Step {step} ({when})\n\n```\n"
            + "\n".join(lines)
            + "\n```\n\nDiagnosis:\n\n"
            + "".join(f"- {v}\n" for v in verdict)
        )
        log.info(
            "training dynamics at step %d (%s):\n%s\ndiagnosis:\n%s",
            step,
            when,
            "\n".join(lines),
            "\n".join(f"  {v}" for v in verdict),
        )
        log_text(loggers, "diagnosis", "\n\n".join(self.diagnosis_lines()), step)
        (self.dirpath / "dynamics.md").write_text(
            "# Training dynamics\n\n" + "\n".join(self.reports)
        )
        self._distributions(loggers, step)

    def _distributions(self, loggers: Sequence[Logger], step: int) -> None:
        """The last step's activation / gradient densities: saved, and drawn as figures."""
        tag = "init" if step == 0 else "final"  # the figures' file names
        curves = {f"{what}_{tag}": densities(t) for what, t in self.snapshot.items()}
        self._save_densities(curves)
        if not self.figures:
            return
        for name, density in curves.items():
            what = name.rsplit("_", 1)[0].replace("_", " ")
            title = f"{what} distribution at step {step}"
            self._save_figure(loggers, name, distribution_figure, (density, title), step)

    def _save_densities(self, lines: dict[str, Any]) -> None:
        """The plotted densities into `distributions.json`: the table draws a sweep's jobs
        side by side from them (`reports.figures.panels_figure`)."""
        path = self.dirpath / "distributions.json"
        saved = json.loads(path.read_text()) if path.is_file() else {}
        write_json(path, saved | lines)

    def finish(self, loggers: Sequence[Logger]) -> None:
        """At the end of training: the last printout, then the figures over time."""
        if self.last_values and self.last_step > 0:
            self.summarise(loggers, self.last_step, "end of training")
        if not (self.figures and self.update_series):
            return
        series = (self.update_series,)
        self._save_figure(loggers, "update_data_ratio", update_ratio_figure, series, self.last_step)
        heatmaps = {
            label: (steps, *bin_percentiles(torch.stack(rows), self.heatmap_bins))
            for label, (steps, rows) in self.heatmaps.items()
        }
        self._save_figure(
            loggers, "activations_over_time", heatmap_figure, (heatmaps,), self.last_step
        )

    def diagnosis_lines(self) -> list[str]:
        """The diagnosis so far: at init, then at the end."""
        return [line for tag in ("init", "end") for line in self.diagnosis.get(tag, [])]

    def lines(self) -> list[str]:
        """The lecture's printouts for the last collected step, one line per layer."""
        lines = [self._layer_line(name, kind) for name, kind in self.layers.items()]
        names = chart_names(self.layers)
        lines += [
            self._weight_line(name, names.get(name, name), shape)
            for name, (_, shape) in self.weights.items()
        ]
        return [line for line in lines if line]

    def _values(self, layer: str) -> dict[str, float]:
        return {stat: v for (name, stat), v in self.last_values.items() if name == layer}

    def _layer_line(self, name: str, kind: str) -> str | None:
        stat = self._values(name)
        if kind not in NONLINEARITIES or "act_mean" not in stat:
            return None
        line = f"layer {name} ({kind}): mean {stat['act_mean']:+.2f}, std {stat['act_std']:.2f}"
        if "act_saturated_pct" in stat:
            line += f", saturated: {stat['act_saturated_pct']:.2f}%"
        if "act_dead_pct" in stat:
            line += f", dead: {stat['act_dead_pct']:.2f}%"
        if "act_grad_std" in stat:
            line += f" | grad mean {stat['act_grad_mean']:+f}, grad std {stat['act_grad_std']:e}"
        return line

    def _weight_line(self, name: str, chart: str, shape: Shape) -> str | None:
        stat = self._values(name)
        if "weight_grad_std" not in stat:
            return None
        return (
            f"weight {shape!s:>10} ({chart}) "
            f"| mean {stat['weight_grad_mean']:+f} | std {stat['weight_grad_std']:e} "
            f"| grad:data ratio {stat['grad_data_ratio']:e} "
            f"| update:data log10 {stat['update_data_ratio_log10']:+.2f}"
        )

    def _save_figure(
        self,
        loggers: Sequence[Logger],
        name: str,
        make: Callable[..., Figure],
        args: tuple[Any, ...],
        step: int,
    ) -> None:
        """`make(*args)` drawn once (by the pool), for `figures/<name>.png` and the loggers."""
        path = self.dirpath / "figures" / f"{name}.png"
        self.pool.submit(
            make, args, path, lambda png: log_image(loggers, f"figures/{name}", png, step)
        )
