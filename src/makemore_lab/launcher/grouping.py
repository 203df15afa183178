"""Which jobs of a sweep train as one stacked group, and why a job trains alone.

A job joins a group only if the stacked engine reproduces every one of its settings bit for
bit. So the rules are written from what the engine supports, not from what may differ: each
setting below is either one the engine honours per job (`PER_JOB`), one it honours for the
whole group (then the group's jobs must agree on it: the group key), or a reason to train
alone, named in the sweep's listing (`#4 alone: optim.scheduler is CosineAnnealingLR, ...`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

# Settings each job of a group keeps its own value of (dotted keys of the job's config).
PER_JOB = (
    "seed",
    "init",
    "optim.lr",
    "optim.decay_step",
    "optim.decay_gamma",
    "optim.optimizer.lr",
    "optim.optimizer.momentum",
    "optim.optimizer.dampening",
    "optim.optimizer.weight_decay",
    "optim.optimizer.nesterov",
    "optim.optimizer.maximize",
    "optim.optimizer.foreach",
    "optim.scheduler.milestones",
    "optim.scheduler.gamma",
    "callbacks.dynamics.context",
    "callbacks.dynamics.dirpath",
    "callbacks.model_checkpoint.dirpath",
    "run_dir",
    "samples",
    "reference",
    "logger",
)

# Which BatchNorm and activation layers a job has: per job too when a group takes jobs of other
# layers (`mixed_layers`: a layer some jobs lack is applied to the rows of those that have it,
# `stacked.layout`); the Linear shapes stay the group's.
LAYERS = ("model.batchnorm", "model.output_batchnorm", "model.bn", "model.activation")

# Each class by its public name (what conf/ says; makemore_lab/model.py, ... re-export it) and
# by the module that defines it.
MODELS = ("makemore_lab.model.MLP", "makemore_lab.network.model.MLP")
DATA = ("makemore_lab.data.NamesDataModule", "makemore_lab.data.names.NamesDataModule")
# optimizer -> the keys of it the engine reproduces (`stacked.steps.StackedSGD`)
OPTIMIZERS = {
    "torch.optim.SGD": {
        "lr",
        "momentum",
        "dampening",
        "weight_decay",
        "nesterov",
        "maximize",
        "foreach",
    },
    "makemore_lab.optim.LectureSGD": {"lr", "foreach"},
    "makemore_lab.network.optim.LectureSGD": {"lr", "foreach"},
}
SCHEDULERS = {"torch.optim.lr_scheduler.MultiStepLR": {"milestones", "gamma"}}
# callback -> the keys of it that run per job in a group (None: any)
CHECKPOINT_KEYS = {
    "dirpath",
    "filename",
    "auto_insert_metric_name",
    "every_n_train_steps",
    "save_top_k",
    "save_last",
    "enable_version_counter",
    "verbose",
}
CALLBACKS: dict[str, set[str] | None] = {
    "makemore_lab.checkpointing.StepCheckpoint": CHECKPOINT_KEYS,
    "makemore_lab.runs.checkpoints.StepCheckpoint": CHECKPOINT_KEYS,
    "makemore_lab.dynamics.TrainingDynamics": None,
    "makemore_lab.dynamics.callback.TrainingDynamics": None,
    "makemore_lab.progress.StepRichProgressBar": None,
    "makemore_lab.training.progress.StepRichProgressBar": None,
}
LOGGERS = (
    "lightning.pytorch.loggers.TensorBoardLogger",
    "lightning.pytorch.loggers.CSVLogger",
    "lightning.pytorch.loggers.WandbLogger",
)
# The trainer's keys the engine honours as a solo run's trainer does (precision: full only).
TRAINER = {
    "accelerator",
    "devices",
    "max_steps",
    "max_epochs",
    "val_check_interval",
    "check_val_every_n_epoch",
    "log_every_n_steps",
    "num_sanity_val_steps",
    "enable_model_summary",
    "enable_progress_bar",
    "deterministic",
    "precision",
    "gradient_clip_val",  # null (checked: the steps are manual)
    "accumulate_grad_batches",  # 1 (checked)
}
FULL_PRECISION = (None, 32, "32", "32-true")
NOT_REPRODUCED = "which the stacked engine does not reproduce"


def _target(node: Any) -> str | None:
    return node.get("_target_") if isinstance(node, dict) else None


def _options(node: dict[str, Any]) -> set[str]:
    return {k for k in node if not k.startswith("_")}


def _optim_reason(optim: dict[str, Any]) -> str | None:
    optimizer, scheduler = optim.get("optimizer") or {}, optim.get("scheduler")
    name = _target(optimizer)
    if name not in OPTIMIZERS:
        return f"optim.optimizer is {name}, {NOT_REPRODUCED} (plain or momentum SGD only)"
    extra = sorted(_options(optimizer) - OPTIMIZERS[name])
    if extra:
        return f"optim.optimizer.{extra[0]} is set, {NOT_REPRODUCED} for {name}"
    if scheduler is None:
        return None
    name = _target(scheduler)
    if name not in SCHEDULERS:
        short = str(name).rsplit(".", 1)[-1]
        return f"optim.scheduler is {short}, {NOT_REPRODUCED} (MultiStepLR only)"
    extra = sorted(_options(scheduler) - SCHEDULERS[name])
    return f"optim.scheduler.{extra[0]} is set, {NOT_REPRODUCED}" if extra else None


def _callbacks_reason(callbacks: dict[str, Any]) -> str | None:
    for key, node in callbacks.items():
        if node is None:
            continue
        name = _target(node)
        if name not in CALLBACKS:
            short = str(name).rsplit(".", 1)[-1]
            return f"callbacks.{key} ({short}) does not run per job in a stacked group"
        allowed = CALLBACKS[name]
        extra = sorted(_options(node) - allowed) if allowed is not None else []
        if extra:  # e.g. a checkpoint's `monitor`: a group logs no metric per job to monitor
            return f"callbacks.{key}.{extra[0]} is set, {NOT_REPRODUCED} per job"
    return None


def _trainer_reason(trainer: dict[str, Any]) -> str | None:
    extra = sorted(_options(trainer) - TRAINER)
    if extra:
        return f"trainer.{extra[0]} is set, {NOT_REPRODUCED}"
    if trainer.get("precision") not in FULL_PRECISION:
        return f"trainer.precision is {trainer['precision']}, {NOT_REPRODUCED} (full only)"
    return None


def alone_reason(cfg: DictConfig) -> str | None:
    """Why this job must train alone (a setting the stacked engine does not reproduce)."""
    # Values resolved where they are read; where a job writes (run_dir) is not known yet.
    config = OmegaConf.to_container(cfg, resolve=False)
    config.pop("hydra", None)
    for group in ("model", "data", "optim", "trainer", "compile", "ckpt_path"):
        node = cfg.get(group)
        config[group] = (
            OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
        )
    if config.get("compile"):
        return "compile=true (the stacked engine does not compile)"
    if config.get("ckpt_path"):
        return "ckpt_path= continues one checkpoint"
    for group, allowed in (("model", MODELS), ("data", DATA)):
        if _target(config.get(group)) not in allowed:
            return f"{group}._target_ is {_target(config.get(group))}, {NOT_REPRODUCED}"
    for key, node in (config.get("logger") or {}).items():
        if node is not None and _target(node) not in LOGGERS:
            return f"logger.{key} ({_target(node)}) has no per-job run in a stacked group"
    return (
        _optim_reason(config.get("optim") or {})
        or _callbacks_reason(config.get("callbacks") or {})
        or _trainer_reason(config.get("trainer") or {})
    )


def group_key(cfg: DictConfig, mixed_layers: bool = True) -> str:
    """Equal for jobs that can train as one group (of jobs `alone_reason` lets stack): their
    settings but the per-job ones (`mixed_layers`: their `LAYERS` too)."""
    config = OmegaConf.to_container(cfg, resolve=False)  # interpolations as written
    config.pop("hydra", None)
    for key in (*PER_JOB, *LAYERS) if mixed_layers else PER_JOB:
        *parents, last = key.split(".")
        node = config
        for parent in parents:
            node = node.get(parent) or {}
        node.pop(last, None)
    return json.dumps(config, sort_keys=True, default=str)


@dataclass
class Grouping:
    """A sweep's jobs by group (indices, in order of their first job), and why some are alone."""

    groups: list[list[int]]
    alone: dict[int, str]  # job index -> why it trains alone
    note: str | None = None  # how jobs of other layers were grouped, where that was a choice


