"""Every preset in conf/experiment/ composes and trains: a few steps on the tiny names file.

A preset that is a sweep (`hydra.mode: MULTIRUN`) composes at every point of its grid, each
point passes the config checks, and its first point trains as one job.
"""

from __future__ import annotations

import itertools
import math

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode

from conftest import ROOT
from makemore_lab.config.checks import check_config
from makemore_lab.train import train

PRESETS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))

# Four optimizer steps in two Lightning batches, validated and checkpointed after each; these
# come after the preset on the command line, so they shorten presets that set their own length.
SHORT = [
    "trainer.max_steps=4",
    "trainer.val_check_interval=2",
    "data.chunk_size=2",
    "callbacks.model_checkpoint.every_n_train_steps=2",
    "logger=csv",
]


def sweep_points(preset: str) -> list[list[str]]:
    """The overrides of each job a preset's sweep runs, as Hydra's basic sweeper expands them.

    A preset that is not a sweep runs one job with no overrides of its own: [[]].
    """
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment={preset}"], return_hydra_config=True)
    if cfg.hydra.mode != RunMode.MULTIRUN:
        return [[]]
    params = cfg.hydra.sweeper.params
    assert params, f"{preset} is a multirun that sweeps nothing"
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    grid = [[f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] for o in parsed]
    return [list(point) for point in itertools.product(*grid)]


@pytest.mark.parametrize("preset", PRESETS)
def test_every_experiment_preset_composes_and_trains_a_few_steps(make_cfg, preset) -> None:
    points = sweep_points(preset)
    for point in points:
        check_config(make_cfg(f"experiment={preset}", *SHORT, *point))
    metrics = train(make_cfg(f"experiment={preset}", *SHORT, *points[0]))
    assert metrics["status"] == "completed" and metrics["steps"] == 4
    losses = ("step0_loss", "train_loss", "val_loss", "test_loss")
    assert all(math.isfinite(metrics[k]) for k in losses), metrics


def test_the_lectures_seed_is_one_number_in_conf_the_makefile_and_the_benchmark() -> None:
    """`make ablation SEEDS=5` runs the lecture's seed and the four after it: the Makefile and
    benchmarks/seeds.py name the seed conf/config.yaml sets."""
    from benchmarks.seeds import LECTURE_SEED

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        seed = compose("config").seed
    makefile = (ROOT / "Makefile").read_text()
    assert f"LECTURE_SEED := {seed}\n" in makefile and seed == LECTURE_SEED
