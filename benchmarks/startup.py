"""What a command pays before it trains: `--help`, a refused command, a job's first step.

Also: how long a stacked sweep of `--sweep-jobs` seeds takes to list its groups (Hydra has
composed every job's config, the launcher grouped them). Run from the repository root, as a
module (`benchmarks` is a package there):

    python -m benchmarks.startup                  # 3 repeats of each, one 3,000-step job
    python -m benchmarks.startup --root ../other  # another checkout's train.py and src/

Each command is the users' own (`python train.py ...`) in a fresh process, timed from just
before the process starts. A training job carries one extra callback (`FirstStepClock`, below)
that writes the wall clock when its first step begins, so "before the first step" is what the
process spends on Python, imports, Hydra, the data and the network before step 0. Prints a
table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning as L

ROOT = Path(__file__).resolve().parents[1]
REFUSED = ["model.n_hidden=-3"]  # a typo's cost: one sentence, exit status 2


class FirstStepClock(L.Callback):
    """Writes the wall clock (time.time()) as the first batch starts. The job imports this
    module when it builds its callbacks, after Lightning: that import costs it nothing."""

    def __init__(self, path: str) -> None:
        self.path, self.done = Path(path), False

    def on_train_batch_start(self, *args: object) -> None:
        if not self.done:
            self.path.write_text(repr(time.time()))
            self.done = True


def timed(
    root: Path, args: list[str], path: Path | None = None
) -> tuple[float, float, subprocess.CompletedProcess]:
    """`python train.py args` in `root`: when it started (time.time()), its seconds, its result.

    That checkout's package comes first on the path, then `path` (FirstStepClock's copy)."""
    paths = [str(root / "src"), *([str(path)] if path else [])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    started = time.time()
    result = subprocess.run(
        [sys.executable, "train.py", *args], cwd=root, env=env, capture_output=True, text=True
    )
    return started, time.time() - started, result


def job_costs(root: Path, steps: int, out: Path, data: Path | None) -> dict[str, float]:
    """One default job of `steps` steps (on `data`; None: the config's names file): seconds
    before its first step, its fit, the rest."""
    clock = out / "first_step.txt"
    # this file under a name of its own: another checkout's `benchmarks` would shadow ours
    shutil.copy(__file__, out / "makemore_startup_clock.py")
    args = [
        f"trainer.max_steps={steps}",
        f"hydra.run.dir={out / 'run'}",
        "+callbacks.first_step._target_=makemore_startup_clock.FirstStepClock",
        f"+callbacks.first_step.path={clock}",
        "callbacks.progress_bar=null",
        "trainer.enable_progress_bar=false",
        *([f"data.path={data}"] if data is not None else []),
    ]
    started, wall, result = timed(root, args, path=out)
    if result.returncode != 0:
        raise SystemExit(f"the {steps}-step job failed:\n{result.stderr[-3000:]}")
    metrics = json.loads((out / "run" / "metrics.json").read_text())
    before = float(clock.read_text()) - started
    fit = metrics["fit_seconds"]
    return {"process": wall, "before_first_step": before, "fit": fit, "rest": wall - before - fit}


def sweep_listing(root: Path, jobs: int, out: Path, data: Path | None) -> float:
    """Seconds before a `jobs`-seed stacked sweep lists its groups (Hydra composed every job,
    the launcher grouped them); then the sweep is stopped."""
    args = [
        "-m",
        f"seed=range(1,{jobs + 1})",
        "hydra/launcher=stacked",
        f"hydra.sweep.dir={out / 'sweep'}",
        *([f"data.path={data}"] if data is not None else []),
    ]
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    started = time.time()
    with subprocess.Popen(
        [sys.executable, "train.py", *args],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its group processes too are stopped below
    ) as sweep:
        assert sweep.stdout is not None
        listed = next((line for line in sweep.stdout if "stacked launcher:" in line), None)
        took = time.time() - started
        with contextlib.suppress(ProcessLookupError):  # it may have failed and gone
            os.killpg(sweep.pid, signal.SIGKILL)
    if listed is None:
        raise SystemExit(f"the {jobs}-job stacked sweep never listed its groups")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to time")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--data", type=Path, default=None, help="names file (default: conf's)")
    parser.add_argument("--sweep-jobs", type=int, default=16, help="jobs of the timed sweep")
    args = parser.parse_args()
    root = args.root.resolve()
    seconds: dict[str, list[float]] = {"help": [], "refused": [], "sweep": []}
    with tempfile.TemporaryDirectory() as tmp:
        refused = [*REFUSED, f"hydra.run.dir={tmp}/refused"]  # its failure record goes there
        for _ in range(args.repeats):  # interleaved: this machine's speed drifts
            for name, argv in (("help", ["--help"]), ("refused", refused)):
                _, took, result = timed(root, argv)
                assert result.returncode == (0 if name == "help" else 2), result.stderr[-2000:]
                seconds[name].append(took)
            seconds["sweep"].append(sweep_listing(root, args.sweep_jobs, Path(tmp), args.data))
        job = job_costs(root, args.steps, Path(tmp), args.data)
    report = {
        "root": root.name,
        "help_s": round(statistics.median(seconds["help"]), 2),
        "refused_s": round(statistics.median(seconds["refused"]), 2),
        f"sweep_of_{args.sweep_jobs}_listed_s": round(statistics.median(seconds["sweep"]), 2),
        **{f"job_{k}_s": round(v, 2) for k, v in job.items()},
        "steps": args.steps,
    }
    for key, value in report.items():
        print(f"  {key:28} {value}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
