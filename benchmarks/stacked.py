"""Job-steps per second of the stacked core (`StackedMLP` + `stacked_steps`) for N jobs at once.

    python -m benchmarks.stacked                       # the deep network, N = 1, 4, 16
    python -m benchmarks.stacked --network lecture_mlp --jobs 1 4 16 64 --steps 2000

N same-shaped jobs (gains spread between 1 and 3, one seed each) train `--steps` optimizer
steps in chunks of 500, the lecture's SGD with one learning rate per job, no Lightning, no
statistics: what a stacked group's inner loop costs. Prints a table and, last, one JSON line
with job-steps/s per N, the speed-up over N = 1, and one job against the lecture's own loop
(`benchmarks/reference_loop.py`), measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from benchmarks import reference_loop
from makemore_lab.app import CONF_DIR
from makemore_lab.stacked import StackedMLP
from makemore_lab.stacked_steps import JobSGD, StackedSGD, draw_chunk, train_chunk

ROOT = Path(__file__).resolve().parents[1]


def job_steps_per_second(args: argparse.Namespace, jobs: int) -> float:
    """Train `jobs` stacked networks for `args.steps` steps; job-steps per second."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[f"model={args.network}", f"data.path={args.data}"])
    dm = instantiate(cfg.data, download=False)
    dm.setup("fit")
    generators = [torch.Generator().manual_seed(seed) for seed in range(jobs)]
    gains = torch.linspace(1, 3, jobs).tolist()
    nets = [
        instantiate(
            cfg.model, vocab_size=dm.vocab.size, init={**cfg.init, "gain": g}, generator=gen
        )
        for g, gen in zip(gains, generators, strict=True)
    ]
    model = StackedMLP.from_networks(nets)
    optimizer = StackedSGD(model, [JobSGD(0.1)] * jobs, lecture=True)
    x, y = dm.splits["train"]
    chunk = 500
    started = time.perf_counter()
    for first in range(0, args.steps, chunk):
        n = min(chunk, args.steps - first)
        xs, ys = draw_chunk(x, y, generators, n, cfg.data.batch_size)
        train_chunk(model, optimizer, xs, ys)
    return jobs * args.steps / (time.perf_counter() - started)


def reference_steps_per_second(args: argparse.Namespace) -> float:
    """The lecture's loop (benchmarks/reference_loop.py) on the same data, one job."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[f"model={args.network}", f"data.path={args.data}"])
    dm = instantiate(cfg.data, download=False)
    dm.setup("fit")
    x, y = dm.splits["train"]
    return reference_loop.steps_per_second(x, y, args.network, dm.vocab.size, args.steps, 100)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.stacked",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--network", default="deep", choices=["deep", "lecture_mlp"])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--steps", type=int, default=1000, help="optimizer steps per job")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", default=str(ROOT / "data" / "names.txt"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rates = {n: job_steps_per_second(args, n) for n in args.jobs}
    reference = reference_steps_per_second(args)
    base = rates.get(1)
    print(f"\n{args.network}, {args.threads} thread(s), {args.steps} steps per job")
    print(f"{'jobs':>5} {'job-steps/s':>12} {'x one job':>10}")
    for n, rate in rates.items():
        print(f"{n:>5} {rate:>12.0f} {rate / base if base else float('nan'):>10.2f}")
    print(f"the lecture's own loop, one job: {reference:.0f} steps/s")
    summary = {f"job_steps_per_s_{n}": round(r, 1) for n, r in rates.items()}
    summary["reference_steps_per_s"] = round(reference, 1)
    if base:
        summary["one_job_over_reference"] = round(base / reference, 2)
    if base:
        summary |= {f"speedup_{n}_jobs": round(r / base, 2) for n, r in rates.items() if n != 1}
    summary |= {"network": args.network, "steps": args.steps, "threads": args.threads}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
