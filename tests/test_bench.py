"""The benchmark script runs end to end and reports what the README quotes (not a timing test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli


@pytest.mark.slow  # 40 s of benchmark runs: `make test-all` runs it
def test_bench_prints_a_table_and_a_json_line_with_every_variant(names_file: Path) -> None:
    result = run_cli(
        "scripts/bench.py",
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
