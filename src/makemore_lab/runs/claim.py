"""One run per run directory: a run claims its directory before writing anything there.

The claim is a file, `run.lock`, created atomically (`O_CREAT | O_EXCL`, so of two runs started
at once exactly one gets it) and naming its process: pid, host and the process's start time
(so a pid reused by another process is not taken for the run), and in a SLURM job its id (a
requeued job is the same SLURM job, run again, maybe on another node: it takes over its own
earlier claim). It is removed when the run has
written its record (`metrics.json`); after a kill -9 it stays, and tells the next command that
an unfinished run is there and that its process is gone. The rules:

- a live run's directory is refused to everyone, `resume=true` included;
- a dead unfinished run (a claim whose process is gone, or a `config.yaml` without
  `metrics.json`) is refused unless `resume=true`, which takes the claim over;
- a finished run (`metrics.json`) follows `resume.finished_run`'s rules.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from makemore_lab.errors import UserError
from makemore_lab.runs import record as run_record

LOCK = "run.lock"


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the command name


def slurm_job() -> str | None:
    """This process's SLURM job as squeue names it (`<array job>_<index>` for an array's
    element), None outside SLURM."""
    array, index = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{index}" if array and index else os.environ.get("SLURM_JOB_ID")


def slurm_attempt() -> int:
    """How often SLURM has requeued this job (0: its first run)."""
    return int(os.environ.get("SLURM_RESTART_COUNT") or 0)


def _holder() -> dict[str, Any]:
    pid = os.getpid()
    holder = {"pid": pid, "host": socket.gethostname(), "start": _process_start(pid)}
    if slurm_job():
        holder |= {"slurm_job": slurm_job(), "slurm_attempt": slurm_attempt()}
    return holder


def earlier_attempt(holder: dict[str, Any]) -> bool:
    """The claim is this SLURM job's own, from an earlier attempt: SLURM runs one attempt of a
    job at a time, so a requeued job's earlier process is gone, on whichever node it ran."""
    attempt = holder.get("slurm_attempt")
    same_job = bool(holder.get("slurm_job")) and holder.get("slurm_job") == slurm_job()
    return same_job and isinstance(attempt, int) and attempt < slurm_attempt()


def is_alive(holder: dict[str, Any]) -> bool | None:
    """Whether the claiming process still runs; None when it is on another host (unknown)."""
    if holder.get("host") != socket.gethostname():
        return None
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    start = holder.get("start")
    return start is None or _process_start(pid) in (None, start)


def read_claim(run_dir: Path) -> dict[str, Any] | None:
    """The claim on `run_dir` (`{}` if unreadable), None if there is none."""
    try:
        holder = json.loads((run_dir / LOCK).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def check(run_dir: Path, resume: bool, take_over: bool = False) -> None:
    """Refuse a live run's directory, or an unfinished one without `resume=true`. Writes
    nothing (callers check the rest of the command before they `claim`), unless `take_over`:
    then a dead run's claim (or this process's own) is removed for `resume=true`."""
    holder = read_claim(run_dir)
    if holder is not None:
        _refuse_or_take_over(run_dir, holder, resume, take_over)
    elif not resume and unfinished_without_claim(run_dir):
        raise UserError(_unfinished(run_dir, "no process claims it"))


def claim(run_dir: Path, resume: bool) -> None:
    """Claim `run_dir` for this process, or refuse as `check` does."""
    make_run_dir(run_dir)
    for _ in range(2):  # a second try after taking over a dead run's claim
        check(run_dir, resume, take_over=True)
        try:
            fd = os.open(run_dir / LOCK, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            continue  # another run claimed it in between: look again
        with os.fdopen(fd, "w") as f:
            json.dump(_holder(), f)
        return
    raise UserError(f"run_dir={run_dir} was claimed by another run just now. {_choose()}")


def release(run_dir: Path) -> None:
    """Give up the claim (the run has written its record), if this process holds it."""
    holder = read_claim(run_dir)
    if holder is not None and holder.get("pid") == os.getpid():
        (run_dir / LOCK).unlink(missing_ok=True)


def unfinished_without_claim(run_dir: Path) -> bool:
    """A run started here (its config.yaml) and never wrote its record, nor holds a claim."""
    return (run_dir / "config.yaml").is_file() and not run_record.exists(run_dir)


def _refuse_or_take_over(
    run_dir: Path, holder: dict[str, Any], resume: bool, take_over: bool
) -> None:
    if holder.get("pid") == os.getpid() and is_alive(holder):
        if take_over:  # this process's own earlier run (a test, a sweep's earlier job)
            (run_dir / LOCK).unlink(missing_ok=True)
        return
    alive = False if earlier_attempt(holder) else is_alive(holder)
    who = f"process {holder.get('pid', '?')} on {holder.get('host', '?')}"
    if alive:
        raise UserError(
            f"run_dir={run_dir} belongs to a run that is still going ({who}, see its "
            f"{LOCK}); a second run there would mix their files. Wait for it to end, stop it "
            f"(SIGTERM saves a checkpoint to resume from), or {_choose(lower=True)}"
        )
    if alive is None:
        raise UserError(
            f"run_dir={run_dir} is claimed by {who}, which this machine cannot check. If that "
            f"run has ended, delete {run_dir / LOCK} and run again (with resume=true to "
            f"continue it); otherwise {_choose(lower=True)}"
        )
    if not resume:
        raise UserError(_unfinished(run_dir, f"its {who} is gone"))
    if take_over:  # a dead run's claim: resume=true takes it over
        (run_dir / LOCK).unlink(missing_ok=True)


def _unfinished(run_dir: Path, why: str) -> str:
    return (
        f"run_dir={run_dir} holds an unfinished run ({why}; there is no metrics.json): it was "
        f"killed before it could record how it ended. Add resume=true to continue it from its "
        f"checkpoints/last.ckpt, or {_choose(lower=True)}"
    )


def _choose(lower: bool = False) -> str:
    text = (
        "Choose another directory (hydra.run.dir=... for a run, hydra.sweep.dir=... for a "
        "sweep) or move the old run away first."
    )
    return text[0].lower() + text[1:] if lower else text


def make_run_dir(run_dir: Path) -> None:
    """Create `run_dir`, or say in one paragraph why it cannot be (a file in the way, rights)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except (FileExistsError, NotADirectoryError) as err:
        raise UserError(
            f"run_dir={run_dir} cannot be created: {err.filename} is a file, not a directory. "
            f"Choose another directory (hydra.run.dir=... or hydra.sweep.dir=...)."
        ) from None
    except PermissionError as err:
        raise UserError(
            f"run_dir={run_dir} is not writable ({err.filename}: permission denied). Choose a "
            f"directory you can write to (hydra.run.dir=... or hydra.sweep.dir=...)."
        ) from None


def holds(run_dir: Path) -> bool:
    """Whether this process holds the claim on `run_dir`."""
    holder = read_claim(run_dir)
    return bool(holder) and holder.get("pid") == os.getpid() and is_alive(holder) is True


def may_record(run_dir: Path) -> bool:
    """Whether this process may write a record (e.g. `failed`) into `run_dir`: it holds the
    claim, or no run has started there (no claim, no config.yaml)."""
    if holds(run_dir):
        return True
    return read_claim(run_dir) is None and not (run_dir / "config.yaml").exists()