def group_jobs(cfgs: Sequence[DictConfig], mixed_layers: bool = True) -> Grouping:
    """Group the jobs that stack; a job with a reason to train alone is a group of its own.
    `mixed_layers`: jobs with other BatchNorm or activation layers may share a group."""
    groups: dict[str, list[int]] = {}
    alone: dict[int, str] = {}
    for i, cfg in enumerate(cfgs):
        reason = alone_reason(cfg)
        if reason is not None:
            alone[i] = reason
        key = f"alone {i}" if reason is not None else group_key(cfg, mixed_layers)
        groups.setdefault(key, []).append(i)
    for members in groups.values():
        if len(members) == 1 and members[0] not in alone:
            alone[members[0]] = "no other job shares its network, data, length and trainer"
    return Grouping(list(groups.values()), alone)


def choose_grouping(cfgs: Sequence[DictConfig], mixed_layers: Any, slots: int) -> Grouping:
    """The sweep's groups, jobs of other layers together or apart (`mixed_layers`: true, false,
    or auto). A group's step costs about what its largest job's does on a GPU, whose steps
    wait on kernel launches, but about the sum of its jobs' on a CPU: auto mixes them on a GPU,
    or where the groups apart would outnumber the `slots` that run at once, and otherwise keeps
    them apart, side by side on the cores (the lecture's five rows: docs/results.md)."""
    apart = group_jobs(cfgs, mixed_layers=False)
    if mixed_layers is False:
        return apart
    mixed = group_jobs(cfgs, mixed_layers=True)
    if mixed_layers is True or len(apart.groups) > slots or on_gpu(cfgs[0]):
        return mixed
    if len(mixed.groups) < len(apart.groups):
        n = len(mixed.groups)
        apart.note = (
            f"jobs of other BatchNorm or activation layers train in groups of their own, "
            f"side by side on the CPU, {len(apart.groups)} groups for {slots} at once "
            f"(hydra.launcher.mixed_layers=auto; =true joins them: {n} group{'s' * (n > 1)})"
        )
    return apart


