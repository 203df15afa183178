"""What a training step of either engine shares: the lean update, and what a loss that stops
being finite means.

The solo `MakemoreModule` and the stacked `StackedModule` run a chunk of optimizer steps per
Lightning batch; both take the lean path where Lightning adds nothing (`lean_steps`), both find
where a job's loss stopped being finite (`divergence`), and the driver turns that into one
error with advice for the job's config (`diverged`), whether it trained alone or in a group.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
from lightning.pytorch.plugins.precision import Precision
from lightning.pytorch.strategies import SingleDeviceStrategy

from makemore_lab.errors import TrainingDiverged


def divergence(first: int, losses: list[float], last: float | None) -> dict[str, Any] | None:
    """Where a job's loss first stopped being finite in a chunk that starts at step `first`
    (`last`: the loss before the chunk); None if it stayed finite. A run stops at the end of
    the chunk, so `steps` is where it stopped."""
    bad = next((i for i, v in enumerate(losses) if not math.isfinite(v)), None)
    if bad is None:
        return None
    return {
        "step": first + bad,
        "loss": losses[bad],
        "last_finite": losses[bad - 1] if bad > 0 else last,
        "steps": first + len(losses),
    }


def first_loss_hint(config: dict[str, Any]) -> tuple[str, str]:
    """(hint, cause) for a loss that is not finite at step 0, before any update."""
    cause = "No update had happened yet, so the learning rate is not the cause:"
    batch = (config.get("data") or {}).get("batch_size")
    model = config.get("model") or {}
    if (model.get("batchnorm") or model.get("output_batchnorm")) and batch == 1:
        hint = (
            "BatchNorm normalises each unit over the minibatch, and the variance of "
            "data.batch_size=1 example is 0/0. Use data.batch_size=2 or more, or "
            "model.batchnorm=false."
        )
    else:
        gain = (config.get("init") or {}).get("gain")
        hint = (
            f"the initialization (it is init.gain={gain}) or the data make the first forward "
            f"pass overflow. Try a smaller init.gain, or the defaults of init/."
        )
    return hint, cause


def diverged(
    config: dict[str, Any], step: int, loss: float, last: float | None
) -> TrainingDiverged:
    """The error for a loss that stopped being finite at `step`, with advice for this config."""
    if step == 0:  # the loss before any update: not the learning rate's doing
        return TrainingDiverged(0, loss, None, *first_loss_hint(config))
    lr = (config.get("optim") or {}).get("lr")
    gain = (config.get("init") or {}).get("gain")
    hint = (
        f"try a smaller learning rate (it is optim.lr={lr}) or initialization gain (it is "
        f"init.gain={gain})"
    )
    if not (config.get("model") or {}).get("batchnorm", True):
        hint += ", or BatchNorm (model.batchnorm=true)"
    return TrainingDiverged(step, loss, last, hint + ".")


def lean_steps(trainer: L.Trainer) -> Any:
    """Lightning's count of optimizer steps, when a step may bypass Lightning's wrappers.

    With full precision on one device, Lightning's `manual_backward` and optimizer wrapper add
    only bookkeeping and hooks around `loss.backward()` and `optimizer.step()`: a step can call
    torch directly and advance this counter, which `trainer.global_step` reads. Other setups
    (mixed precision scales the loss; several devices reduce gradients) return None.
    """
    if type(trainer.precision_plugin) is not Precision:
        return None
    if not isinstance(trainer.strategy, SingleDeviceStrategy):
        return None
    return trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
