"""A job that stopped on an error: recorded in its directory, and said in one paragraph.

Bad input (a `UserError`) is said as its message alone; anything else is a bug, said with its
traceback. Both the Hydra app (a run, a basic sweep's job) and the stacked launcher (a job's
checks, a group's training) end a job this way.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from makemore_lab.errors import RunInterrupted, UserError
from makemore_lab.runs import claim as run_claim
from makemore_lab.runs import hydra_record
from makemore_lab.runs import record as run_record


def find_user_error(err: BaseException | None) -> UserError | None:
    """The UserError behind `err`, if any (Hydra wraps errors raised while instantiating)."""
    while err is not None and not isinstance(err, UserError):
        err = err.__cause__ or err.__context__
    return err


def handle_job_error(cfg: DictConfig, err: Exception) -> float:
    """Record why a job stopped and say it in one paragraph (a bug: its traceback).

    A single run exits (status 2 for bad input); a job of a sweep returns NaN so the sweep goes
    on (SweepReport names it at the end, and NaN tells a sweeper such as Optuna it failed). A
    signal stops a sweep too, not just its job.
    """
    user_error = find_user_error(err)
    run_dir = Path(cfg.run_dir)
    if run_claim.may_record(run_dir):  # never into another run's directory
        if not (run_dir / ".hydra").is_dir():
            hydra_record.write(cfg, run_dir)  # the table labels the job by it
        run_record.write_failed(run_dir, err)  # the table shows it as failed
        run_claim.release(run_dir)
    if user_error is not None:
        print(f"\nmakemore-lab: error: {user_error}\n", file=sys.stderr)
    if isinstance(user_error, RunInterrupted):
        sys.exit(user_error.exit_code)
    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    if user_error is None and not multirun:
        raise err  # not a bad input but a bug: its traceback
    if user_error is None:  # a bug in one job of a sweep: its traceback, then the next job
        traceback.print_exception(err)
    if multirun:
        return float("nan")
    sys.exit(2)  # a usage error, as argparse exits
