"""The dynamics figures drawn beside training, in worker processes, instead of in its way.

matplotlib spends most of a figure's time in Python (ticks, text), about 0.2 s for these, and a
run draws eight; a group of 16 jobs drew 128 of them one after another while its training
waited. `FigurePool` hands each figure to `workers` forked processes (plain data in, the image
back), so the step-0 figures are drawn while training goes on and the final ones side by
side. A figure's PNG is written by its worker; its image reaches the loggers in the training
process, when the figure is collected (`collect`: before a checkpoint is written and at the
end of training), so what a run has written is whole whenever it stops. `workers=0` draws
each figure at once, in the training process.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.image import imsave

Done = Callable[[np.ndarray], None]  # what the training process does with the drawn image


def draw(make: Callable[..., Figure], args: tuple[Any, ...], path: Path) -> np.ndarray:
    """Draw `make(*args)` once into an (H, W, 3) image and write it to `path` as a PNG."""
    fig = make(*args)
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    path.parent.mkdir(parents=True, exist_ok=True)
    imsave(path, image)
    return image


def _worker_start() -> None:
    # The training process stops on these signals and saves its jobs; a worker only draws
    # (and exits when the training process has gone and its queue closes).
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(signum, signal.SIG_IGN)


class FigurePool:
    """Figures drawn by `workers` processes, collected in the order they were asked for."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._pending: list[tuple[Future, Done]] = []

    def submit(self, make: Callable[..., Figure], args: tuple, path: Path, done: Done) -> None:
        """Draw `make(*args)` into `path`; `done(image)` once it is drawn (see `collect`)."""
        if self.workers == 0:
            done(draw(make, args, path))
            return
        if self._pool is None:
            # fork: a worker starts at once, without importing anything again
            context = multiprocessing.get_context("fork")
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=context, initializer=_worker_start
            )
        self._pending.append((self._pool.submit(draw, make, args, path), done))

    def collect(self) -> None:
        """Wait for every figure asked for so far and hand each its image."""
        pending, self._pending = self._pending, []
        for future, done in pending:
            done(future.result())

    def close(self) -> None:
        """Collect what is pending, then stop the workers."""
        try:
            self.collect()
        finally:
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None
