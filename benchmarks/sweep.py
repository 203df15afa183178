"""Sweeps: the stacked launcher against the basic one, side by side, through the real CLI.

    python -m benchmarks.sweep                  # headline sweep x 3,000 steps, 16-job memory
    python -m benchmarks.sweep --ablation       # also the lecture's 5 rows at full length
    make bench-sweep

Measures, in one run: the wall time of the headline sweep (`-m model.batchnorm=true,false
init.gain=1,5/3`) with `hydra/launcher=basic` and `=stacked` (interleaved, median of
`--repeats`); the peak memory of a 16-job stacked group (`seed=1..16`); one job's steps/s
against the lecture's own loop on both networks (`benchmarks.bench`'s measurement); with
`--ablation`, the wall time of the lecture's five rows (200k steps each) on the stacked
launcher, their largest distance from the lecture's numbers, and beside them the time of one
BatchNorm row (the last) in the lecture's own loop (`reference_loop`, 200k steps): what a
notebook pays for the one row it cannot skip. Prints one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks import bench, reference_loop
from makemore_lab.data.datamodule import NamesDataModule

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["callbacks.progress_bar=null", "trainer.enable_progress_bar=false"]
HEADLINE = ["model.batchnorm=true,false", "init.gain=1,5/3"]
ROWS = "experiment=original,fix_softmax,fix_tanh_saturation,kaiming,batchnorm"


def sweep_seconds(args: list[str], out: Path) -> float:
    """Wall time of `python train.py -m <args>` writing into `out`."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "train.py", "-m", *args, *QUIET, f"hydra.sweep.dir={out}"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def headline(opts: argparse.Namespace, tmp: Path) -> dict[str, float]:
    """Median wall seconds of the headline sweep per launcher, and stacked / basic."""
    steps = [f"data.path={opts.data}", f"trainer.max_steps={opts.steps}", *HEADLINE]
    times: dict[str, list[float]] = {"basic": [], "stacked": []}
    for repeat in range(opts.repeats):
        for launcher in times:
            out = tmp / f"{launcher}{repeat}"
            times[launcher].append(sweep_seconds([*steps, f"hydra/launcher={launcher}"], out))
    median = {k: statistics.median(v) for k, v in times.items()}
    return {
        "basic_seconds": round(median["basic"], 1),
        "stacked_seconds": round(median["stacked"], 1),
        "stacked_over_basic": round(median["stacked"] / median["basic"], 3),
    }


def peak_rss_of_16_jobs(opts: argparse.Namespace, tmp: Path) -> float:
    """Peak resident memory (MiB) of a 16-job stacked group; run first, before other children."""
    seeds = "seed=" + ",".join(str(s) for s in range(1, 17))
    args = [f"data.path={opts.data}", "trainer.max_steps=1000", seeds, "hydra/launcher=stacked"]
    sweep_seconds(args, tmp / "rss")
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux


def single_over_reference(opts: argparse.Namespace, tmp: Path, network: str) -> float:
    """One default run's steps/s over the lecture's loop (benchmarks.bench's measurement)."""
    args = bench.parse_args(["--network", network, "--steps", "3000", "--warmup", "500"])
    args.data = opts.data
    workdir = tmp / f"single_{network}"
    workdir.mkdir()
    return bench.measure([], args, workdir).steps_per_second / bench.measure_reference(args)


def ablation(opts: argparse.Namespace, tmp: Path) -> dict[str, float]:
    """The lecture's five rows, full length, stacked: seconds and the largest |ours - lecture|."""
    out = tmp / "ablation"
    seconds = sweep_seconds([f"data.path={opts.data}", ROWS, "hydra/launcher=stacked"], out)
    worst = 0.0
    for job in out.glob("[0-9]_*"):
        metrics = json.loads((job / "metrics.json").read_text())
        reference = yaml.safe_load((job / "config.yaml").read_text())["reference"]
        for key in ("train_loss", "val_loss"):
            worst = max(worst, abs(metrics[key] - reference[key]))
    row = batchnorm_row_seconds(opts)
    return {
        "ablation_seconds": round(seconds, 1),
        "ablation_max_abs_diff": round(worst, 4),
        "lecture_batchnorm_row_seconds": round(row, 1),
        "ablation_over_batchnorm_row": round(seconds / row, 3),
    }


def batchnorm_row_seconds(opts: argparse.Namespace, steps: int = 200_000) -> float:
    """Seconds of the lecture's own loop for its BatchNorm row, `steps` steps, eager."""
    dm = NamesDataModule(path=opts.data, download=False)
    dm.setup()
    x, y = dm.splits["train"]
    sps = reference_loop.steps_per_second(x, y, "batchnorm", dm.vocab.size, steps, warmup=0)
    return steps / sps


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sweep",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--steps", type=int, default=3000, help="steps of each headline job")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--ablation", action="store_true", help="also the 5 rows x 200k steps")
    parser.add_argument("--data", default=str(ROOT / "data" / "names.txt"))
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        summary: dict[str, object] = {"peak_rss_mib": round(peak_rss_of_16_jobs(opts, Path(tmp)))}
        summary |= headline(opts, Path(tmp))
        for network, key in (("deep", "deep"), ("lecture_mlp", "first")):
            ratio = single_over_reference(opts, Path(tmp), network)
            summary[f"single_over_reference_{key}"] = round(ratio, 3)
        if opts.ablation:
            summary |= ablation(opts, Path(tmp))
    summary |= {"steps": opts.steps, "repeats": opts.repeats}
    for key, value in summary.items():
        print(f"{key:30s} {value}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
