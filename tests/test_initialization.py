"""Initialization draws the lecture's random stream and applies its scalings exactly."""

from __future__ import annotations

import math

import pytest
import torch

from makemore_lab.errors import UserError
from makemore_lab.network.gains import parse_gain
from makemore_lab.network.layers import BatchNorm1d, Linear
from makemore_lab.network.model import MLP

SEED = 2147483647
LECTURE_INIT = dict(scheme="randn", gain=1, bias="randn", output_scheme="randn")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, 1.0),
        (0.5, 0.5),
        ("5/3", 5 / 3),
        (" 5 / 3 ", 5 / 3),
        ("tanh", 5 / 3),
        ("relu", math.sqrt(2)),
        ("linear", 1.0),
        ("2.5", 2.5),
        ("3", 3.0),
    ],
)
def test_parse_gain_accepts_numbers_fractions_and_names(value, expected: float) -> None:
    assert parse_gain(value) == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("value", ["abc", "5/0", "0", -1, "-5/3", True, None, "nan", "inf"])
def test_parse_gain_rejects_with_a_message_naming_the_value(value) -> None:
    with pytest.raises(UserError, match=r"init\.gain=.*5/3"):
        parse_gain(value)


def _first_network(g: torch.Generator, batchnorm: bool = False, **init) -> MLP:
    """The lecture's first network (1 x 200 tanh), with LECTURE_INIT updated by `init`."""
    return MLP(
        27,
        n_hidden=200,
        n_layers=1,
        batchnorm=batchnorm,
        output_batchnorm=False,
        init=dict(LECTURE_INIT, **init),
        generator=g,
    )


def _lecture_stream(*shapes: tuple[int, ...]) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(SEED)
    return [torch.randn(s, generator=g) for s in shapes]


def test_lecture_first_network_original_row_draws_C_W1_b1_W2_b2_in_order() -> None:
    net = _first_network(torch.Generator().manual_seed(SEED))
    C, W1, b1, W2, b2 = _lecture_stream((27, 10), (30, 200), (200,), (200, 27), (27,))
    emb, (lin1, _, lin2) = net.embedding, net.layers
    for ours, ref in [
        (emb.weight, C),
        (lin1.weight, W1),
        (lin1.bias, b1),
        (lin2.weight, W2),
        (lin2.bias, b2),
    ]:
        torch.testing.assert_close(ours.detach(), ref, rtol=0, atol=0)


def test_lecture_kaiming_row_scales_each_tensor_and_continues_the_lectures_stream() -> None:
    g = torch.Generator().manual_seed(SEED)
    net = _first_network(
        g, scheme="kaiming", gain="5/3", bias_scale=0.01, output_scale=0.01, output_bias_scale=0.0
    )
    ref_g = torch.Generator().manual_seed(SEED)
    _, W1, b1, W2, _ = (
        torch.randn(s, generator=ref_g) for s in [(27, 10), (30, 200), (200,), (200, 27), (27,)]
    )
    lin1, _, lin2 = net.layers
    torch.testing.assert_close(lin1.weight.detach(), W1 * (5 / 3) / 30**0.5)
    torch.testing.assert_close(lin1.bias.detach(), b1 * 0.01)
    torch.testing.assert_close(lin2.weight.detach(), W2 * 0.01)
    assert torch.count_nonzero(lin2.bias) == 0
    # the next draw (the first batch) comes from the same place in the stream
    assert torch.equal(
        torch.randint(0, 1000, (32,), generator=g), torch.randint(0, 1000, (32,), generator=ref_g)
    )


def test_batchnorm_row_draws_no_hidden_bias() -> None:
    net = _first_network(
        torch.Generator().manual_seed(SEED), batchnorm=True, scheme="kaiming", gain="5/3"
    )
    _, _, W2 = _lecture_stream((27, 10), (30, 200), (200, 27))
    lin1, lin2 = (m for m in net.layers if isinstance(m, Linear))
    assert lin1.bias is None
    torch.testing.assert_close(lin2.weight.detach(), W2)


def test_deep_network_is_the_lectures_layers_and_less_confident_output() -> None:
    net = MLP(
        27, init=dict(gain=1.0, output_scale=0.1), generator=torch.Generator().manual_seed(SEED)
    )
    assert sum(p.numel() for p in net.parameters()) == 47024  # the lecture's count
    C, W1 = _lecture_stream((27, 10), (30, 100))
    torch.testing.assert_close(net.embedding.weight.detach(), C, rtol=0, atol=0)
    torch.testing.assert_close(net.layers[0].weight.detach(), W1 / 30**0.5)
    assert [type(m).__name__ for m in net.layers[:3]] == ["Linear", "BatchNorm1d", "Tanh"]
    assert all(m.bias is None for m in net.layers if isinstance(m, Linear))
    out_bn = net.layers[-1]
    assert isinstance(out_bn, BatchNorm1d)
    torch.testing.assert_close(out_bn.gamma.detach(), torch.full((27,), 0.1))


def test_without_batchnorm_the_output_weight_is_scaled_and_hidden_weights_get_the_gain() -> None:
    g = torch.Generator().manual_seed(SEED)
    net = MLP(
        27,
        n_layers=2,
        batchnorm=False,
        output_batchnorm=False,
        init=dict(gain="5/3", output_scale=0.1),
        generator=g,
    )
    # bias=zeros draws no biases: the stream holds only the embedding and the weights
    _, W1, W2, W3 = _lecture_stream((27, 10), (30, 100), (100, 100), (100, 27))
    lins = [m for m in net.layers if isinstance(m, Linear)]
    torch.testing.assert_close(lins[0].weight.detach(), W1 / 30**0.5 * 5 / 3)
    torch.testing.assert_close(lins[1].weight.detach(), W2 / 10 * 5 / 3)
    torch.testing.assert_close(lins[2].weight.detach(), W3 / 10 * 0.1)
    assert all(torch.count_nonzero(m.bias) == 0 for m in lins)


@pytest.mark.parametrize("key", ["n_hidden", "n_layers", "n_embd", "block_size"])
@pytest.mark.parametrize("value", [0, -3, 2.5])
def test_non_positive_sizes_are_rejected_by_name(key: str, value) -> None:
    with pytest.raises(UserError, match=rf"model\.{key}={value}"):
        MLP(27, **{key: value})


def test_unknown_activation_and_scheme_are_rejected_with_the_choices() -> None:
    with pytest.raises(UserError, match=r"model\.activation='sigmoid'.*tanh, relu or identity"):
        MLP(27, activation="sigmoid")
    with pytest.raises(UserError, match=r"init\.scheme='xavier'.*kaiming or randn"):
        MLP(27, init=dict(scheme="xavier"))
