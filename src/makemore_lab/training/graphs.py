"""The lean training step replayed from CUDA graphs: a step's hundreds of tiny kernels, one launch.

At batch 32 a GPU step is a few hundred kernel launches of microseconds each, and the GPU
waits on the host issuing them (docs/results.md, "Stacked groups on a GPU"). `StepGraphs`
captures one lean step (forward, backward, the optimizer's device work) reading static
minibatch buffers, and replays it for every step after copying that step's minibatch in. A
graph replays the kernels it recorded with the Python values they were given, so one is
captured per kind of step, the `StepUpdate.key` (each job's learning rate, which jobs train):
a schedule's milestone or a diverged job means one more graph, and the arithmetic stays the
eager step's, bit for bit. The optimizer's host bookkeeping runs after each replay, and each
loss is copied out, so the loop still reads a chunk's losses once. The first steps of each
kind run eagerly on a side stream, as torch asks before a capture (they are real steps). A
failed capture stops the run with its cause and `cuda_graphs=false` as the way on.
Watched steps (the dynamics callback's) never come here: they run eagerly, with its hooks.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Hashable
from typing import Any

import torch

from makemore_lab.errors import UserError
from makemore_lab.network.optim import StepUpdate

log = logging.getLogger(__name__)

WARMUP = 3  # eager steps of a kind before its capture
MAX_GRAPHS = 16  # kinds of step captured; a schedule with more rates trains the rest eagerly
MAX_KINDS = 64  # kinds of step seen: beyond, a schedule's rates do not repeat (no more captures)


def graph_refusal(module: Any, lean: Any, enabled: bool) -> str | None:
    """Why `module`'s lean steps run eagerly (None: they are captured). `lean`: the chunk loop's
    lean-step counter (`chunk_loop.lean_steps`), None where every step needs Lightning's."""
    if not enabled:
        return "cuda_graphs=false"
    if module.device.type != "cuda":
        return f"the trainer runs on {module.device.type} (CUDA graphs need trainer=gpu)"
    if lean is None:
        return "trainer.precision or several devices: every step goes through Lightning"
    return module.graph_refusal()


FAILED: list[str] = []  # a capture torch refused in this process (its cause)


def capture_failed(cause: str) -> UserError:
    """The error of a failed capture: the run (and the process) cannot go on with graphs."""
    return UserError(
        f"cuda_graphs: capturing a training step as a CUDA graph failed ({cause}). torch cannot "
        "go on training in this process after a failed capture. Run the command again with "
        "cuda_graphs=false, which trains these steps eagerly (with resume=true it continues "
        "from the run's last checkpoint where one was written)."
    )


def steps_note(graphs: StepGraphs | None, why: str | None) -> str:
    """How a run's lean steps ran, for metrics.json: captured as CUDA graphs, or why not."""
    return graphs.note() if graphs is not None else f"eager: {why or 'not trained'}"


def start_graphs(module: Any, lean: Any, enabled: bool) -> tuple[StepGraphs | None, str | None]:
    """At the start of training: the module's `StepGraphs`, or None and why its steps run
    eagerly (said once where a GPU trains)."""
    why = graph_refusal(module, lean, enabled)
    if why is None and FAILED:  # torch cannot capture in this process any more
        raise capture_failed(FAILED[0])
    if why is None:
        return StepGraphs(module), None
    if module.device.type == "cuda":
        log.warning("cuda_graphs: the training steps run eagerly: %s", why)
    return None, why


class StepGraphs:
    """`module`'s lean steps, each replayed from the graph of its kind (see the module doc)."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.graphs: dict[Hashable, tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self.seen: Counter[Hashable] = Counter()
        self.replayed = self.eager = 0
        self.stopped: str | None = None  # why new kinds of step are no longer captured
        self.x: torch.Tensor | None = None  # the static minibatch: (N, 1, B, block)
        self.y: torch.Tensor | None = None
        self.side = torch.cuda.Stream(device=module.device)

    def step(self, xs: torch.Tensor, ys: torch.Tensor, i: int) -> torch.Tensor:
        """Optimizer step on minibatch `i` of the chunk; the jobs' losses before the update."""
        update: StepUpdate = self.module.next_update()
        if self.x is None or self.y is None:
            self.x, self.y = xs[:, i : i + 1].clone(), ys[:, i : i + 1].clone()
        else:
            self.x.copy_(xs[:, i : i + 1])
            self.y.copy_(ys[:, i : i + 1])
        if update.key in self.graphs:
            graph, loss = self.graphs[update.key]
            graph.replay()
            self.replayed += 1
        elif self._capturing(update.key):
            loss = self._capture(update)
            self.replayed += 1
        else:
            loss = self._eager(update)
            self.eager += 1
        update.done()
        return loss.clone()  # the graph's output is overwritten by its next replay

    def note(self) -> str:
        """What metrics.json says of the run's lean steps (the watched ones are eager)."""
        if not self.graphs:
            return f"eager: no kind of step reached its capture ({self.eager} lean steps)"
        note = (
            f"captured: {len(self.graphs)} graph(s), {self.replayed} steps replayed, "
            f"{self.eager} eager"
        )
        return note + (f" ({self.stopped})" if self.stopped else " (before a capture)")

    def _capturing(self, key: Hashable) -> bool:
        """Capture this kind now: warmed up, and a graph for it is worth keeping."""
        if self.stopped is None and len(self.graphs) >= MAX_GRAPHS:
            self._stop(f"more than {MAX_GRAPHS} kinds of step")
        elif self.stopped is None and len(self.seen) > MAX_KINDS:
            self._stop(f"more than {MAX_KINDS} kinds of step, most never repeated")
        return self.stopped is None and self.seen[key] >= WARMUP

    def _stop(self, why: str) -> None:
        # a schedule whose rate changes at almost every step gives kinds that never repeat
        self.stopped = f"{why}: the rates change too often for graphs"
        log.warning("cuda_graphs: new kinds of step run eagerly from here: %s", self.stopped)

    def _forward_backward_update(self, update: StepUpdate) -> torch.Tensor:
        assert self.x is not None and self.y is not None
        loss = self.module.job_losses(self.x, self.y, 0, False)
        (loss if loss.dim() == 0 else loss.sum()).backward()
        update.apply()
        return loss.detach()

    def _clear_grads(self) -> None:
        # backward then writes fresh gradients (a graph records writes, not `+=` onto old ones)
        for p in self.params:
            p.grad = None

    def _eager(self, update: StepUpdate) -> torch.Tensor:
        """One eager step: on a side stream while it warms a kind up for its capture (as torch
        asks), on the current stream once no more kinds are captured."""
        if self.stopped is not None:
            self._clear_grads()
            return self._forward_backward_update(update)
        self.seen[update.key] += 1
        current = torch.cuda.current_stream(self.module.device)
        self.side.wait_stream(current)
        with torch.cuda.stream(self.side):
            self._clear_grads()
            loss = self._forward_backward_update(update)
        current.wait_stream(self.side)
        loss.record_stream(current)
        return loss

    def _capture(self, update: StepUpdate) -> torch.Tensor:
        """Capture this kind of step (recording runs nothing), then replay it for this step.

        A failed capture leaves torch's allocator and streams in a state it cannot undo in the
        same process, so the run stops here with the cause, and later runs of this process
        (a sweep's next groups) stop before training."""
        self._clear_grads()
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                loss = self._forward_backward_update(update)
        except RuntimeError as err:
            FAILED.append(str(err.__context__ or err).splitlines()[0])
            raise capture_failed(FAILED[0]) from err
        self.graphs[update.key] = (graph, loss)
        graph.replay()
        return loss
