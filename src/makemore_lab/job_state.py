"""One job's training state between chunks, and the checkpoint keys it owns.

A solo run and every job of a stacked group keep the same record while they train: the loss
before any update (the lecture's first print), the losses since the last logged point, the last
finite loss, where the loss stopped being finite, and the state of the generator that draws its
minibatches after the chunk it last trained on. `JobState` is that record and the only writer
and reader of its checkpoint keys (`entries`, `from_entries`), and `job_hparams` builds the
checkpoint's `hyper_parameters`: what a solo checkpoint file holds beside Lightning's own keys,
whichever engine wrote it.

In memory, while Lightning saves, every job's entries sit in one list under `JOBS`; a checkpoint
plugin turns that into each job's file (`solo_file`: a solo run's; the stacked engine's cuts one
file per job) and back (`with_jobs`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

JOBS = "makemore_jobs"  # in memory only: each job's entries, in job order
LOSSES = "makemore"  # the loss record of one job's file
SAMPLER = "NamesDataModule"  # its minibatch generator's state (the key of earlier versions)


@dataclass
class JobState:
    """What a job carries from one chunk to the next (see the module doc)."""

    step0_loss: float | None = None
    window: list[float] = field(default_factory=list)  # losses since the last logged step
    last_loss: float | None = None  # the last finite loss, for divergence reports
    diverged: dict[str, Any] | None = None  # where its loss stopped being finite
    sampler_state: torch.Tensor | None = None  # its generator's, after the chunk trained on

    def window_means(
        self, first: int, losses: list[float], steps: list[int]
    ) -> list[tuple[int, float]]:
        """(step, mean loss of the window ending there) for each logged step of a chunk from
        step `first`; the losses after the last logged step wait for the next chunk's."""
        means, start = [], 0
        for step in steps:
            end = step - first + 1
            window, self.window = self.window + losses[start:end], []
            means.append((step, sum(window) / len(window)))
            start = end
        self.window += losses[start:]
        return means

    def entries(self) -> dict[str, Any]:
        """This job's keys of its checkpoint file."""
        return {
            LOSSES: {
                "window": list(self.window),
                "last_loss": self.last_loss,
                "step0_loss": self.step0_loss,
            },
            SAMPLER: {} if self.sampler_state is None else {"sampler_state": self.sampler_state},
        }

    @classmethod
    def from_entries(cls, ckpt: dict[str, Any]) -> JobState:
        """The state a checkpoint file (or its `entries`) holds; files of every version."""
        losses, sampler = ckpt.get(LOSSES) or {}, ckpt.get(SAMPLER) or {}
        return cls(
            step0_loss=losses.get("step0_loss"),
            window=list(losses.get("window", [])),
            last_loss=losses.get("last_loss"),
            sampler_state=sampler.get("sampler_state"),
        )


def stopped_jobs(module: Any) -> set[int]:
    """The jobs of a training module (`training/chunk_loop.py:ChunkModule`, whose `job_states`
    these are) that stopped because their loss stopped being finite."""
    return {j for j, state in enumerate(module.job_states) if state.diverged is not None}


def solo_file(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """A solo run's checkpoint as its file holds it: its job's entries in place of the job
    list (a stacked group's files are cut by `stacked/checkpoint.py:split`)."""
    ckpt = {key: value for key, value in checkpoint.items() if key != JOBS}
    if JOBS in checkpoint:
        (entries,) = checkpoint[JOBS]
        ckpt.update(entries)
    return ckpt


def with_jobs(files: list[dict[str, Any]], base: dict[str, Any]) -> dict[str, Any]:
    """`base` (a file read, or the group's joined state) with every file's entries as the job
    list the module reads."""
    ckpt = {key: value for key, value in base.items() if key not in (LOSSES, SAMPLER)}
    ckpt[JOBS] = [JobState.from_entries(f).entries() for f in files]
    return ckpt


def job_hparams(config: dict[str, Any], vocab: str, compile: bool = False) -> dict[str, Any]:
    """A checkpoint's `hyper_parameters`: the resolved config and vocabulary rebuild the
    network (`runs.checkpoints.load_checkpoint`), `compile` says how it trained."""
    return {"config": config, "vocab": vocab, "compile": compile}
