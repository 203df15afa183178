"""A job resolved once: the facts every layer below the driver needs, read from its config once.

`train.prepare_job` checks and claims a job's directory and returns its `Job`; the engines, the
checkpoint plugins and the records take it instead of re-reading the raw config: where it
writes, where its `last.ckpt` lives, which checkpoint it continues from (read and checked
already), and its resolved config as its checkpoints and records store it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from makemore_lab.runs.checkpoints import last_checkpoint


@dataclass
class Job:
    """One job of a run or a stacked group, as it trains (see the module doc)."""

    cfg: DictConfig
    resume_from: Path | None = None  # the checkpoint it continues from (None: step 0)
    ckpt: dict[str, Any] | None = None  # that checkpoint, read and checked already
    finished: dict[str, Any] | None = None  # a completed run being resumed: nothing to train
    run_dir: Path = field(init=False)
    last: Path | None = field(init=False)  # its checkpoints/last.ckpt; None: checkpoints off
    config: dict[str, Any] = field(init=False, repr=False)  # resolved, as checkpoints hold it

    def __post_init__(self) -> None:
        self.run_dir = Path(self.cfg.run_dir)
        self.last = last_checkpoint(self.cfg)
        self.config = OmegaConf.to_container(self.cfg, resolve=True)

    @property
    def resume_step(self) -> int | None:
        """The step it continues from (None: it starts at step 0)."""
        return int(self.ckpt["global_step"]) if self.ckpt is not None else None

    @property
    def checkpoint_dir(self) -> Path | None:
        return self.last.parent if self.last is not None else None
