"""Each job's config composed once: the sweeper's check of a batch and the launch share it.

Before it launches a batch, Hydra's sweeper composes every job's config and drops it
(`Sweeper.validate_batch_is_legal`: to fail early, since a launcher may compose in another
process); the stacked launcher then composes each job again, in this same process. Composing
takes about 0.1 s a job, so a 64-job sweep paid 6 s of start-up twice. `ComposedOnce` wraps the
sweeper's config loader (the stacked launcher's `setup` installs it) and keeps a copy of each
config the check composed until the launch takes it; what the launch gets is the config it
would have composed (`tests/test_stacked_sweep.py`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig

Key = tuple[int, tuple[str, ...]]  # the master config (by identity), the job's overrides


class ComposedOnce:
    """A Hydra config loader that remembers the sweep configs it composed (see the module)."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.kept: dict[Key, DictConfig] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("loader", "kept"):  # copying, pickling
            raise AttributeError(name)
        return getattr(self.loader, name)  # everything else is the wrapped loader's

    def load_sweep_config(
        self, master_config: DictConfig, sweep_overrides: list[str]
    ) -> DictConfig:
        """Hydra's `load_sweep_config`, a copy of its result kept for `take`."""
        cfg = self.loader.load_sweep_config(master_config, sweep_overrides)
        self.kept[(id(master_config), tuple(sweep_overrides))] = copy.deepcopy(cfg)
        return cfg

    def take(self, master_config: DictConfig, sweep_overrides: Sequence[str]) -> DictConfig:
        """The job's config: the copy composed for the sweeper's check, or composed now."""
        kept = self.kept.pop((id(master_config), tuple(sweep_overrides)), None)
        if kept is not None:
            return kept
        return self.loader.load_sweep_config(master_config, list(sweep_overrides))

    def forget(self) -> None:
        """Drop what no launch took (another sweeper's checks), before the jobs run."""
        self.kept.clear()


def composer(loader: Any) -> ComposedOnce:
    """`loader`, wrapped once (a second setup of the launcher keeps the first wrapper)."""
    return loader if isinstance(loader, ComposedOnce) else ComposedOnce(loader)
