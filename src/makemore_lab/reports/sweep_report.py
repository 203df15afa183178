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

from makemore_lab.atomic import write_bytes
from makemore_lab.reports.ablation import find_jobs
from makemore_lab.runs import hparams
from makemore_lab.runs import record as run_record

MULTIRUN_YAML = "multirun.yaml"  # Hydra's record of the sweep command, in the sweep directory


def job_statuses(sweep_dir: Path) -> dict[str, str]:
    """Each job directory's status from its metrics.json ('unfinished' when it has none)."""
    jobs = sorted(p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir() or run_record.exists(p))
    return {job.name: run_record.status(job) for job in jobs}


def files_of(sweep_dir: Path) -> dict[str, tuple[int, int]]:
    """Every file under the sweep but Hydra's multirun.yaml: its size and modification time."""
    return {
        str(p.relative_to(sweep_dir)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sweep_dir.rglob("*")
        if p.is_file() and p.name != MULTIRUN_YAML
    }


def why(run_dir: Path, status: str) -> str:
    """A job's status, and for one whose SLURM task ended without it, the task and its log."""
    slurm = run_record.read(run_dir).get("slurm")
    if not isinstance(slurm, dict):
        return status
    where = f"log {slurm['log']}" if slurm.get("log") else "never started"
    return f"{status}: SLURM task {slurm.get('job')} {slurm.get('state')}, {where}"


class SweepReport(Callback):
    """On multirun end: the table and TensorBoard commands; the jobs that failed, then exit 1.

    Hydra rewrites the sweep's multirun.yaml before any job starts; when no job then wrote
    anything (every one refused, or finished already), the earlier multirun.yaml is put back:
    a refused command changes no byte of a sweep.
    """

    def __init__(self) -> None:
        self._before: tuple[bytes, dict[str, tuple[int, int]]] | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if (sweep_dir / MULTIRUN_YAML).is_file():
            self._before = ((sweep_dir / MULTIRUN_YAML).read_bytes(), files_of(sweep_dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        if self._before is not None and files_of(sweep_dir) == self._before[1]:
            write_bytes(sweep_dir / MULTIRUN_YAML, self._before[0])  # nothing ran: as it was
        else:  # TensorBoard's HParams view of the sweep: its one experiment, at the root
            hparams.sweep_experiment(sweep_dir, find_jobs(sweep_dir))
        statuses = job_statuses(sweep_dir)
        bad = {job: status for job, status in statuses.items() if status != "completed"}
        next_steps = (
            f"  table   makemore-table {sweep_dir}\n  browse  tensorboard --logdir {sweep_dir}\n"
        )
        if not bad:
            print(f"\nmakemore-lab: all {len(statuses)} jobs completed\n{next_steps}")
            return
        named = ", ".join(f"{job} ({why(sweep_dir / job, status)})" for job, status in bad.items())
        print(
            f"\nmakemore-lab: {len(bad)} of {len(statuses)} jobs did not complete: {named}. "
            f"Each job's metrics.json says why; the table marks them.\n{next_steps}",
            file=sys.stderr,
        )
        sys.exit(1)
