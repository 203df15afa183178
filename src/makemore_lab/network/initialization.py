"""Weight initialization: the lecture's knobs, drawn from one generator in layer order.

The lecture's numbers are reproducible to the digit because a single `torch.Generator`
draws every parameter in a fixed order (embedding, then each Linear's weight and bias) and
then goes on to draw the batch indices. `init_network` keeps exactly that order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from makemore_lab.network.choices import BIAS_INITS, SCHEMES
from makemore_lab.network.gains import parse_gain
from makemore_lab.network.layers import BatchNorm1d, Embedding, Linear
from makemore_lab.validation import one_of, require


@torch.no_grad()
def init_network(
    layers: Sequence[nn.Module],
    generator: torch.Generator | None,
    scheme: str = "kaiming",
    gain: Any = 1.0,
    bias: str = "zeros",
    bias_scale: float = 1.0,
    output_scheme: str | None = None,
    output_scale: float = 1.0,
    output_bias_scale: float = 1.0,
) -> None:
    """Draw every parameter of `layers` in order, then apply the lecture's scalings.

    scheme: 'kaiming' draws randn * gain / sqrt(fan_in), 'randn' draws randn * gain.
    bias: 'zeros', or 'randn' to draw biases too (the lecture's first network does).
    The last Linear is the output layer and uses `output_scheme`; `output_scale` replaces the
    gain on its weight, or sets the gamma of a BatchNorm after it.
    """
    require("init.scheme", scheme, one_of(SCHEMES))
    output_scheme = require("init.output_scheme", output_scheme or scheme, one_of(SCHEMES))
    require("init.bias", bias, one_of(BIAS_INITS))
    gain = parse_gain(gain)
    linears = [m for m in layers if isinstance(m, Linear)]
    # As in the lecture, "the last layer" is what gets made less confident: the output Linear,
    # or the BatchNorm after it (its gamma), in which case the output Linear gets the gain too.
    output_bn = isinstance(layers[-1], BatchNorm1d)
    for layer in layers:
        if isinstance(layer, Embedding):
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator))
        elif isinstance(layer, Linear):
            is_output = layer is linears[-1]
            w = torch.randn(layer.weight.shape, generator=generator)
            if (output_scheme if is_output else scheme) == "kaiming":
                w = w / layer.weight.shape[0] ** 0.5  # fan_in
            layer.weight.copy_(w * (output_scale if is_output and not output_bn else gain))
            if layer.bias is not None:
                b = torch.randn(layer.bias.shape, generator=generator) if bias == "randn" else 0.0
                layer.bias.copy_(
                    torch.as_tensor(b) * (output_bias_scale if is_output else bias_scale)
                )
    if output_bn:
        layers[-1].gamma.fill_(output_scale)
