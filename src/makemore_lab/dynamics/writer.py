"""Where the dynamics callback's numbers go: `dynamics.csv`, logger scalars and histograms.

One CSV row per (step, layer, statistic); the same values as scalars named
`<statistic>/<chart name>` (one TensorBoard section per statistic, one chart per layer), and
histograms of the captured tensors. TensorBoard and W&B both get them (see `media`).
Chart names follow depth, not module index (`chart_names`), so runs with and without
BatchNorm share a chart at every depth.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from lightning.pytorch.loggers import Logger

from makemore_lab.dynamics.media import log_histogram

CSV_COLUMNS = ("step", "layer", "layer_type", "stat", "value", "name")
Row = tuple[int, str, str, str, float]  # step, layer (index), layer_type, stat, value


def chart_names(kinds: dict[str, str]) -> dict[str, str]:
    """Each layer's depth-aligned name: 'block3_Tanh' is the third hidden block's tanh with or
    without BatchNorm, 'output_Linear' the last Linear (and what follows it); others as is.

    `kinds` maps layer index -> type, in network order: each Linear but the last starts a block.
    """
    linears = [layer for layer, kind in kinds.items() if kind == "Linear"]
    names, block, prefix = {}, 0, ""
    for layer, kind in kinds.items():
        if not layer.isdigit():
            names[layer] = layer
            continue
        if kind == "Linear":
            block += 1
            prefix = "output" if layer == linears[-1] else f"block{block}"
        names[layer] = f"{prefix or 'block0'}_{kind}"
    return names


class DynamicsCsv:
    """`dynamics.csv`, appended at each collection; a resumed run drops rows it will redo."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def start(self, keep_through_step: int | None) -> None:
        """Write the header; a resumed run keeps the rows up to its checkpoint's last collection.

        Rows written after that (by the interrupted run) are dropped: they are collected again.
        """
        kept = []
        if self.path.exists() and keep_through_step is not None:
            with self.path.open(newline="") as f:
                kept = [r for r in list(csv.reader(f))[1:] if int(r[0]) <= keep_through_step]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("w", newline="") as f:
            csv.writer(f).writerows([CSV_COLUMNS, *kept])

    def append(self, rows: Sequence[Row], names: dict[str, str]) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerows((*row, names.get(row[1], row[1])) for row in rows)


def log_scalars(
    loggers: Iterable[Logger], rows: Sequence[Row], step: int, names: dict[str, str]
) -> None:
    """Every statistic as a scalar `<stat>/<chart name>` at the optimizer step."""
    metrics = {f"{stat}/{names.get(layer, layer)}": value for _, layer, _, stat, value in rows}
    for logger in loggers:
        logger.log_metrics(metrics, step=step)


def log_histograms(
    loggers: Sequence[Logger],
    step: int,
    names: dict[str, str],
    tensors: dict[str, dict[str, torch.Tensor]],
) -> None:
    """Histograms `hist_<what>/<chart name>` of each captured tensor.

    `tensors` maps a section (act, act_grad, weight_grad) to {layer: tensor}; `names` gives
    each layer's chart name (`chart_names`).
    """
    for section, by_layer in tensors.items():
        for layer, t in by_layer.items():
            log_histogram(loggers, f"hist_{section}/{names.get(layer, layer)}", t, step)
