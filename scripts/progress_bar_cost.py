"""What the progress bar costs: time inside its per-chunk redraw, against the whole fit.

    python scripts/progress_bar_cost.py                 # 6,000 steps of the default run
    python scripts/progress_bar_cost.py trainer.max_steps=20000

Wraps `StepRichProgressBar.on_train_batch_end` (the bar's only per-batch work) with a timer,
runs `train()` once with the default config plus the given Hydra overrides, and prints the
bar's share of the fit time.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from hydra import compose, initialize_config_dir

from makemore_lab import progress
from makemore_lab.app import CONF_DIR
from makemore_lab.train import train


def main(overrides: list[str]) -> None:
    spent, calls = [0.0], [0]
    redraw = progress.StepRichProgressBar.on_train_batch_end

    def timed(self: progress.StepRichProgressBar, *args: Any, **kwargs: Any) -> None:
        started = time.perf_counter()
        redraw(self, *args, **kwargs)
        spent[0] += time.perf_counter() - started
        calls[0] += 1

    progress.StepRichProgressBar.on_train_batch_end = timed
    run_dir = Path(tempfile.mkdtemp(prefix="bar-cost-")) / "run"
    defaults = ["trainer.max_steps=6000", "callbacks.dynamics.figures=false", f"run_dir={run_dir}"]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[*defaults, *overrides])
    fit = train(cfg)["fit_seconds"]
    print(
        f"progress bar: {spent[0] * 1000:.1f} ms in {calls[0]} redraws "
        f"({spent[0] / max(calls[0], 1) * 1000:.2f} ms each) of a {fit:.1f} s fit "
        f"= {spent[0] / fit * 100:.3f}%"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
