"""A run's record, `metrics.json`: the one place that writes each status and reads it back.

Every run directory ends with one, written atomically: `completed` (the final losses and
speed), `diverged` (where and how), `interrupted` (the checkpoint to resume from), or `failed`
(the error). A directory without one is a run that has not finished (or was killed hard).
`app.py`, `train.py`, the sweep report and the ablation table all go through this module.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from makemore_lab.atomic import write_json

FILENAME = "metrics.json"
UNFINISHED = "unfinished"  # no metrics.json (yet)
UNREADABLE = "unreadable"  # a metrics.json that is not a JSON object with a status


def path_of(run_dir: str | Path) -> Path:
    return Path(run_dir) / FILENAME


def read(run_dir: str | Path) -> dict[str, Any]:
    """The record of `run_dir`; `{"status": "unfinished"}` without one, "unreadable" if damaged."""
    path = path_of(run_dir)
    if not path.is_file():
        return {"status": UNFINISHED}
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        return {"status": UNREADABLE, "error": f"{type(err).__name__}: {err}"}
    if not isinstance(record, dict) or not isinstance(record.get("status"), str):
        return {"status": UNREADABLE, "error": "no status field"}
    return record


def status(run_dir: str | Path) -> str:
    return read(run_dir)["status"]


def exists(run_dir: str | Path) -> bool:
    return path_of(run_dir).exists()


def write_finished(run_dir: str | Path, metrics: dict[str, Any]) -> None:
    """A run that trained to the end: `completed`, or `diverged` if a final loss is not finite."""
    write_json(path_of(run_dir), metrics)


def write_diverged(
    run_dir: str | Path, err: Any, step0_loss: float | None, steps: int
) -> dict[str, Any]:
    """Training stopped at a non-finite loss (`err` is the TrainingDiverged raised)."""
    record = {
        "status": "diverged",
        "diverged_at_step": err.step,
        "loss": str(err.loss),
        "last_finite_loss": err.last_finite,
        "step0_loss": step0_loss,
        "steps": steps,
        "error": str(err),
        "run_dir": str(run_dir),
    }
    write_json(path_of(run_dir), record)
    return record


def write_interrupted(run_dir: str | Path, steps: int, checkpoint: Path, signal: int) -> None:
    """SIGTERM or Ctrl-C stopped training after `checkpoint` was saved."""
    write_json(
        path_of(run_dir),
        {
            "status": "interrupted",
            "steps": steps,
            "checkpoint": str(checkpoint),
            "signal": signal,
            "run_dir": str(run_dir),
        },
    )


def write_failed(run_dir: str | Path, err: BaseException, group: list[str] | None = None) -> None:
    """A job that stopped on an error, unless it recorded something better already. `group`:
    the job directories of the stacked group whose shared step raised it (no one job's)."""
    path = path_of(run_dir)
    if path.parent.is_dir() and not path.exists():
        error = f"{type(err).__name__}: {err}"
        record: dict[str, Any] = {"status": "failed", "error": error}
        if group:
            record["error"] = f"in its stacked group's shared training step: {error}"
            record["stacked_group"] = group
        write_json(path, record)


def write_lost(run_dir: str | Path, error: str, slurm: dict[str, str | None]) -> None:
    """A job whose SLURM task ended before the job recorded how it ended, or after it was
    `interrupted` and not requeued: `failed`, keeping the checkpoint it may resume from."""
    previous = read(run_dir)
    record: dict[str, Any] = {"status": "failed", "error": error, "slurm": slurm}
    record |= {k: previous[k] for k in ("steps", "checkpoint", "signal") if k in previous}
    write_json(path_of(run_dir), record | {"run_dir": str(run_dir)})
