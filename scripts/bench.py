"""Throughput of the training path, measured in one run so the variants are comparable.

    python scripts/bench.py                      # default callbacks vs no statistics callback
    python scripts/bench.py --steps 6000 --repeats 5 --data data/names.txt

Each variant trains the default deep network through the real `train()` (Lightning, Hydra
config, loggers) for `--steps` optimizer steps; steps/s is measured from step `--warmup` to the
last step, so one-off costs (start-up, the step-0 figures) are left out while every periodic
collection of the statistics callback inside that window is included. Variants are interleaved
(ABAB...) and the median over repeats is reported, because this machine's speed drifts.
Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import lightning as L
from hydra import compose, initialize_config_dir

from makemore_lab.dynamics import TrainingDynamics
from makemore_lab.train import CONF_DIR, train

VARIANTS = {
    "default": [],
    "no_callback": ["callbacks.dynamics=null"],
}


class StepTimer(L.Callback):
    """Wall time between the start of step `warmup` and the end of the last step."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end, self.steps = warmup, None, None, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.end, self.steps = time.perf_counter(), trainer.global_step - self.warmup

    def on_train_end(self, trainer, pl_module) -> None:
        self.dynamics = [c for c in trainer.callbacks if isinstance(c, TrainingDynamics)]

    @property
    def steps_per_second(self) -> float:
        return self.steps / (self.end - self.start)


def measure(overrides: list[str], args: argparse.Namespace, workdir: Path) -> StepTimer:
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                f"data.path={args.data}",
                f"trainer.max_steps={args.steps}",
                f"threads={args.threads}",
                f"trainer.val_check_interval={args.steps}",
                "trainer.enable_progress_bar=false",
                "callbacks.progress_bar=null",
                "trainer.enable_model_summary=false",
                f"run_dir={workdir / str(len(list(workdir.iterdir())))}",
                *overrides,
            ],
        )
    timer = StepTimer(args.warmup)
    train(cfg, extra_callbacks=[timer])
    return timer


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", default="data/names.txt")
    args = parser.parse_args()
    results: dict[str, list[float]] = {name: [] for name in VARIANTS}
    collect_ms: list[float] = []  # the statistics callback's own time per collection
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for name, overrides in VARIANTS.items():
                timer = measure(overrides, args, Path(tmp))
                results[name].append(timer.steps_per_second)
                collect_ms += [1000 * d.collect_seconds / d.collections for d in timer.dynamics]
    median = {name: statistics.median(v) for name, v in results.items()}
    print(f"\n{'variant':<14} {'median steps/s':>15}   runs")
    for name, values in results.items():
        print(f"{name:<14} {median[name]:>15.1f}   {', '.join(f'{v:.1f}' for v in values)}")
    ms = statistics.median(collect_ms)
    # What one collection every 1000 steps costs, relative to 1000 ordinary steps.
    implied = ms / (1000 * 1000 / median["no_callback"]) * 100
    print(f"statistics callback: {ms:.1f} ms per collection = {implied:.2f}% of 1000 steps' time")
    summary = {f"{name}_steps_per_s": round(v, 1) for name, v in median.items()}
    summary["default_over_no_callback"] = round(median["default"] / median["no_callback"], 3)
    summary["callback_ms_per_collection"] = round(ms, 1)
    summary["callback_overhead_pct_at_1000_steps"] = round(implied, 2)
    summary |= {
        "steps": args.steps,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "threads": args.threads,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
