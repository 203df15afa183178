"""The ablation table's columns as text: a view that fits a terminal, a wide one, and the CSV.

A cell of a config with several completed seeds reads `mean ± h`: h is the half-width of the
95% confidence interval of the mean (`intervals.t_interval`); one seed shows its value alone.
The CSV keeps every number unrounded, as `<metric>_mean`, `_ci_low`, `_ci_high`, `_std` and `n`,
for scripts.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from makemore_lab.reports.ablation import NUMBERS, PREVIOUS, same_config
from makemore_lab.reports.intervals import LEVEL, Estimate

WIDE = [
    ("step0_loss", "loss@0"),
    ("train_loss", "train"),
    ("val_loss", "val"),
    ("test_loss", "test"),
    ("first_std_init", "first std init"),
    ("first_sat_init", "first sat% init"),
    ("first_std_end", "first std end"),
    ("first_sat_end", "first sat% end"),
    ("last_std_init", "last std init"),
    ("last_sat_init", "last sat% init"),
    ("last_std_end", "last std end"),
    ("last_sat_end", "last sat% end"),
    ("steps_per_second", "steps/s"),
    ("wall_seconds", "wall s"),
]
COMPACT = [("val_loss", "val")]  # what users read first; the rest is behind --wide


def digits(key: str) -> int:
    """Decimals per column: 4 for losses, 2 for std and saturation, 1 for speed and time."""
    if key.endswith("_loss"):
        return 4
    return 1 if key in ("steps_per_second", "wall_seconds") else 2


def number(value: float, places: int, sign: bool = False) -> str:
    """A float to `places` decimals (whole numbers from 1000 on), '+' in front if `sign`."""
    if abs(value) >= 1000:
        return f"{value:{'+' if sign else ''}.0f}"
    return f"{value:{'+' if sign else ''}.{places}f}"


def cell(value: Estimate | None, places: int, sign: bool = False) -> str:
    """`mean ± half-width of its interval`, or the mean alone (one seed), or empty."""
    if value is None:
        return ""
    text = number(value.mean, places, sign)
    if value.low is None or value.high is None:
        return text
    return f"{text} ± {number((value.high - value.low) / 2, places)}"


def table(
    rows: list[dict[str, Any]], wide: bool, reference: bool, baseline: str | None
) -> tuple[list[str], list[list[str]]]:
    """Header and body: config, n (completed seeds), status, the numbers, the difference to
    the baseline and its verdict, the diagnosis; the presets' published numbers if asked."""
    columns = WIDE if wide else COMPACT
    header = ["config", "n", "status", *(title for _, title in columns)]
    if baseline is not None:
        header += ["Δ val", "verdict"]
    header.append("diagnosis")
    reference = reference and any(r.get("reference") for r in rows)  # no empty columns
    if reference:
        header += ["ref train", "ref val", "Δ train ref", "Δ val ref"]
    body = []
    for r in rows:
        line = [r["config"], str(r["n"]), r["status"]]
        line += [cell(r.get(key), digits(key)) for key, _ in columns]
        if baseline is not None:
            is_base = baseline != PREVIOUS and same_config(r["config"], baseline)
            diff = "baseline" if is_base else cell(r.get("diff"), 4, sign=True)
            line += [diff, r.get("verdict", "")]
        line.append(r.get("diagnosis") or "")
        body.append(line + reference_cells(r) if reference else line)
    return header, body


def reference_cells(row: dict[str, Any]) -> list[str]:
    """The published train/val losses a preset carries, and our mean's difference to them."""
    ref, keys = row.get("reference") or {}, ("train_loss", "val_loss")
    published = [ref.get(k) for k in keys]
    ours = [row.get(k) for k in keys]
    cells = ["" if p is None else number(p, 4) for p in published]
    for mine, theirs in zip(ours, published, strict=True):
        cells.append("" if mine is None or theirs is None else number(mine.mean - theirs, 4, True))
    return cells


def footnote(baseline: str | None) -> str:
    """What ± and Δ mean, under the table."""
    text = (
        f"n: completed seeds; ± : half-width of the {LEVEL:.0%} confidence interval of the mean "
        f"over them (Student's t)."
    )
    if baseline is not None:
        than = "the row above" if baseline == PREVIOUS else baseline
        text += (
            f" Δ val: the difference to {than}, paired seed by seed where the seeds match "
            f"(else Welch's interval); a verdict needs the whole interval on one side of 0."
        )
    return text


def markdown(header: list[str], body: list[list[str]]) -> list[str]:
    """The table as Markdown lines."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(line) + " |" for line in body]


def csv_text(rows: list[dict[str, Any]]) -> str:
    """Every column, unrounded: config, jobs, n, status, <metric>_mean/_ci_low/_ci_high/_std,
    the difference to the baseline, the diagnosis and the published numbers."""
    fields = ["config", "jobs", "n", "status"]
    fields += [f"{k}_{part}" for k in NUMBERS for part in ("mean", "ci_low", "ci_high", "std")]
    fields += [f"val_loss_diff_{part}" for part in ("mean", "ci_low", "ci_high")]
    fields += ["paired", "verdict", "diagnosis", "ref_train_loss", "ref_val_loss"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fields)
    writer.writeheader()
    for r in rows:
        out = {k: r.get(k) for k in ("config", "jobs", "n", "status", "verdict", "diagnosis")}
        for key in NUMBERS:
            out |= estimate_fields(key, r.get(key))
        diff = estimate_fields("val_loss_diff", r.get("diff"))
        out |= {k: v for k, v in diff.items() if not k.endswith("_std")}
        out["paired"] = r["diff"].paired if r.get("diff") else None
        ref = r.get("reference") or {}
        out |= {"ref_train_loss": ref.get("train_loss"), "ref_val_loss": ref.get("val_loss")}
        writer.writerow(out)
    return buffer.getvalue()


def estimate_fields(key: str, value: Estimate | None) -> dict[str, float | None]:
    """`<key>_mean`, `_ci_low`, `_ci_high`, `_std` of an estimate (empty when None)."""
    if value is None:
        return dict.fromkeys((f"{key}_mean", f"{key}_ci_low", f"{key}_ci_high", f"{key}_std"))
    return {
        f"{key}_mean": value.mean,
        f"{key}_ci_low": value.low,
        f"{key}_ci_high": value.high,
        f"{key}_std": value.std,
    }
