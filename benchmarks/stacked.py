"""Job-steps per second of N jobs at once: through the driver, and the bare stacked core.

    python -m benchmarks.stacked                       # the deep network, N = 1, 4, 16
    python -m benchmarks.stacked --network lecture_mlp --jobs 1 4 16 64 --steps 2000

N same-shaped jobs (gains spread between 1 and 3, one seed each) train `--steps` optimizer
steps in chunks of 500. "driver": the way a sweep trains them, `train.train_jobs` with the
default config (the dynamics callback, checkpoints, a CSV logger, evaluation and samples
included; N = 1 is the solo engine), job-steps over the fit's seconds. "core": the stacked
inner loop alone (`StackedMLP` + `stacked_steps`, the lecture's SGD), no Lightning, no
statistics. Prints a table and, last, one JSON line with both per N, the speed-ups over N = 1,
and one job against the lecture's own loop (`benchmarks/reference_loop.py`), all measured in
the same run.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from benchmarks import reference_loop
from makemore_lab.cli.app import CONF_DIR
from makemore_lab.stacked.network import StackedMLP
from makemore_lab.stacked.steps import JobSGD, StackedSGD, draw_chunk, train_chunk
from makemore_lab.train import train_jobs

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


def driver_steps_per_second(args: argparse.Namespace, jobs: int) -> float:
    """Train `jobs` jobs through the driver as a stacked sweep does; job-steps per fit second."""
    with (
        tempfile.TemporaryDirectory() as out,
        initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"),
    ):
        gains = torch.linspace(1, 3, jobs).tolist()
        cfgs = [
            compose(
                "config",
                overrides=[
                    f"model={args.network}",
                    f"data.path={args.data}",
                    "data.download=false",
                    f"trainer.max_steps={args.steps}",
                    "logger=csv",
                    "callbacks.progress_bar=null",
                    "trainer.enable_progress_bar=false",
                    "trainer.enable_model_summary=false",
                    f"init.gain={gain}",
                    f"seed={seed}",
                    f"run_dir={out}/{seed}",
                ],
            )
            for seed, gain in enumerate(gains)
        ]
        resolved = [OmegaConf.create(OmegaConf.to_container(c, resolve=True)) for c in cfgs]
        metrics = train_jobs(resolved, [None] * jobs)
    return jobs * args.steps / metrics[0]["fit_seconds"]


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
    logging.getLogger("makemore_lab").setLevel(logging.WARNING)  # no per-run summaries
    driver = {n: driver_steps_per_second(args, n) for n in args.jobs}
    torch.set_num_threads(args.threads)
    rates = {n: job_steps_per_second(args, n) for n in args.jobs}
    reference = reference_steps_per_second(args)
    print(f"\n{args.network}, {args.threads} thread(s), {args.steps} steps per job")
    print(f"{'jobs':>5} {'driver':>10} {'x one job':>10} {'core':>10} {'x one job':>10}")
    for n in args.jobs:
        print(
            f"{n:>5} {driver[n]:>10.0f} {driver[n] / driver.get(1, math.nan):>10.2f} "
            f"{rates[n]:>10.0f} {rates[n] / rates.get(1, math.nan):>10.2f}"
        )
    print(f"the lecture's own loop, one job: {reference:.0f} steps/s")
    summary: dict[str, object] = {}
    for name, measured in (("driver", driver), ("core", rates)):
        summary |= {f"{name}_job_steps_per_s_{n}": round(r, 1) for n, r in measured.items()}
        if 1 in measured:
            summary[f"{name}_one_job_over_reference"] = round(measured[1] / reference, 2)
            summary |= {
                f"{name}_speedup_{n}_jobs": round(r / measured[1], 2)
                for n, r in measured.items()
                if n != 1
            }
    summary["reference_steps_per_s"] = round(reference, 1)
    summary |= {"network": args.network, "steps": args.steps, "threads": args.threads}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
