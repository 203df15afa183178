"""The benchmarks package: the lecture's loop runs; the benchmark reports what the README quotes.

Neither is a timing test: they check that the measurements run and report consistently.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmarks import reference_loop
from conftest import run_cli


@pytest.mark.parametrize("network", ["lecture_mlp", "deep"])
def test_reference_loop_trains_a_few_steps_and_reports_a_positive_rate(network: str) -> None:
    x, y = torch.randint(0, 11, (200, 3)), torch.randint(0, 11, (200,))
    rate = reference_loop.steps_per_second(x, y, network, 11, steps=5, warmup=2)
    assert isinstance(rate, float) and rate > 0


@pytest.mark.slow  # 40 s of benchmark runs: `make test-all` runs it
def test_bench_prints_a_table_and_a_json_line_with_every_variant(names_file: Path) -> None:
    result = run_cli(
        "-m",
        "benchmarks.bench",
        "--data",
        str(names_file),
        "--network",
        "lecture_mlp",
        "--steps",
        "60",
        "--warmup",
        "20",
        "--repeats",
        "1",
        "--",
        "data.chunk_size=10",
        "data.download=false",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    for variant in ("reference", "default", "no_callback", "compiled"):
        assert summary[f"{variant}_steps_per_s"] > 0, variant
        assert any(line.startswith(variant) for line in lines), variant
    for variant in ("default", "no_callback", "compiled"):
        ratio = summary[f"{variant}_steps_per_s"] / summary["reference_steps_per_s"]
        assert abs(summary[f"{variant}_over_reference"] - ratio) < 0.01
    assert 100 < summary["peak_rss_mib"] < 100_000
    assert summary["network"] == "lecture_mlp" and summary["steps"] == 60


@pytest.mark.slow  # a few seconds of training: `make test-all` runs it
def test_the_stacked_benchmark_prints_job_steps_per_second_for_each_n(names_file: Path) -> None:
    result = run_cli(
        "-m", "benchmarks.stacked", "--data", str(names_file), "--jobs", "1", "3", "--steps", "30"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    for name in ("driver", "core"):  # through the driver, as a sweep trains; the bare loop
        assert summary[f"{name}_job_steps_per_s_1"] > 0 and summary[f"{name}_job_steps_per_s_3"] > 0
        ratio = summary[f"{name}_job_steps_per_s_3"] / summary[f"{name}_job_steps_per_s_1"]
        assert abs(summary[f"{name}_speedup_3_jobs"] - ratio) < 0.011
        assert summary[f"{name}_one_job_over_reference"] > 0


@pytest.mark.slow  # two sweeps of 5 and 10 jobs: `make test-all` runs it
def test_the_seeds_benchmark_times_both_ablations_and_the_table(names_file: Path, tmp_path) -> None:
    out = tmp_path / "seeds"
    args = ["--data", str(names_file), "--seeds", "2", "--steps", "20", "--out", str(out)]
    result = run_cli("-m", "benchmarks.seeds", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    ratio = summary["ablation_2seeds_seconds"] / summary["ablation_1seed_seconds"]
    assert abs(summary["ablation_2seeds_over_1seed"] - ratio) < 0.01
    assert summary["table_seconds"] > 0 and summary["jobs"] == 10
    assert len(list((out / "2seeds").glob("[0-9]_*"))) == 10
    assert "| experiment=kaiming | 2 | completed |" in (out / "2seeds" / "ablation.md").read_text()


@pytest.mark.slow  # three CLI commands and a 500-step run: `make test-all` runs it
def test_the_startup_benchmark_splits_a_job_into_before_fit_and_after(names_file: Path) -> None:
    args = ("--repeats", "1", "--steps", "500", "--sweep-jobs", "2", "--data", str(names_file))
    result = run_cli("-m", "benchmarks.startup", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["steps"] == 500 and report["help_s"] > 0 and report["refused_s"] > 0
    assert report["sweep_of_2_listed_s"] > 0
    parts = ("before_first_step", "fit", "rest")
    assert all(report[f"job_{p}_s"] > 0 for p in parts)
    assert abs(sum(report[f"job_{p}_s"] for p in parts) - report["job_process_s"]) < 0.05


def test_the_figures_benchmark_draws_a_jobs_eight_figures_in_a_worker_and_logs_them() -> None:
    result = run_cli("-m", "benchmarks.figures", "--repeats", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["figures"] == 8
    assert report["worker_seconds_per_job"] > 0 and report["training_process_seconds_per_job"] > 0
