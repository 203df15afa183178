"""CUDA graphs on the training path: what can be captured, and how each step's kind is keyed.

A graph replays the kernels it recorded with the Python values they had, so the training path
captures one graph per kind of step (`StepUpdate.key`) and the optimizer's device work must
read nothing else that changes from step to step. That is checked here on the CPU by applying
one step's device work again at later steps of the same kind: it must give what the eager
steps give, bit for bit. The captures themselves run on a GPU (tests/test_gpu.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch

from makemore_lab.errors import UserError
from makemore_lab.network.model import MLP
from makemore_lab.network.optim import LectureSGD, plain_update
from makemore_lab.stacked.module import StackedModule
from makemore_lab.stacked.network import StackedMLP, job_losses
from makemore_lab.stacked.sgd import JobSGD, StackedSGD
from makemore_lab.train import prepare_job, train, train_jobs
from makemore_lab.training import graphs as graphs_module
from makemore_lab.training.graphs import StepGraphs

VOCAB = 27


def stacked(lecture: bool, jobs: list[JobSGD]) -> tuple[StackedMLP, StackedSGD]:
    nets = [
        MLP(VOCAB, n_hidden=16, n_layers=2, generator=torch.Generator().manual_seed(i))
        for i in range(len(jobs))
    ]
    net = StackedMLP.from_networks(nets)
    return net, StackedSGD(net, jobs, lecture=lecture)


def backward(net: StackedMLP, step: int) -> None:
    g = torch.Generator().manual_seed(step)
    x = torch.randint(0, VOCAB, (net.jobs, 8, 3), generator=g)
    y = torch.randint(0, VOCAB, (net.jobs, 8), generator=g)
    for p in net.parameters():
        p.grad = None
    job_losses(net, x, y).sum().backward()


@pytest.mark.parametrize("lecture", [True, False], ids=["lecture-sgd", "torch-sgd"])
@pytest.mark.parametrize("rates", [(0.1, 0.1), (0.1, 0.05)], ids=["one-rate", "own-rates"])
def test_a_stacked_steps_kind_replayed_is_each_eager_step_bit_for_bit(lecture, rates) -> None:
    # Steps 0-5, a milestone at 3, job 1 frozen from step 4: three kinds of step.
    jobs = [JobSGD(r, milestones=(3,)) for r in rates]
    (eager, eager_sgd), (replayed, replayed_sgd) = stacked(lecture, jobs), stacked(lecture, jobs)
    kinds: dict = {}
    for step in range(6):
        if step == 4:
            eager_sgd.freeze([1])
            replayed_sgd.freeze([1])
        backward(eager, step)
        eager_sgd.update()
        backward(replayed, step)
        update = replayed_sgd.next_update()
        kinds.setdefault(update.key, update).apply()  # the first step of its kind's device work
        update.done()
    assert len(kinds) == 3  # the rates before the milestone, after it, and with job 1 frozen
    assert replayed_sgd.param_groups[0]["steps_done"] == 6
    for a, b in zip(eager.parameters(), replayed.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "make", [lambda ps: LectureSGD(ps, lr=0.1), lambda ps: torch.optim.SGD(ps, lr=0.1)]
)
def test_a_solo_steps_kind_is_its_learning_rate(make) -> None:
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(50))
    optimizer = make([p])
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[2], gamma=0.1)
    next_update = plain_update(optimizer)
    assert next_update is not None
    keys = []
    for _ in range(4):
        p.grad = torch.ones(50)
        update = next_update()
        update.apply()
        update.done()
        schedule.step()
        keys.append(update.key)
    assert keys == [(0.1,), (0.1,), (0.1 * 0.1,), (0.1 * 0.1,)]


def test_optimizers_whose_steps_keep_host_state_are_not_captured() -> None:
    p = torch.nn.Parameter(torch.zeros(3))
    assert plain_update(torch.optim.Adam([p])) is None
    assert plain_update(torch.optim.SGD([p], lr=0.1, momentum=0.9)) is None
    _, sgd = stacked(False, [JobSGD(0.1), JobSGD(0.1, momentum=0.9)])
    assert sgd.capture_refusal() == (
        "job #1 uses momentum, weight decay or maximize (plain SGD only)"
    )
    assert stacked(False, [JobSGD(0.1), JobSGD(0.2)])[1].capture_refusal() is None


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def test_a_cpu_run_says_its_steps_ran_eagerly_and_why(make_cfg, tmp_path: Path) -> None:
    train(make_cfg(f"run_dir={tmp_path / 'default'}"))
    assert metrics(tmp_path / "default")["cuda_graphs"] == (
        "eager: the trainer runs on cpu (CUDA graphs need trainer=gpu)"
    )
    train(make_cfg("cuda_graphs=false", f"run_dir={tmp_path / 'off'}"))
    assert metrics(tmp_path / "off")["cuda_graphs"] == "eager: cuda_graphs=false"


class Refusal(L.Callback):
    """What the module says of its own steps once training starts (on a GPU, what decides)."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.said = pl_module.graph_refusal()


@pytest.mark.parametrize(
    ("optim", "reason"),
    [
        ("optim=sgd", None),
        ("optim=lecture_sgd", None),
        ("optim=adam", "optim.optimizer is Adam with these settings (plain SGD only)"),
        ("+optim.optimizer.momentum=0.9", "optim.optimizer is SGD with these settings"),
    ],
)
def test_a_solo_run_captures_plain_sgd_and_names_any_other_optimizer(
    make_cfg, optim, reason
) -> None:
    refusal = Refusal()
    train_jobs([prepare_job(make_cfg(optim))], extra_callbacks=[refusal])
    assert refusal.said == reason if reason is None else refusal.said.startswith(reason)


def test_a_capture_torch_refuses_stops_the_run_naming_the_cause_and_the_way_on(
    monkeypatch,
) -> None:
    # No CUDA here: the stream and graph are stand-ins, and the capture fails as torch's does
    # when a captured op is not allowed (the body's error under the capture's own).
    class Capture:
        def __enter__(self) -> None:
            try:
                raise RuntimeError("operation not permitted when stream is capturing")
            except RuntimeError:
                raise RuntimeError("CUDA error: operation failed due to a previous error")  # noqa: B904

        def __exit__(self, *exc: object) -> None:
            pass

    monkeypatch.setattr(graphs_module, "FAILED", [])
    monkeypatch.setattr(torch.cuda, "Stream", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", lambda: None)
    monkeypatch.setattr(torch.cuda, "graph", lambda graph: Capture())
    net, sgd = stacked(True, [JobSGD(0.1), JobSGD(0.1)])
    module = StackedModule(net, sgd.jobs, True, [torch.Generator()] * 2, [[], []])
    graphs = StepGraphs(module)
    with pytest.raises(UserError) as raised:
        graphs._capture(sgd.next_update())
    said = str(raised.value)
    assert "(operation not permitted when stream is capturing)" in said
    assert "cuda_graphs=false" in said and "resume=true" in said and "\n" not in said

    class OnCuda:  # a later group of the same sweep process, whose steps could be captured
        device = torch.device("cuda")

        def graph_refusal(self) -> None:
            return None

    with pytest.raises(UserError, match="operation not permitted when stream is capturing"):
        graphs_module.start_graphs(OnCuda(), lean=object(), enabled=True)
