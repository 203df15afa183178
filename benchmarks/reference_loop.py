"""The lecture's training loop, transcribed: the yardstick `benchmarks.bench` measures against.

Plain tensors and the notebook's own layer classes (no nn.Module, no Lightning), the update
`p.data += -lr * p.grad`, and `lossi.append(loss.log10().item())` on every step as the notebook
does. Only the debugging lines (`retain_grad` on every layer, the update:data list) are left
out, as the lecture itself says to do once the network trains. An importable module, not a
command: `from benchmarks import reference_loop`, then `reference_loop.steps_per_second(...)`.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F


class Linear:
    """The notebook's `Linear`: a weight scaled by 1/sqrt(fan_in), an optional bias."""

    def __init__(self, fan_in: int, fan_out: int, g: torch.Generator, bias: bool = True) -> None:
        self.weight = torch.randn((fan_in, fan_out), generator=g) / fan_in**0.5
        self.bias = torch.zeros(fan_out) if bias else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.out = x @ self.weight
        if self.bias is not None:
            self.out += self.bias
        return self.out

    def parameters(self) -> list[torch.Tensor]:
        return [self.weight] + ([] if self.bias is None else [self.bias])


class BatchNorm1d:
    """The notebook's `BatchNorm1d`: batch statistics in training, running ones otherwise."""

    def __init__(self, dim: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        self.eps, self.momentum, self.training = eps, momentum, True
        self.gamma, self.beta = torch.ones(dim), torch.zeros(dim)
        self.running_mean, self.running_var = torch.zeros(dim), torch.ones(dim)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            xmean, xvar = x.mean(0, keepdim=True), x.var(0, keepdim=True)
        else:
            xmean, xvar = self.running_mean, self.running_var
        xhat = (x - xmean) / torch.sqrt(xvar + self.eps)
        self.out = self.gamma * xhat + self.beta
        if self.training:
            with torch.no_grad():
                m = self.momentum
                self.running_mean = (1 - m) * self.running_mean + m * xmean
                self.running_var = (1 - m) * self.running_var + m * xvar
        return self.out

    def parameters(self) -> list[torch.Tensor]:
        return [self.gamma, self.beta]


class BatchNormStd:
    """The lecture's first BatchNorm ("add batch norm layer"): divide by the batch std, keep a
    running mean and std with momentum 0.001 (`bnmean_running = 0.999 * ... + 0.001 * ...`)."""

    def __init__(self, dim: int) -> None:
        self.gamma, self.beta = torch.ones((1, dim)), torch.zeros((1, dim))
        self.running_mean, self.running_std = torch.zeros((1, dim)), torch.ones((1, dim))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        bnmeani, bnstdi = x.mean(0, keepdim=True), x.std(0, keepdim=True)
        self.out = self.gamma * (x - bnmeani) / bnstdi + self.beta
        with torch.no_grad():
            self.running_mean = 0.999 * self.running_mean + 0.001 * bnmeani
            self.running_std = 0.999 * self.running_std + 0.001 * bnstdi
        return self.out

    def parameters(self) -> list[torch.Tensor]:
        return [self.gamma, self.beta]


class Tanh:
    """The notebook's `Tanh`, keeping its output in `.out` as the lecture's layers do."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.out = torch.tanh(x)
        return self.out

    def parameters(self) -> list[torch.Tensor]:
        return []


def build(network: str, vocab_size: int, g: torch.Generator, device: str) -> tuple:
    """The lecture's deep network (5 x 100, BatchNorm), its first MLP (one layer of 200), or
    that MLP with the lecture's first BatchNorm (`batchnorm`: the ablation's last row)."""
    n_embd, block_size = 10, 3
    C = torch.randn((vocab_size, n_embd), generator=g)
    if network == "deep":
        layers: list = [Linear(n_embd * block_size, 100, g, bias=False), BatchNorm1d(100), Tanh()]
        for _ in range(4):
            layers += [Linear(100, 100, g, bias=False), BatchNorm1d(100), Tanh()]
        layers += [Linear(100, vocab_size, g, bias=False), BatchNorm1d(vocab_size)]
    elif network == "batchnorm":
        hidden = [Linear(n_embd * block_size, 200, g, bias=False), BatchNormStd(200)]
        layers = [*hidden, Tanh(), Linear(200, vocab_size, g)]
    else:
        layers = [Linear(n_embd * block_size, 200, g), Tanh(), Linear(200, vocab_size, g)]
    for layer in layers:  # to the device, as the notebook would with .to(device) everywhere
        for name, value in vars(layer).items():
            if isinstance(value, torch.Tensor):
                setattr(layer, name, value.to(device))
    C = C.to(device)
    parameters = [C] + [p for layer in layers for p in layer.parameters()]
    for p in parameters:
        p.requires_grad = True
    return C, layers, parameters


def steps_per_second(
    x: torch.Tensor,
    y: torch.Tensor,
    network: str,
    vocab_size: int,
    steps: int,
    warmup: int,
    batch_size: int = 32,
) -> float:
    """Train `warmup + steps` steps of the lecture's loop; steps/s over the last `steps`."""
    g = torch.Generator().manual_seed(2147483647)
    C, layers, parameters = build(network, vocab_size, g, str(x.device))
    lossi: list[float] = []
    start = time.perf_counter()
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        ix = torch.randint(0, x.shape[0], (batch_size,), generator=g).to(x.device)
        Xb, Yb = x[ix], y[ix]
        emb = C[Xb]
        h = emb.view(emb.shape[0], -1)
        for layer in layers:
            h = layer(h)
        loss = F.cross_entropy(h, Yb)
        for p in parameters:
            p.grad = None
        loss.backward()
        lr = 0.1 if i < 150000 else 0.01
        for p in parameters:
            p.data += -lr * p.grad
        lossi.append(loss.log10().item())
    return steps / (time.perf_counter() - start)
