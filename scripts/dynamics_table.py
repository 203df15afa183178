"""Per-layer activation statistics of every job of a sweep, at one step, as a Markdown table.

    python train.py -m model.batchnorm=true,false init.gain=1,5/3 trainer.max_steps=1
    python scripts/dynamics_table.py outputs/multiruns/<timestamp> --step 0

One row per job (its overrides), one column per nonlinearity layer: "std / saturated %" for
tanh, "std / dead %" for ReLU, "std" otherwise; read from each job's dynamics.csv.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import yaml

from ablation_table import find_jobs  # the sibling script: jobs of a sweep, in job order

NONLINEARITIES = {"Tanh", "ReLU", "Identity"}
EXTRA = {"Tanh": "act_saturated_pct", "ReLU": "act_dead_pct"}


def job_overrides(job: Path) -> list[str]:
    return yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()) or []


def job_cells(job: Path, step: int) -> dict[str, str]:
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


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sweep", type=Path, help="a multirun directory")
    parser.add_argument(
        "--step", type=int, default=0, help="the collected step to show (default 0: init)"
    )
    args = parser.parse_args()
    jobs = (
        [j for j in find_jobs(args.sweep) if (j / "dynamics.csv").is_file()]
        if args.sweep.is_dir()
        else []
    )
    if not jobs:
        print(
            f"makemore-lab: error: no job with a dynamics.csv under {args.sweep}", file=sys.stderr
        )
        return 2
    overrides = [job_overrides(job) for job in jobs]
    shared = set.intersection(*(set(o) for o in overrides))  # show only what varies
    rows = [
        (", ".join(o for o in ovr if o not in shared), job_cells(job, args.step))
        for job, ovr in zip(jobs, overrides, strict=True)
    ]
    width = max(len(cells) for _, cells in rows)
    print(f"| job | {' | '.join(f'nonlinearity {i + 1}' for i in range(width))} |")
    print(f"| --- |{' --- |' * width}")
    for overrides, cells in rows:
        values = [f"{cell} ({name.split()[1]})" for name, cell in cells.items()]
        print(f"| {overrides} | {' | '.join(values)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