def on_gpu(cfg: DictConfig) -> bool:
    """Whether the job trains on a CUDA device (`trainer.accelerator` gpu or cuda, or auto
    where there is one)."""
    accelerator = str(cfg.get("trainer", {}).get("accelerator", "cpu"))
    if accelerator in ("gpu", "cuda"):
        return True
    if accelerator == "auto":
        import torch

        return torch.cuda.is_available()
    return False


def split_to_fill(
    grouping: Grouping, cfgs: Sequence[DictConfig], split: Any, slots: int, local: bool
) -> Grouping:
    """The groups split in halves, the largest first, until `slots` of them train at once
    (`split`: true, false, or auto: on a CPU of this machine). On a CPU a group's step costs
    about the sum of its jobs', so halves on two cores take about half the time; a GPU's step
    costs about its largest job's, and a SLURM task gets its own cores, so auto leaves them."""
    if split is False or (split == "auto" and (not local or on_gpu(cfgs[0]))):
        return grouping
    groups = [list(g) for g in grouping.groups]
    while len(groups) < slots and max(len(g) for g in groups) > 1:
        largest = max(groups, key=len)  # the first of the largest
        i, half = groups.index(largest), (len(largest) + 1) // 2
        groups[i : i + 1] = [largest[:half], largest[half:]]
    if len(groups) == len(grouping.groups):
        return grouping
    at_once = min(slots, len(groups))
    knob = "hydra.launcher.n_jobs" if local else "hydra.launcher.slurm.array_parallelism"
    why = f"split from its group so that {at_once} groups train at once"
    alone = {g[0]: why for g in groups if len(g) == 1} | grouping.alone
    note = (
        f"stackable jobs split into {len(groups)} groups, {at_once} training at once ({knob} "
        f"says how many; hydra.launcher.split_groups=false keeps them together)"
    )
    notes = [n for n in (grouping.note, note) if n is not None]
    return Grouping(groups, alone, "; ".join(notes))
