"""The end of a multirun: what to run next, the jobs that did not complete, exit 1 if any.

A job that fails on bad input or diverges records why in its `metrics.json` and returns, so the
sweep goes on (with any launcher) and its table can show it; this Hydra callback runs once all
jobs have returned, on the machine that launched them, and reports them in one paragraph.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from makemore_lab import run_record


def job_statuses(sweep_dir: Path) -> dict[str, str]:
    """Each job directory's status from its metrics.json ('unfinished' when it has none)."""
    jobs = sorted(p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir() or run_record.exists(p))
    return {job.name: run_record.status(job) for job in jobs}


class SweepReport(Callback):
    """On multirun end: the table and TensorBoard commands; the jobs that failed, then exit 1."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        statuses = job_statuses(sweep_dir)
        bad = {job: status for job, status in statuses.items() if status != "completed"}
        next_steps = (
            f"  table   makemore-table {sweep_dir}\n  browse  tensorboard --logdir {sweep_dir}\n"
        )
        if not bad:
            print(f"\nmakemore-lab: all {len(statuses)} jobs completed\n{next_steps}")
            return
        named = ", ".join(f"{job} ({status})" for job, status in bad.items())
        print(
            f"\nmakemore-lab: {len(bad)} of {len(statuses)} jobs did not complete: {named}. "
            f"Each job's metrics.json says why; the table marks them.\n{next_steps}",
            file=sys.stderr,
        )
        sys.exit(1)
