"""SIGTERM, SIGUSR2 and Ctrl-C: training stops at the end of its chunk and saves; records are
never lost.

- `SaveOnInterrupt` (a callback, while Lightning trains): the first SIGTERM (`kill`, a cluster
  ending or requeueing the job), SIGUSR2 (SLURM's warning before a preemption or the time
  limit, as submitit asks for it) or Ctrl-C lets the running chunk finish (`data.chunk_size`
  steps, about a second), saves each job's `last.ckpt` and stops; the driver then records
  `interrupted`.
- `HeldSignals` (around training and the writing that follows it): a signal that arrives once
  training has ended waits until every job's record is written, so a job whose training
  finished is never retrained by `resume=true`.

A terminal's Ctrl-C reaches every process of its group, and the stacked launcher forwards it
to its group processes once more: the same signal again within a second counts once. A second
Ctrl-C or SIGTERM after that stops at once, without saving; a cluster's SIGUSR2 followed by
its SIGTERM (or the other way) is one request.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from makemore_lab.job_state import stopped_jobs

log = logging.getLogger(__name__)

ECHO_SECONDS = 1.0  # the same signal again within this long is the same request
CAUGHT = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)
CLUSTER = {signal.SIGTERM, signal.SIGUSR2}  # a scheduler's: it warns, then stops the job


class Signals:
    """SIGINT, SIGTERM and SIGUSR2 caught while open: the first is kept (`signum`) and
    `on_first` told."""

    def __init__(self, on_first: Callable[[int], None]) -> None:
        self.on_first = on_first
        self.signum: int | None = None
        self._at = 0.0
        self._previous: dict[int, Any] = {}

    def open(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # Python delivers signals to the main thread only; nothing to catch here
        for signum in CAUGHT:
            if signal.getsignal(signum) is signal.SIG_IGN:
                continue  # ignored on purpose (nohup, a background job): leave it so
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def close(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _on_signal(self, signum: int, frame: Any) -> None:
        now = time.monotonic()
        if self.signum is None:
            self.signum, self._at = signum, now
            self.on_first(signum)
        elif signum == self.signum and now - self._at < ECHO_SECONDS:
            return  # the terminal's and the launcher's copy of one Ctrl-C
        elif {signum, self.signum} == CLUSTER:
            return  # SLURM's warning and its SIGTERM: the chunk is being saved already
        else:  # asked again: stop now, without a checkpoint
            self.close()
            raise KeyboardInterrupt


class SaveOnInterrupt(Callback):
    """On SIGTERM or Ctrl-C: finish the chunk, save `path` (a resumable checkpoint), stop.

    A stacked group passes each job's last.ckpt; each is saved as that job's own.
    """

    def __init__(self, path: str | Path, *more: str | Path) -> None:
        self.path = Path(path)
        self.paths = [self.path, *map(Path, more)]  # a stacked group: every job's last.ckpt
        self._signals = Signals(self._said)

    @property
    def signal(self) -> int | None:
        """The signal received, if any."""
        return self._signals.signum

    def _said(self, signum: int) -> None:
        log.warning(
            "%s received: finishing this chunk, then saving %s (Ctrl-C again to stop at once)",
            signal.Signals(signum).name,
            self.path if len(self.paths) == 1 else "each job's last.ckpt",
        )

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._signals.open()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any
    ) -> None:
        if self.signal is not None and not trainer.should_stop:
            stopped = stopped_jobs(pl_module)  # a group's diverged jobs had stopped
            for job, path in enumerate(self.paths):
                if job not in stopped:
                    trainer.save_checkpoint(path)
            trainer.should_stop = True

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._signals.close()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._signals.close()


class HeldSignals:
    """A window in which SIGTERM / Ctrl-C wait: the caller finishes what it writes, then reads
    `signum` and stops (the driver: after every job's record)."""

    def __init__(self) -> None:
        self._signals = Signals(self._said)

    @property
    def signum(self) -> int | None:
        return self._signals.signum

    @signum.setter
    def signum(self, value: int) -> None:  # a signal SaveOnInterrupt caught once training ended
        self._signals.signum = value

    @staticmethod
    def _said(signum: int) -> None:
        log.warning(
            "%s received: training has ended; writing every job's record first, then stopping "
            "(Ctrl-C again to stop at once)",
            signal.Signals(signum).name,
        )

    def __enter__(self) -> HeldSignals:
        self._signals.open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._signals.close()
