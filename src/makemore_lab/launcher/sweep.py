"""`hydra/launcher=stacked`: a multirun's jobs trained in stacked groups, in this one process.

Jobs whose every setting the stacked engine reproduces, and that differ only in per-job values
(seed, init, the optimizer's settings and schedule, where they write, loggers), train as one
group (`grouping` decides, and says why a job trains alone). Each job is prepared in its own
directory and Hydra context (the driver's checks and claim), then the group trains through the
driver (`train.train_jobs`); a job that trains alone runs as the basic launcher runs it. The
groups are printed at the start. Every job's directory, `.hydra/`, records and checkpoints are
a solo run's, so the sweep's summary, the table and TensorBoard read it unchanged. With
`hydra.launcher.n_jobs` above 1 (-1: one per core), groups run side by side, one process each
(`processes`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import (
    JobReturn,
    JobStatus,
    configure_log,
    filter_overrides,
    run_job,
    setup_globals,
)
from omegaconf import DictConfig, OmegaConf, open_dict

from makemore_lab.launcher.grouping import Grouping, choose_grouping, split_to_fill
from makemore_lab.launcher.processes import Task, run_parallel
from makemore_lab.launcher.slurm import Lost, run_on_slurm
from makemore_lab.runs import claim as run_claim
from makemore_lab.runs import hydra_record
from makemore_lab.runs import record as run_record
from makemore_lab.runs.failures import handle_job_error
from makemore_lab.runs.job import Job
from makemore_lab.train import prepare_job, train_jobs
from makemore_lab.training.console import quiet_lightning
from makemore_lab.training.evaluation import usable_cores

log = logging.getLogger(__name__)


def prepare(cfg: DictConfig) -> Job | None:
    """The task each job runs first, in its own directory's context: the driver's checks and
    claim (`prepare_job`), the config resolved (Hydra's context is gone when it trains); None
    if refused (its record is written)."""
    try:
        job = prepare_job(cfg)
        job.cfg = OmegaConf.create(job.config)
        return job
    except Exception as err:
        handle_job_error(cfg, err)
        return None


def launch(launcher: Any, job_overrides: Sequence[Sequence[str]], first: int) -> list[JobReturn]:
    """The stacked launcher's `launch`: every job's JobReturn, in job order."""
    setup_globals()
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    configs = []
    loader = launcher.hydra_context.config_loader  # composing.ComposedOnce
    for idx, overrides in enumerate(job_overrides, start=first):
        cfg = loader.take(launcher.config, overrides)
        with open_dict(cfg):
            cfg.hydra.job.id = cfg.hydra.job.num = idx
        configs.append(cfg)
    loader.forget()
    n_jobs = launcher.n_jobs if launcher.n_jobs > 0 else usable_cores()
    on_slurm = launcher.executor == "slurm"
    slots = (launcher.slurm.get("array_parallelism") or len(configs)) if on_slurm else n_jobs
    grouping = choose_grouping(configs, launcher.mixed_layers, slots)
    grouping = split_to_fill(grouping, configs, launcher.split_groups, slots, not on_slurm)
    groups = grouping.groups
    describe(grouping, configs)
    side_by_side = n_jobs > 1 and len(groups) > 1
    live = not (side_by_side or on_slurm)  # a bar and a model table only on this terminal
    tasks = [group_task(launcher, [configs[i] for i in g], live) for g in groups]
    if on_slurm:  # one SLURM array element per group
        results = run_on_slurm(launcher.slurm, sweep_dir, tasks)
        results = [
            record_lost(launcher, [configs[i] for i in group], r) if isinstance(r, Lost) else r
            for group, r in zip(groups, results, strict=True)
        ]
    elif side_by_side:
        results = run_parallel(tasks, n_jobs)  # groups side by side, one process each
    else:
        results = []
        for task in tasks:
            results.append(task())
            configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    returns = {
        i: ret
        for group, rets in zip(groups, results, strict=True)
        for i, ret in zip(group, rets, strict=True)
    }
    return [returns[i] for i in range(len(configs))]


def group_task(launcher: Any, configs: list[DictConfig], live_display: bool) -> Task:
    """What runs one group: stacked if it has several jobs, else the job as the basic launcher."""
    if len(configs) > 1:
        return partial(run_group, launcher, configs, live_display)
    return partial(run_alone, launcher, configs)


def describe(grouping: Grouping, configs: list[DictConfig]) -> None:
    """Print the groups: which jobs train together, named by the overrides that vary, and why
    a job trains alone."""
    overrides = [filter_overrides(cfg.hydra.overrides.task) for cfg in configs]
    shared = set.intersection(*(set(o) for o in overrides))
    lines = []
    for group in grouping.groups:
        nums = ", #".join(str(configs[i].hydra.job.num) for i in group)
        varying = "; ".join(" ".join(o for o in overrides[i] if o not in shared) for i in group)
        if len(group) > 1:
            lines.append(f"  #{nums}: {len(group)} jobs stacked ({varying or 'defaults'})")
        else:
            lines.append(f"  #{nums} alone: {grouping.alone[group[0]]} ({varying or 'defaults'})")
    if grouping.note is not None:
        lines.append(f"  {grouping.note}")
    n = len(grouping.groups)
    log.info(
        "stacked launcher: %d jobs in %d group%s\n%s",
        len(configs),
        n,
        "" if n == 1 else "s",
        "\n".join(lines),
    )


def run_in_job_dir(launcher: Any, cfg: DictConfig, task: Any, resume: bool = False) -> JobReturn:
    """`task(cfg)` in the job's directory and Hydra context, as the basic launcher runs a job.
    `resume` (a requeued SLURM task): the job continues its own earlier attempt, stopped and
    saved."""
    if resume:
        with open_dict(cfg):
            cfg.resume = True
    return run_job(
        hydra_context=launcher.hydra_context,
        task_function=task,
        config=cfg,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )


def run_alone(launcher: Any, configs: list[DictConfig], resume: bool = False) -> list[JobReturn]:
    """Jobs that do not stack: each as the basic launcher runs it (`resume`: see
    `run_in_job_dir`)."""
    return [run_in_job_dir(launcher, cfg, launcher.task_function, resume) for cfg in configs]


def run_group(
    launcher: Any, configs: list[DictConfig], live_display: bool = True, resume: bool = False
) -> list[JobReturn]:
    """One stacking group: each job prepared in its directory, then trained together with the
    jobs that start from the same step (a resumed sweep: each from its own last.ckpt;
    `resume`: see `run_in_job_dir`)."""
    returns = [run_in_job_dir(launcher, cfg, prepare, resume) for cfg in configs]
    prepared: list[Job | None] = [ret.return_value for ret in returns]
    values = {i: p.finished["val_loss"] for i, p in enumerate(prepared) if p and p.finished}
    by_step: dict[int | None, list[int]] = {}
    for i, p in enumerate(prepared):
        if p is not None and p.finished is None:
            by_step.setdefault(p.resume_step, []).append(i)
    if len(by_step) > 1:
        log.info("resumed jobs at other steps train apart: %s", sorted(by_step.values()))
    for ready in by_step.values():
        if len(ready) == 1:  # alone now (the others finished, or resume elsewhere): solo
            values[ready[0]] = run_in_job_dir(
                launcher, configs[ready[0]], launcher.task_function, resume
            ).return_value
            continue
        jobs = [prepared[i] for i in ready]
        try:
            values |= train_ready(jobs, ready, configs[ready[0]], live_display)
        finally:  # every job has recorded how it ended
            for job in jobs:
                run_claim.release(job.run_dir)
    for i, ret in enumerate(returns):
        ret.status, ret.return_value = JobStatus.COMPLETED, values.get(i, float("nan"))
    return returns


def train_ready(
    jobs: list[Job], indices: list[int], hydra_cfg: DictConfig, live_display: bool = True
) -> dict[int, float]:
    """Train the group through the driver; each job's val loss (NaN if it did not complete).

    `hydra_cfg` (a job's sweep config) is Hydra's config while the group trains: the command
    that resumes the sweep is read from it.
    """
    quiet_lightning()
    HydraConfig.instance().set_config(hydra_cfg)
    cfgs = [job.cfg for job in jobs]
    try:
        metrics = train_jobs(jobs, live_display=live_display)
    except Exception as err:  # recorded for every job of the group, said once; the sweep goes on
        names = [Path(cfg.run_dir).name for cfg in cfgs]
        for cfg in cfgs:  # not one job's doing: each record names the group
            run_record.write_failed(cfg.run_dir, err, group=names)
        handle_job_error(cfgs[0], err)
        return {}
    return {
        i: m["val_loss"] if m.get("status") == "completed" else float("nan")
        for i, m in zip(indices, metrics, strict=True)
    }


def record_lost(launcher: Any, configs: list[DictConfig], lost: Lost) -> list[JobReturn]:
    """A SLURM task that ended without a result: each of its jobs that did not record its own
    end is recorded `failed` with the task's state and log (its claim, a dead process's, let
    go), so the summary names it and `resume=true` continues it from its last.ckpt."""
    log.error("%s; its jobs that did not finish are recorded failed", lost)
    returns = []
    for cfg in configs:
        run_dir = Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)
        if run_record.status(run_dir) not in ("completed", "diverged"):
            run_claim.make_run_dir(run_dir)
            if not (run_dir / ".hydra").is_dir():  # never started: the table labels it by this
                HydraConfig.instance().set_config(cfg)
                task_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
                hydra_record.write(task_cfg, run_dir)
            slurm_info = {"job": lost.job, "state": lost.state, "log": lost.log_path}
            run_record.write_lost(run_dir, str(lost), slurm_info)
            (run_dir / run_claim.LOCK).unlink(missing_ok=True)
        ret = JobReturn(overrides=list(cfg.hydra.overrides.task), cfg=cfg, hydra_cfg=cfg)
        ret.working_dir, ret.task_name = str(run_dir), cfg.hydra.job.name
        ret.status, ret.return_value = JobStatus.COMPLETED, float("nan")
        returns.append(ret)
    return returns
