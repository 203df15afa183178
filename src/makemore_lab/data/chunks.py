"""The training stream: chunks of minibatches for N jobs, each drawn from its job's generator.

A solo run is N = 1, a stacked group N > 1: one stream serves both. Every job draws its chunk's
indices as its solo run does, one `torch.randint` of chunk x batch values from its own generator
(the one that drew its weights). On the CPU generator that is the same stream as `chunk` calls of
`batch` values, so the minibatches are the lecture's whatever the chunk size.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch


class Drawn:
    """Each job's generator state after a chunk was drawn: what a checkpoint taken once that
    chunk has trained must restore.

    It travels with its chunk (Lightning fetches one chunk ahead, so the generators' current
    state is a chunk too far). A plain object, not a tensor or a collection: Lightning's
    transfer to the device leaves it alone, and generator states stay on the CPU.
    """

    __slots__ = ("states",)

    def __init__(self, states: list[torch.Tensor]) -> None:
        self.states = states


Chunk = tuple[torch.Tensor, torch.Tensor, Drawn]


class ChunkStream:
    """Endless chunks for N jobs: x (N, chunk, batch, block), y (N, chunk, batch), and the
    generators' states after the draw."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        generators: Sequence[torch.Generator],
        chunk_size: int,
    ) -> None:
        if not generators:
            raise ValueError("a chunk stream draws for one job per generator: none given")
        self.x, self.y, self.batch_size = x, y, batch_size
        self.generators, self.chunk_size = list(generators), chunk_size

    def draw(self, steps: int) -> Chunk:
        """Every job's next `steps` minibatches."""
        shape = (steps, self.batch_size)
        # The generators live on the CPU; one copy of the indices to the device, then the
        # gather happens there.
        ix = torch.stack(
            [torch.randint(0, self.x.shape[0], shape, generator=g) for g in self.generators]
        )
        drawn = Drawn([g.get_state() for g in self.generators])
        ix = ix.to(self.x.device, non_blocking=True)
        return self.x[ix], self.y[ix], drawn

    def __iter__(self) -> Iterator[Chunk]:
        while True:
            yield self.draw(self.chunk_size)


class SplitBatches:
    """A whole split as consecutive batches (views, no copies): evaluation sees every example."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, chunk_size: int) -> None:
        self.x, self.y, self.chunk_size = x, y, chunk_size

    def __len__(self) -> int:
        return -(-self.x.shape[0] // self.chunk_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i in range(0, self.x.shape[0], self.chunk_size):
            yield self.x[i : i + self.chunk_size], self.y[i : i + self.chunk_size]
