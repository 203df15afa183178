"""A sweep's jobs as table rows: the ablation table and the per-layer dynamics table.

Each job directory of a multirun (one with `.hydra/overrides.yaml`) gives its status and losses
through `run_record`, its published numbers through its `config.yaml`, and its activation
statistics through its `dynamics.csv`. Failed, diverged, unfinished and unreadable jobs stay
rows, so a table never hides a job. `makemore-table` (cli/table.py) prints and writes them.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from makemore_lab.errors import UserError
from makemore_lab.reports.intervals import difference, t_interval, verdict
from makemore_lab.runs import record as run_record
from makemore_lab.runs.hydra_record import overrides_of, read_yaml
from makemore_lab.runs.naming import config_label

NONLINEARITIES = {"Tanh", "ReLU", "Identity"}
LOSSES = ("step0_loss", "train_loss", "val_loss", "test_loss")
NO_METRICS = f"{run_record.UNFINISHED} (no metrics.json)"  # killed, or still running
EXTRA = {"Tanh": "act_saturated_pct", "ReLU": "act_dead_pct"}  # the second stat per layer kind
# What `dynamics_summary` reads: std and saturation of the first and last nonlinearity.
DYNAMICS = tuple(
    f"{where}_{stat}_{when}"
    for where in ("first", "last")
    for when in ("init", "end")
    for stat in ("std", "sat")
)
NUMBERS = (*LOSSES, *DYNAMICS, "steps_per_second", "wall_seconds")  # averaged over seeds
PREVIOUS = "previous"  # --baseline previous: each row against the row above it


def job_number(job: Path) -> int:
    """Hydra's job number, which starts every job directory's name (see conf/config.yaml)."""
    head = job.name.split("_")[0]
    return int(head) if head.isdigit() else -1


def find_jobs(sweep: Path) -> list[Path]:
    """The job directories of `sweep` (those Hydra wrote overrides into), in job order."""
    jobs = [p for p in sweep.iterdir() if (p / ".hydra" / "overrides.yaml").is_file()]
    return sorted(jobs, key=lambda p: (job_number(p), p.name))


def read_job(job: Path) -> dict[str, Any]:
    """One job's row: overrides, status, losses, speed, published numbers, dynamics summary."""
    row: dict[str, Any] = {"dir": job.name, "overrides": overrides_of(job)}
    record = run_record.read(job)
    status = record["status"]
    row["status"] = NO_METRICS if status == run_record.UNFINISHED else status
    for key in (*LOSSES, "steps_per_second", "wall_seconds", "steps"):
        row[key] = record.get(key)
    if row["status"] == "completed" and not all(
        isinstance(row[k], float) and math.isfinite(row[k]) for k in ("train_loss", "val_loss")
    ):
        row["status"] = "diverged"
    config = read_yaml(job / "config.yaml") or {}
    row["reference"] = config.get("reference")
    row["seed"] = config.get("seed")
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
    """One row per config: jobs whose varying overrides are equal but for `seed` (from any
    stacked group or launcher) are the seeds of one config."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        label = config_label(o for o in r["overrides"] if o not in shared) or "(defaults)"
        groups.setdefault(label, []).append(r)
    return [merge(label, members) for label, members in groups.items()]


def merge(label: str, members: list[dict[str, Any]]) -> dict[str, Any]:
    """A config's row: each number as an `Estimate` over its completed seeds."""
    completed = [m for m in members if m["status"] == "completed"]
    statuses = sorted({m["status"] for m in members})
    row: dict[str, Any] = {"config": label, "jobs": len(members), "n": len(completed)}
    row["dirs"] = [m["dir"] for m in members]
    row["status"] = statuses[0] if len(statuses) == 1 else "/".join(statuses)
    for key in NUMBERS:
        values = [m[key] for m in completed if finite(m.get(key))]
        row[key] = t_interval(values) if values else None
    row["seeds"] = {key: seed_values(completed, key) for key in LOSSES}
    row["reference"] = members[0]["reference"]
    verdicts = {m.get("diagnosis") for m in members}
    row["diagnosis"] = verdicts.pop() if len(verdicts) == 1 else "differs between seeds"
    return row


def finite(value: Any) -> bool:
    """A number that can enter a mean (not None, a bool, NaN or infinity)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def seed_values(jobs: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    """(seed, value) of `key` for each job that has a finite one: what a paired difference
    matches."""
    return [(j["seed"], j[key]) for j in jobs if finite(j.get(key))]


def same_config(label: str, asked: str) -> bool:
    """Whether `asked` names the config `label` (its overrides in any order, True or true)."""

    def items(text: str) -> list[str]:
        return sorted(item.strip().lower() for item in text.split(",") if item.strip())

    return items(label) == items(asked)


def compare(rows: list[dict[str, Any]], baseline: str, key: str = "val_loss") -> None:
    """Give each row its difference in `key` to the baseline config (`diff`) and the verdict;
    `previous`: to the row above it (the lecture's steps, each on top of the last). Raise
    UserError naming the configs when `baseline` is none of them."""
    if baseline == PREVIOUS:
        pairs = list(zip(rows[1:], rows[:-1], strict=True))
    else:
        base = next((r for r in rows if same_config(r["config"], baseline)), None)
        if base is None:
            configs = "; ".join(r["config"] for r in rows)
            raise UserError(
                f"--baseline {baseline!r} is not a config of this sweep. Pass one of its configs "
                f"as the table writes it ({configs}), or {PREVIOUS} to compare each row with "
                f"the one above."
            )
        pairs = [(row, base) for row in rows if row is not base]
    for row, base in pairs:
        mine, theirs = row["seeds"][key], base["seeds"][key]
        if mine and theirs:
            row["diff"] = difference(mine, theirs)
            row["verdict"] = verdict(row["diff"])


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
    overrides = [overrides_of(job) for job in jobs]
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
