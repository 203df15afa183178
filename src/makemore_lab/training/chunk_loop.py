"""The chunk loop: one Lightning batch is a chunk of optimizer steps, for one job or N at once.

`ChunkModule` is what the solo `MakemoreModule` and the stacked `StackedModule` share: the loop
over a chunk's steps, each job's `JobState` (its step-0 loss, loss window, divergence and
sampler state), the rule that stops a job whose loss stops being finite, the loss logging, and
the checkpoint hooks. A subclass says only how its jobs' losses are computed and updated.

Lightning's per-batch machinery is paid once per chunk while `trainer.global_step` still counts
optimizer steps, so `max_steps`, the learning-rate schedule, logging and the dynamics callback
keep their meaning in optimizer steps. Most steps take the lean path (`lean_steps`): torch's
backward and update directly, Lightning's step count advanced by hand (on a GPU, replayed from
CUDA graphs: `training/graphs.py`); the steps a callback watches go through Lightning's
optimizer wrapper, whose hooks it needs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import Logger
from lightning.pytorch.plugins.precision import Precision
from lightning.pytorch.strategies import SingleDeviceStrategy

from makemore_lab.data.chunks import Chunk, Drawn
from makemore_lab.job_state import JOBS, JobState
from makemore_lab.network.optim import StepUpdate, Update
from makemore_lab.training.divergence import stop_diverged
from makemore_lab.training.graphs import StepGraphs, start_graphs

Batch = tuple[torch.Tensor, torch.Tensor]
LogPoint = tuple[int, list[float]]  # (step, each job's learning rate at that step)


def lean_steps(trainer: L.Trainer | None) -> Any:
    """Lightning's count of optimizer steps, when a step may bypass Lightning's wrappers.

    With full precision on one device, Lightning's `manual_backward` and optimizer wrapper add
    only bookkeeping and hooks around `loss.backward()` and `optimizer.step()`: a step can call
    torch directly and advance this counter, which `trainer.global_step` reads. Other setups
    (mixed precision scales the loss; several devices reduce gradients) return None.
    """
    if trainer is None or type(trainer.precision_plugin) is not Precision:
        return None
    if not isinstance(trainer.strategy, SingleDeviceStrategy):
        return None
    return trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress


class ChunkModule(L.LightningModule):
    """The loop over a chunk's optimizer steps for `n_jobs` jobs (see the module doc).

    Subclasses implement `job_losses` (the jobs' losses on one minibatch each), `chunk_update`
    (the update without Lightning's wrapper), `next_update` and `graph_refusal` (for CUDA
    graphs, `training/graphs.py`), `rates` (each job's learning rate of the step about to run)
    and `job_loggers`; `after_update` and `stop_jobs` are optional.
    """

    def __init__(self, generators: Sequence[torch.Generator], cuda_graphs: bool = True) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.cuda_graphs = cuda_graphs  # capture the lean steps on a CUDA device
        self.graphs: StepGraphs | None = None
        self.eager_reason: str | None = None  # why the lean steps are not captured
        self.generators = list(generators)  # each job's minibatch generator, in job order
        self.job_states = [JobState(sampler_state=g.get_state()) for g in self.generators]
        self.watched_steps: frozenset[int] = frozenset()
        self.before_watched: Callable[[int], None] | None = None
        self.resumed_from_step: int | None = None  # set when Lightning restores a checkpoint

    @property
    def n_jobs(self) -> int:
        return len(self.job_states)

    @property
    def diverged(self) -> dict[int, dict[str, Any]]:
        """job -> where its loss stopped being finite (`training.divergence.divergence`)."""
        return {j: s.diverged for j, s in enumerate(self.job_states) if s.diverged is not None}

    def watch(self, steps: set[int], before: Callable[[int], None] | None = None) -> None:
        """Run these optimizer steps through Lightning's optimizer wrapper (its hooks fire), and
        call `before(step)` ahead of each one's forward: a callback watches them."""
        self.watched_steps, self.before_watched = frozenset(steps), before

    # --- what a subclass says ------------------------------------------------------------

    def job_losses(self, xs: torch.Tensor, ys: torch.Tensor, i: int, watched: bool) -> Any:
        """The jobs' losses on minibatch `i` of the chunk: (N,), or a scalar for one job."""
        raise NotImplementedError

    def chunk_update(self) -> Callable[[], None]:
        """Once per chunk: the optimizer's update, for the lean path to call directly
        (gradients set, no closure, no hooks)."""
        raise NotImplementedError

    def next_update(self) -> StepUpdate:
        """The next lean step's update, split for capture (`network.optim.StepUpdate`)."""
        raise NotImplementedError

    def graph_refusal(self) -> str | None:
        """Why this module's steps cannot be captured as CUDA graphs (None: they can)."""
        raise NotImplementedError

    def rates(self, step: int) -> list[float]:
        """Each job's learning rate for optimizer step `step` (read before it runs)."""
        raise NotImplementedError

    def job_loggers(self, job: int) -> Sequence[Logger]:
        raise NotImplementedError

    def after_update(self) -> None:
        """After each optimizer step (a solo run's schedule steps here)."""

    def stop_jobs(self, jobs: list[int]) -> None:
        """Stop updating these jobs (their loss stopped being finite); others may go on."""

    # --- the loop ------------------------------------------------------------------------

    def on_train_start(self) -> None:
        lean = lean_steps(self.trainer)
        self.graphs, self.eager_reason = start_graphs(self, lean, self.cuda_graphs)

    def training_step(self, batch: Chunk, batch_idx: int) -> None:
        xs, ys, drawn = batch  # (N, chunk, B, block), (N, chunk, B), the generators' states
        first, max_steps = self.global_step, self.trainer.max_steps
        n = xs.shape[1] if max_steps < 0 else min(xs.shape[1], max_steps - first)
        every = self.trainer.log_every_n_steps
        losses, points = self.train_steps(xs, ys, first, n, lean_steps(self.trainer), every)
        self.end_chunk(first, losses.tolist(), points, drawn)

    def train_steps(
        self, xs: torch.Tensor, ys: torch.Tensor, first: int, n: int, lean: Any, every: int = 0
    ) -> tuple[torch.Tensor, list[LogPoint]]:
        """Optimizer steps `first` .. `first + n - 1` on the chunk's minibatches; the jobs'
        losses before each update (N, n) and the logged steps' rates (every `every` steps).
        `lean`: Lightning's step counter for the lean path (None: every step is wrapped)."""
        update = self.chunk_update()
        params = [p for p in self.parameters() if p.requires_grad]
        losses: list[torch.Tensor] = []
        points: list[LogPoint] = []
        for i, step in enumerate(range(first, first + n)):
            watched = step in self.watched_steps
            if watched and self.before_watched is not None:
                self.before_watched(step)
            if every > 0 and (step + 1) % every == 0:
                points.append((step, self.rates(step)))
            # The lecture's order: clear the gradients, backward, update, then the schedule.
            if lean is not None and not watched:
                loss = self._lean_step(xs, ys, i, params, update)
                lean.increment_by(1)  # what Lightning's wrapper counts: one optimizer step
            else:
                loss = self.job_losses(xs, ys, i, watched)
                optimizer = self.optimizers()
                optimizer.zero_grad(set_to_none=True)
                self.manual_backward(loss if loss.dim() == 0 else loss.sum())
                optimizer.step()
            self.after_update()
            losses.append(loss.detach())  # no arithmetic, no device sync per step
        return torch.stack(losses, dim=-1).view(self.n_jobs, n), points

    def _lean_step(
        self, xs: torch.Tensor, ys: torch.Tensor, i: int, params: list, update: Update
    ) -> torch.Tensor:
        """One step with torch's backward and the update called directly: replayed from its
        CUDA graph where the steps are captured."""
        if self.graphs is not None:
            return self.graphs.step(xs, ys, i)
        loss = self.job_losses(xs, ys, i, False)
        for p in params:
            p.grad = None
        # a sum of per-job means: each job's gradient is its own
        (loss if loss.dim() == 0 else loss.sum()).backward()
        update()
        return loss

    def end_chunk(
        self, first: int, values: list[list[float]], points: list[LogPoint], drawn: Drawn
    ) -> None:
        """After a chunk (one device sync: its losses): each job's record, divergence, logs."""
        for state, sampler in zip(self.job_states, drawn.states, strict=True):
            state.sampler_state = sampler
        if first == 0:
            for state, losses in zip(self.job_states, values, strict=True):
                state.step0_loss = losses[0] if state.step0_loss is None else state.step0_loss
        training = [j for j, s in enumerate(self.job_states) if s.diverged is None]
        # a job whose loss stopped being finite stops here (the driver records where)
        stopped = stop_diverged(self.job_states, first, values)
        if stopped:
            self.stop_jobs(stopped)  # a group's other jobs train on
        for job in training:  # the chunk a job diverged in is logged: it trained to its end
            self._log_losses(job, first, values[job], points)
        alive = [v[-1] for v, s in zip(values, self.job_states, strict=True) if s.diverged is None]
        mean = sum(alive) / len(alive) if alive else math.nan
        self.log("train/loss", mean, prog_bar=True, logger=False)
        if not alive:
            self.trainer.should_stop = True  # every job diverged: nothing left to train

    def _log_losses(
        self, job: int, first: int, losses: list[float], points: list[LogPoint]
    ) -> None:
        """Log the job's mean loss of each window ending at a logged step, at that step.

        To the job's loggers directly rather than through `self.log`, whose x-axis is the
        number of Lightning batches, which a chunk of minibatches would make wrong.
        """
        steps = [step for step, _ in points]
        means = self.job_states[job].window_means(first, losses, steps)
        for (step, mean), (_, rates) in zip(means, points, strict=True):
            for logger in self.job_loggers(job):
                logger.log_metrics({"train/loss": mean, "train/lr": rates[job]}, step)

    # --- validation: each job on the whole split, its loss summed, then divided once -------

    def validation_sums(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Each job's summed cross-entropy over the batch: (N,)."""
        raise NotImplementedError

    def on_validation_epoch_start(self) -> None:
        self._eval_sum = torch.zeros(self.n_jobs, device=self.device)
        self._eval_count = 0

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        x, y = batch
        self._eval_sum += self.validation_sums(x, y)
        self._eval_count += y.numel()

    def on_validation_epoch_end(self) -> None:
        losses = self._eval_sum / max(self._eval_count, 1)
        if self.n_jobs == 1:
            self.log("val/loss", losses[0], prog_bar=True, logger=False)
        if self.trainer.sanity_checking:
            return
        for job, loss in enumerate(losses.tolist()):
            if self.job_states[job].diverged is None:  # it had stopped
                for logger in self.job_loggers(job):  # at the optimizer step, like train/loss
                    logger.log_metrics({"val/loss": loss}, step=self.global_step)

    # --- exact resume: each job's state travels in the checkpoint (job_state.py) -------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[JOBS] = [state.entries() for state in self.job_states]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.resumed_from_step = checkpoint["global_step"]
        self.job_states = [JobState.from_entries(e) for e in checkpoint[JOBS]]
        for generator, state in zip(self.generators, self.job_states, strict=True):
            if state.sampler_state is not None:  # the next chunk is drawn from here
                generator.set_state(state.sampler_state)
