"""Where the dynamics callback's numbers go: `dynamics.csv`, logger scalars and histograms.

One CSV row per (step, layer, statistic); the same values as scalars named
`<statistic>/<chart name>` (one TensorBoard section per statistic, one chart per layer), and
histograms of the captured tensors. TensorBoard and W&B both get them (see `logger_media`).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from lightning.pytorch.loggers import Logger

from makemore_lab.logger_media import log_histogram

CSV_COLUMNS = ("step", "layer", "layer_type", "stat", "value")
Row = tuple[int, str, str, str, float]  # one CSV row: step, layer, layer_type, stat, value


def chart_name(layer: str, kind: str) -> str:
    """A layer's sortable chart name: 'layer02_Tanh' for layer 2, 'embedding' as is."""
    return layer if not layer.isdigit() else f"layer{int(layer):02d}_{kind}"


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

    def append(self, rows: Sequence[Row]) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerows(rows)


def log_scalars(loggers: Iterable[Logger], rows: Sequence[Row], step: int) -> None:
    """Every statistic as a scalar `<stat>/<chart name>` at the optimizer step."""
    metrics = {f"{stat}/{chart_name(layer, kind)}": value for _, layer, kind, stat, value in rows}
    for logger in loggers:
        logger.log_metrics(metrics, step=step)


def log_histograms(
    loggers: Sequence[Logger],
    step: int,
    kinds: dict[str, str],
    tensors: dict[str, dict[str, torch.Tensor]],
) -> None:
    """Histograms `hist_<what>/<chart name>` of each captured tensor.

    `tensors` maps a section (act, act_grad, weight_grad) to {layer: tensor}; `kinds` gives
    each layer's type for its chart name.
    """
    for section, by_layer in tensors.items():
        for layer, t in by_layer.items():
            log_histogram(loggers, f"hist_{section}/{chart_name(layer, kinds[layer])}", t, step)
