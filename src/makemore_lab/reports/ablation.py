"""A sweep's jobs as table rows: the ablation table and the per-layer dynamics table.

Each job directory of a multirun (one with `.hydra/overrides.yaml`) gives its status and losses
through `run_record`, its published numbers through its `config.yaml`, and its activation
statistics through its `dynamics.csv`. Failed, diverged, unfinished and unreadable jobs stay
rows, so a table never hides a job. `makemore-table` (cli/table.py) prints and writes them.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from pathlib import Path
from typing import Any

import yaml

from makemore_lab.runs import record as run_record

NONLINEARITIES = {"Tanh", "ReLU", "Identity"}
LOSSES = ("step0_loss", "train_loss", "val_loss", "test_loss")
NO_METRICS = f"{run_record.UNFINISHED} (no metrics.json)"  # killed, or still running
EXTRA = {"Tanh": "act_saturated_pct", "ReLU": "act_dead_pct"}  # the second stat per layer kind


def job_number(job: Path) -> int:
    """Hydra's job number, which starts every job directory's name (see conf/config.yaml)."""
    head = job.name.split("_")[0]
    return int(head) if head.isdigit() else -1


def find_jobs(sweep: Path) -> list[Path]:
    """The job directories of `sweep` (those Hydra wrote overrides into), in job order."""
    jobs = [p for p in sweep.iterdir() if (p / ".hydra" / "overrides.yaml").is_file()]
    return sorted(jobs, key=lambda p: (job_number(p), p.name))


def job_overrides(job: Path) -> list[str]:
    """The command-line overrides Hydra ran `job` with."""
    return yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()) or []


def read_job(job: Path) -> dict[str, Any]:
    """One job's row: overrides, status, losses, speed, published numbers, dynamics summary."""
    row: dict[str, Any] = {"dir": job.name, "overrides": job_overrides(job)}
    record = run_record.read(job)
    status = record["status"]
    row["status"] = NO_METRICS if status == run_record.UNFINISHED else status
    for key in (*LOSSES, "steps_per_second", "wall_seconds", "steps"):
        row[key] = record.get(key)
    if row["status"] == "completed" and not all(
        isinstance(row[k], float) and math.isfinite(row[k]) for k in ("train_loss", "val_loss")
    ):
        row["status"] = "diverged"
    config_path = job / "config.yaml"
    config = yaml.safe_load(config_path.read_text()) if config_path.is_file() else {}
    row["reference"] = (config or {}).get("reference")
    row |= dynamics_summary(job / "dynamics.csv")
    row["diagnosis"] = short_diagnosis(record.get("diagnosis"))
    return row


def short_diagnosis(lines: Any) -> str | None:
    """The diagnosis' findings by name, for a table cell: 'init: activations vanish with
    depth; end: healthy' (each line up to its second colon)."""
    if not isinstance(lines, list) or not lines:
        return None
    names = [":".join(str(line).split(":")[:2]).split(" (")[0] for line in lines]
    return "; ".join(dict.fromkeys(names))  # in order, once each


def dynamics_summary(path: Path) -> dict[str, float | None]:
    """std and saturation % of the first and last nonlinearity, at step 0 and the last step."""
    out: dict[str, float | None] = {}
    if not path.is_file():
        return out
    stats: dict[tuple[int, int, str], float] = {}
    layers: set[int] = set()
    with path.open() as f:
        for r in csv.DictReader(f):
            if r["layer_type"] in NONLINEARITIES:
                stats[int(r["step"]), int(r["layer"]), r["stat"]] = float(r["value"])
                layers.add(int(r["layer"]))
    if not layers:
        return out
    steps = sorted({s for s, _, _ in stats})
    for where, layer in (("first", min(layers)), ("last", max(layers))):
        for when, step in (("init", steps[0]), ("end", steps[-1])):
            out[f"{where}_std_{when}"] = stats.get((step, layer, "act_std"))
            out[f"{where}_sat_{when}"] = stats.get((step, layer, "act_saturated_pct"))
    return out


def group_rows(rows: list[dict[str, Any]], shared: set[str]) -> list[dict[str, Any]]:
    """Label each job by the overrides that vary; merge repeats that differ only in `seed`."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        varying = [o for o in r["overrides"] if o not in shared]
        label = ", ".join(o for o in varying if not o.startswith("seed=")) or "(defaults)"
        groups.setdefault(label, []).append(r)
    return [merge(label, members) for label, members in groups.items()]


def merge(label: str, members: list[dict[str, Any]]) -> dict[str, Any]:
    """One row for jobs that repeat a configuration: (mean, std) of the completed ones' numbers."""
    row: dict[str, Any] = {"config": label, "jobs": len(members)}
    statuses = sorted({m["status"] for m in members})
    row["status"] = statuses[0] if len(statuses) == 1 else "/".join(statuses)
    for key in members[0]:
        if key in ("dir", "overrides", "status", "reference", "diagnosis"):
            continue
        values = [
            m.get(key)
            for m in members
            if m["status"] == "completed" and isinstance(m.get(key), int | float)
        ]
        row[key] = (
            (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None)
            if values
            else None
        )
    row["reference"] = members[0]["reference"]
    verdicts = {m.get("diagnosis") for m in members}
    row["diagnosis"] = verdicts.pop() if len(verdicts) == 1 else "differs between seeds"
    return row


