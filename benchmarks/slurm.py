"""A seed grid on SLURM: the stacked launcher's one task against one task per job.

    python -m benchmarks.slurm                  # on a one-node SLURM it starts here
    SLURM_CONF=/etc/slurm/slurm.conf python -m benchmarks.slurm --partition <p>   # a cluster

16 jobs of the default config (`seed=range(1,17)`), `--steps` (3,000) each, run through
the real CLI in one run of this script: `hydra/launcher=stacked_slurm` (the 16 jobs stack: one
task, with `--stacked-cpus` cores and as many torch threads: 1, then 2 by default), the same
group split into `--split-tasks` (2) stacked tasks of one core each
(`hydra.launcher.split_groups=true`, as many in `slurm.array_parallelism`), and
`hydra/launcher=slurm` (submitit: one task per job, `cpus_per_task=1`, as many at once as the
node's cores allow). Measures each command's wall time, submission to summary, and checks that
every sweep gives every job the same val loss. Prints one JSON line last, with
`slurm_stacked_over_per_job` (the stacked task on one core; the target: at most 0.35).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["callbacks.progress_bar=null", "trainer.enable_progress_bar=false"]
SLURM_LOCAL = ["bash", str(ROOT / "scripts" / "slurm_local.sh")]  # `up DIR` / `down DIR`


def local_slurm(where: Path) -> dict[str, str]:
    """Start `scripts/slurm_local.sh up` under `where`; the environment that reaches it."""
    up = subprocess.run(
        [*SLURM_LOCAL, "up", str(where)], capture_output=True, text=True, check=True
    )
    return {"SLURM_CONF": up.stdout.strip().split("export SLURM_CONF=")[1]}


def sweep_seconds(args: list[str], out: Path, env: dict[str, str]) -> float:
    """Wall time of `python train.py -m <args>` writing into `out`; it must succeed."""
    started = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "train.py", "-m", *args, f"hydra.sweep.dir={out}"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        sys.exit(f"the sweep into {out} failed:\n{run.stderr[-3000:]}")
    return seconds


def val_losses(sweep: Path) -> dict[str, float]:
    return {
        job.parent.name: json.loads(job.read_text())["val_loss"]
        for job in sweep.glob("*/metrics.json")
    }


def run_sweeps(args: argparse.Namespace, tmp: Path, env: dict[str, str]) -> dict[str, float]:
    """Each sweep's wall seconds: stacked with each `--stacked-cpus`, then a task per job."""
    grid = [f"seed=range(1,{args.jobs + 1})", f"trainer.max_steps={args.steps}"]
    grid += [f"data.path={args.data}", *QUIET]
    stacked = ["hydra/launcher=stacked_slurm", f"hydra.launcher.slurm.partition={args.partition}"]
    stacked += ["hydra.launcher.slurm.mem_gb=2"]
    per_job = ["hydra/launcher=slurm", f"hydra.launcher.partition={args.partition}"]
    per_job += ["hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2"]
    seconds = {}
    for cpus in args.stacked_cpus:
        cores = [f"hydra.launcher.slurm.cpus_per_task={cpus}", f"threads={cpus}"]
        seconds[f"stacked_{cpus}cpu"] = sweep_seconds(
            [*grid, *stacked, *cores], tmp / f"stacked_{cpus}cpu", env
        )
    for tasks in args.split_tasks:  # the group split in `tasks` stacked tasks of one core
        split = [
            "hydra.launcher.split_groups=true",
            f"hydra.launcher.slurm.array_parallelism={tasks}",
        ]
        seconds[f"stacked_{tasks}tasks"] = sweep_seconds(
            [*grid, *stacked, *split], tmp / f"stacked_{tasks}tasks", env
        )
    seconds["per_job"] = sweep_seconds([*grid, *per_job], tmp / "per_job", env)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.slurm", description=__doc__)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--partition", default="local")
    parser.add_argument("--stacked-cpus", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--split-tasks", type=int, nargs="*", default=[2])
    parser.add_argument("--data", default=str(ROOT / "data" / "names.txt"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started_here = "SLURM_CONF" not in os.environ
        env = local_slurm(Path(tmp) / "slurm") if started_here else {}
        try:
            seconds = run_sweeps(args, Path(tmp), env)
        finally:
            if started_here:
                subprocess.run([*SLURM_LOCAL, "down", str(Path(tmp) / "slurm")], check=False)
        losses = [val_losses(Path(tmp) / name) for name in seconds]
    same = all(v == losses[0] for v in losses)
    print(f"{args.jobs} jobs x {args.steps} steps, wall seconds: {seconds}; same losses: {same}")
    summary = {f"slurm_{name}_seconds": round(s, 1) for name, s in seconds.items()}
    summary |= {
        f"slurm_{name}_over_per_job": round(s / seconds["per_job"], 3)
        for name, s in seconds.items()
        if name != "per_job"
    }
    if "stacked_1cpu" in seconds:  # the target's figure: the stacked task on one core
        summary["slurm_stacked_over_per_job"] = summary["slurm_stacked_1cpu_over_per_job"]
    summary |= {"same_val_losses": same, "jobs": args.jobs, "steps": args.steps}
    print(json.dumps(summary | {"cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
