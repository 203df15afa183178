"""The lecture's optimizer: the lecture's arithmetic, bit for bit."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from makemore_lab.network.optim import LectureSGD, direct_update
from makemore_lab.train import train


def test_lecture_sgd_is_p_data_plus_equals_minus_lr_times_grad() -> None:
    g = torch.Generator().manual_seed(0)
    p = torch.nn.Parameter(torch.randn(1000, generator=g))
    p.grad = torch.randn(1000, generator=g) * 1e3
    expected = p.detach().clone()
    expected += -0.1 * p.grad
    LectureSGD([p], lr=0.1).step()
    assert torch.equal(p.detach(), expected)
    # torch.optim.SGD rounds the same update differently: the reason this class exists
    q = torch.nn.Parameter(expected.clone() + 0.1 * p.grad)
    q.grad = p.grad.clone()
    torch.optim.SGD([q], lr=0.1).step()
    assert not torch.equal(q.detach(), expected)


def test_original_preset_follows_the_lectures_loop_bit_for_bit(make_cfg, real_names: Path) -> None:
    # The notebook's loop for its first network ("original" row), 300 steps, written out here.
    words = real_names.read_text().splitlines()
    chars = sorted(set("".join(words)))
    stoi = {s: i + 1 for i, s in enumerate(chars)} | {".": 0}
    random.seed(42)
    random.shuffle(words)
    xs, ys = [], []
    for w in words[: int(0.8 * len(words))]:
        context = [0] * 3
        for ch in w + ".":
            xs.append(context)
            ys.append(stoi[ch])
            context = context[1:] + [stoi[ch]]
    Xtr, Ytr = torch.tensor(xs), torch.tensor(ys)
    g = torch.Generator().manual_seed(2147483647)
    C = torch.randn((27, 10), generator=g)
    W1 = torch.randn((30, 200), generator=g)
    b1 = torch.randn(200, generator=g)
    W2 = torch.randn((200, 27), generator=g)
    b2 = torch.randn(27, generator=g)
    parameters = [C, W1, b1, W2, b2]
    for p in parameters:
        p.requires_grad = True
    for _ in range(300):
        ix = torch.randint(0, Xtr.shape[0], (32,), generator=g)
        h = torch.tanh(C[Xtr[ix]].view(32, -1) @ W1 + b1)
        loss = F.cross_entropy(h @ W2 + b2, Ytr[ix])
        for p in parameters:
            p.grad = None
        loss.backward()
        for p in parameters:
            p.data += -0.1 * p.grad

    cfg = make_cfg("experiment=original", "trainer.max_steps=300", "logger=csv", data=real_names)
    train(cfg)
    state = torch.load(Path(cfg.run_dir) / "checkpoints" / "last.ckpt", weights_only=True)[
        "state_dict"
    ]
    ours = [
        state[k]
        for k in (
            "net.embedding.weight",
            "net.layers.0.weight",
            "net.layers.0.bias",
            "net.layers.2.weight",
            "net.layers.2.bias",
        )
    ]
    for mine, lecture in zip(ours, parameters, strict=True):
        assert torch.equal(mine, lecture.detach())


def test_foreach_updates_are_the_per_tensor_updates_bit_for_bit() -> None:
    # `foreach: true` (the default in conf/optim/) is a speed setting, never a numerical one.
    g = torch.Generator().manual_seed(0)
    shapes = [(27, 10), (30, 100), (100,), (100, 27)]
    for make in (
        lambda ps, fe: LectureSGD(ps, lr=0.1, foreach=fe),
        lambda ps, fe: torch.optim.SGD(ps, lr=0.1, foreach=fe),
    ):
        start = [torch.randn(s, generator=g) for s in shapes]
        grads = [torch.randn(s, generator=g) * 10 for s in shapes]
        results = []
        for foreach in (True, False):
            params = [torch.nn.Parameter(t.clone()) for t in start]
            for p, grad in zip(params, grads, strict=True):
                p.grad = grad.clone()
            make(params, foreach).step()
            results.append(params)
        assert all(torch.equal(a, b) for a, b in zip(*results, strict=True))


def test_direct_update_is_the_optimizers_step_bit_for_bit() -> None:
    # Unwatched training steps call `direct_update(optimizer)()` instead of `optimizer.step()`.
    g = torch.Generator().manual_seed(1)
    shapes = [(27, 10), (30, 100), (100,)]
    start = [torch.randn(s, generator=g) for s in shapes]
    grads = [torch.randn(s, generator=g) * 10 for s in shapes]
    for make in (
        lambda ps: LectureSGD(ps, lr=0.1),
        lambda ps: torch.optim.SGD(ps, lr=0.1, foreach=True),
        lambda ps: torch.optim.SGD(ps, lr=0.1),
    ):
        results = []
        for direct in (False, True):
            params = [torch.nn.Parameter(t.clone()) for t in start]
            for p, grad in zip(params, grads, strict=True):
                p.grad = grad.clone()
            optimizer = make(params)
            update = direct_update(optimizer)
            assert update is not None
            update() if direct else optimizer.step()
            results.append(params)
        assert all(torch.equal(a, b) for a, b in zip(*results, strict=True))


def test_direct_update_leaves_other_optimizers_to_their_own_step() -> None:
    params = [torch.nn.Parameter(torch.zeros(3))]
    assert direct_update(torch.optim.SGD(params, lr=0.1, momentum=0.9)) is None
    assert direct_update(torch.optim.SGD(params, lr=0.1, weight_decay=1e-4)) is None
    assert direct_update(torch.optim.Adam(params, lr=0.1)) is None


def test_a_scheduler_after_a_direct_update_does_not_warn() -> None:
    # torch warns when `scheduler.step()` seems to come before any `optimizer.step()`.
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.ones(3)
    optimizer = torch.optim.SGD([p], lr=0.1)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[1], gamma=0.1)
    direct_update(optimizer)()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01)
