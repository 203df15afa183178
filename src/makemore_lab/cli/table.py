"""Turn a sweep into an ablation table (Markdown + CSV) and its plots, or a per-layer table.

    makemore-table outputs/multiruns/<timestamp> [--reference]
    makemore-table outputs/multiruns/<timestamp> --layers [--step N]

One row per job, or per configuration with mean +- std when the sweep repeats it over several
`seed`s: the overrides that vary, loss at step 0, final train/val/test loss, first- and
last-nonlinearity std and saturation at init and at the end (from dynamics.csv), steps per
second and wall time. Failed, diverged, unfinished and unreadable jobs are rows too, never
dropped. `--reference` adds the published numbers a preset carries (`reference:` in its config)
and our difference. Writes ablation.md, ablation.csv, loss_curves.png and depth_init.png into
the sweep directory.

`--layers` prints instead, for every job with a dynamics.csv, its activation statistics per
nonlinearity at one collected step: "std / saturated %" for tanh, "std / dead %" for ReLU,
"std" otherwise. It writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from makemore_lab.atomic import write_text
from makemore_lab.reports import ablation
from makemore_lab.reports.figures import depth_figure, loss_curves, panels_figure


def parser() -> argparse.ArgumentParser:
    """The command line of `makemore-table`."""
    parser = argparse.ArgumentParser(
        prog="makemore-table",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sweep", type=Path, help="a multirun directory")
    parser.add_argument(
        "--reference",
        action="store_true",
        help="add the presets' published numbers (when some job carries them)",
    )
    parser.add_argument(
        "--layers",
        action="store_true",
        help="print per-layer activation statistics of every job instead (writes nothing)",
    )
    parser.add_argument(
        "--step",
        type=int,
        default=None,
        help="with --layers: the collected step to show (default 0: init)",
    )
    return parser


PANELS = ("activations_init", "activations_final", "gradients_init", "gradients_final")


def ablation_table(sweep: Path, reference: bool) -> int:
    """Write the table and plots into `sweep` and print the table; exit 2 when it has no jobs."""
    jobs = ablation.find_jobs(sweep) if sweep.is_dir() else []
    if not jobs:
        print(
            f"makemore-lab: error: {sweep} holds no job directories (each with .hydra/); "
            f"pass the directory of a multirun, e.g. outputs/multiruns/<timestamp>.",
            file=sys.stderr,
        )
        return 2
    job_rows = [ablation.read_job(job) for job in jobs]
    shared = set.intersection(*(set(r["overrides"]) for r in job_rows))  # what does not vary
    labels = [", ".join(o for o in r["overrides"] if o not in shared) or r["dir"] for r in job_rows]
    rows = ablation.group_rows(job_rows, shared)
    header, body = ablation.table(rows, reference)
    md = ablation.markdown(header, body)
    write_text(sweep / "ablation.md", "\n".join(md) + "\n")
    write_text(sweep / "ablation.csv", ablation.csv_text(header, body))
    loss_curves(jobs, labels).savefig(sweep / "loss_curves.png", dpi=80)
    depth_figure(jobs, labels).savefig(sweep / "depth_init.png", dpi=80)
    depth_figure(jobs, labels, end=True).savefig(sweep / "depth_end.png", dpi=80)
    written = ["loss_curves.png", "depth_init.png", "depth_end.png"]
    for name in PANELS:  # the lecture's plots, one panel per job
        fig = panels_figure(jobs, labels, name)
        if fig is not None:
            fig.savefig(sweep / f"{name}.png", dpi=80)
            written.append(f"{name}.png")
    print("\n".join(md))
    print(f"\nwrote {sweep / 'ablation.md'}, ablation.csv, {', '.join(written)}")
    failed = [r["config"] for r in rows if r["status"] != "completed"]
    if failed:
        print(f"not completed: {'; '.join(failed)}", file=sys.stderr)
    return 0


def layers_table(sweep: Path, step: int) -> int:
    """Print the per-layer table of the jobs with a dynamics.csv; exit 2 when there are none."""
    jobs = (
        [j for j in ablation.find_jobs(sweep) if (j / "dynamics.csv").is_file()]
        if sweep.is_dir()
        else []
    )
    if not jobs:
        print(f"makemore-lab: error: no job with a dynamics.csv under {sweep}", file=sys.stderr)
        return 2
    collected = sorted(set.union(*(ablation.collected_steps(job) for job in jobs)))
    if step not in collected:
        print(
            f"makemore-lab: error: --step {step} was not collected by any job under {sweep}; "
            f"the dynamics callback collected steps {', '.join(map(str, collected))}. Pass one "
            f"of them (0 is initialization).",
            file=sys.stderr,
        )
        return 2
    print("\n".join(ablation.layers_table(jobs, step)))
    return 0


def main(argv: list[str] | None = None) -> int:
    """`makemore-table SWEEP [--reference]`, or `makemore-table SWEEP --layers [--step N]`."""
    cli = parser()
    args = cli.parse_args(argv)
    if args.layers:
        if args.reference:
            cli.error("--reference goes with the ablation table, not with --layers")
        return layers_table(args.sweep, 0 if args.step is None else args.step)
    if args.step is not None:
        cli.error("--step goes with --layers (the ablation table reads every step)")
    return ablation_table(args.sweep, args.reference)


if __name__ == "__main__":
    sys.exit(main())
