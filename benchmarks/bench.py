"""Throughput of the training path against the lecture's own loop, measured in one run.

Run from the repository root, as a module (`benchmarks` is a package there):

    python -m benchmarks.bench                            # the deep network on the CPU
    python -m benchmarks.bench --network lecture_mlp --steps 20000
    python -m benchmarks.bench --device cuda --threads 4  # on a GPU machine
    python -m benchmarks.bench --variants default -- data.chunk_size=10  # with Hydra overrides

Variants, on the same network, data and batch size:
  reference    the lecture's loop, transcribed (`benchmarks/reference_loop.py`): eager, no
               Lightning
  default      the project's `train()`: Lightning, default callbacks (statistics included), logger
  no_callback  the same without the dynamics callback
  compiled     the default with `compile=true`
Steps/s count from step `--warmup` to the last step, so one-off costs (start-up, compilation,
the step-0 figures) are left out while every periodic collection of the dynamics callback
inside that window is included. Variants are interleaved and the median over `--repeats` is
reported, because this machine's speed drifts. Then one default training run through the real
CLI measures peak memory. Prints a table and, last, one JSON line.
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
from typing import Any

import lightning as L
import torch
from hydra import compose, initialize_config_dir

from benchmarks import reference_loop
from makemore_lab.cli.app import CONF_DIR
from makemore_lab.data.datamodule import NamesDataModule
from makemore_lab.dynamics.callback import TrainingDynamics
from makemore_lab.train import train

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "reference": None,
    "default": [],
    "no_callback": ["callbacks.dynamics=null"],
    "compiled": ["compile=true"],
}


class StepTimer(L.Callback):
    """Wall time from the first batch at or past step `warmup` to the end of the last batch."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end, self.first, self.last = warmup, None, None, 0, 0
        self.dynamics: list[TrainingDynamics] = []

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.start is None and trainer.global_step >= self.warmup:
            self._sync(pl_module)
            self.start, self.first = time.perf_counter(), trainer.global_step

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, i: int
    ) -> None:
        self._sync(pl_module)
        self.end, self.last = time.perf_counter(), trainer.global_step

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.dynamics = [c for c in trainer.callbacks if isinstance(c, TrainingDynamics)]

    @staticmethod
    def _sync(pl_module: L.LightningModule) -> None:
        if pl_module.device.type == "cuda":  # time the work, not its queueing
            torch.cuda.synchronize()

    @property
    def steps_per_second(self) -> float:
        """Steps per second inside the timed window (steps counted by `global_step`)."""
        if self.start is None:
            raise SystemExit("--steps must exceed --warmup by at least one chunk of steps")
        return (self.last - self.first) / (self.end - self.start)


def overrides(args: argparse.Namespace) -> list[str]:
    """Hydra overrides shared by every project variant: same data, network, length, device.

    The progress bar is off so that its redraws do not count against the project's loop.
    """
    return [
        f"data.path={args.data}",
        f"model={args.network}",
        f"trainer.max_steps={args.steps}",
        f"trainer.val_check_interval={args.steps}",
        f"threads={args.threads}",
        f"trainer.accelerator={'gpu' if args.device == 'cuda' else 'cpu'}",
        "trainer.enable_model_summary=false",
        "trainer.enable_progress_bar=false",
        "callbacks.progress_bar=null",
        *args.overrides,
    ]


def measure(variant: list[str], args: argparse.Namespace, workdir: Path) -> StepTimer:
    """One in-process `train()` run of a variant, in a fresh run dir, timed by a `StepTimer`."""
    run_dir = workdir / str(len(list(workdir.iterdir())))
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[*overrides(args), f"run_dir={run_dir}", *variant])
    timer = StepTimer(args.warmup)
    train(cfg, extra_callbacks=[timer])
    return timer


