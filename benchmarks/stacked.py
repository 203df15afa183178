"""Job-steps per second of N jobs at once: through the driver, and the bare stacked core.

    python -m benchmarks.stacked                       # the deep network, N = 1, 4, 16
    python -m benchmarks.stacked --network lecture_mlp --jobs 1 4 16 64 --steps 2000
    python -m benchmarks.stacked --device cuda --jobs 1 64 --graphs   # on a GPU machine

N same-shaped jobs (gains spread between 1 and 3, one seed each) train `--steps` optimizer
steps in chunks of 500. "driver": the way a sweep trains them, `train.train_jobs` with the
default config (the dynamics callback, checkpoints, a CSV logger, evaluation and samples
included; N = 1 is the solo engine), job-steps over the fit's seconds. "core": the stacked
engine's own chunk loop alone (`StackedModule.train_steps` on the engine's chunk stream, the
lecture's SGD), no Lightning, no statistics. "graphed" (`--graphs`, CUDA only): the core
with the training path's CUDA graphs, each step replayed from the graph of its kind (a step is
hundreds of tiny kernel launches at these sizes; a graph launches them as one). The driver
captures them too on a GPU (`cuda_graphs=true`, the default; `--override cuda_graphs=false`
for the eager steps). Prints a table and, last,
one JSON line with each per N, the speed-ups over N = 1, and one job against the lecture's own
loop (`benchmarks/reference_loop.py`), all measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from benchmarks import reference_loop
from makemore_lab.cli.app import CONF_DIR
from makemore_lab.data.chunks import ChunkStream
from makemore_lab.runs.job import Job
from makemore_lab.stacked.module import StackedModule
from makemore_lab.stacked.network import StackedMLP
from makemore_lab.stacked.sgd import JobSGD
from makemore_lab.train import train_jobs
from makemore_lab.training.graphs import StepGraphs

ROOT = Path(__file__).resolve().parents[1]
FINAL: dict[tuple[str, int], list[torch.Tensor]] = {}  # each way's final weights, to compare
CHUNK = 500  # optimizer steps per chunk, as data.chunk_size


class StepCount:
    """What the chunk loop advances on its lean path in place of Lightning's step counter."""

    def increment_by(self, n: int) -> None:
        pass


def core_setup(args: argparse.Namespace, jobs: int) -> tuple[StackedModule, ChunkStream]:
    """`jobs` stacked networks (gains 1..3, seeds 0..) in the stacked engine's own module, with
    the lecture's SGD, and the chunk stream of their generators, on `args.device`."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[f"model={args.network}", f"data.path={args.data}"])
    generators = [torch.Generator().manual_seed(seed) for seed in range(jobs)]
    dm = instantiate(cfg.data, download=False, generators=generators, chunk_size=CHUNK)
    dm.setup("fit")
    gains = torch.linspace(1, 3, jobs).tolist()
    nets = [
        instantiate(
            cfg.model, vocab_size=dm.vocab.size, init={**cfg.init, "gain": g}, generator=gen
        )
        for g, gen in zip(gains, generators, strict=True)
    ]
    net = StackedMLP.from_networks(nets).to(args.device)
    module = StackedModule(net, [JobSGD(0.1)] * jobs, True, generators, [[]] * jobs)
    module.configure_optimizers()
    x, y = (t.to(args.device) for t in dm.splits["train"])
    return module, ChunkStream(x, y, cfg.data.batch_size, generators, CHUNK)


def synchronize(device: str) -> None:
    if device == "cuda":  # time the work, not its queueing
        torch.cuda.synchronize()


def job_steps_per_second(args: argparse.Namespace, jobs: int) -> float:
    """`jobs` stacked jobs through the chunk loop the engine trains with
    (`ChunkModule.train_steps`, the lean path), without Lightning; job-steps per second."""
    module, stream = core_setup(args, jobs)
    count = StepCount()

    def train(first: int, xs: torch.Tensor, ys: torch.Tensor) -> None:
        losses, _ = module.train_steps(xs, ys, first, xs.shape[1], count)
        losses.tolist()  # the loop's one sync per chunk

    return timed(args, "core", module, stream, train)


def timed(
    args: argparse.Namespace, name: str, module: Any, stream: ChunkStream, train: Any
) -> float:
    """Job-steps per second of `train(first, xs, ys)` over `args.steps` steps, in chunks drawn
    from the engine's chunk stream; the final weights kept as FINAL[name, jobs]."""
    jobs = len(stream.generators)
    synchronize(args.device)
    started = time.perf_counter()
    for first in range(0, args.steps, CHUNK):
        xs, ys, _ = stream.draw(min(CHUNK, args.steps - first))
        train(first, xs, ys)
    synchronize(args.device)
    seconds = time.perf_counter() - started
    FINAL[name, jobs] = [t.detach().clone() for t in module.net.state_dict().values()]
    return jobs * args.steps / seconds


