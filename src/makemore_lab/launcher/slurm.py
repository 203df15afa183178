"""`hydra/launcher=stacked_slurm`: each stacked group one element of a SLURM job array.

The groups and the jobs that train alone are the tasks `sweep.launch` would run here; submitit
submits them as one array (`array_parallelism` at once) and each element runs its task on a
node, writing to the sweep directory, which must be on a filesystem the nodes share. Each
element's output and submitit's files go to `<sweep>/.submitit/<array job>_<index>/`.

Preemption: SLURM's SIGUSR2 (sent `signal_delay_s` before the time limit, or by a cluster
before it preempts) stops a group at its next chunk boundary with every job's last.ckpt saved
(training/interrupts.py), then the element requeues itself (`scontrol requeue`) and exits; its
next attempt (`SLURM_RESTART_COUNT` > 0) resumes each job from its own last.ckpt. A SIGTERM
(`scontrol requeue`, a cluster's requeue or cancel) saves the same way and leaves the requeue
to SLURM. An element that ends without a result (cancelled, timed out, out of memory, gone) is
reported with its state and log, and its unfinished jobs recorded `failed`.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from makemore_lab.launcher.processes import Task
from makemore_lab.launcher.slurm_states import Watch, job_states
from makemore_lab.runs.claim import slurm_attempt, slurm_job

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0  # how often the result files are looked for
STATE_SECONDS = 5.0  # how often SLURM is asked how the others stand


@dataclass(frozen=True)
class Lost:
    """An element that ended without a result: its SLURM id and state, and its log."""

    job: str
    state: str
    log: Path

    @property
    def log_path(self) -> str | None:
        return str(self.log) if self.log.exists() else None  # None: it never started

    def __str__(self) -> str:
        where = f"its log: {self.log}" if self.log_path else "no log: it never started"
        return f"SLURM task {self.job} ended {self.state} without a result ({where})"


def sbatch_parameters(settings: DictConfig) -> dict[str, Any]:
    """submitit's SlurmExecutor parameters from the launcher's `slurm:` settings."""
    wanted = OmegaConf.to_container(settings, resolve=True)
    assert isinstance(wanted, dict)
    params: dict[str, Any] = {
        "nodes": 1,
        "ntasks_per_node": 1,  # one training process per group
        "additional_parameters": wanted.get("additional_parameters") or {},
    }
    if wanted.get("mem_gb") is not None:
        params["mem"] = f"{wanted['mem_gb']}GB"
    if wanted.get("gpus_per_node"):
        params["gpus_per_node"] = wanted["gpus_per_node"]
    named = {"time": "timeout_min", "cpus_per_task": "cpus_per_task", "partition": "partition"}
    named |= {"account": "account", "qos": "qos", "array_parallelism": "array_parallelism"}
    named |= {"signal_delay_s": "signal_delay_s"}
    for param, key in named.items():  # null: the cluster's default (submitit's for the array)
        if wanted.get(key) is not None:
            params[param] = wanted[key]
    return params


def run_on_slurm(settings: DictConfig, sweep_dir: Path, tasks: list[Task]) -> list[Any]:
    """Each task's result, in order, from one SLURM job array (one element per task); a `Lost`
    for an element that ended without one."""
    import submitit

    executor = submitit.SlurmExecutor(folder=sweep_dir / ".submitit" / "%j")  # <array>_<index>
    executor.update_parameters(job_name="makemore-lab", **sbatch_parameters(settings))
    max_requeues = int(settings.max_requeues)
    with executor.batch():
        jobs = [executor.submit(on_node, task, max_requeues) for task in tasks]
    ids = ", ".join(job.job_id for job in jobs)
    log.info("submitted %d SLURM tasks: %s", len(jobs), ids)
    try:
        return wait_for(jobs)
    except KeyboardInterrupt:  # the tasks are the cluster's now: say so, cancel nothing
        print(
            f"\nmakemore-lab: stopped waiting; the SLURM tasks {ids} go on (squeue lists them, "
            f"scancel stops them: each job saves its last.ckpt). Their results land in "
            f"{sweep_dir}; once they have ended, the same command with resume=true finishes "
            f"what is missing.",
            file=sys.stderr,
        )
        sys.exit(130)


def wait_for(jobs: list[Any]) -> list[Any]:
    """Each submitit job's result once its file is there, or a `Lost` once SLURM says (or has
    forgotten) that it ended without one; the others are waited for, never cancelled."""
    results: dict[int, Any] = {}
    watch, asked = Watch(), 0.0
    while len(results) < len(jobs):
        waiting = [i for i in range(len(jobs)) if i not in results]
        for i in waiting:
            if jobs[i].paths.result_pickle.exists():
                results[i] = outcome(jobs[i])
        waiting = [i for i in waiting if i not in results]
        if waiting and time.monotonic() - asked >= STATE_SECONDS:
            asked = time.monotonic()
            states = job_states({jobs[i].job_id for i in waiting})
            if states is None:
                log.warning("scontrol did not answer; asking again in %.0f s", STATE_SECONDS)
                continue
            for i in waiting:
                job = jobs[i]
                if not job.paths.result_pickle.exists() and watch.lost(
                    job.job_id, states.get(job.job_id)
                ):
                    results[i] = Lost(job.job_id, watch.states[job.job_id], job.paths.stderr)
        time.sleep(POLL_SECONDS if len(results) < len(jobs) else 0)
    return [results[i] for i in range(len(jobs))]


def outcome(job: Any) -> Any:
    """The task's result; a `Lost` (state FAILED) if it raised past the driver (a bug)."""
    try:
        return job.result()
    except Exception as err:  # the traceback is in its log; the sweep reports the rest
        log.error("SLURM task %s raised: %s", job.job_id, str(err).splitlines()[0])
        return Lost(job.job_id, "FAILED", job.paths.stderr)


