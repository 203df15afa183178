"""What repeats on a device: the same run twice, and a run killed with SIGTERM then resumed.

Run from the repository root, as a module (`benchmarks` is a package there):

    python -m benchmarks.repeatability                       # CPU, the deep network
    python -m benchmarks.repeatability --trainer gpu --steps 3000
    python -m benchmarks.repeatability --trainer gpu -- trainer.deterministic=true

Runs `python train.py` for real: run A and run B with identical settings, and run C, sent
SIGTERM once its first periodic checkpoint exists and then resumed with `resume=true`. Prints,
for B and C against A, whether the final losses are bit-identical and the largest difference,
then one JSON line. The README's "Reliability" section quotes its output.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOSSES = ("step0_loss", "train_loss", "val_loss", "test_loss")


def start(args: list[str], run_dir: Path) -> subprocess.Popen:
    """Start `python train.py` from the repository root, as a user would; stderr to a log."""
    with (run_dir.parent / f"{run_dir.name}.log").open("w") as log:
        return subprocess.Popen(
            [sys.executable, "train.py", *args, f"hydra.run.dir={run_dir}"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def metrics(run_dir: Path) -> dict:
    """The `metrics.json` a finished (or stopped) run writes into its run dir."""
    return json.loads((run_dir / "metrics.json").read_text())


def compare(a: dict, b: dict) -> dict:
    """Bit-identical final losses? and the largest absolute difference among them."""
    diffs = [abs(a[k] - b[k]) for k in LOSSES]
    return {"identical": all(a[k] == b[k] for k in LOSSES), "max_abs_diff": max(diffs)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line: the trainer config, run length, checkpoint cadence, where to keep runs."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.repeatability",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--trainer", default="cpu", help="the trainer config: cpu, gpu, auto")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--every", type=int, default=500, help="checkpoint and validation cadence")
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run")
    return parser.parse_args(argv)


def settings(args: argparse.Namespace) -> list[str]:
    """The overrides all three runs share; a checkpoint every `--every` steps gives C a stop."""
    return [
        f"trainer={args.trainer}",
        f"trainer.max_steps={args.steps}",
        f"trainer.val_check_interval={args.every}",
        f"callbacks.model_checkpoint.every_n_train_steps={args.every}",
        "callbacks.progress_bar=null",
        "trainer.enable_progress_bar=false",
        *args.overrides,
    ]


def run_three(overrides: list[str], out: Path) -> tuple[dict[str, int], int] | None:
    """Runs A, B and C side by side; C gets SIGTERM at its first checkpoint, then resumes.

    Returns the exit codes and the step C stopped at (read before the resume rewrites C's
    metrics), or None when C ended before writing a checkpoint (its log's tail goes to stderr).
    """
    a, b, c = (start(overrides, out / name) for name in ("a", "b", "c"))
    while not list((out / "c" / "checkpoints").glob("step*.ckpt")):
        if c.poll() is not None:
            print((out / "c.log").read_text()[-3000:], file=sys.stderr)
            return None
        time.sleep(0.05)
    c.send_signal(signal.SIGTERM)
    codes = {"a": a.wait(), "b": b.wait(), "c_killed": c.wait()}
    stopped_at = metrics(out / "c")["steps"]
    with (out / "c_resumed.log").open("w") as log:
        codes["c_resumed"] = subprocess.run(
            [sys.executable, "train.py", *overrides, f"hydra.run.dir={out / 'c'}", "resume=true"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
        ).returncode
    return codes, stopped_at


def report(args: argparse.Namespace, out: Path, stopped_at: int) -> dict:
    """Compare B and the resumed C with A; print one line each, then the JSON line."""
    ma, mb, mc = (metrics(out / n) for n in "abc")
    result = {
        "trainer": args.trainer,
        "overrides": args.overrides,
        "steps": args.steps,
        "a_val_loss": ma["val_loss"],
        "b_vs_a": compare(ma, mb),
        "killed_at_step": stopped_at,
        "resumed_vs_a": compare(ma, mc),
        "out": str(out),
    }
    print(f"A, B: same settings; C: SIGTERM at step {stopped_at}, then resume=true")
    for name in ("b_vs_a", "resumed_vs_a"):
        r = result[name]
        print(f"  {name:13s} identical={r['identical']!s:5s} max |diff| = {r['max_abs_diff']:.3g}")
    print(json.dumps(result))
    return result


def main(argv: list[str] | None = None) -> int:
    """Run A, B and the interrupted C, then report; exit 1 if any run ended unexpectedly."""
    args = parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="repeatability-"))
    out.mkdir(parents=True, exist_ok=True)
    ran = run_three(settings(args), out)
    if ran is None:
        return 1
    codes, stopped_at = ran
    if codes != {"a": 0, "b": 0, "c_killed": 143, "c_resumed": 0}:
        print(f"unexpected exit codes {codes}; logs in {out}", file=sys.stderr)
        return 1
    report(args, out, stopped_at)
    return 0


if __name__ == "__main__":
    sys.exit(main())
