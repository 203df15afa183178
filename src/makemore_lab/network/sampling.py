"""Sampling names from a trained network, one character at a time, as the lecture does."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from makemore_lab.data.names import Vocab


@torch.no_grad()
def sample_names(
    net: nn.Module,
    vocab: Vocab,
    count: int = 20,
    seed: int = 2147483647 + 10,
    prefix: str = "",
    max_length: int = 50,
) -> list[str]:
    """Sample `count` names one character at a time, like the lecture's sampling loop.

    The generator is seeded with `seed` (the lecture uses 2147483647 + 10), so the same model
    and seed give the same names. Names start with `prefix` and stop at '.' or `max_length`.
    """
    start = vocab.encode(prefix, f"The prefix {prefix!r}")
    block_size = net.block_size
    device = next(net.parameters()).device
    g = torch.Generator().manual_seed(seed)
    was_training = net.training
    net.eval()  # BatchNorm must use its running statistics for a batch of one
    names = []
    for _ in range(count):
        context = ([0] * block_size + start)[-block_size:]
        out = list(start)
        while len(out) < max_length:
            logits = net(torch.tensor([context], device=device))
            probs = F.softmax(logits, dim=1).cpu()
            ix = torch.multinomial(probs, num_samples=1, generator=g).item()
            if ix == 0:
                break
            context = context[1:] + [ix]
            out.append(ix)
        names.append("".join(vocab.itos(i) for i in out))
    net.train(was_training)
    return names