def on_node(task: Task, max_requeues: int) -> Any:
    """A task in its SLURM process, a new interpreter: Hydra's resolvers (`hydra:`) first, as
    Hydra's own launchers do on a node; SIGUSR2 and SIGTERM handled as the module says."""
    from hydra.core.utils import setup_globals

    setup_globals()
    logging.basicConfig(
        level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"
    )
    restarts = slurm_attempt()
    if restarts > 0:
        log.info("SLURM requeued %s (attempt %d): its jobs resume", slurm_job(), restarts + 1)
    previous = {s: signal.signal(s, stop_now) for s in (signal.SIGTERM, signal.SIGUSR2)}
    try:
        return task(resume=restarts > 0)  # a requeued attempt continues its jobs
    except SystemExit as stop:  # a signal stopped training; every job's record is written
        if stop.code == 128 + signal.SIGUSR2:
            requeue(restarts, max_requeues)
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def stop_now(signum: int, frame: Any) -> None:
    """SIGUSR2 or SIGTERM outside training (while jobs are prepared): nothing to save yet."""
    log.warning("%s received before training: stopping", signal.Signals(signum).name)
    raise SystemExit(128 + signum)


def requeue(restarts: int, max_requeues: int) -> None:
    """Put this element back in the queue; its next attempt resumes its jobs."""
    if restarts >= max_requeues:
        log.error(
            "SLURM task %s was requeued %d times already (hydra.launcher.slurm.max_requeues="
            "%d): not again. Its jobs' last.ckpt are saved: resume=true continues them.",
            slurm_job(),
            restarts,
            max_requeues,
        )
        return
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # SLURM ends this attempt with a SIGTERM
    run = subprocess.run(["scontrol", "requeue", str(slurm_job())], capture_output=True, text=True)
    if run.returncode != 0:
        log.error("scontrol requeue %s failed: %s", slurm_job(), run.stderr.strip())
    else:
        log.warning("SLURM task %s saved and requeued itself", slurm_job())
