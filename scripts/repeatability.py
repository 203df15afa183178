"""What repeats on a device: the same run twice, and a run killed with SIGTERM then resumed.

    python scripts/repeatability.py                          # CPU, the deep network
    python scripts/repeatability.py --trainer gpu --steps 3000
    python scripts/repeatability.py --trainer gpu -- trainer.deterministic=true

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
    with (run_dir.parent / f"{run_dir.name}.log").open("w") as log:
        return subprocess.Popen(
            [sys.executable, "train.py", *args, f"hydra.run.dir={run_dir}"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def compare(a: dict, b: dict) -> dict:
    """Bit-identical final losses? and the largest absolute difference among them."""
    diffs = [abs(a[k] - b[k]) for k in LOSSES]
    return {"identical": all(a[k] == b[k] for k in LOSSES), "max_abs_diff": max(diffs)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trainer", default="cpu", help="the trainer config: cpu, gpu, auto")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--every", type=int, default=500, help="checkpoint and validation cadence")
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="repeatability-"))
    out.mkdir(parents=True, exist_ok=True)
    settings = [
        f"trainer={args.trainer}",
        f"trainer.max_steps={args.steps}",
        f"trainer.val_check_interval={args.every}",
        f"callbacks.model_checkpoint.every_n_train_steps={args.every}",
        "callbacks.progress_bar=null",
        "trainer.enable_progress_bar=false",
        *args.overrides,
    ]
    a, b, c = (start(settings, out / name) for name in ("a", "b", "c"))
    while not list((out / "c" / "checkpoints").glob("step*.ckpt")):
        if c.poll() is not None:
            print((out / "c.log").read_text()[-3000:], file=sys.stderr)
            return 1
        time.sleep(0.05)
    c.send_signal(signal.SIGTERM)
    codes = {"a": a.wait(), "b": b.wait(), "c_killed": c.wait()}
    stopped_at = metrics(out / "c")["steps"]
    codes["c_resumed"] = subprocess.run(
        [sys.executable, "train.py", *settings, f"hydra.run.dir={out / 'c'}", "resume=true"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=(out / "c_resumed.log").open("w"),
    ).returncode
    if codes != {"a": 0, "b": 0, "c_killed": 143, "c_resumed": 0}:
        print(f"unexpected exit codes {codes}; logs in {out}", file=sys.stderr)
        return 1
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
