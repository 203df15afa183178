"""What a run prints before and after training: the config in a few lines, then the results.

The full config is in the run directory (`config.yaml`) and `python train.py --cfg job` prints
it; these summaries are what a person watching the terminal needs at a glance.
"""

from __future__ import annotations

import math
from typing import Any

from omegaconf import DictConfig, OmegaConf


def _get(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=None)


def start_summary(cfg: DictConfig) -> str:
    """The run's network, initialization, optimizer, length and output directory."""
    bn = " + BatchNorm" if _get(cfg, "model.batchnorm") else ""
    optimizer = str(_get(cfg, "optim.optimizer._target_") or "?").rsplit(".", 1)[-1]
    decay = ""
    if _get(cfg, "optim.scheduler") is not None:
        decay = f", x{_get(cfg, 'optim.decay_gamma')} at step {_get(cfg, 'optim.decay_step')}"
    extras = [f"seed {cfg.seed}", *(["compiled"] if cfg.get("compile") else [])]
    if cfg.get("resume") or cfg.get("ckpt_path"):
        extras.append("resuming")
    rows = [
        (
            "model",
            f"{_get(cfg, 'model.n_layers')} x {_get(cfg, 'model.n_hidden')} "
            f"{_get(cfg, 'model.activation')}{bn}, embedding {_get(cfg, 'model.n_embd')}, "
            f"context {_get(cfg, 'model.block_size')}",
        ),
        (
            "init",
            f"{_get(cfg, 'init.scheme')}, gain {_get(cfg, 'init.gain')}, "
            f"output scale {_get(cfg, 'init.output_scale')}",
        ),
        (
            "optim",
            f"{optimizer}, lr {_get(cfg, 'optim.lr')}{decay}, batch {_get(cfg, 'data.batch_size')}",
        ),
        (
            "train",
            f"{_get(cfg, 'trainer.max_steps')} steps on {_get(cfg, 'trainer.accelerator')}, "
            + ", ".join(extras),
        ),
        ("data", str(_get(cfg, "data.path"))),
        ("writes", str(cfg.run_dir)),
    ]
    return "\n".join(f"  {name:7s} {text}" for name, text in rows)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def end_summary(metrics: dict[str, Any], run_dir: str) -> str:
    """Final losses, speed, and the commands that browse and sample the run."""
    losses = " | ".join(
        f"{split} {metrics[f'{split}_loss']:.4f}"
        for split in ("train", "val", "test")
        if isinstance(metrics.get(f"{split}_loss"), float)
        and math.isfinite(metrics[f"{split}_loss"])
    )
    rows = [
        (
            "done",
            f"{metrics['steps']} steps in {_duration(metrics['fit_seconds'])} "
            f"({metrics['steps_per_second'] or 0:.0f} steps/s), {metrics['status']}",
        ),
        ("loss", losses or "not finite (the run diverged)"),
        ("run", run_dir),
        ("browse", f"tensorboard --logdir {run_dir}"),
    ]
    if metrics["status"] == "completed":
        rows.append(("sample", f"makemore-sample {run_dir}"))
    rows += [("verdict", line) for line in metrics.get("diagnosis") or []]
    return "\n".join(f"  {name:7s} {text}" for name, text in rows)
