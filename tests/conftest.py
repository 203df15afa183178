"""Shared fixtures: a tiny generated names file, Hydra-composed configs, and the real CLI."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

ROOT = Path(__file__).resolve().parents[1]
REAL_NAMES = ROOT / "data" / "names.txt"

# Small, fast settings for end-to-end runs on the tiny file.
FAST = [
    "trainer.max_steps=20",
    "trainer.val_check_interval=10",
    "data.chunk_size=5",  # several optimizer steps per training_step, as in real runs
    "trainer.enable_model_summary=false",
    "trainer.enable_progress_bar=false",
    "callbacks.progress_bar=null",
    "callbacks.model_checkpoint.every_n_train_steps=10",
    "samples.count=3",
    "callbacks.dynamics.figures=false",  # figures cost seconds; tests that check them turn them on
]

# W&B runs written to disk only, without its console chatter.
OFFLINE = {"WANDB_SILENT": "true", "WANDB_MODE": "offline"}

# The scalar statistics the dynamics callback logs, one TensorBoard section each.
DYNAMICS_STATS = (
    "act_mean",
    "act_std",
    "act_saturated_pct",
    "act_grad_mean",
    "act_grad_std",
    "weight_grad_mean",
    "weight_grad_std",
    "grad_data_ratio",
    "update_data_ratio_log10",
)


def resolved(cfg: DictConfig) -> DictConfig:
    """A job's config with every interpolation resolved, as the stacked launcher hands it on."""
    return OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))


def on_file(path: Path) -> list[str]:
    """Overrides that train on `path` and never download (every run in the tests)."""
    return [f"data.path={path}", "data.download=false"]


@pytest.fixture(scope="session")
def names_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 made-up names over a 10-letter alphabet: small enough for second-long runs."""
    rng = random.Random(0)
    names = [
        "".join(rng.choice("abcdeilmnr") for _ in range(rng.randint(2, 8))) for _ in range(200)
    ]
    path = tmp_path_factory.mktemp("data") / "names.txt"
    path.write_text("\n".join(names) + "\n")
    return path


@pytest.fixture
def real_names() -> Path:
    if not REAL_NAMES.is_file():
        pytest.skip(f"{REAL_NAMES} is absent (make data copies it; the first run downloads it)")
    return REAL_NAMES


@pytest.fixture
def make_cfg(names_file: Path, tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose the real config with test overrides, writing into a temporary run dir."""

    def _make(*overrides: str, fast: bool = True, data: Path | None = None) -> DictConfig:
        base = [*on_file(data or names_file), f"run_dir={tmp_path / 'run'}"]
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            return compose("config", overrides=[*base, *(FAST if fast else []), *overrides])

    return _make


def run_cli(
    *args: str, cwd: Path = ROOT, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run the users' command, `python train.py ...`, from the repository root."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def hparams_records(logdir: Path, recursive: bool = True) -> list[HParamsPluginData]:
    """Every HParams plugin record in the event files of `logdir`."""
    files = logdir.rglob("events.out.tfevents.*") if recursive else logdir.glob("events.*")
    records = []
    for path in sorted(files):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "hparams":
                    content = value.metadata.plugin_data.content
                    records.append(HParamsPluginData.FromString(content))
    return records


def scalar_tags(logdir: Path) -> set[str]:
    tags = set()
    for path in logdir.rglob("events.out.tfevents.*"):
        tags |= {v.tag for e in EventFileLoader(str(path)).Load() for v in e.summary.value}
    return tags


# Fixtures that train once per module for the tests that read what they wrote.
SHARED_TRAINING = {
    "two_sweeps",
    "completed_run",
    "trained",
    "cli_results",
    "sweep_dir",
    "seeded_sweep",
}


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Send the tests of one shared trained fixture to one xdist worker (`--dist loadgroup`,
    as `make test` runs), so that the fixture trains once, not once per worker."""
    for item in items:
        shared = sorted(SHARED_TRAINING & set(getattr(item, "fixturenames", ())))
        if shared:
            item.add_marker(pytest.mark.xdist_group(f"{item.module.__name__}:{shared[0]}"))
