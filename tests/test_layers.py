"""The hand-written layers compute exactly what torch's own modules compute."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from makemore_lab.network.layers import BatchNorm1d, Embedding, Identity, Linear, ReLU, Tanh

TOL = dict(rtol=1e-5, atol=1e-6)
# Parameter gradients of BatchNorm sum over the batch (and here over three steps) in another
# order than torch's fused kernel: float32 rounding then differs by a few 1e-6 relative.
PARAM_GRAD_TOL = dict(rtol=1e-4, atol=1e-5)


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """The same global random state in every test, whatever ran before it."""
    torch.manual_seed(0)


def _inputs(*shape: int, seed: int = 0) -> torch.Tensor:
    return (
        torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 3 + 1
    ).requires_grad_()


def test_linear_matches_functional_linear_forward_and_backward() -> None:
    layer = Linear(7, 5)
    nn.init.normal_(layer.weight)
    nn.init.normal_(layer.bias)
    x = _inputs(4, 7)
    x2 = x.detach().clone().requires_grad_()
    w2, b2 = (
        layer.weight.detach().clone().requires_grad_(),
        layer.bias.detach().clone().requires_grad_(),
    )
    out, ref = layer(x), F.linear(x2, w2.T, b2)
    torch.testing.assert_close(out, ref, **TOL)
    grad = torch.randn_like(out)
    out.backward(grad)
    ref.backward(grad)
    for a, b in [(x.grad, x2.grad), (layer.weight.grad, w2.grad), (layer.bias.grad, b2.grad)]:
        torch.testing.assert_close(a, b, **TOL)


def test_linear_without_bias_has_no_bias_parameter() -> None:
    layer = Linear(3, 2, bias=False)
    assert layer.bias is None and [n for n, _ in layer.named_parameters()] == ["weight"]


def test_embedding_matches_functional_embedding() -> None:
    emb = Embedding(27, 10)
    nn.init.normal_(emb.weight)
    idx = torch.tensor([[0, 5, 26], [3, 3, 1]])
    out = emb(idx)
    torch.testing.assert_close(out, F.embedding(idx, emb.weight), rtol=0, atol=0)
    out.sum().backward()
    ref_w = emb.weight.detach().clone().requires_grad_()
    F.embedding(idx, ref_w).sum().backward()
    torch.testing.assert_close(emb.weight.grad, ref_w.grad, rtol=0, atol=0)


@pytest.mark.parametrize("momentum", [0.1, 0.3])
def test_batchnorm_biased_option_is_torch_batchnorm1d_in_train_and_eval(momentum: float) -> None:
    ours = BatchNorm1d(6, eps=1e-5, momentum=momentum, unbiased=False)
    ref = nn.BatchNorm1d(6, eps=1e-5, momentum=momentum)
    with torch.no_grad():
        for p in (ours.gamma, ref.weight):
            p.copy_(torch.linspace(0.5, 2.0, 6))
        for p in (ours.beta, ref.bias):
            p.copy_(torch.linspace(-1.0, 1.0, 6))
    for step in range(3):  # several steps, so the running statistics accumulate
        x = _inputs(32, 6, seed=step)
        x2 = x.detach().clone().requires_grad_()
        out, out_ref = ours(x), ref(x2)
        torch.testing.assert_close(out, out_ref, **TOL)
        # Seeded: the global generator's state depends on which tests ran before this one.
        grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(100 + step))
        out.backward(grad)
        out_ref.backward(grad)
        torch.testing.assert_close(x.grad, x2.grad, **TOL)
    torch.testing.assert_close(ours.gamma.grad, ref.weight.grad, **PARAM_GRAD_TOL)
    torch.testing.assert_close(ours.beta.grad, ref.bias.grad, **PARAM_GRAD_TOL)
    torch.testing.assert_close(ours.running_mean, ref.running_mean, **TOL)
    torch.testing.assert_close(ours.running_var, ref.running_var, **TOL)
    ours.eval()
    ref.eval()
    x = _inputs(10, 6, seed=9)
    torch.testing.assert_close(ours(x), ref(x), **TOL)


def test_batchnorm_default_is_the_lectures_unbiased_variance() -> None:
    bn = BatchNorm1d(4)  # the lecture's class: x.var(0) (unbiased) both to normalise and to track
    x = _inputs(8, 4)
    out = bn(x)
    mean, var = x.mean(0, keepdim=True), x.var(0, keepdim=True)
    torch.testing.assert_close(out, (x - mean) / torch.sqrt(var + 1e-5), **TOL)
    torch.testing.assert_close(bn.running_var, 0.9 * torch.ones(4) + 0.1 * var.squeeze(0), **TOL)
    # ...which is not torch's normalisation: the two options really differ.
    ref = nn.BatchNorm1d(4)(x)
    assert not torch.allclose(out, ref, **TOL)
    torch.testing.assert_close(
        out,
        F.batch_norm(x, None, None, training=True, eps=1e-5) * (7 / 8) ** 0.5,
        rtol=1e-3,
        atol=1e-3,
    )


def test_batchnorm_running_std_is_the_lectures_first_network() -> None:
    bn = BatchNorm1d(5, eps=0.0, momentum=0.001, running="std")
    x = _inputs(32, 5)
    out = bn(x)
    std = x.std(0, keepdim=True)
    torch.testing.assert_close(out, (x - x.mean(0, keepdim=True)) / std, rtol=0, atol=1e-6)
    torch.testing.assert_close(
        bn.running_std, 0.999 * torch.ones(5) + 0.001 * std.squeeze(0), **TOL
    )
    bn.eval()
    y = _inputs(3, 5, seed=1)
    torch.testing.assert_close(bn(y), (y - bn.running_mean) / bn.running_std, **TOL)


def test_batchnorm_running_stats_are_buffers_that_survive_a_state_dict_round_trip(tmp_path) -> None:
    bn = BatchNorm1d(3)
    bn(_inputs(16, 3))
    assert {n for n, _ in bn.named_buffers()} == {"running_mean", "running_var"}
    torch.save(bn.state_dict(), tmp_path / "bn.pt")
    fresh = BatchNorm1d(3)
    fresh.load_state_dict(torch.load(tmp_path / "bn.pt"))
    torch.testing.assert_close(fresh.running_var, bn.running_var, rtol=0, atol=0)
    assert not torch.equal(fresh.running_var, torch.ones(3))


@pytest.mark.parametrize(
    ("ours", "ref"), [(Tanh(), torch.tanh), (ReLU(), F.relu), (Identity(), lambda t: t)]
)
def test_activations_match_torch(ours: nn.Module, ref) -> None:
    x = _inputs(5, 4)
    x2 = x.detach().clone().requires_grad_()
    out, out_ref = ours(x), ref(x2)
    torch.testing.assert_close(out, out_ref, rtol=0, atol=0)
    out.sum().backward()
    out_ref.sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, rtol=0, atol=0)