COLUMNS = [
    ("status", "status"),
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
    ("diagnosis", "diagnosis"),
]


def fmt(value: Any, digits: int = 4) -> str:
    """A cell: empty for None, `mean ± std` for a merged pair, floats to `digits` decimals."""
    if value is None:
        return ""
    if isinstance(value, tuple):
        mean, std = value
        return fmt(mean, digits) if std is None else f"{fmt(mean, digits)} ± {fmt(std, digits)}"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def digits(key: str) -> int:
    """Decimals per column: 4 for losses, 2 for std and saturation, 1 for speed and time."""
    if key.endswith("_loss"):
        return 4
    return 1 if key in ("steps_per_second", "wall_seconds") else 2


def mean_of(value: Any) -> float | None:
    """The mean of a merged (mean, std) pair, or the value itself."""
    return value[0] if isinstance(value, tuple) else value


def reference_cells(row: dict[str, Any]) -> list[str]:
    """The published train/val losses a preset carries, and our difference to them."""
    ref = row.get("reference") or {}
    rt, rv = ref.get("train_loss"), ref.get("val_loss")
    dt = mean_of(row["train_loss"]) - rt if rt is not None and row.get("train_loss") else None
    dv = mean_of(row["val_loss"]) - rv if rv is not None and row.get("val_loss") else None
    return [
        fmt(rt),
        fmt(rv),
        "" if dt is None else f"{dt:+.4f}",
        "" if dv is None else f"{dv:+.4f}",
    ]


def table(rows: list[dict[str, Any]], reference: bool) -> tuple[list[str], list[list[str]]]:
    """Header and body of the ablation table; reference columns only when some row has them."""
    header = ["config", "jobs", *(title for _, title in COLUMNS)]
    reference = reference and any(r.get("reference") for r in rows)  # no empty columns
    if reference:
        header += ["ref train", "ref val", "Δ train", "Δ val"]
    body = []
    for r in rows:
        line = [r["config"], str(r["jobs"]), *(fmt(r.get(k), digits(k)) for k, _ in COLUMNS)]
        body.append(line + reference_cells(r) if reference else line)
    return header, body


def markdown(header: list[str], body: list[list[str]]) -> list[str]:
    """The table as Markdown lines."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(line) + " |" for line in body]


def csv_text(header: list[str], body: list[list[str]]) -> str:
    """The table as CSV text."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *body])
    return buffer.getvalue()


def collected_steps(job: Path) -> set[int]:
    """The steps the dynamics callback collected in `job` (its dynamics.csv)."""
    with (job / "dynamics.csv").open() as f:
        return {int(row["step"]) for row in csv.DictReader(f)}


def job_cells(job: Path, step: int) -> dict[str, str]:
    """Per nonlinearity at `step`: "std / saturated %" (tanh), "std / dead %" (ReLU), or "std"."""
    stats: dict[tuple[str, str], float] = {}
    kinds: dict[str, str] = {}
    with (job / "dynamics.csv").open() as f:
        for row in csv.DictReader(f):
            if int(row["step"]) == step and row["layer_type"] in NONLINEARITIES:
                stats[row["layer"], row["stat"]] = float(row["value"])
                kinds[row["layer"]] = row["layer_type"]
    cells = {}
    for layer, kind in kinds.items():
        cell = f"{stats[layer, 'act_std']:.2f}"
        if kind in EXTRA:
            cell += f" / {stats[layer, EXTRA[kind]]:.1f}%"
        cells[f"layer {layer} ({kind})"] = cell
    return cells


def layers_table(jobs: list[Path], step: int) -> list[str]:
    """Markdown lines: one row per job (the overrides that vary), one column per nonlinearity."""
    overrides = [job_overrides(job) for job in jobs]
    shared = set.intersection(*(set(o) for o in overrides))  # show only what varies
    rows = [
        (", ".join(o for o in ovr if o not in shared), job_cells(job, step))
        for job, ovr in zip(jobs, overrides, strict=True)
    ]
    width = max(len(cells) for _, cells in rows)
    lines = [
        f"| job | {' | '.join(f'nonlinearity {i + 1}' for i in range(width))} |",
        f"| --- |{' --- |' * width}",
    ]
    for varying, cells in rows:
        values = [f"{cell} ({name.split()[1]})" for name, cell in cells.items()]
        lines.append(f"| {varying} | {' | '.join(values)} |")
    return lines
