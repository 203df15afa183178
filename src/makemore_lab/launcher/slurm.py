"""`hydra/launcher=stacked_slurm`: each stacked group one element of a SLURM job array.

The groups and the jobs that train alone are the tasks `sweep.launch` would run here; submitit
submits them as one array (`array_parallelism` at once) and each element runs its task on a
node, writing to the sweep directory, which must be on a filesystem the nodes share. Each
element's output and submitit's files go to `<sweep>/.submitit/<array job>_<index>/`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from makemore_lab.launcher.processes import Task


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
    for param, key in named.items():  # null: the cluster's default (submitit's for the array)
        if wanted.get(key) is not None:
            params[param] = wanted[key]
    return params


def run_on_slurm(settings: DictConfig, sweep_dir: Path, tasks: list[Task]) -> list[Any]:
    """Each task's result, in order, from one SLURM job array (one element per task)."""
    import submitit

    executor = submitit.SlurmExecutor(folder=sweep_dir / ".submitit" / "%j")  # <array>_<index>
    executor.update_parameters(job_name="makemore-lab", **sbatch_parameters(settings))
    with executor.batch():
        jobs = [executor.submit(on_node, task) for task in tasks]
    return [job.result() for job in jobs]


def on_node(task: Task) -> Any:
    """A task in its SLURM process, a new interpreter: Hydra's resolvers (`hydra:`) first, as
    Hydra's own launchers do on a node."""
    from hydra.core.utils import setup_globals

    setup_globals()
    return task()
