"""Turn a sweep into an ablation table (Markdown + CSV) and its plots.

    python scripts/ablation_table.py outputs/multiruns/<timestamp> [--reference]

One row per job, or per configuration with mean +- std when the sweep repeats it over several
`seed`s: the overrides that vary, loss at step 0, final train/val/test loss, first- and
last-nonlinearity std and saturation at init and at the end (from dynamics.csv), steps per
second and wall time. Failed and diverged jobs are rows too, never dropped. `--reference` adds
the published numbers a preset carries (`reference:` in its config) and our difference.
Writes ablation.md, ablation.csv, loss_curves.png and depth_init.png into the sweep directory.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from makemore_lab.atomic import write_text

NONLINEARITIES = {"Tanh", "ReLU", "Identity"}
LOSSES = ("step0_loss", "train_loss", "val_loss", "test_loss")


def job_number(job: Path) -> int:
    """Hydra's job number, which starts every job directory's name (see conf/config.yaml)."""
    head = job.name.split("_")[0]
    return int(head) if head.isdigit() else -1


def find_jobs(sweep: Path) -> list[Path]:
    jobs = [p for p in sweep.iterdir() if (p / ".hydra" / "overrides.yaml").is_file()]
    return sorted(jobs, key=lambda p: (job_number(p), p.name))


def read_job(job: Path) -> dict[str, Any]:
    row: dict[str, Any] = {"dir": job.name}
    row["overrides"] = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()) or []
    metrics_path = job / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    row["status"] = metrics.get("status", "unfinished (no metrics.json)")
    for key in (*LOSSES, "steps_per_second", "wall_seconds", "steps"):
        row[key] = metrics.get(key)
    if row["status"] == "completed" and not all(
        isinstance(row[k], float) and math.isfinite(row[k]) for k in ("train_loss", "val_loss")
    ):
        row["status"] = "diverged"
    config_path = job / "config.yaml"
    config = yaml.safe_load(config_path.read_text()) if config_path.is_file() else {}
    row["reference"] = (config or {}).get("reference")
    row |= dynamics_summary(job / "dynamics.csv")
    return row


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
    merged = []
    for label, members in groups.items():
        row: dict[str, Any] = {"config": label, "jobs": len(members)}
        statuses = sorted({m["status"] for m in members})
        row["status"] = statuses[0] if len(statuses) == 1 else "/".join(statuses)
        for key in members[0]:
            if key in ("dir", "overrides", "status", "reference"):
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
        merged.append(row)
    return merged


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
]


def fmt(value: Any, digits: int = 4) -> str:
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
    return value[0] if isinstance(value, tuple) else value


def table(rows: list[dict[str, Any]], reference: bool) -> tuple[list[str], list[list[str]]]:
    header = ["config", "jobs", *(title for _, title in COLUMNS)]
    reference = reference and any(r.get("reference") for r in rows)  # no empty columns
    if reference:
        header += ["ref train", "ref val", "Δ train", "Δ val"]
    body = []
    for r in rows:
        line = [
            r["config"],
            str(r["jobs"]),
            *(fmt(r.get(k), digits(k)) for k, _ in COLUMNS),
        ]
        if reference:
            ref = r.get("reference") or {}
            rt, rv = ref.get("train_loss"), ref.get("val_loss")
            dt = (
                mean_of(r.get("train_loss")) - rt
                if rt is not None and r.get("train_loss")
                else None
            )
            dv = mean_of(r.get("val_loss")) - rv if rv is not None and r.get("val_loss") else None
            line += [
                fmt(rt),
                fmt(rv),
                "" if dt is None else f"{dt:+.4f}",
                "" if dv is None else f"{dv:+.4f}",
            ]
        body.append(line)
    return header, body


def loss_curves(jobs: list[Path], labels: list[str]) -> Figure:
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


def depth_figure(jobs: list[Path], labels: list[str]) -> Figure:
    fig = Figure(figsize=(12, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax_std, ax_sat = fig.subplots(1, 2)
    for job, label in zip(jobs, labels, strict=True):
        path = job / "dynamics.csv"
        if not path.is_file():
            continue
        with path.open() as f:
            rows = [
                r
                for r in csv.DictReader(f)
                if r["step"] == "0" and r["layer_type"] in NONLINEARITIES
            ]
        std = {int(r["layer"]): float(r["value"]) for r in rows if r["stat"] == "act_std"}
        sat = {int(r["layer"]): float(r["value"]) for r in rows if r["stat"] == "act_saturated_pct"}
        depth = sorted(std)
        ax_std.plot(range(1, len(depth) + 1), [std[d] for d in depth], marker="o", label=label)
        if sat:
            ax_sat.plot(
                range(1, len(depth) + 1),
                [sat.get(d, float("nan")) for d in depth],
                marker="o",
                label=label,
            )
    ax_std.set(title="activation std at init", xlabel="nonlinearity (depth)", ylabel="std")
    ax_sat.set(title="tanh saturation at init", xlabel="nonlinearity (depth)", ylabel="saturated %")
    if ax_std.lines:
        ax_std.legend(fontsize="small")
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sweep", type=Path, help="a multirun directory")
    parser.add_argument(
        "--reference",
        action="store_true",
        help="add the presets' published numbers (when some job carries them)",
    )
    args = parser.parse_args(argv)
    jobs = find_jobs(args.sweep) if args.sweep.is_dir() else []
    if not jobs:
        print(
            f"makemore-lab: error: {args.sweep} holds no job directories (each with .hydra/); "
            f"pass the directory of a multirun, e.g. outputs/multiruns/<timestamp>.",
            file=sys.stderr,
        )
        return 2
    job_rows = [read_job(job) for job in jobs]
    shared = set.intersection(*(set(r["overrides"]) for r in job_rows))  # what does not vary
    labels = [", ".join(o for o in r["overrides"] if o not in shared) or r["dir"] for r in job_rows]
    rows = group_rows(job_rows, shared)
    header, body = table(rows, args.reference)
    md = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    md += ["| " + " | ".join(line) + " |" for line in body]
    write_text(args.sweep / "ablation.md", "\n".join(md) + "\n")
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *body])
    write_text(args.sweep / "ablation.csv", buffer.getvalue())
    loss_curves(jobs, labels).savefig(args.sweep / "loss_curves.png", dpi=80)
    depth_figure(jobs, labels).savefig(args.sweep / "depth_init.png", dpi=80)
    print("\n".join(md))
    print(f"\nwrote {args.sweep / 'ablation.md'}, ablation.csv, loss_curves.png, depth_init.png")
    failed = [r["config"] for r in rows if r["status"] != "completed"]
    if failed:
        print(f"not completed: {'; '.join(failed)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