def graphed_steps_per_second(args: argparse.Namespace, jobs: int) -> float:
    """As `job_steps_per_second`, with the training path's CUDA graphs (`training/graphs.py`:
    each step replayed from the graph of its kind, what `cuda_graphs=true` does on a GPU)."""
    module, stream = core_setup(args, jobs)
    module.graphs = StepGraphs(module)
    count = StepCount()

    def train(first: int, xs: torch.Tensor, ys: torch.Tensor) -> None:
        losses, _ = module.train_steps(xs, ys, first, xs.shape[1], count)
        losses.tolist()

    return timed(args, "graphed", module, stream, train)


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
                    "trainer=gpu" if args.device == "cuda" else "trainer=cpu",
                    f"trainer.max_steps={args.steps}",
                    "logger=csv",
                    "callbacks.progress_bar=null",
                    "trainer.enable_progress_bar=false",
                    "trainer.enable_model_summary=false",
                    f"init.gain={gain}",
                    f"seed={seed}",
                    f"run_dir={out}/{seed}",
                    *args.override,
                ],
            )
            for seed, gain in enumerate(gains)
        ]
        resolved = [OmegaConf.create(OmegaConf.to_container(c, resolve=True)) for c in cfgs]
        metrics = train_jobs([Job(c) for c in resolved])
    return jobs * args.steps / metrics[0]["fit_seconds"]


def reference_steps_per_second(args: argparse.Namespace) -> float:
    """The lecture's loop (benchmarks/reference_loop.py) on the same data, one job."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[f"model={args.network}", f"data.path={args.data}"])
    dm = instantiate(cfg.data, download=False)
    dm.setup("fit")
    x, y = (t.to(args.device) for t in dm.splits["train"])
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
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--graphs", action="store_true", help="also the CUDA-graph core (cuda)")
    parser.add_argument("--no-reference", action="store_true", help="skip the lecture's loop")
    parser.add_argument("--no-core", action="store_true", help="the driver alone")
    parser.add_argument(
        "--override", action="append", default=[], help="a config override for the driver's jobs"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("makemore_lab").setLevel(logging.WARNING)  # no per-run summaries
    driver = {n: driver_steps_per_second(args, n) for n in args.jobs}
    torch.set_num_threads(args.threads)
    measured = {"driver": driver}
    if not args.no_core:
        measured["core"] = {n: job_steps_per_second(args, n) for n in args.jobs}
    if args.graphs:
        measured["graphed"] = {n: graphed_steps_per_second(args, n) for n in args.jobs}
    reference = math.nan if args.no_reference else reference_steps_per_second(args)
    print(f"\n{args.network} on {args.device}, {args.threads} thread(s), {args.steps} steps/job")
    print(f"{'jobs':>5}" + "".join(f" {name:>10} {'x one job':>10}" for name in measured))
    rows = list(measured.values())
    for n in args.jobs:
        row = "".join(f" {m[n]:>10.0f} {m[n] / m.get(1, math.nan):>10.2f}" for m in rows)
        print(f"{n:>5}{row}")
    print(f"the lecture's own loop, one job: {reference:.0f} steps/s")
    summary: dict[str, object] = {}
    for name, measured_n in measured.items():
        summary |= {f"{name}_job_steps_per_s_{n}": round(r, 1) for n, r in measured_n.items()}
        if 1 in measured_n:
            summary[f"{name}_one_job_over_reference"] = round(measured_n[1] / reference, 2)
            summary |= {
                f"{name}_speedup_{n}_jobs": round(r / measured_n[1], 2)
                for n, r in measured_n.items()
                if n != 1
            }
    most = max(args.jobs)
    if ("graphed", most) in FINAL and ("core", most) in FINAL:  # the same training, or not
        pairs = zip(FINAL["core", most], FINAL["graphed", most], strict=True)
        diff = max(float((a.double() - b.double()).abs().max()) for a, b in pairs)
        summary["graphed_max_abs_weight_diff"] = diff
        print(f"graphed vs core, {most} jobs: largest weight difference {diff:.3g}")
    if args.device == "cuda":  # the headline: a stacked sweep's own path, at the most jobs
        summary["gpu_job_steps_per_s"] = summary[f"driver_job_steps_per_s_{max(args.jobs)}"]
        summary["gpu_jobs"] = max(args.jobs)
    summary["reference_steps_per_s"] = round(reference, 1)
    summary |= {"network": args.network, "steps": args.steps, "threads": args.threads}
    summary["driver_overrides"] = args.override
    summary["device"] = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
