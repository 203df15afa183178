"""Training dynamics: the lecture's diagnostics of a network's insides, as one Lightning callback.

At step 0 (before the first update), every `every_n_steps` and at the last step, the callback
arms forward hooks on the network's layers for that one step and captures each layer's output,
its gradient, and every weight's gradient and values around the update. The statistics are
pure functions of those tensors (`stats`); the numbers go to `dynamics.csv` and the
loggers (`writer`) and, at step 0 and at the end, to a text report and the lecture's
figures (`report`). This module keeps only the cadence, the hooks and resume state.

A Lightning batch is a chunk of optimizer steps (see `data/chunks.py`): the hooks are armed
for the collected step alone, inside its chunk (torch's optimizer post-step hook tells when a
step is done). On every other step no hook fires, no gradient is retained, no device sync.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger
from torch import nn
from torch.utils.hooks import RemovableHandle

from makemore_lab.dynamics.diagnosis import thresholds_of
from makemore_lab.dynamics.render import FigurePool
from makemore_lab.dynamics.report import DynamicsReport
from makemore_lab.dynamics.stats import WeightStep, collect, to_numbers
from makemore_lab.dynamics.writer import (
    DynamicsCsv,
    Row,
    chart_names,
    log_histograms,
    log_scalars,
)
from makemore_lab.errors import UserError
from makemore_lab.job_state import stopped_jobs
from makemore_lab.network.layers import layer_kind
from makemore_lab.validation import POSITIVE_INT, integer, require


class OutputCapture:
    """Forward hooks that keep each layer's output and, by a tensor hook, d loss / d output."""

    def __init__(self) -> None:
        self.outputs: dict[str, torch.Tensor] = {}
        self.grads: dict[str, torch.Tensor] = {}
        self._handles: list[RemovableHandle] = []

    def arm(self, layers: dict[str, nn.Module]) -> None:
        self.outputs, self.grads = {}, {}
        for name, layer in layers.items():
            self._handles.append(layer.register_forward_hook(self._hook(name)))

    def disarm(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _hook(self, name: str) -> Callable[[nn.Module, Any, torch.Tensor], None]:
        def hook(module: nn.Module, inputs: Any, out: torch.Tensor) -> None:
            self.outputs[name] = out.detach()
            if out.requires_grad:  # a tensor hook sees d loss / d out without retain_grad
                out.register_hook(lambda grad: self.grads.__setitem__(name, grad.detach()))

        return hook


@dataclass
class JobOutputs:
    """Where one job's statistics go: its CSV, its report, and its loggers (None: the trainer's)."""

    csv: DynamicsCsv
    report: DynamicsReport
    loggers: Sequence[Logger] | None = None

    def write(
        self,
        loggers: Sequence[Logger],
        step: int,
        rows: list[Row],
        tensors: dict[str, dict[str, torch.Tensor]],
        histograms: bool,
    ) -> None:
        """One collected step's rows and tensors to the CSV, `loggers` (scalars, histograms)
        and the report."""
        names = chart_names(self.report.layers)
        self.csv.append(rows, names)
        log_scalars(loggers, rows, step, names)
        self.report.add(step, rows, tensors["act"], tensors["act_grad"], tensors["weight_grad"])
        if histograms:
            log_histograms(loggers, step, names, tensors)


def job_outputs(
    dirpaths: list[Path],
    figures: bool,
    heatmap_bins: int,
    diagnosis: dict[str, float] | None,
    context: dict[str, Any] | Sequence[dict[str, Any]] | None,
    job_loggers: Sequence[Sequence[Logger]] | None,
) -> list[JobOutputs]:
    """Each job's CSV and report in its directory, with its diagnosis context and loggers."""
    thresholds = thresholds_of(diagnosis)
    contexts = context if isinstance(context, list | tuple) else [context] * len(dirpaths)
    jobs = [
        JobOutputs(
            DynamicsCsv(d / "dynamics.csv"),
            DynamicsReport(d, figures, heatmap_bins, thresholds, dict(c or {})),
        )
        for d, c in zip(dirpaths, contexts, strict=True)
    ]
    for job, loggers in zip(jobs, job_loggers or [], strict=False):
        job.loggers = loggers
    return jobs


class TrainingDynamics(Callback):
    """Per-layer activation, gradient and update statistics at a fixed cadence (see module doc).

    One run's, or each job's of a stacked group (`stacked=True`): then every captured tensor has
    a leading job dimension, the statistics come out per job, and each job's go to its own
    directory and loggers (`dirpath` and `job_loggers`, one per job).
    """

    def __init__(
        self,
        dirpath: str | Sequence[str],
        every_n_steps: int = 1000,
        saturation_threshold: float = 0.97,
        histograms: bool = True,
        figures: bool = True,
        heatmap_bins: int = 50,
        job_loggers: Sequence[Sequence[Logger]] | None = None,
        diagnosis: dict[str, float] | None = None,
        context: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
        figure_workers: int = 2,
    ) -> None:
        super().__init__()
        require("callbacks.dynamics.every_n_steps", every_n_steps, POSITIVE_INT)
        require("callbacks.dynamics.figure_workers", figure_workers, integer(0))
        require("callbacks.dynamics.heatmap_bins", heatmap_bins, POSITIVE_INT)
        if not 0 < saturation_threshold < 1:
            raise UserError(
                f"callbacks.dynamics.saturation_threshold={saturation_threshold!r} must "
                f"lie strictly between 0 and 1 (tanh outputs live in (-1, 1)); the "
                f"lecture uses 0.97."
            )
        self.every_n_steps, self.threshold = every_n_steps, saturation_threshold
        self.histograms = histograms
        self.stacked = job_loggers is not None
        dirpaths = [Path(d) for d in dirpath] if self.stacked else [Path(dirpath)]
        self.jobs = job_outputs(dirpaths, figures, heatmap_bins, diagnosis, context, job_loggers)
        # the figures of every job, drawn beside training (`render.py`)
        self.figure_pool = FigurePool(figure_workers if figures else 0)
        for job in self.jobs:
            job.report.pool = self.figure_pool
        self.capture = OutputCapture()
        self._steps_to_collect: set[int] = set()  # the steps of the current chunk to collect
        self._trainer: L.Trainer | None = None
        self._step_hook: RemovableHandle | None = None
        self._layers: dict[str, nn.Module] = {}
        self._kinds: dict[str, str] = {}  # layer name -> its kind ('Tanh', ...)
        self._names: list[dict[str, str]] = []  # per job: the network's names -> the job's own
        self._weights: dict[str, tuple[str, nn.Parameter]] = {}  # name -> (kind, parameter)
        self._grads: dict[str, torch.Tensor] = {}  # the collected step's weight gradients
        self._before: dict[str, torch.Tensor] = {}  # and the weights before its update
        self.collections, self.collect_seconds = 0, 0.0  # the callback's own cost, for benchmarks

    def should_collect(self, step: int, max_steps: int) -> bool:
        return step % self.every_n_steps == 0 or (max_steps > 0 and step == max_steps - 1)

    # --- exact resume: what was collected before the checkpoint ----------------------------

    def state_dict(self) -> dict[str, Any]:
        # A checkpoint says the figures so far are drawn: they are, before it is written.
        self.figure_pool.collect()
        if self.stacked:
            return {"jobs": [job.report.state_dict() for job in self.jobs]}
        return self.jobs[0].report.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        states = state_dict["jobs"] if self.stacked else [state_dict]
        for job, state in zip(self.jobs, states, strict=True):
            job.report.load_state_dict(state)

    # --- Lightning hooks -----------------------------------------------------------------

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        net = pl_module.net
        self._layers = {str(i): layer for i, layer in enumerate(net.layers)}
        self._kinds = {name: layer_kind(m) for name, m in self._layers.items()}
        self._weights = net.weights()
        # A group's layers hold each job's at positions of their own (`stacked.layout`): each
        # job's statistics keep its own layers, under its solo run's names.
        every = {n: n for n in [*self._layers, *self._weights]}
        self._names = [
            net.layout.layer_names(j) if self.stacked else every for j in range(len(self.jobs))
        ]
        # A stacked weight's shape starts with the job dimension: the report names one job's.
        skip = 1 if self.stacked else 0
        resumed = trainer.ckpt_path is not None
        for job, names in zip(self.jobs, self._names, strict=True):
            job.report.layers = {names[n]: k for n, k in self._kinds.items() if n in names}
            job.report.weights = {
                names[n]: (k, tuple(p.shape)[skip:]) for n, (k, p) in self._weights.items()
            }
            job.csv.start(keep_through_step=job.report.last_step if resumed else None)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        # A batch is a chunk of minibatches, one optimizer step each: find the steps of this
        # chunk to collect. The module runs exactly those steps watched: uncompiled (a compiled
        # step would not call our layer hooks, and would recompile around them), through
        # Lightning's optimizer wrapper (its hooks), and arming our layer hooks before each.
        first = trainer.global_step
        last = first + batch[0].shape[1]  # a chunk: N, chunk, B, block
        if trainer.max_steps > 0:
            last = min(last, trainer.max_steps)
        steps = {s for s in range(first, last) if self.should_collect(s, trainer.max_steps)}
        self._steps_to_collect = steps
        if not steps:
            return
        self._trainer = trainer
        pl_module.watch(steps, before=lambda step: self.capture.arm(self._layers))
        # torch's post-step hook runs after a watched step's update, still at that step.
        self._step_hook = trainer.optimizers[0].register_step_post_hook(self._after_update)

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        # After backward, before the update: gradients are final, parameters not yet changed.
        if trainer.global_step not in self._steps_to_collect:
            return
        self._grads = {
            k: p.grad.detach().clone() for k, (_, p) in self._weights.items() if p.grad is not None
        }
        self._before = {k: p.detach().clone() for k, (_, p) in self._weights.items()}

    def _after_update(self, *_: Any) -> None:
        step = self._trainer.global_step
        if step in self._steps_to_collect:
            self.capture.disarm()
            started = time.perf_counter()
            self._record(self._trainer, step)
            self.collections += 1
            self.collect_seconds += time.perf_counter() - started
            if step == 0:
                for job in self.jobs:
                    job.report.summarise(self._loggers(job), step, "initialization")

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if not self._steps_to_collect:
            return
        self.capture.disarm()
        self._step_hook.remove()
        pl_module.watch(set())
        self._steps_to_collect = set()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        stopped = stopped_jobs(pl_module)
        for j, job in enumerate(self.jobs):
            if j not in stopped:
                job.report.finish(self._loggers(job))
        self.figure_pool.close()  # every job's figures drawn side by side, then logged

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self.figure_pool.close()  # the figures asked for before it stopped are still written

    def _loggers(self, job: JobOutputs) -> Sequence[Logger]:
        return job.loggers if job.loggers is not None else self._trainer.loggers

    # --- one collected step --------------------------------------------------------------

    def _record(self, trainer: L.Trainer, step: int) -> None:
        """Statistics of the captured tensors, written to the CSV, the loggers and the report."""
        outputs, output_grads = self.capture.outputs, self.capture.grads
        weights = {
            name: WeightStep(kind, self._grads[name], self._before[name], p.detach())
            for name, (kind, p) in self._weights.items()
            if name in self._grads
        }
        stats = collect(outputs, output_grads, self._kinds, weights, self.threshold)
        values = to_numbers(stats)
        stopped = stopped_jobs(trainer.lightning_module)
        captured = {"act": outputs, "act_grad": output_grads, "weight_grad": self._grads}
        for j, (job, names) in enumerate(zip(self.jobs, self._names, strict=True)):
            if j in stopped:
                continue  # a diverged job's solo run had stopped: nothing more to record
            rows = [
                (step, names[s.layer], s.kind, s.name, v[j] if self.stacked else v)
                for s, v in zip(stats, values, strict=True)
                if s.layer in names  # a layer of other jobs only: this job's rows passed by
            ]
            tensors = {key: self._own(t, j) for key, t in captured.items()}
            job.write(self._loggers(job), step, rows, tensors, self.histograms)

    def _own(self, captured: dict[str, torch.Tensor], job: int) -> dict[str, torch.Tensor]:
        """Job `job`'s tensors among `captured` (its rows of a group's), under its own names."""
        names = self._names[job]
        return {names[n]: t[job] if self.stacked else t for n, t in captured.items() if n in names}
