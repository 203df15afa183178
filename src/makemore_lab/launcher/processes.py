"""A sweep's groups side by side: one forked process per group, at most `n_jobs` at a time.

The stacked launcher's groups are independent (each trains its own jobs with one thread), so
on a machine with cores to spare they run at once. A forked child inherits everything the
launcher has built (Hydra's state, the configs), runs its group and sends back the JobReturns.
SIGTERM or Ctrl-C reaching this process is passed on to the running children, which save their
jobs' checkpoints and stop as a single group does (a terminal's Ctrl-C reaches them too: the
copy within a second counts once); no new group starts, and this process then exits with the
signal's status, as a sweep stopped by a signal does. A child whose parent dies (kill -9)
stops the same way, as if sent SIGTERM.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

Task = Callable[..., list[Any]]  # called with no arguments here; on a SLURM node with `resume`
PARENT_POLL_SECONDS = 0.5  # how soon a group process notices that the launcher is gone


def _watch_parent(parent: int) -> None:
    """SIGTERM to this process once its parent is gone (a kill -9 of the launcher): the group
    saves, records every job `interrupted` and ends, instead of training on as an orphan."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)


def _child(task: Task, conn: Connection, handlers: dict[int, Any], parent: int) -> None:
    for signum, handler in handlers.items():  # not the parent's forwarding handler
        signal.signal(signum, handler)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    try:
        result = task()
        with contextlib.suppress(OSError):  # the parent is gone: the records say it all
            conn.send(result)
    finally:
        conn.close()


def _receive(conn: Connection) -> list[Any] | None:
    """The child's result; None if it ended without one (a signal, an exit)."""
    try:
        return conn.recv() if conn.poll() else None
    except EOFError:
        return None


def _collect(running: dict[int, tuple[Any, Connection]], results: list) -> None:
    """Wait for a child to send its result or to end; take the results of those done.

    A child's result is read before its exit is awaited: a result larger than the pipe's buffer
    keeps the child in `send` until it is read.
    """
    ready = wait([conn for _, conn in running.values()] + [p.sentinel for p, _ in running.values()])
    for index, (process, conn) in list(running.items()):
        if conn in ready or process.sentinel in ready:
            results[index] = _receive(conn)
            process.join()
            del running[index]


def run_parallel(tasks: list[Task], n_jobs: int) -> list[list[Any]]:
    """Each task's result, in order; tasks run in forked processes, `n_jobs` at a time."""
    context = multiprocessing.get_context("fork")
    results: list[list[Any] | None] = [None] * len(tasks)
    pending = list(enumerate(tasks))
    running: dict[int, tuple[Any, Connection]] = {}
    received: list[int] = []  # the signals received, passed on to the children

    def forward(signum: int, frame: Any) -> None:
        received.append(signum)
        for process, _ in running.values():
            os.kill(process.pid, signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while pending or running:
            while pending and len(running) < n_jobs and not received:
                index, task = pending.pop(0)
                parent, child = context.Pipe(duplex=False)
                process = context.Process(target=_child, args=(task, child, previous, os.getpid()))
                process.start()
                child.close()
                running[index] = (process, parent)
            if not running:
                break
            _collect(running, results)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        sys.exit(128 + received[0])  # 130 for Ctrl-C, 143 for SIGTERM, as a single run
    missing = [i for i, r in enumerate(results) if r is None]
    if missing:
        raise RuntimeError(f"the processes of groups {missing} ended without a result")
    return results  # type: ignore[return-value]
