"""Seeds as a sweep's repeats: intervals that cover, paired differences, one row per config.

`makemore-table` groups jobs by their config without the seed and reports each number as a
mean with its 95% Student's t confidence interval; `--baseline` adds the difference to one
config, paired seed by seed when the seeds match, and a verdict.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
from tensorboard.plugins.hparams import api_pb2

from conftest import hparams_records, scalar_tags
from makemore_lab.cli import table as table_cli
from makemore_lab.reports.intervals import difference, t_interval, verdict, welch_interval


@pytest.mark.parametrize("n", [3, 5, 10])
def test_the_interval_covers_the_true_mean_95_percent_of_the_time(n: int) -> None:
    rng = np.random.default_rng(n)
    repeats = 4000
    covered = 0
    for sample in rng.normal(loc=2.1, scale=0.01, size=(repeats, n)):
        estimate = t_interval(sample.tolist())
        covered += estimate.low <= 2.1 <= estimate.high
    assert abs(covered / repeats - 0.95) <= 0.02, covered / repeats


def test_one_seed_has_a_mean_and_no_interval() -> None:
    one = t_interval([2.0])
    assert (one.mean, one.low, one.high, one.n) == (2.0, None, None, 1)
    assert verdict(difference([(1, 2.1)], [(1, 2.0)])) == "one seed: no interval"


def test_a_constant_offset_on_the_same_seeds_is_that_offset_with_a_tiny_interval() -> None:
    rng = random.Random(0)
    base = [(seed, 2.0 + rng.gauss(0, 0.05)) for seed in range(5)]
    worse = [(seed, value + 0.003) for seed, value in base]  # the seeds' luck, shared
    diff = difference(worse, base)
    assert diff.paired and diff.n == 5
    assert diff.mean == pytest.approx(0.003, abs=1e-12)
    assert diff.high - diff.low < 1e-9
    assert verdict(diff) == "worse"
    assert verdict(difference(base, worse)) == "better"
    # The same numbers unpaired: the seeds' spread (0.05) hides a 0.003 offset.
    unpaired = welch_interval([v for _, v in worse], [v for _, v in base])
    assert verdict(unpaired) == "not distinguishable with 5 seeds"


def test_different_seeds_are_compared_unpaired() -> None:
    diff = difference([(1, 2.0), (2, 2.2)], [(3, 2.0), (4, 2.2)])
    assert not diff.paired and diff.mean == pytest.approx(0.0)
    assert diff.low < 0 < diff.high


def seeded_job(sweep: Path, num: int, gain: str, seed: int, val: float, group: int) -> None:
    """A job directory as a stacked sweep leaves it, without training."""
    job = sweep / f"{num}_init.gain={gain},seed={seed}"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(f"- init.gain={gain}\n- seed={seed}\n")
    (job / "config.yaml").write_text(f"seed: {seed}\n")
    record = {"status": "completed", "train_loss": val - 0.1, "val_loss": val, "steps": 20}
    record["stacked_group"] = {"jobs": 3, "index": group}
    (job / "metrics.json").write_text(json.dumps(record))


def test_seeds_of_a_config_are_one_row_across_stacked_groups_with_a_paired_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = tmp_path / "sweep"
    luck = {1: 2.10, 2: 2.13, 3: 2.08, 4: 2.12}  # each seed's luck, shared by both configs
    num = 0
    for seed, val in luck.items():  # seeds 1-3 in one stacked group, seed 4 in another
        seeded_job(sweep, num, "1", seed, val, group=min(seed, 3))
        seeded_job(sweep, num + 1, "3", seed, val + 0.02, group=min(seed, 3))
        num += 2
    assert table_cli.main([str(sweep), "--baseline", "init.gain=1"]) == 0
    printed = capsys.readouterr().out
    header = printed.splitlines()[0]
    assert header == "| config | n | status | val | Δ val | verdict | diagnosis |"
    expected = t_interval([v + 0.02 for v in luck.values()])
    half = (expected.high - expected.low) / 2
    mean = f"{expected.mean:.4f} ± {half:.4f}"
    assert f"| init.gain=3 | 4 | completed | {mean} | +0.0200 ± 0.0000 | worse |" in printed
    assert "| init.gain=1 | 4 | completed |" in printed and "| baseline |" in printed
    with (sweep / "ablation.csv").open() as f:
        rows = {r["config"]: r for r in csv.DictReader(f)}
    assert rows.keys() == {"init.gain=1", "init.gain=3"}  # not one row per stacked group
    row = rows["init.gain=3"]
    assert row["n"] == "4" and float(row["val_loss_mean"]) == pytest.approx(expected.mean)
    assert float(row["val_loss_ci_low"]) == pytest.approx(expected.low)
    assert float(row["val_loss_ci_high"]) == pytest.approx(expected.high)
    assert float(row["val_loss_diff_mean"]) == pytest.approx(0.02)
    assert row["paired"] == "True" and row["verdict"] == "worse"
    wide = (sweep / "ablation.md").read_text()  # every column, and what ± means
    assert "| loss@0 | train | val | test |" in wide and "95% confidence interval" in wide


def test_a_baseline_that_is_no_config_is_refused_naming_the_configs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = tmp_path / "sweep"
    seeded_job(sweep, 0, "1", 1, 2.1, group=0)
    seeded_job(sweep, 1, "3", 1, 2.2, group=0)
    assert table_cli.main([str(sweep), "--baseline", "init.gain=2"]) == 2
    err = capsys.readouterr().err
    assert "--baseline 'init.gain=2' is not a config of this sweep" in err
    assert "init.gain=1; init.gain=3" in err
    assert not (sweep / "ablation.md").exists()


def test_a_single_run_has_its_own_hparams_experiment_and_session(make_cfg, tmp_path) -> None:
    from makemore_lab.train import train

    train(make_cfg("init.gain=3", "seed=7"))
    records = hparams_records(tmp_path / "run" / "tensorboard")
    (experiment,) = [r.experiment for r in records if r.HasField("experiment")]
    (start,) = [r.session_start_info for r in records if r.HasField("session_start_info")]
    (end,) = [r.session_end_info for r in records if r.HasField("session_end_info")]
    names = [info.name for info in experiment.hparam_infos]
    assert names == list(make_cfg().hparams)  # the knobs conf/config.yaml lists
    assert start.hparams["init.gain"].number_value == 3.0
    assert start.hparams["seed"].number_value == 7.0
    assert start.hparams["model.batchnorm"].bool_value is True
    assert end.status == api_pb2.STATUS_SUCCESS
    assert {"final/train_loss", "final/val_loss", "final/test_loss"} <= scalar_tags(
        tmp_path / "run" / "tensorboard"
    )
    assert "hp_metric" not in scalar_tags(tmp_path / "run" / "tensorboard")  # no placeholder


def test_a_baseline_names_its_config_in_any_order_and_either_case() -> None:
    from makemore_lab.reports.ablation import same_config

    assert same_config("model.batchnorm=True, init.gain=1", "init.gain=1,model.batchnorm=true")
    assert not same_config("model.batchnorm=True, init.gain=1", "model.batchnorm=true")
