"""Seeds: the lecture's table with 5 seeds per row against 1 seed, and the table's own time.

    python -m benchmarks.seeds                   # 5 rows x 200k steps, 1 seed then 5 seeds
    python -m benchmarks.seeds --out outputs/seeds   # keep both sweeps (docs/results.md's table)
    python -m benchmarks.seeds --table-only outputs/seeds/5seeds   # the table's time alone

Runs, through the real CLI and side by side in one process, what `make ablation` and `make
ablation SEEDS=5` run: the lecture's five rows on the stacked launcher with the lecture's seed,
then with it and the four seeds after it (`seed=range(2147483647,2147483652)`); then times
`makemore-table <5-seed sweep> --reference --baseline previous` as a user waits for it (a new
process: imports, reading every job's metrics and dynamics, intervals): until the table is
printed (`table_seconds`, target < 5) and until its figures are written too. Prints one JSON
line last: `ablation_5seeds_over_1seed` (target <= 2.5) among them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks.sweep import ROWS, sweep_seconds

ROOT = Path(__file__).resolve().parents[1]
LECTURE_SEED = 2147483647  # conf/config.yaml's seed (tests/test_conf.py checks the two agree)


def lecture_seed_distance(sweep: Path) -> float:
    """The largest |ours - lecture| of train and val loss over the lecture's-seed jobs."""
    worst = 0.0
    for job in sweep.glob("[0-9]_*"):
        config = yaml.safe_load((job / "config.yaml").read_text())
        if config["seed"] != LECTURE_SEED:
            continue
        metrics = json.loads((job / "metrics.json").read_text())
        for key in ("train_loss", "val_loss"):
            worst = max(worst, abs(metrics[key] - config["reference"][key]))
    return worst


def table_seconds(sweep: Path) -> tuple[float, float]:
    """Seconds until `makemore-table <sweep> --reference --baseline previous` (a new process)
    has printed its table, and until it has written its figures too."""
    command = [sys.executable, "-m", "makemore_lab.cli.table", str(sweep), "--reference"]
    started = time.perf_counter()
    with subprocess.Popen(
        [*command, "--baseline", "previous"], cwd=ROOT, stdout=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        printed = next(
            time.perf_counter() for line in process.stdout if line.startswith("n: completed")
        )
        process.stdout.read()
    if process.returncode != 0:
        raise SystemExit(f"makemore-table failed on {sweep}")
    return printed - started, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.seeds",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=None, help="shorter rows (a smoke test)")
    parser.add_argument("--out", type=Path, default=None, help="keep the sweeps here")
    parser.add_argument("--data", default=str(ROOT / "data" / "names.txt"))
    parser.add_argument("--table-only", type=Path, metavar="SWEEP", help="time this sweep's table")
    opts = parser.parse_args()
    if opts.table_only is not None:
        printed, written = table_seconds(opts.table_only)
        times = {"table_seconds": round(printed, 2), "table_and_figures_seconds": round(written, 2)}
        print(json.dumps(times))
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = opts.out or Path(tmp)
        common = [f"data.path={opts.data}", ROWS, "hydra/launcher=stacked"]
        if opts.steps is not None:
            common.append(f"trainer.max_steps={opts.steps}")
        seeds = f"seed=range({LECTURE_SEED},{LECTURE_SEED + opts.seeds})"
        one = sweep_seconds(common, out / "1seed")
        many = sweep_seconds([*common, seeds], out / f"{opts.seeds}seeds")
        printed, written = table_seconds(out / f"{opts.seeds}seeds")
        summary = {
            "ablation_1seed_seconds": round(one, 1),
            f"ablation_{opts.seeds}seeds_seconds": round(many, 1),
            f"ablation_{opts.seeds}seeds_over_1seed": round(many / one, 3),
            "table_seconds": round(printed, 2),
            "table_and_figures_seconds": round(written, 2),
            "jobs": 5 * opts.seeds,
        }
        if opts.steps is None:  # the lecture's numbers exist for its full length only
            distance = lecture_seed_distance(out / f"{opts.seeds}seeds")
            summary["lecture_seed_max_abs_diff"] = round(distance, 4)
    for key, value in summary.items():
        print(f"{key:30s} {value}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
