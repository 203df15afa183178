"""The names data for a stacked group: one split, each job's own stream of minibatches.

Every job of a group trains on the same data file and split, but draws its minibatch indices
from its own generator (the one that drew its weights), exactly as its solo run draws them: a
chunk is one `randint` of chunk x batch values per job. Checkpoints keep each generator's state
after the chunk last trained on, as the solo `NamesDataModule` keeps its one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from makemore_lab.data.names import NamesDataModule


class StackedChunks:
    """Endless chunks for N jobs: x (N, chunk, batch, block), y (N, chunk, batch)."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        generators: Sequence[torch.Generator],
        chunk_size: int,
    ) -> None:
        self.x, self.y, self.batch_size = x, y, batch_size
        self.generators, self.chunk_size = list(generators), chunk_size
        self.drawn: deque[list[torch.Tensor]] = deque()  # states after draws not yet trained on

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, shape = self.x.shape[0], (self.chunk_size, self.batch_size)
        while True:
            ix = torch.stack([torch.randint(0, n, shape, generator=g) for g in self.generators])
            self.drawn.append([g.get_state() for g in self.generators])
            ix = ix.to(self.x.device, non_blocking=True)
            yield self.x[ix], self.y[ix]


class StackedNamesDataModule(NamesDataModule):
    """`NamesDataModule` whose training stream is one per job (see the module doc)."""

    def __init__(self, generators: Sequence[torch.Generator], **data: Any) -> None:
        super().__init__(**data, generator=None)
        self.generators = list(generators)
        # `sampler_state` (set by NamesDataModule.on_before_batch_transfer) holds, here, every
        # job's generator state after the chunk last trained on

    def train_dataloader(self) -> StackedChunks:
        x, y = self.splits["train"]
        self.train_chunks = StackedChunks(x, y, self.batch_size, self.generators, self.chunk_size)
        return self.train_chunks

    def state_dict(self) -> dict[str, Any]:
        states = self.sampler_state or [g.get_state() for g in self.generators]
        return {"sampler_states": states}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue every job's batch stream where the checkpoint left it."""
        self.sampler_state = list(state_dict["sampler_states"])
        for generator, state in zip(self.generators, self.sampler_state, strict=True):
            generator.set_state(state)
