"""The Hydra application: `python train.py [-m] [overrides...]` and `makemore-train`.

It checks the config, then calls `train.train` (imported only then: torch and Lightning take
seconds to import, and a typo in an override should cost one sentence, at once). It also names
multirun job directories, and turns a UserError into one paragraph and exit status 2.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from makemore_lab.config.checks import check_config, check_launcher
from makemore_lab.errors import UserError
from makemore_lab.runs.failures import handle_job_error
from makemore_lab.runs.naming import job_dirname  # noqa: F401 (registers conf/ resolvers)
from makemore_lab.training.console import quiet_lightning

# conf/ ships inside the package (a link to the repository's conf/), so any install finds it.
CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")


def exclude_constant_overrides(argv: list[str]) -> list[str]:
    """In a multirun, name job directories after the overrides that vary, not the constant ones.

    Hydra's `override_dirname` lists every override; we add the keys of the non-sweep ones to
    its `exclude_keys` (unless the user set that list).
    """
    if not {"-m", "--multirun"} & set(argv) or any(
        "override_dirname.exclude_keys" in a for a in argv
    ):
        return argv
    candidates = [a for a in argv[1:] if "=" in a and not a.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(candidates)
    except Exception:  # let Hydra itself report a malformed override
        return argv
    constant = [
        o.key_or_group
        for o in parsed
        if not o.is_sweep_override() and not o.key_or_group.startswith("hydra")
    ]
    if not constant:
        return argv
    return [*argv, f"hydra.job.config.override_dirname.exclude_keys=[{','.join(constant)}]"]


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _hydra_main(cfg: DictConfig) -> float | None:
    try:
        check_config(cfg)  # a bad value costs a second, not the imports of torch and Lightning
        from makemore_lab.train import train

        quiet_lightning()
        return train(cfg, checked=True)["val_loss"]  # returned for sweepers that optimise it
    except Exception as err:
        return handle_job_error(cfg, err)


def launcher_of(argv: list[str]) -> DictConfig | None:
    """The launcher config a multirun command selects (None for a single run)."""
    if not {"-m", "--multirun"} & set(argv):
        return None
    chosen = [
        a for a in argv[1:] if a.lstrip("+~").startswith(("hydra/launcher", "hydra.launcher"))
    ]
    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose("config", overrides=chosen, return_hydra_config=True)
    except Exception:  # a malformed override: Hydra itself reports it in a moment
        return None
    return cfg.hydra.launcher


def check_output_dir(argv: list[str]) -> None:
    """Refuse an output directory that cannot be created (a file in its path, no write
    permission) before Hydra tries to create it, which it reports as a traceback."""
    chosen = [a for a in argv[1:] if a.startswith(("hydra.run.dir=", "hydra.sweep.dir="))]
    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose("config", overrides=chosen, return_hydra_config=True)
        multirun = bool({"-m", "--multirun"} & set(argv))
        key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
        wanted = Path(str(cfg.hydra.sweep.dir if multirun else cfg.hydra.run.dir))
    except Exception:  # a malformed override: Hydra itself reports it in a moment
        return
    existing = wanted
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise UserError(
            f"{key}={wanted} cannot be created: {existing} is a file, not a directory. Choose "
            f"another directory ({key}=...)."
        )
    if existing.is_dir() and not (os.access(existing, os.W_OK | os.X_OK) and can_create(existing)):
        raise UserError(
            f"{key}={wanted} cannot be written: {existing} is not writable for this user. "
            f"Choose a directory you can write to ({key}=...)."
        )


def can_create(folder: Path) -> bool:
    """Whether a directory can be made in `folder` (root passes `os.access` checks on
    filesystems that refuse every write, such as /sys): one is made and removed."""
    try:
        os.rmdir(tempfile.mkdtemp(dir=folder, prefix=".makemore-lab-probe-"))
    except OSError:
        return False
    return True


def main() -> None:
    """Console entry point (`python train.py ...`, `makemore-train ...`)."""
    try:  # before Hydra starts the launcher, whose own errors are tracebacks
        check_launcher(launcher_of(sys.argv))
        check_output_dir(sys.argv)
    except UserError as err:
        print(f"\nmakemore-lab: error: {err}\n", file=sys.stderr)
        sys.exit(2)
    sys.argv = exclude_constant_overrides(sys.argv)
    _hydra_main()
