"""Training dynamics: the lecture's diagnostics of a network's insides, as one Lightning callback.

At step 0 (before the first update), every `every_n_steps` and at the last step, the callback
arms forward hooks on the network's layers for that one step and captures each layer's output,
its gradient, and every weight's gradient and values around the update. The statistics are
pure functions of those tensors (`dynamics_stats`); the numbers go to `dynamics.csv` and the
loggers (`dynamics_writer`) and, at step 0 and at the end, to a text report and the lecture's
figures (`dynamics_report`). This module keeps only the cadence, the hooks and resume state.

A Lightning batch is a chunk of optimizer steps (see `data.TrainingChunks`): the hooks are armed
for the collected step alone, inside its chunk (torch's optimizer post-step hook tells when a
step is done). On every other step no hook fires, no gradient is retained, no device sync.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn
from torch.utils.hooks import RemovableHandle

from makemore_lab.dynamics_report import DynamicsReport
from makemore_lab.dynamics_stats import WeightStep, collect, to_numbers
from makemore_lab.dynamics_writer import DynamicsCsv, log_histograms, log_scalars
from makemore_lab.errors import UserError
from makemore_lab.layers import Linear
from makemore_lab.validation import POSITIVE_INT, require


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


class TrainingDynamics(Callback):
    """Per-layer activation, gradient and update statistics at a fixed cadence (see module doc)."""

    def __init__(
        self,
        dirpath: str,
        every_n_steps: int = 1000,
        saturation_threshold: float = 0.97,
        histograms: bool = True,
        figures: bool = True,
        heatmap_bins: int = 50,
    ) -> None:
        super().__init__()
        require("callbacks.dynamics.every_n_steps", every_n_steps, POSITIVE_INT)
        require("callbacks.dynamics.heatmap_bins", heatmap_bins, POSITIVE_INT)
        if not 0 < saturation_threshold < 1:
            raise UserError(
                f"callbacks.dynamics.saturation_threshold={saturation_threshold!r} must "
                f"lie strictly between 0 and 1 (tanh outputs live in (-1, 1)); the "
                f"lecture uses 0.97."
            )
        self.every_n_steps, self.threshold = every_n_steps, saturation_threshold
        self.histograms = histograms
        self.csv = DynamicsCsv(Path(dirpath) / "dynamics.csv")
        self.report = DynamicsReport(Path(dirpath), figures, heatmap_bins)
        self.capture = OutputCapture()
        self._steps_to_collect: set[int] = set()  # the steps of the current chunk to collect
        self._trainer: L.Trainer | None = None
        self._step_hook: RemovableHandle | None = None
        self._layers: dict[str, nn.Module] = {}
        self._weights: dict[str, tuple[str, nn.Parameter]] = {}  # name -> (kind, parameter)
        self._grads: dict[str, torch.Tensor] = {}  # the collected step's weight gradients
        self._before: dict[str, torch.Tensor] = {}  # and the weights before its update
        self.collections, self.collect_seconds = 0, 0.0  # the callback's own cost, for benchmarks

    def should_collect(self, step: int, max_steps: int) -> bool:
        return step % self.every_n_steps == 0 or (max_steps > 0 and step == max_steps - 1)

    # --- exact resume: what was collected before the checkpoint ----------------------------

    def state_dict(self) -> dict[str, Any]:
        return self.report.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.report.load_state_dict(state_dict)

    # --- Lightning hooks -----------------------------------------------------------------

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        net = pl_module.net
        self._layers = {str(i): layer for i, layer in enumerate(net.layers)}
        self._weights = {"embedding": ("Embedding", net.embedding.weight)}
        self._weights |= {
            i: ("Linear", m.weight) for i, m in self._layers.items() if isinstance(m, Linear)
        }
        self.report.layers = {name: type(m).__name__ for name, m in self._layers.items()}
        self.report.weights = {n: (k, tuple(p.shape)) for n, (k, p) in self._weights.items()}
        resumed = trainer.ckpt_path is not None
        self.csv.start(keep_through_step=self.report.last_step if resumed else None)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        # A batch is a chunk of minibatches, one optimizer step each: find the steps of this
        # chunk to collect. Layer hooks are armed for exactly those steps, each of which runs
        # eagerly (a compiled step would not call our hooks, and would recompile around them).
        first = trainer.global_step
        last = first + batch[0].shape[0]
        if trainer.max_steps > 0:
            last = min(last, trainer.max_steps)
        steps = {s for s in range(first, last) if self.should_collect(s, trainer.max_steps)}
        self._steps_to_collect = steps
        if not steps:
            return
        self._trainer = trainer
        pl_module.run_eagerly(steps)
        # torch's post-step hook runs after each update of the chunk, still at that step.
        self._step_hook = trainer.optimizers[0].register_step_post_hook(self._after_update)
        if first in steps:
            self.capture.arm(self._layers)

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
                self.report.summarise(self._trainer.loggers, step, "initialization")
        if step + 1 in self._steps_to_collect:
            self.capture.arm(self._layers)

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
        pl_module.run_eagerly(set())
        self._steps_to_collect = set()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.report.finish(trainer.loggers)

    # --- one collected step --------------------------------------------------------------

    def _record(self, trainer: L.Trainer, step: int) -> None:
        """Statistics of the captured tensors, written to the CSV, the loggers and the report."""
        outputs, output_grads = self.capture.outputs, self.capture.grads
        weights = {
            name: WeightStep(kind, self._grads[name], self._before[name], p.detach())
            for name, (kind, p) in self._weights.items()
            if name in self._grads
        }
        stats = collect(outputs, output_grads, self.report.layers, weights, self.threshold)
        rows = [
            (step, s.layer, s.kind, s.name, value)
            for s, value in zip(stats, to_numbers(stats), strict=True)
        ]
        self.csv.append(rows)
        log_scalars(trainer.loggers, rows, step)
        self.report.add(step, rows, outputs, output_grads, self._grads)
        if self.histograms:
            kinds = self.report.layers | {n: k for n, (k, _) in self._weights.items()}
            tensors = {"act": outputs, "act_grad": output_grads, "weight_grad": self._grads}
            log_histograms(trainer.loggers, step, kinds, tensors)
