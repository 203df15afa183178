"""Turn a sweep into an ablation table (Markdown + CSV) and its plots, or a per-layer table.

    makemore-table outputs/multiruns/<timestamp> [--baseline CONFIG] [--wide] [--reference]
    makemore-table outputs/multiruns/<timestamp> --layers [--step N]

One row per config: the overrides that vary, without `seed`, so the seeds of a config (from any
stacked group or launcher) are one row. Each number is the mean over the config's completed
seeds, `± h` the half-width of its 95% confidence interval (Student's t). `--baseline CONFIG`
adds each config's difference in val loss to that one, paired seed by seed when the seeds match,
with its interval and a verdict: better, worse, or not distinguishable with n seeds. The printed
view fits a terminal (config, n, status, val loss, the difference and verdict, the diagnosis);
`--wide` prints every column: loss at step 0, train/val/test loss, first- and last-nonlinearity
std and saturation at init and at the end, steps per second, wall time. ablation.md holds the
wide table, ablation.csv every number unrounded (`<metric>_mean`, `_ci_low`, `_ci_high`, `_std`,
`n`). Failed, diverged, unfinished and unreadable jobs are counted in their row's status, never
dropped. `--reference` adds the published numbers a preset carries (`reference:` in its config)
and our difference. The plots: loss_curves.png (mean and confidence band per config),
depth_init.png / depth_end.png (error bars over seeds), and the lecture's plots with one panel
per job.

`--layers` prints instead, for every job with a dynamics.csv, its activation statistics per
nonlinearity at one collected step: "std / saturated %" for tanh, "std / dead %" for ReLU,
"std" otherwise. It writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from makemore_lab.atomic import write_text
from makemore_lab.errors import UserError
from makemore_lab.reports import ablation, columns


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
        "--baseline",
        metavar="CONFIG",
        help="compare every config's val loss with this one's (a config as the table writes "
        "it), or with the row above it: --baseline previous",
    )
    parser.add_argument(
        "--wide", action="store_true", help="print every column (ablation.md always has them)"
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


def ablation_table(sweep: Path, reference: bool, baseline: str | None, wide: bool) -> int:
    """Write the table and plots into `sweep` and print the table; exit 2 when it has no jobs
    or the baseline is none of its configs."""
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
    rows = ablation.group_rows(job_rows, shared)
    if baseline is not None:
        try:
            ablation.compare(rows, baseline)
        except UserError as err:
            print(f"makemore-lab: error: {err}", file=sys.stderr)
            return 2
    note = columns.footnote(baseline)
    md = columns.markdown(*columns.table(rows, True, reference, baseline))
    write_text(sweep / "ablation.md", "\n".join([*md, "", note]) + "\n")
    write_text(sweep / "ablation.csv", columns.csv_text(rows))
    shown = md if wide else columns.markdown(*columns.table(rows, False, reference, baseline))
    print("\n".join([*shown, "", note]), flush=True)  # the table first; the figures take longer
    written = write_figures(sweep, [(r["config"], [sweep / d for d in r["dirs"]]) for r in rows])
    print(f"\nwrote {sweep / 'ablation.md'}, ablation.csv, {', '.join(written)}")
    failed = [r["config"] for r in rows if r["status"] != "completed"]
    if failed:
        print(f"not completed: {'; '.join(failed)}", file=sys.stderr)
    return 0


def write_figures(sweep: Path, groups: list[tuple[str, list[Path]]]) -> list[str]:
    """The sweep's plots into `sweep`: per config with bands, the lecture's per job."""
    # Imported here: matplotlib (and the lecture's plots' module) cost seconds the table
    # does not need.
    from makemore_lab.reports.figures import depth_figure, loss_curves, panels_figure

    loss_curves(groups).savefig(sweep / "loss_curves.png", dpi=80)
    depth_figure(groups).savefig(sweep / "depth_init.png", dpi=80)
    depth_figure(groups, end=True).savefig(sweep / "depth_end.png", dpi=80)
    written = ["loss_curves.png", "depth_init.png", "depth_end.png"]
    jobs = [job for _, members in groups for job in members]
    labels = [job.name for job in jobs]
    for name in PANELS:  # the lecture's plots, one panel per job
        fig = panels_figure(jobs, labels, name)
        if fig is not None:
            fig.savefig(sweep / f"{name}.png", dpi=80)
            written.append(f"{name}.png")
    return written


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
        for flag in ("reference", "baseline", "wide"):
            if getattr(args, flag):
                cli.error(f"--{flag} goes with the ablation table, not with --layers")
        return layers_table(args.sweep, 0 if args.step is None else args.step)
    if args.step is not None:
        cli.error("--step goes with --layers (the ablation table reads every step)")
    return ablation_table(args.sweep, args.reference, args.baseline, args.wide)


if __name__ == "__main__":
    sys.exit(main())
