"""The makemore MLP: embedding -> (Linear [-> BN] -> activation) x n -> Linear [-> BN].

Built from the hand-written layers in `layers.py` and initialised by `initialization.py`.
Defaults are the lecture's deep network; `conf/model/` holds the presets.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from makemore_lab.network.initialization import init_network
from makemore_lab.network.layers import ACTIVATIONS, BatchNorm1d, Embedding, Linear
from makemore_lab.validation import POSITIVE_INT, one_of, require, require_all


class MLP(nn.Module):
    """The lecture's deep network: an embedding table `C`, then the list `layers`.

    As in the notebook, the embedding is not in `layers`, so layer indices match the
    lecture's printouts ("layer 2 (Tanh)" is the first tanh).
    """

    def __init__(
        self,
        vocab_size: int,
        block_size: int = 3,
        n_embd: int = 10,
        n_hidden: int = 100,
        n_layers: int = 5,
        batchnorm: bool = True,
        output_batchnorm: bool = True,
        activation: str = "tanh",
        bn: dict[str, Any] | None = None,
        init: dict[str, Any] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        sizes = dict(block_size=block_size, n_embd=n_embd, n_hidden=n_hidden, n_layers=n_layers)
        require_all("model", POSITIVE_INT, **sizes)
        require("model.activation", activation, one_of(ACTIVATIONS))
        self.block_size, self.vocab_size = block_size, vocab_size
        bn = dict(bn or {})
        act = ACTIVATIONS[activation]

        self.embedding = Embedding(vocab_size, n_embd)
        layers: list[nn.Module] = []
        fan_in = n_embd * block_size
        for _ in range(n_layers):
            # A bias before BatchNorm is subtracted away by the batch mean: drop it.
            layers.append(Linear(fan_in, n_hidden, bias=not batchnorm))
            if batchnorm:
                layers.append(BatchNorm1d(n_hidden, **bn))
            layers.append(act())
            fan_in = n_hidden
        layers.append(Linear(fan_in, vocab_size, bias=not output_batchnorm))
        if output_batchnorm:
            layers.append(BatchNorm1d(vocab_size, **bn))
        self.layers = nn.ModuleList(layers)
        init_network([self.embedding, *self.layers], generator, **(init or {}))

    def weights(self) -> dict[str, tuple[str, nn.Parameter]]:
        """The weights the dynamics statistics follow: name -> (kind, weight).

        The embedding table and every Linear's weight, named by layer index as in `layers`.
        """
        weights = {"embedding": ("Embedding", self.embedding.weight)}
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Linear):
                weights[str(i)] = ("Linear", layer.weight)
        return weights

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits (B, vocab_size) for contexts `idx` (B, block_size) of character indices."""
        emb = self.embedding(idx)  # (B, block_size, n_embd)
        x = emb.view(emb.shape[0], -1)  # concatenate the context's vectors
        for layer in self.layers:
            x = layer(x)
        return x
