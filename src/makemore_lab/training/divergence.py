"""What "diverged" means, for every engine: the one rule, during training and after it.

During training (`training/chunk_loop.py`), a job whose loss stops being finite stops at the
end of that chunk (`divergence` finds where); the driver turns that into one error with advice
for the job's config (`diverged`), whether it trained alone or in a group. After training, a
finite blow-up counts too (`blew_up`): a final train loss above both the loss before training
and a uniform guess did not train.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from makemore_lab.errors import TrainingDiverged
from makemore_lab.job_state import JobState


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


def stop_diverged(states: Sequence[JobState], first: int, values: list[list[float]]) -> list[int]:
    """After a chunk from step `first` (each job's losses `values`): the jobs whose loss stopped
    being finite in it, each state keeping where; the others keep their last finite loss."""
    stopped = []
    for job, (state, losses) in enumerate(zip(states, values, strict=True)):
        if state.diverged is not None:
            continue
        state.diverged = divergence(first, losses, state.last_loss)
        if state.diverged is None:
            state.last_loss = losses[-1]
        else:
            stopped.append(job)
    return stopped


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


def blew_up(
    losses: dict[str, float], step0_loss: float | None, vocab_size: int | None
) -> str | None:
    """Why a trained job's final losses say it diverged (not finite, or a train loss above
    the loss before training and a uniform guess over the vocabulary); None if they do not."""
    if not all(math.isfinite(v) for v in losses.values()):
        return "the losses are not finite: the run diverged (try a smaller optim.lr or init.gain)"
    if step0_loss is None or not vocab_size:
        return None
    uniform = math.log(vocab_size)
    if losses["train_loss"] <= max(step0_loss, uniform):
        return None
    return (
        f"the final train loss {losses['train_loss']:.4g} is above the loss before training "
        f"({step0_loss:.4g}) and a uniform guess ({uniform:.4g}): the run diverged without "
        f"overflowing (try a smaller optim.lr or init.gain)"
    )
