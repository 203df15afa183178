"""Where a run stands before it trains: a new directory, a run to resume, or one to leave alone.

A run directory holds one run. With `resume=true` the same command continues it from its
`checkpoints/last.ckpt` (a sweep command re-run with `resume=true` finishes what is missing);
`ckpt_path=` continues any checkpoint into a new directory.
"""

from __future__ import annotations

import logging
import shlex
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from makemore_lab.errors import UserError
from makemore_lab.runs import record as run_record
from makemore_lab.runs.checkpoints import last_checkpoint, read_checkpoint

log = logging.getLogger(__name__)


def finished_run(cfg: DictConfig) -> dict[str, Any] | None:
    """Refuse to overwrite an earlier run; with `resume=true`, skip one that completed.

    Returns the record of a completed run being resumed (a resumed sweep skips its finished
    jobs), None when this run may go ahead.
    """
    if not run_record.exists(cfg.run_dir):
        return None
    previous = run_record.read(cfg.run_dir)
    status = previous["status"]
    if cfg.get("resume") and status == "completed":
        if _trains_on(cfg, previous):
            return None  # a larger trainer.max_steps: go on from its last checkpoint
        log.info("resume=true: %s completed already; nothing to do", cfg.run_dir)
        return previous
    if cfg.get("resume"):
        return None  # interrupted, failed or diverged: go on from its last checkpoint
    hint = " It was interrupted: add resume=true to continue it." if status == "interrupted" else ""
    raise UserError(
        f"run_dir={cfg.run_dir} already holds a run (its metrics.json says status: {status}), "
        f"and a new run would overwrite its config, checkpoints and metrics. Choose another "
        f"directory (hydra.run.dir=... for a run, hydra.sweep.dir=... for a sweep) or move the "
        f"old run away first.{hint}"
    )


def _trains_on(cfg: DictConfig, previous: dict[str, Any]) -> bool:
    steps, max_steps = previous.get("steps"), cfg.trainer.get("max_steps", -1)
    return isinstance(steps, int) and isinstance(max_steps, int) and max_steps > steps


# What changes training, compared on resume (dotted keys under these, but the NOT_TRAINING
# ones: where the data comes from and how it is batched for speed change no number).
TRAINING = ("model", "init", "optim", "data", "seed")
NOT_TRAINING = (
    "data.url",
    "data.sha256",
    "data.download",
    "data.chunk_size",
    "data.eval_batch_size",
)


def _flat(node: Any, prefix: str) -> dict[str, Any]:
    if not isinstance(node, dict):
        return {prefix: node}
    flat: dict[str, Any] = {}
    for key, value in node.items():
        flat |= _flat(value, f"{prefix}.{key}")
    return flat


def training_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The training settings that differ between a checkpoint's config and this run's."""

    def settings(config: dict[str, Any]) -> dict[str, Any]:
        flat: dict[str, Any] = {}
        for group in TRAINING:
            flat |= _flat(config.get(group), group)
        return flat

    a, b = settings(old), settings(new)
    keys = sorted((a.keys() | b.keys()) - set(NOT_TRAINING))
    return [
        f"{k}={b.get(k)!r} here, {a.get(k)!r} in the checkpoint"
        for k in keys
        if a.get(k) != b.get(k)
    ]


def refuse_changes(cfg: DictConfig, trained_with: dict[str, Any], source: str) -> None:
    """Refuse to continue `source` (a checkpoint, a run's config.yaml), whose run trained with
    `trained_with`, under other training settings, naming each difference."""
    changed = training_changes(trained_with, OmegaConf.to_container(cfg, resolve=True))
    # A value that follows another (optim.optimizer.lr: ${optim.lr}) is named by that one.
    written = _flat(OmegaConf.to_container(cfg, resolve=False), "")
    changed = [
        c for c in changed if not str(written.get("." + c.split("=")[0], "")).startswith("${")
    ]
    if changed:
        raise UserError(
            f"{source} was trained with other settings than this run asks for: "
            f"{'; '.join(changed)}. Resuming would silently train on with the checkpoint's "
            f"optimizer state and schedule. Resume with the checkpoint's settings (its run's "
            f"config.yaml), or start a new run (without resume/ckpt_path) to train with these."
        )


def check_resume(cfg: DictConfig) -> tuple[Path | None, dict[str, Any] | None]:
    """Refuse, before anything is written, a resume whose checkpoint trained with other
    settings or past `trainer.max_steps`. Returns the checkpoint's path and contents (None,
    None: a new run)."""
    path = checkpoint_to_resume(cfg)
    if path is None:
        return None, None
    ckpt = read_checkpoint(path)
    trained_with = (ckpt.get("hyper_parameters") or {}).get("config") or {}
    refuse_changes(cfg, trained_with, f"The checkpoint {path}")
    step, max_steps = int(ckpt.get("global_step", 0)), cfg.trainer.max_steps
    if 0 <= max_steps < step:
        raise UserError(
            f"Nothing to train: the checkpoint {path} is at step {step}, past "
            f"trainer.max_steps={max_steps}. Set trainer.max_steps={step} or more to train on "
            f"(makemore-sample {path} samples from it as it is)."
        )
    return path, ckpt


def checkpoint_to_resume(cfg: DictConfig) -> Path | None:
    """The checkpoint to continue from: `ckpt_path`, or with `resume=true` this run's last one."""
    if cfg.get("ckpt_path"):
        return Path(cfg.ckpt_path)
    if not cfg.get("resume"):
        return None
    last = last_checkpoint(cfg)
    if last is None:
        raise UserError(
            "resume=true continues from the checkpoint callbacks.model_checkpoint writes, but "
            "that callback is off (callbacks.model_checkpoint=null). Turn it back on, or pass "
            "the checkpoint to continue from as ckpt_path=path/to/last.ckpt."
        )
    if not last.is_file():  # e.g. a sweep's job that had not started, or not saved yet
        refuse_group_checkpoint(cfg)
        log.warning("resume=true: there is no checkpoint at %s, so this run starts at step 0", last)
        return None
    return last


def refuse_group_checkpoint(cfg: DictConfig) -> None:
    """Refuse a stacked job that an earlier version saved only in its group's checkpoint."""
    saved = str(run_record.read(cfg.run_dir).get("checkpoint", ""))
    if "/stacked/jobs_" in saved:
        raise UserError(
            f"run_dir={cfg.run_dir} was interrupted by an earlier version of makemore-lab, "
            f"which saved it only inside its stacked group's checkpoint ({saved}). This "
            f"version resumes every job from its own checkpoints/last.ckpt and does not read "
            f"group checkpoints, so it cannot continue this job. Run the sweep again in a new "
            f"directory (hydra.sweep.dir=...), or finish it with the version that started it."
        )


def resume_command(cfg: DictConfig) -> str:
    """The command that continues this run (or sweep) where it stopped."""
    if not HydraConfig.initialized():
        return f"ckpt_path={last_checkpoint(cfg)} (with this run's other settings)"
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.MULTIRUN:
        return (
            f"the same sweep command with hydra.sweep.dir={hydra_cfg.sweep.dir} resume=true "
            f"(finished jobs are skipped)"
        )
    kept = [o for o in hydra_cfg.overrides.task if not o.startswith(("resume=", "hydra.run.dir="))]
    args = [*kept, f"hydra.run.dir={cfg.run_dir}", "resume=true"]
    return "python train.py " + " ".join(shlex.quote(a) for a in args)
