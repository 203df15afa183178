"""A job's Hydra record, `.hydra/` in its run directory: written once the run may write there,
read back by the table and the HParams view (the overrides a job ran with, Hydra's own node).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf


def write(cfg: DictConfig, run_dir: Path) -> None:
    """Hydra's record of the job, `.hydra/` (config, hydra, overrides), written once the run
    may write there. Hydra's own write is off (`hydra.output_subdir: null`): it writes before
    any check, so a refused command would overwrite the earlier run's copy."""
    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    folder = run_dir / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, folder / "config.yaml")
    OmegaConf.save(OmegaConf.create({"hydra": hydra_cfg}), folder / "hydra.yaml")
    OmegaConf.save(hydra_cfg.overrides.task, folder / "overrides.yaml")


def read_yaml(path: Path) -> Any:
    """A YAML file's content, None when there is no such file (a run outside Hydra)."""
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def hydra_record(run_dir: Path) -> dict[str, Any]:
    """The `hydra:` node Hydra's run wrote into `.hydra/hydra.yaml` ({} without one)."""
    return (read_yaml(run_dir / ".hydra" / "hydra.yaml") or {}).get("hydra") or {}


def overrides_of(run_dir: Path) -> list[str]:
    """The overrides Hydra ran `run_dir`'s job with ([] for a run outside Hydra)."""
    return list(read_yaml(run_dir / ".hydra" / "overrides.yaml") or [])
