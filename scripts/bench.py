"""Throughput of the training path against the lecture's own loop, measured in one run.

    python scripts/bench.py                               # the deep network on the CPU
    python scripts/bench.py --network lecture_mlp --steps 20000
    python scripts/bench.py --device cuda --threads 4     # on a GPU machine
    python scripts/bench.py --variants default -- data.chunk_size=10   # with Hydra overrides

Variants, on the same network, data and batch size:
  reference    the lecture's loop, transcribed (`scripts/reference_loop.py`): eager, no Lightning
  default      the project's `train()`: Lightning, default callbacks (statistics included), logger
  no_callback  the same without the statistics callback
  compiled     the default with `compile=true`
Steps/s count from step `--warmup` to the last step, so one-off costs (start-up, compilation,
the step-0 figures) are left out while every periodic collection of the statistics callback
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # reference_loop.py

import lightning as L
import torch
from hydra import compose, initialize_config_dir

import reference_loop
from makemore_lab.app import CONF_DIR
from makemore_lab.data import NamesDataModule
from makemore_lab.dynamics import TrainingDynamics
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
        if self.start is None:
            raise SystemExit("--steps must exceed --warmup by at least one chunk of steps")
        return (self.last - self.first) / (self.end - self.start)


def overrides(args: argparse.Namespace) -> list[str]:
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
    run_dir = workdir / str(len(list(workdir.iterdir())))
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[*overrides(args), f"run_dir={run_dir}", *variant])
    timer = StepTimer(args.warmup)
    train(cfg, extra_callbacks=[timer])
    return timer


def measure_reference(args: argparse.Namespace) -> float:
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results: dict[str, list[float]] = {name: [] for name in args.variants}
    collect_ms: list[float] = []  # the statistics callback's own time per collection
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for name in args.variants:
                if VARIANTS[name] is None:
                    results[name].append(measure_reference(args))
                    continue
                timer = measure(VARIANTS[name], args, Path(tmp))
                results[name].append(timer.steps_per_second)
                collect_ms += [1000 * d.collect_seconds / d.collections for d in timer.dynamics]
        rss = peak_rss_of_a_default_run(args, Path(tmp))
    median = {name: statistics.median(v) for name, v in results.items()}
    print(f"\n{args.network} on {args.device}, {args.threads} thread(s), {args.steps} steps")
    print(f"{'variant':<12} {'steps/s':>9} {'/ reference':>12}   runs")
    for name, values in results.items():
        ratio = median[name] / median["reference"] if "reference" in median else float("nan")
        runs = ", ".join(f"{v:.0f}" for v in values)
        print(f"{name:<12} {median[name]:>9.1f} {ratio:>12.2f}   {runs}")
    summary: dict[str, object] = {f"{n}_steps_per_s": round(v, 1) for n, v in median.items()}
    for name in median:
        if name != "reference" and "reference" in median:
            summary[f"{name}_over_reference"] = round(median[name] / median["reference"], 3)
    if {"default", "no_callback"} <= set(median):
        summary["default_over_no_callback"] = round(median["default"] / median["no_callback"], 3)
    if collect_ms:
        summary["callback_ms_per_collection"] = round(statistics.median(collect_ms), 1)
        print(f"statistics callback: {summary['callback_ms_per_collection']} ms per collection")
    summary["peak_rss_mib"] = round(rss, 1)
    print(f"peak memory of a default {args.steps}-step run (python train.py): {rss:.0f} MiB")
    summary |= {k: getattr(args, k) for k in ("network", "device", "steps", "warmup", "repeats")}
    summary["threads"] = args.threads
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
