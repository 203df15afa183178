"""The names of a sweep's jobs and of its configs: a job's directory, and its config without
the seed, the name the seeds of one config share.

Seeds are a sweep's repeats, not a setting: the table (`makemore-table`), TensorBoard's HParams
view and W&B's groups all gather a config's seeds under this one name. The resolvers conf/ uses
(`job_dirname`, `sweep_group`) are registered on import, here, so that every process that
composes or resolves a job's config has them: the CLI, a group's forked process, a SLURM task.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hydra.types import RunMode
from omegaconf import OmegaConf


def without_seed(override_dirname: str) -> str:
    """Hydra's `key=value,...` name of a job's varying overrides, without `seed=...`: the
    name of its config, shared by the seeds of that config."""
    return re.sub(r"(^|,)seed=[^,]*", "", override_dirname).strip(",")


def config_label(overrides: Iterable[str]) -> str:
    """A job's overrides but its seed, as the tables write a config: 'init.gain=1, ...'."""
    return ", ".join(o for o in overrides if not o.lstrip("+~").startswith("seed="))


# Filesystems allow 255 bytes per name; a longer job name is cut and told apart by a hash.
MAX_DIRNAME_BYTES = 200
MAX_WANDB_GROUP = 128  # characters W&B allows in a run's group (bytes: at most as many)


def job_dirname(num: Any, override_dirname: str) -> str:
    """A multirun job's directory: its number, then its overrides, with no '/' (5/3 -> 5_3);
    past MAX_DIRNAME_BYTES, the start of that and a stable hash of all of it."""
    overrides = re.sub(r"[/\\]", "_", str(override_dirname))
    return cut(f"{num}_{overrides}" if overrides else str(num), MAX_DIRNAME_BYTES)


def cut(name: str, limit: int) -> str:
    """`name` if it fits in `limit` bytes, else its start and a stable hash of all of it."""
    if len(name.encode()) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    head = name.encode()[: limit - len(digest) - 1].decode(errors="ignore")
    return f"{head}~{digest}"


def sweep_group(mode: Any, sweep_dir: str, override_dirname: str) -> str | None:
    """A multirun job's W&B group: the sweep's folder name and the job's config without its
    seed, so that W&B draws the seeds of a config as one band; None for a single run."""
    if str(mode) != str(RunMode.MULTIRUN):
        return None
    label = without_seed(str(override_dirname)) or "(defaults)"
    return cut(f"{Path(sweep_dir).name}/{label}", MAX_WANDB_GROUP)


OmegaConf.register_new_resolver("job_dirname", job_dirname, replace=True)
OmegaConf.register_new_resolver("sweep_group", sweep_group, replace=True)
