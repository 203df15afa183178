"""The users' commands, run for real: `python train.py ...`, `makemore-sample`, `makemore-table`."""

from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import FAST, on_file, run_cli

SAMPLE = ("-m", "makemore_lab.cli.sample")  # makemore-sample, with the interpreter of the tests
TABLE = ("-m", "makemore_lab.cli.table")  # makemore-table


def test_headline_sweep_leaves_four_job_directories_with_metrics(
    names_file: Path, tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    result = run_cli(
        "train.py",
        "-m",
        "model.batchnorm=true,false",
        "init.gain=1,5/3",
        *on_file(names_file),
        *FAST,
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "makemore-lab: all 4 jobs completed" in result.stdout
    assert f"table   makemore-table {sweep}" in result.stdout
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    # job number first, then only the overrides that vary; 5/3 must not nest directories
    assert jobs == [
        "0_init.gain=1,model.batchnorm=True",
        "1_init.gain=5_3,model.batchnorm=True",
        "2_init.gain=1,model.batchnorm=False",
        "3_init.gain=5_3,model.batchnorm=False",
    ]
    for job in jobs:
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        assert metrics["status"] == "completed" and metrics["steps"] == 20
    gains = {json.loads((sweep / j / "metrics.json").read_text())["step0_loss"] for j in jobs}
    assert len(gains) > 1  # the overrides reached the jobs
    table = run_cli(*TABLE, str(sweep), "--layers")
    assert table.returncode == 0, table.stderr
    rows = table.stdout.strip().splitlines()
    assert rows[2].startswith("| model.batchnorm=True, init.gain=1 | ") and len(rows) == 6
    assert "%" in rows[2] and "(layer" not in rows[0]
    uncollected = run_cli(*TABLE, str(sweep), "--layers", "--step", "7")
    assert uncollected.returncode == 2 and "Traceback" not in uncollected.stderr
    assert (
        "--step 7 was not collected" in uncollected.stderr and "steps 0, 19" in uncollected.stderr
    )


def test_single_run_and_sample_command(names_file: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = run_cli("train.py", *on_file(names_file), *FAST, f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run / "checkpoints" / "last.ckpt").is_file() and (
        run / ".hydra" / "config.yaml"
    ).is_file()
    sampled = run_cli(*SAMPLE, str(run), "--count", "4", "--prefix", "ab")
    assert sampled.returncode == 0, sampled.stderr
    names = sampled.stdout.split()
    assert len(names) == 4 and all(n.startswith("ab") for n in names)


def test_an_unknown_config_option_gets_hydras_list_of_the_available_ones(tmp_path: Path) -> None:
    result = run_cli("train.py", "model=transformer", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "Could not find 'model/transformer'" in result.stderr
    assert "deep" in result.stderr and "lecture_mlp" in result.stderr  # what exists


def test_sampling_rejects_characters_outside_the_vocabulary_and_bad_checkpoints(
    tmp_path: Path,
) -> None:
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"not a checkpoint")
    result = run_cli(*SAMPLE, str(broken))
    assert (
        result.returncode == 2
        and "cannot be read" in result.stderr
        and "Traceback" not in result.stderr
    )
    missing = run_cli(*SAMPLE, str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "No checkpoint at" in missing.stderr


def test_help_lists_the_config_groups_and_cfg_job_prints_the_config() -> None:
    helped = run_cli("train.py", "--help")
    assert helped.returncode == 0
    for group in ("model", "init", "optim", "data", "trainer", "logger", "callbacks", "experiment"):
        assert f"{group}:" in helped.stdout, group
    job = run_cli("train.py", "--cfg", "job")
    assert job.returncode == 0 and "n_hidden: 100" in job.stdout


def test_the_progress_bar_counts_steps_and_the_run_is_summarised(
    names_file: Path, tmp_path: Path
) -> None:
    shown = [o for o in FAST if "progress" not in o]  # the default bar, on
    run = tmp_path / "run"
    result = run_cli("train.py", *on_file(names_file), *shown, f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr[-3000:]
    # 20 steps in chunks of 5: the bar ends at 20/20 steps, not at 4 batches out of 20
    assert re.search(r"Steps ━+ 20/20 .* steps/s train/loss: \d", result.stdout), result.stdout
    # A few lines on the config at the start; results and the commands to go on at the end.
    printed = result.stdout + result.stderr  # Hydra's console log goes to stdout
    assert re.search(r"model +5 x 100 tanh \+ BatchNorm", printed)
    assert f"writes  {run}" in printed
    assert re.search(r"loss +train \d\.\d{4} \| val \d\.\d{4} \| test \d\.\d{4}", printed)
    assert f"browse  tensorboard --logdir {run}" in printed
    assert f"sample  makemore-sample {run}" in printed
    assert "INFO: " not in printed and "litlogger" not in printed  # Lightning's lines, once


def test_a_run_never_overwrites_an_earlier_run(names_file: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["train.py", *on_file(names_file), *FAST]
    assert run_cli(*args, f"hydra.run.dir={run}").returncode == 0
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert (run / ".hydra" / "overrides.yaml").is_file()  # written by the run, not before it
    again = run_cli(*args, "seed=1", f"hydra.run.dir={run}")
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert f"run_dir={run} already holds a run" in again.stderr
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before  # the first run's outputs, Hydra's .hydra/ included, untouched
