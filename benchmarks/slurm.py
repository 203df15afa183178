"""A seed grid on SLURM: the stacked launcher's one task against one task per job.

    python -m benchmarks.slurm                  # on a one-node SLURM it starts here
    SLURM_CONF=/etc/slurm/slurm.conf python -m benchmarks.slurm --partition <p>   # a cluster

16 jobs of the default config (`seed=range(1,17)`), `--steps` (3,000) each, run twice through
the real CLI in one run of this script: `hydra/launcher=stacked_slurm` (the 16 jobs stack: one
task) and `hydra/launcher=slurm` (submitit: one task per job, `cpus_per_task=1`, as many at once
as the node's cores allow). Measures each command's wall time, submission to summary, and
checks that both give every job the same val loss. Prints one JSON line last, with
`slurm_stacked_over_per_job` (the target: at most 0.35).
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


def local_slurm(where: Path) -> dict[str, str]:
    """Start `scripts/slurm_local.sh up` under `where`; the environment that reaches it."""
    up = subprocess.run(
        ["bash", str(ROOT / "scripts" / "slurm_local.sh"), "up", str(where)],
        capture_output=True,
        text=True,
        check=True,
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


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.slurm", description=__doc__)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--partition", default="local")
    parser.add_argument("--data", default=str(ROOT / "data" / "names.txt"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started_here = "SLURM_CONF" not in os.environ
        env = local_slurm(Path(tmp) / "slurm") if started_here else {}
        try:
            grid = [f"seed=range(1,{args.jobs + 1})", f"trainer.max_steps={args.steps}"]
            grid += [f"data.path={args.data}", *QUIET]
            stacked = [
                "hydra/launcher=stacked_slurm",
                f"hydra.launcher.slurm.partition={args.partition}",
            ]
            stacked += ["hydra.launcher.slurm.cpus_per_task=1", "hydra.launcher.slurm.mem_gb=2"]
            per_job = ["hydra/launcher=slurm", f"hydra.launcher.partition={args.partition}"]
            per_job += ["hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2"]
            seconds = {
                "stacked": sweep_seconds([*grid, *stacked], Path(tmp) / "stacked", env),
                "per_job": sweep_seconds([*grid, *per_job], Path(tmp) / "per_job", env),
            }
            same = val_losses(Path(tmp) / "stacked") == val_losses(Path(tmp) / "per_job")
        finally:
            if started_here:
                subprocess.run(
                    [
                        "bash",
                        str(ROOT / "scripts" / "slurm_local.sh"),
                        "down",
                        str(Path(tmp) / "slurm"),
                    ]
                )
    print(
        f"{args.jobs} jobs x {args.steps} steps: stacked (1 task) {seconds['stacked']:.1f} s, "
        f"one task per job {seconds['per_job']:.1f} s; same val losses: {same}"
    )
    print(
        json.dumps(
            {
                "slurm_stacked_seconds": round(seconds["stacked"], 1),
                "slurm_per_job_seconds": round(seconds["per_job"], 1),
                "slurm_stacked_over_per_job": round(seconds["stacked"] / seconds["per_job"], 3),
                "same_val_losses": same,
                "jobs": args.jobs,
                "steps": args.steps,
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
