"""The dynamics figures drawn beside training, in worker processes, instead of in its way.

matplotlib spends most of a figure's time in Python (ticks, text), 0.1 s for a line plot and
0.5 s for the heat map here, and a run draws eight; a group of 16 jobs drew 128 of them one
after another while its training waited. `FigurePool` hands each figure to `workers` forked
processes (plain data in, the image back as a PNG), so the step-0 figures are drawn while
training goes on and the final ones side by side. A figure's PNG is encoded once, by its
worker, which writes it to its file; the same bytes reach the loggers in the training process
(no second encoding there), when the figure is collected (`collect`: before a checkpoint is
written and at the end of training), so what a run has written is whole whenever it stops.
`workers=0` draws each figure at once, in the training process.
"""

from __future__ import annotations

import gc
import io
import multiprocessing
import signal
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from makemore_lab.dynamics.media import Png

Done = Callable[[Png], None]  # what the training process does with the drawn figure


def draw(make: Callable[..., Figure], args: tuple[Any, ...], path: Path) -> Png:
    """Draw `make(*args)` once, encode it as an RGB PNG and write that to `path`."""
    fig = make(*args)
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    # zlib level 1: a third of the default level's time, files about as small (flat colours)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    png = Png(buffer.getvalue(), height=image.shape[0], width=image.shape[1])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png.data)
    return png


def _worker_start() -> None:
    # The training process stops on these signals and saves its jobs; a worker only draws
    # (and exits when the training process has gone and its queue closes).
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(signum, signal.SIG_IGN)
    # The objects inherited from the training process (torch, Lightning: ~400k) are never
    # garbage here; without this, each collection matplotlib's allocations set off walks them.
    gc.freeze()


class FigurePool:
    """Figures drawn by `workers` processes, collected in the order they were asked for."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._pending: list[tuple[Future, Done]] = []

    def submit(self, make: Callable[..., Figure], args: tuple, path: Path, done: Done) -> None:
        """Draw `make(*args)` into `path`; `done(png)` once it is drawn (see `collect`)."""
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
        """Wait for every figure asked for so far and hand each its PNG."""
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
