"""A stacked group's checkpoints are its jobs' own: each job's files, in the solo format.

Lightning saves a group's state as one dict: the stacked weights and optimizer, the jobs'
callbacks, and each job's record (its `JobState` entries, job_state.py). `JobCheckpointIO`,
the group trainer's checkpoint plugin, never writes that dict: asked to save into job j's
checkpoint folder (by job j's own `JobCheckpoint`, or on SIGTERM / Ctrl-C), it writes job j's
solo checkpoint cut out of it (`split`); asked to load, it reads every job's own `last.ckpt`
and stacks them (`join`). So a job's `step*.ckpt` and `last.ckpt` are what its solo run writes
(`makemore-sample`, `ckpt_path=` and `resume=true` read them), and a killed group resumes each
job from its own file. This module owns the group's side of both conversions; the keys of a
job's own record are `job_state.py`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from makemore_lab.job_state import JOBS, job_hparams, with_jobs
from makemore_lab.runs.checkpoints import AtomicCheckpointIO, StepCheckpoint
from makemore_lab.runs.job import Job
from makemore_lab.stacked.layout import Layout
from makemore_lab.stacked.sgd import JobSGD

SHARED = ("epoch", "global_step", "pytorch-lightning_version", "loops")
NET = "net."  # the LightningModule's network attribute: its state_dict keys' prefix


def job_suffix(job: int) -> str:
    return f"[job {job}]"


class JobCheckpoint(StepCheckpoint):
    """Job `job`'s ModelCheckpoint in a group: its folder, its top-k and last, its own state
    (keyed apart from the other jobs')."""

    def __init__(self, job: int, **settings: Any) -> None:
        super().__init__(**settings)
        self.job = job

    @property
    def state_key(self) -> str:
        """The solo run's key (a `StepCheckpoint`'s), marked with the job."""
        key = super().state_key.removeprefix(type(self).__qualname__)
        return StepCheckpoint.__qualname__ + key + job_suffix(self.job)


@dataclass
class GroupJobs:
    """What the conversions need of a group: each resolved job, its solo network, the vocab,
    and where each job's tensors are in the group's (`layout`)."""

    jobs: list[Job]
    nets: list[nn.Module]  # each job's solo network (its parameters name the optimizer state)
    vocab: str
    layout: Layout

    @property
    def cfgs(self) -> list[DictConfig]:
        return [job.cfg for job in self.jobs]

    def checkpoint_dir(self, job: int) -> Path:
        folder = self.jobs[job].checkpoint_dir
        if folder is None:
            raise ValueError(f"job {job} writes no checkpoints")
        return folder

    def job_of(self, path: str | Path) -> int:
        """The job whose checkpoint folder holds `path` (Lightning passes real paths)."""
        folder = Path(path).resolve().parent
        for job in range(len(self.jobs)):
            if self.checkpoint_dir(job).resolve() == folder:
                return job
        raise ValueError(f"{path} is in no job's checkpoint folder")


def split(group: dict[str, Any], job: int, jobs: GroupJobs) -> dict[str, Any]:
    """Job `job`'s solo checkpoint, cut out of the group's checkpoint dict."""
    cfg, steps = jobs.cfgs[job], group["global_step"]
    ckpt = {key: group[key] for key in SHARED}
    inner = {name.removeprefix(NET): t for name, t in group["state_dict"].items()}
    if inner.keys() != jobs.layout.tensors.keys():
        raise ValueError("the group's state is not its layout's: cannot cut a job's out of it")
    solo = jobs.layout.solo_state(inner, job)
    ckpt["state_dict"] = {NET + name: t for name, t in solo.items()}
    ckpt["optimizer_states"], ckpt["lr_schedulers"] = solo_optimizer_states(
        cfg, jobs, group["optimizer_states"][0], job, steps
    )
    ckpt["callbacks"] = {}
    for key, state in group["callbacks"].items():
        if key == "TrainingDynamics":
            ckpt["callbacks"][key] = state["jobs"][job]
        elif key.endswith(job_suffix(job)):
            ckpt["callbacks"][key.removesuffix(job_suffix(job))] = state
    ckpt["hyper_parameters"] = job_hparams(jobs.jobs[job].config, jobs.vocab, cfg.compile)
    ckpt.update(group[JOBS][job])  # its loss record and sampler state (job_state.py)
    return ckpt


def solo_optimizer_states(
    cfg: DictConfig, jobs: GroupJobs, stacked: dict[str, Any], job: int, steps: int
) -> tuple[list, list]:
    """The job's own optimizer and schedule state after `steps` steps, as its solo run has them
    (the stacked optimizer's state `stacked`: momentum buffers by parameter index)."""
    net = jobs.nets[job]
    optimizer = instantiate(cfg.optim.optimizer)(params=net.parameters())
    rate = JobSGD.of(cfg).at(steps)  # the rate the next step uses
    if stacked["param_groups"][0]["momentum_started"][job]:
        solo = dict(net.named_parameters())
        for index, name in enumerate(jobs.layout.params):
            rows = jobs.layout.tensors[name]
            if job in rows.jobs:
                buffer = stacked["state"][index]["momentum_buffer"][rows.jobs.index(job)]
                param = solo[rows.names[rows.jobs.index(job)]]
                optimizer.state[param]["momentum_buffer"] = buffer.reshape(param.shape).clone()
    schedulers = []
    if cfg.optim.get("scheduler") is not None:
        scheduler = instantiate(cfg.optim.scheduler)(optimizer=optimizer)
        # MultiStepLR after `steps` steps: its counters, and the rate it has set
        scheduler.last_epoch, scheduler._step_count = steps, steps + 1
        scheduler._last_lr = [rate]
        schedulers = [scheduler.state_dict()]
    optimizer.param_groups[0]["lr"] = rate
    return [optimizer.state_dict()], schedulers


def join(solos: list[dict[str, Any]], jobs: GroupJobs) -> dict[str, Any]:
    """The group's checkpoint dict from its jobs' solo checkpoints (all at one step)."""
    steps = {c["global_step"] for c in solos}
    if len(steps) != 1:
        raise ValueError(f"the jobs' checkpoints are at different steps: {sorted(steps)}")
    group = {key: solos[0][key] for key in SHARED}
    inner = [{k.removeprefix(NET): t for k, t in c["state_dict"].items()} for c in solos]
    group["state_dict"] = {NET + k: t for k, t in jobs.layout.group_state(inner).items()}
    group["optimizer_states"] = [stacked_optimizer_state(solos, jobs)]
    group["lr_schedulers"] = []
    group["callbacks"] = {}
    for job, solo in enumerate(solos):
        for key, state in solo["callbacks"].items():
            if key == "TrainingDynamics":
                group["callbacks"].setdefault(key, {"jobs": []})["jobs"].append(state)
            else:
                group["callbacks"][key + job_suffix(job)] = state
    return with_jobs(solos, group)  # each job's loss record and sampler state


def stacked_optimizer_state(solos: list[dict[str, Any]], jobs: GroupJobs) -> dict[str, Any]:
    """`StackedSGD`'s state from the jobs' own optimizers' states."""
    started = [bool(c["optimizer_states"][0]["state"]) for c in solos]
    state = {}
    if any(started):
        # each job's buffers by its own parameter names, zeros where it has not started
        buffers = []
        for job, (solo, ok) in enumerate(zip(solos, started, strict=True)):
            own = solo["optimizer_states"][0]["state"]
            params = jobs.nets[job].named_parameters()
            buffers.append(
                {
                    n: own[i]["momentum_buffer"] if ok else torch.zeros_like(p)
                    for i, (n, p) in enumerate(params)
                }
            )
        stacked = jobs.layout.group_state(buffers, jobs.layout.params)
        for index, name in enumerate(jobs.layout.params):
            state[index] = {"momentum_buffer": stacked[name]}
    group = {
        "lr": JobSGD.of(jobs.cfgs[0]).lr,
        "steps_done": solos[0]["global_step"],
        "active": [True] * len(solos),
        "momentum_started": started,
        "params": list(range(len(jobs.layout.params))),
    }
    return {"state": state, "param_groups": [group]}


class JobCheckpointIO(AtomicCheckpointIO):
    """The group trainer's checkpoint plugin: saves and loads each job's own files."""

    def __init__(self, jobs: GroupJobs) -> None:
        super().__init__()
        self.jobs = jobs

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        job = self.jobs.job_of(path)
        super().save_checkpoint(split(checkpoint, job, self.jobs), path, storage_options)

    def load_checkpoint(self, path: str | Path, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The group's state from every job's last.ckpt (`path` is job 0's)."""
        name = Path(path).name
        solos = [
            torch.load(self.jobs.checkpoint_dir(j) / name, map_location="cpu", weights_only=True)
            for j in range(len(self.jobs.cfgs))
        ]
        return join(solos, self.jobs)
