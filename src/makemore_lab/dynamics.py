"""Training dynamics: the lecture's diagnostics of a network's insides, as one Lightning callback.

At step 0 (before the first update), every `every_n_steps` and at the last step, the callback
arms forward hooks on the network's layers for that one step and records:
- activations (every layer's output): mean, std; tanh saturation %, ReLU dead-unit %;
- activation gradients (d loss / d layer output): mean, std;
- weights (the embedding and every 2-D weight): gradient mean and std, grad:data ratio, and
  log10 of the update:data ratio, from the parameters just before and after the optimizer step.
A Lightning batch is a chunk of optimizer steps (see `data.RandomBatches`): the hooks are armed
for the collected step alone, inside its chunk (torch's optimizer post-step hook tells when a
step is done). On every other step no hook fires, no gradient is retained, no device sync.
The numbers go to the loggers (scalars, histograms), to `dynamics.csv`, and at step 0 and at the
end to a text report (`dynamics.md`) and the lecture's figures (`figures/*.png`, logged as images).
"""

from __future__ import annotations

import csv
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from matplotlib.figure import Figure
from torch.utils.hooks import RemovableHandle

from makemore_lab.dynamics_figures import distribution_figure, heatmap_figure, update_ratio_figure
from makemore_lab.errors import UserError
from makemore_lab.validation import POSITIVE_INT, require
from makemore_lab.layers import Identity, Linear, ReLU, Tanh
from makemore_lab.logger_media import figure_to_array, log_histogram, log_image

log = logging.getLogger(__name__)
CSV_COLUMNS = ("step", "layer", "layer_type", "stat", "value")
NONLINEARITIES = (Tanh, ReLU, Identity)


