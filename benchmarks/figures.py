"""What one job's dynamics figures cost: in a figure worker, and in the training process.

Run from the repository root, as a module (`benchmarks` is a package there):

    python -m benchmarks.figures                  # this checkout, 3 repeats
    python -m benchmarks.figures --root ../other  # another checkout's src/, same figures

A deep-network job draws eight figures (three densities at step 0, three at the end, the
update:data ratio and the activations over time). They are drawn here from made-up data of a
real job's shape (5 blocks of Linear, BatchNorm, Tanh; 100 bins; four collections), in a process
forked from one that imported the training stack, as a sweep's figure worker is. The training
process's share is handing the drawn figures to TensorBoard (`media.log_image`). Prints one
JSON line: seconds per job, medians of the repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def job_figures() -> list[tuple[str, tuple]]:
    """The eight figures of a deep-network job: (the figures-module function, its args)."""
    rng = np.random.default_rng(0)
    kinds = [f"block{b}_{k}" for b in range(1, 6) for k in ("Linear", "BatchNorm1d", "Tanh")]
    edges = list(np.linspace(-1, 1, 100))

    def lines(names: list[str]) -> dict:
        return {n: (edges, list(rng.random(100))) for n in names}

    tanhs = [n for n in kinds if n.endswith("Tanh")]
    weights = [f"block{b}_Linear" for b in range(1, 6)] + ["output_Linear", "embedding"]
    densities = [
        ("distribution_figure", (lines(names), f"{what} distribution at step {step}"))
        for step in (0, 2999)
        for what, names in (("activations", tanhs), ("gradients", tanhs), ("weights", weights))
    ]
    steps = [0, 1000, 2000, 2999]
    heat = {n: (steps, rng.random((4, 50)), -3.0, 3.0) for n in [*kinds, "output_Linear"]}
    ratios = {n: (steps, list(rng.random(4) - 3)) for n in weights}
    return [*densities, ("update_ratio_figure", (ratios,)), ("heatmap_figure", (heat,))]


def worker_seconds(render: ModuleType, figures: ModuleType, cases: list, out: Path) -> float:
    """One job's figures drawn in a forked child (the worker's start-up included)."""
    read, write = os.pipe()
    if (pid := os.fork()) == 0:
        started = time.perf_counter()
        render._worker_start()
        for i, (name, args) in enumerate(cases):
            render.draw(getattr(figures, name), args, out / f"{i}.png")
        os.write(write, repr(time.perf_counter() - started).encode())
        os._exit(0)
    os.close(write)
    seconds = float(os.read(read, 64))
    os.waitpid(pid, 0)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose src/ to time")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(args.root.resolve() / "src"))
    from lightning.pytorch.loggers import TensorBoardLogger

    import makemore_lab.train  # noqa: F401  the training process's imports, as a sweep has them
    from makemore_lab.dynamics import figures, media, render

    out = Path(tempfile.mkdtemp())
    cases = job_figures()
    worker = [worker_seconds(render, figures, cases, out) for _ in range(args.repeats)]
    drawn = [render.draw(getattr(figures, name), a, out / "x.png") for name, a in cases]
    logger = TensorBoardLogger(str(out))
    handing = []
    for repeat in range(args.repeats):
        started = time.perf_counter()
        for i, image in enumerate(drawn):
            media.log_image([logger], f"figures/{i}", image, repeat)
        handing.append(time.perf_counter() - started)
    result = {
        "root": args.root.name or str(args.root),
        "figures": len(cases),
        "worker_seconds_per_job": round(statistics.median(worker), 3),
        "training_process_seconds_per_job": round(statistics.median(handing), 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
