"""`hydra/launcher=stacked`: the Hydra side of makemore-lab's stacked launcher.

Hydra instantiates launchers only from the `hydra_plugins` package; the work is done in
`makemore_lab.launcher.sweep`.
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from makemore_lab.launcher.composing import composer


class StackedLauncher(Launcher):
    """Trains a multirun's jobs in stacked groups in this process (makemore_lab.launcher.sweep)."""

    def __init__(
        self,
        n_jobs: int = 1,
        executor: str = "local",
        slurm: DictConfig | None = None,
        mixed_layers: bool | str = "auto",
        split_groups: bool | str = "auto",
    ) -> None:
        self.n_jobs = n_jobs  # groups at once, each in its own process (-1: one per core)
        self.mixed_layers = mixed_layers  # jobs of other BatchNorm / activation layers together
        self.split_groups = split_groups  # a group split to train n_jobs at once (CPU)
        self.executor = executor  # local: processes here; slurm: one array element per group
        self.slurm = slurm  # the SLURM resources of a group (conf/hydra/launcher/stacked_slurm)
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function
        # The sweeper shares this context: the configs its check composes are kept for launch.
        hydra_context.config_loader = composer(hydra_context.config_loader)

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        from makemore_lab.launcher.sweep import launch

        return launch(self, job_overrides, initial_job_idx)