def tag_label(layer: str, layer_type: str) -> str:
    """A sortable chart name: 'layer02_Tanh', or 'embedding'."""
    return layer if not layer.isdigit() else f"layer{int(layer):02d}_{layer_type}"


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
        self.dirpath = Path(dirpath)
        self.every_n_steps, self.threshold = every_n_steps, saturation_threshold
        self.histograms, self.figures, self.heatmap_bins = histograms, figures, heatmap_bins
        self._targets: set[int] = set()  # the steps of the current chunk to collect
        self._trainer: L.Trainer | None = None
        self._step_hook: RemovableHandle | None = None
        self._hooks: list[RemovableHandle] = []
        self._acts: dict[str, torch.Tensor] = {}
        self._act_grads: dict[str, torch.Tensor] = {}
        self._weights: dict[str, tuple[str, torch.nn.Parameter]] = {}
        self._grads: dict[str, torch.Tensor] = {}
        self._before: dict[str, torch.Tensor] = {}
        self.latest: dict[tuple[str, str], float] = {}  # (layer, stat) -> value, last collection
        self.reports: list[str] = []
        self._update_series: dict[str, tuple[list[int], list[float]]] = {}
        self._heatmaps: dict[str, tuple[list[int], list[torch.Tensor], float, float]] = {}
        self._last_snapshot: dict[str, dict[str, torch.Tensor]] = {}
        self._last_step = 0
        self.collections, self.collect_seconds = 0, 0.0  # the callback's own cost, for benchmarks

    def should_collect(self, step: int, max_steps: int) -> bool:
        return step % self.every_n_steps == 0 or (max_steps > 0 and step == max_steps - 1)

    # --- Lightning hooks -----------------------------------------------------------------

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        net = pl_module.net
        self._layers = {str(i): layer for i, layer in enumerate(net.layers)}
        self._weights = {"embedding": ("Embedding", net.embedding.weight)}
        self._weights |= {
            i: ("Linear", m.weight) for i, m in self._layers.items() if isinstance(m, Linear)
        }
        self.dirpath.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.dirpath / "dynamics.csv"
        # A resumed run keeps the rows up to its checkpoint's last collection; rows written
        # after it (by the interrupted run) are dropped, as they will be collected again.
        kept = []
        if self.csv_path.exists() and trainer.ckpt_path is not None:
            with self.csv_path.open(newline="") as f:
                kept = [r for r in list(csv.reader(f))[1:] if int(r[0]) <= self._last_step]
        with self.csv_path.open("w", newline="") as f:
            csv.writer(f).writerows([CSV_COLUMNS, *kept])

    # --- exact resume: what was collected before the checkpoint ----------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "reports": self.reports,
            "latest": self.latest,
            "last_step": self._last_step,
            "update_series": self._update_series,
            "heatmaps": self._heatmaps,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.reports = list(state_dict["reports"])
        self.latest = dict(state_dict["latest"])
        self._last_step = state_dict["last_step"]
        self._update_series = dict(state_dict["update_series"])
        self._heatmaps = dict(state_dict["heatmaps"])

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
        self._targets = {s for s in range(first, last) if self.should_collect(s, trainer.max_steps)}
        if not self._targets:
            return
        self._trainer = trainer
        pl_module.run_eagerly(self._targets)
        # torch's post-step hook runs after each update of the chunk, still at that step.
        self._step_hook = trainer.optimizers[0].register_step_post_hook(self._after_update)
        if first in self._targets:
            self._arm()

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        # After backward, before the update: gradients are final, parameters not yet changed.
        if trainer.global_step not in self._targets:
            return
        self._grads = {
            k: p.grad.detach().clone() for k, (_, p) in self._weights.items() if p.grad is not None
        }
        self._before = {k: p.detach().clone() for k, (_, p) in self._weights.items()}

    def _after_update(self, *_: Any) -> None:
        step = self._trainer.global_step
        if step in self._targets:
            self._disarm()
            started = time.perf_counter()
            self._record(self._trainer, step)
            self.collections += 1
            self.collect_seconds += time.perf_counter() - started
            if step == 0:
                self._summarise(self._trainer, step, "initialization")
        if step + 1 in self._targets:
            self._arm()

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if not self._targets:
            return
        self._disarm()
        self._step_hook.remove()
        pl_module.run_eagerly(set())
        self._targets = set()

    def _arm(self) -> None:
        self._acts, self._act_grads = {}, {}
        for name, layer in self._layers.items():
            self._hooks.append(layer.register_forward_hook(self._capture(name)))

    def _disarm(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.latest and self._last_step > 0:
            self._summarise(trainer, self._last_step, "end of training")
        if self.figures and self._update_series:
            self._save_figure(
                trainer,
                "update_data_ratio",
                update_ratio_figure(self._update_series),
                self._last_step,
            )
            heatmaps = {
                label: (steps, torch.stack(rows), lo, hi)
                for label, (steps, rows, lo, hi) in self._heatmaps.items()
            }
            self._save_figure(
                trainer, "activations_over_time", heatmap_figure(heatmaps), self._last_step
            )

    # --- collection ----------------------------------------------------------------------

    def _capture(self, name: str) -> Callable[[torch.nn.Module, Any, torch.Tensor], None]:
        def hook(module: torch.nn.Module, inputs: Any, out: torch.Tensor) -> None:
            self._acts[name] = out.detach()
            if out.requires_grad:  # a tensor hook sees d loss / d out without retain_grad
                out.register_hook(lambda grad: self._act_grads.__setitem__(name, grad.detach()))

        return hook

    def _record(self, trainer: L.Trainer, step: int) -> None:
        stats: list[tuple[str, str, str, torch.Tensor]] = []
        for name, t in self._acts.items():
            kind, t = type(self._layers[name]).__name__, t.float()
            stats += [(name, kind, "act_mean", t.mean()), (name, kind, "act_std", t.std())]
            if kind == "Tanh":
                stats.append(
                    (
                        name,
                        kind,
                        "act_saturated_pct",
                        (t.abs() > self.threshold).float().mean() * 100,
                    )
                )
            elif kind == "ReLU":
                stats.append((name, kind, "act_dead_pct", (t == 0).all(dim=0).float().mean() * 100))
            if name in self._act_grads:
                g = self._act_grads[name].float()
                stats += [
                    (name, kind, "act_grad_mean", g.mean()),
                    (name, kind, "act_grad_std", g.std()),
                ]
        for name, (kind, p) in self._weights.items():
            if name not in self._grads:
                continue
            g, before = self._grads[name].float(), self._before[name].float()
            update = p.detach().float() - before
            stats += [
                (name, kind, "weight_grad_mean", g.mean()),
                (name, kind, "weight_grad_std", g.std()),
                (name, kind, "grad_data_ratio", g.std() / before.std()),
                (name, kind, "update_data_ratio_log10", torch.log10(update.std() / before.std())),
            ]
        values = (
            torch.stack([v.detach().float() for *_, v in stats]).tolist() if stats else []
        )  # one sync
        rows = [
            (step, layer, kind, stat, value)
            for (layer, kind, stat, _), value in zip(stats, values, strict=True)
        ]
        with self.csv_path.open("a", newline="") as f:
            csv.writer(f).writerows(rows)
        self.latest = {(layer, stat): value for _, layer, _, stat, value in rows}
        self._last_step = step
        metrics = {
            f"{stat}/{tag_label(layer, kind)}": value for _, layer, kind, stat, value in rows
        }
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
        for _, layer, kind, stat, value in rows:
            if stat == "update_data_ratio_log10":
                steps, series = self._update_series.setdefault(
                    f"{tag_label(layer, kind)} {self._shape(layer)}", ([], [])
                )
                steps.append(step)
                series.append(value)
        self._snapshot_and_histograms(trainer, step)

    def _shape(self, layer: str) -> tuple[int, ...]:
        return tuple(self._weights[layer][1].shape)

    def _snapshot_and_histograms(self, trainer: L.Trainer, step: int) -> None:
        labels = {name: tag_label(name, type(m).__name__) for name, m in self._layers.items()}
        nonlinear = [n for n, m in self._layers.items() if isinstance(m, NONLINEARITIES)]
        self._last_snapshot = {
            "activations": {labels[n]: self._acts[n].cpu() for n in nonlinear if n in self._acts},
            "gradients": {
                labels[n]: self._act_grads[n].cpu() for n in nonlinear if n in self._act_grads
            },
            "weight_gradients": {
                f"{tag_label(n, k)} {tuple(self._grads[n].shape)}": self._grads[n].cpu()
                for n, (k, _) in self._weights.items()
                if n in self._grads
            },
        }
        for name, t in self._acts.items():
            self._add_heatmap_row(labels[name], type(self._layers[name]).__name__, t, step)
        if not self.histograms:
            return
        for name, t in self._acts.items():
            log_histogram(trainer.loggers, f"hist_act/{labels[name]}", t, step)
        for name, g in self._act_grads.items():
            log_histogram(trainer.loggers, f"hist_act_grad/{labels[name]}", g, step)
        for name, g in self._grads.items():
            log_histogram(
                trainer.loggers,
                f"hist_weight_grad/{tag_label(name, self._weights[name][0])}",
                g,
                step,
            )

    def _add_heatmap_row(self, label: str, kind: str, t: torch.Tensor, step: int) -> None:
        # Binned on the CPU: CUDA's histc has no deterministic kernel (trainer.deterministic).
        t = t.detach().float().flatten().cpu()
        t = t[torch.isfinite(t)]  # a diverging run: count what is still finite
        if label not in self._heatmaps:
            # Fixed bins per layer, so rows are comparable over time: tanh lives in (-1, 1);
            # other layers get their step-0 mean +- 4 std.
            if kind == "Tanh":
                lo, hi = -1.0, 1.0
            else:
                mean, std = (t.mean().item(), t.std().item()) if t.numel() > 1 else (0.0, 1.0)
                mean = mean if math.isfinite(mean) else 0.0
                std = std if math.isfinite(std) and std > 0 else 1.0
                lo, hi = mean - 4 * std, mean + 4 * std
            self._heatmaps[label] = ([], [], lo, hi)
        steps, rows, lo, hi = self._heatmaps[label]
        steps.append(step)
        rows.append(torch.histc(t.clamp(lo, hi), bins=self.heatmap_bins, min=lo, max=hi))

    # --- reports and figures -------------------------------------------------------------

    def _summarise(self, trainer: L.Trainer, step: int, when: str) -> None:
        lines = self.report_lines()
        text = f"## Step {step} ({when})\n\n```\n" + "\n".join(lines) + "\n```\n"
        self.reports.append(text)
        log.info("training dynamics at step %d (%s):\n%s", step, when, "\n".join(lines))
        (self.dirpath / "dynamics.md").write_text(
            "# Training dynamics\n\n" + "\n".join(self.reports)
        )
        if not self.figures:
            return
        tag = "init" if step == 0 else "final"
        for kind, tensors in self._last_snapshot.items():
            title = f"{kind.replace('_', ' ')} distribution at step {step}"
            self._save_figure(trainer, f"{kind}_{tag}", distribution_figure(tensors, title), step)

    def report_lines(self) -> list[str]:
        """The lecture's printouts for the last collected step, one line per layer."""
        lines = []
        for name, layer in self._layers.items():
            stat = {k: v for (n, k), v in self.latest.items() if n == name}
            if not isinstance(layer, NONLINEARITIES) or "act_mean" not in stat:
                continue
            line = (
                f"layer {name} ({type(layer).__name__}): "
                f"mean {stat['act_mean']:+.2f}, std {stat['act_std']:.2f}"
            )
            if "act_saturated_pct" in stat:
                line += f", saturated: {stat['act_saturated_pct']:.2f}%"
            if "act_dead_pct" in stat:
                line += f", dead: {stat['act_dead_pct']:.2f}%"
            if "act_grad_std" in stat:
                line += (
                    f" | grad mean {stat['act_grad_mean']:+f}, grad std {stat['act_grad_std']:e}"
                )
            lines.append(line)
        for name, (kind, p) in self._weights.items():
            stat = {k: v for (n, k), v in self.latest.items() if n == name}
            if "weight_grad_std" not in stat:
                continue
            lines.append(
                f"weight {tuple(p.shape)!s:>10} ({tag_label(name, kind)}) "
                f"| mean {stat['weight_grad_mean']:+f} | std {stat['weight_grad_std']:e} "
                f"| grad:data ratio {stat['grad_data_ratio']:e} "
                f"| update:data log10 {stat['update_data_ratio_log10']:+.2f}"
            )
        return lines

    def _save_figure(self, trainer: L.Trainer, name: str, fig: Figure, step: int) -> None:
        folder = self.dirpath / "figures"
        folder.mkdir(parents=True, exist_ok=True)
        fig.savefig(folder / f"{name}.png", dpi=80)
        log_image(trainer.loggers, f"figures/{name}", figure_to_array(fig), step)