def measure_reference(args: argparse.Namespace) -> float:
    """Steps/s of the lecture's loop on the same training split the project's runs use."""
    dm = NamesDataModule(path=args.data, download=False)
    dm.setup()
    x, y = (t.to(args.device) for t in dm.splits["train"])
    return reference_loop.steps_per_second(
        x, y, args.network, dm.vocab.size, args.steps - args.warmup, args.warmup
    )


def peak_rss_of_a_default_run(args: argparse.Namespace, workdir: Path) -> float:
    """Peak resident memory (MiB) of `python train.py` with the default callbacks and logger."""
    cli = [a for a in overrides(args) if "progress" not in a]
    subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *cli, f"hydra.run.dir={workdir / 'rss'}"],
        check=True,
        capture_output=True,
    )
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line: which network, device, run length, repeats and variants to time."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--network", default="deep", choices=["deep", "lecture_mlp"])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=6000, help="optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=1000, help="steps left out of the timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", default=str(ROOT / "data" / "names.txt"))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for the project's runs")
    return parser.parse_args(argv)


def time_variants(
    args: argparse.Namespace, workdir: Path
) -> tuple[dict[str, list[float]], list[float]]:
    """Steps/s of every variant per repeat, and the dynamics callback's ms per collection.

    The variants are interleaved within each repeat, so a drift in the machine's speed spreads
    over all of them instead of favouring whichever ran first.
    """
    results: dict[str, list[float]] = {name: [] for name in args.variants}
    collect_ms: list[float] = []
    for _ in range(args.repeats):
        for name in args.variants:
            if VARIANTS[name] is None:
                results[name].append(measure_reference(args))
                continue
            timer = measure(VARIANTS[name], args, workdir)
            results[name].append(timer.steps_per_second)
            collect_ms += [1000 * d.collect_seconds / d.collections for d in timer.dynamics]
    return results, collect_ms


def print_table(args: argparse.Namespace, results: dict[str, list[float]]) -> None:
    """One row per variant: median steps/s, its ratio to the reference, and every run."""
    median = {name: statistics.median(v) for name, v in results.items()}
    print(f"\n{args.network} on {args.device}, {args.threads} thread(s), {args.steps} steps")
    print(f"{'variant':<12} {'steps/s':>9} {'/ reference':>12}   runs")
    for name, values in results.items():
        ratio = median[name] / median["reference"] if "reference" in median else float("nan")
        runs = ", ".join(f"{v:.0f}" for v in values)
        print(f"{name:<12} {median[name]:>9.1f} {ratio:>12.2f}   {runs}")


def summarize(
    args: argparse.Namespace, results: dict[str, list[float]], collect_ms: list[float], rss: float
) -> dict[str, object]:
    """The JSON line's content: medians, ratios to the reference and the settings that made them."""
    median = {name: statistics.median(v) for name, v in results.items()}
    summary: dict[str, object] = {f"{n}_steps_per_s": round(v, 1) for n, v in median.items()}
    for name in median:
        if name != "reference" and "reference" in median:
            summary[f"{name}_over_reference"] = round(median[name] / median["reference"], 3)
    if {"default", "no_callback"} <= set(median):
        summary["default_over_no_callback"] = round(median["default"] / median["no_callback"], 3)
    if collect_ms:
        summary["callback_ms_per_collection"] = round(statistics.median(collect_ms), 1)
    summary["peak_rss_mib"] = round(rss, 1)
    summary |= {k: getattr(args, k) for k in ("network", "device", "steps", "warmup", "repeats")}
    summary["threads"] = args.threads
    return summary


def main(argv: list[str] | None = None) -> None:
    """Time the variants, measure a default run's memory, print the table then one JSON line."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        results, collect_ms = time_variants(args, Path(tmp))
        rss = peak_rss_of_a_default_run(args, Path(tmp))
    print_table(args, results)
    summary = summarize(args, results, collect_ms, rss)
    if "callback_ms_per_collection" in summary:
        ms = summary["callback_ms_per_collection"]
        print(f"dynamics callback: {ms} ms per collection")
    print(f"peak memory of a default {args.steps}-step run (python train.py): {rss:.0f} MiB")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
