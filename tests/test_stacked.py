"""Stacked jobs are each itself: N networks trained as one give each job's solo run, bit for bit.

The reference is `train()` itself, one job at a time; the stacked side is the driver's own
path for a group (`train_jobs`: the stacked engine, the chunk loop, the chunk stream), so what
is checked is the code that trains.
"""

from __future__ import annotations

import copy
import csv
import json
import signal
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelSummary, ProgressBar

from conftest import resolved
from makemore_lab.data.chunks import ChunkStream
from makemore_lab.dynamics.callback import OutputCapture
from makemore_lab.dynamics.stats import WeightStep, collect, to_numbers
from makemore_lab.errors import RunInterrupted
from makemore_lab.network.layers import layer_kind
from makemore_lab.network.model import MLP
from makemore_lab.runs.job import Job
from makemore_lab.stacked.engine import StackedEngine
from makemore_lab.stacked.network import StackedMLP, job_losses
from makemore_lab.stacked.sgd import JobSGD, StackedSGD
from makemore_lab.train import prepare_job, train, train_jobs
from test_resume import SignalAt, assert_same, checkpoint_state

STEPS, CHUNK = 30, 5
# Three jobs of one stacking group: they differ in gain, seed and learning rate, and the
# learning rate decays in the middle of the run.
JOBS = [["init.gain=1"], ["init.gain=5/3", "seed=7"], ["init.gain=3", "optim.lr=0.05"]]


def configs(make_cfg, tmp_path: Path, *overrides: str) -> list:
    settings = [
        f"trainer.max_steps={STEPS}",
        f"data.chunk_size={CHUNK}",
        "optim.decay_step=12",
        "logger=csv",
        "callbacks.dynamics.every_n_steps=1000",
        *overrides,
    ]
    return [
        make_cfg(*settings, *job, f"run_dir={tmp_path / f'solo{i}'}") for i, job in enumerate(JOBS)
    ]


def stacked_group(cfgs: list) -> tuple[StackedMLP, list[torch.Generator], list[MLP], object]:
    """The group's networks, each drawn from its own generator as its solo run draws it."""
    generators = [torch.Generator().manual_seed(c.seed) for c in cfgs]
    dm = instantiate(cfgs[0].data)
    dm.setup("fit")
    nets = [
        instantiate(c.model, vocab_size=dm.vocab.size, init=c.init, generator=g, _convert_="all")
        for c, g in zip(cfgs, generators, strict=True)
    ]
    return StackedMLP.from_networks(nets), generators, nets, dm


def train_stacked(cfgs: list, tmp_path: Path) -> list[dict]:
    """The same jobs as one stacked group through the driver, in directories of their own;
    each job's metrics."""
    group = [copy.deepcopy(c) for c in cfgs]
    for i, cfg in enumerate(group):
        cfg.run_dir = str(tmp_path / f"stacked{i}")  # its checkpoints and statistics follow
    return train_jobs([Job(resolved(c)) for c in group])


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    return ckpt["state_dict"]


@pytest.mark.parametrize(
    ("optim", "network"),
    [("sgd", "model=deep"), ("lecture_sgd", "model=deep"), ("lecture_sgd", "experiment=original")],
)
def test_each_stacked_job_ends_with_its_solo_runs_weights_bit_for_bit(
    make_cfg, tmp_path: Path, optim: str, network: str
) -> None:
    cfgs = configs(make_cfg, tmp_path, network, f"optim={optim}")
    for cfg in cfgs:
        train(cfg)
    train_stacked(cfgs, tmp_path)
    for job, cfg in enumerate(cfgs):
        solo, stacked = weights(Path(cfg.run_dir)), weights(tmp_path / f"stacked{job}")
        assert stacked.keys() == solo.keys()
        for name, value in solo.items():
            assert torch.equal(stacked[name], value), (job, name)


def test_per_job_statistics_of_the_stacked_step_0_are_the_solo_runs(make_cfg, tmp_path) -> None:
    cfgs = configs(make_cfg, tmp_path, "trainer.max_steps=1", "model.n_layers=2")
    for cfg in cfgs:
        train(cfg)
    model, generators, _, dm = stacked_group(cfgs)
    optimizer = StackedSGD(model, [JobSGD(c.optim.lr) for c in cfgs])
    layers = {str(i): m for i, m in enumerate(model.layers)}
    weights = model.weights()
    x, y = dm.splits["train"]
    xs, ys, _ = ChunkStream(x, y, cfgs[0].data.batch_size, generators, 1).draw(1)
    # Step 0 by hand, as the dynamics callback sees it: outputs and their gradients through
    # hooks, the weights' gradients and values around the update.
    capture = OutputCapture()
    capture.arm(layers)
    before = {n: w.detach().clone() for n, (_, w) in weights.items()}
    job_losses(model, xs[:, 0], ys[:, 0]).sum().backward()
    grads = {n: w.grad.detach().clone() for n, (_, w) in weights.items()}
    optimizer.step()
    capture.disarm()
    steps = {n: WeightStep(k, grads[n], before[n], w.detach()) for n, (k, w) in weights.items()}
    kinds = {n: layer_kind(m) for n, m in layers.items()}
    stats = collect(capture.outputs, capture.grads, kinds, steps, 0.97)
    values = to_numbers(stats)  # one list per statistic, one value per job
    for job, cfg in enumerate(cfgs):
        with (Path(cfg.run_dir) / "dynamics.csv").open() as f:
            solo = {(r["layer"], r["stat"]): float(r["value"]) for r in csv.DictReader(f)}
        stacked = {(s.layer, s.name): row[job] for s, row in zip(stats, values, strict=True)}
        assert stacked.keys() == solo.keys()
        for key, value in solo.items():
            assert stacked[key] == pytest.approx(value, rel=1e-6, abs=1e-9), (job, key)


def test_a_diverging_job_is_frozen_and_the_others_train_on(make_cfg, tmp_path: Path) -> None:
    cfgs = configs(make_cfg, tmp_path, "model.batchnorm=false", "model.activation=identity")
    cfgs[1].optim.lr = 1e6  # job 1 blows up within a few steps
    cfgs[2].init.gain = 1  # a linear network that trains
    for job in (0, 2):
        train(cfgs[job])
    metrics = train_stacked(cfgs, tmp_path)
    assert [m["status"] for m in metrics] == ["completed", "diverged", "completed"]
    for job in (0, 2):
        solo, stacked = weights(Path(cfgs[job].run_dir)), weights(tmp_path / f"stacked{job}")
        for name, value in solo.items():
            assert torch.equal(stacked[name], value), name


EXACT = ("train_loss", "val_loss", "test_loss", "steps", "status")
LECTURE_ROWS = ["original", "fix_softmax", "fix_tanh_saturation", "kaiming", "batchnorm"]
# Deep networks with other layers at one place: BatchNorm (in two forms) or none, and each
# activation; torch's SGD with momentum and each job's own rate, so each job's update runs on
# its own rows of a parameter only some jobs have.
MIXED = [
    ["model.batchnorm=true", "+optim.optimizer.momentum=0.9"],
    ["model.batchnorm=false", "model.activation=relu", "+optim.optimizer.momentum=0.9"],
    ["model.bn.eps=0", "model.bn.running=std", "model.output_batchnorm=false", "seed=3"],
    ["model.activation=identity", "optim.lr=0.05", "+optim.optimizer.momentum=0.9"],
]


@pytest.mark.parametrize(
    "jobs",
    [
        [[f"experiment={row}"] for row in LECTURE_ROWS],
        [[f"experiment={row}", f"optim.lr={0.1 - 0.01 * i}"] for i, row in enumerate(LECTURE_ROWS)],
        [["optim=sgd", "model.n_layers=2", *job] for job in MIXED],
    ],
    ids=["lecture-rows", "lecture-rows-own-rates", "deep-mixed-momentum"],
)
def test_jobs_with_other_norm_and_activation_layers_stack_each_bit_for_bit(
    make_cfg, tmp_path: Path, jobs: list[list[str]]
) -> None:
    """One group of networks that differ in their BatchNorm and activation layers: each job's
    weights, buffers, losses, samples and statistics are its solo run's."""
    common = [f"trainer.max_steps={STEPS}", f"data.chunk_size={CHUNK}", "optim.decay_step=12"]
    common += ["logger=csv", "callbacks.dynamics.every_n_steps=10"]
    cfgs = [
        make_cfg(*common, *job, f"run_dir={tmp_path / f'solo{i}'}") for i, job in enumerate(jobs)
    ]
    for cfg in cfgs:
        train(cfg)
    metrics = train_stacked(cfgs, tmp_path)
    assert all(m["stacked_group"]["jobs"] == len(jobs) for m in metrics)
    for job, cfg in enumerate(cfgs):
        solo_dir, stacked_dir = Path(cfg.run_dir), tmp_path / f"stacked{job}"
        solo, stacked = weights(solo_dir), weights(stacked_dir)
        assert stacked.keys() == solo.keys()
        for name, value in solo.items():
            assert torch.equal(stacked[name], value), (job, name)
        a, b = (json.loads((d / "metrics.json").read_text()) for d in (solo_dir, stacked_dir))
        assert [a[k] for k in EXACT] == [b[k] for k in EXACT], job
        assert b["step0_loss"] == pytest.approx(a["step0_loss"], rel=1e-6)  # as documented
        for name in ("samples.txt", "dynamics.csv"):
            assert (solo_dir / name).read_text() == (stacked_dir / name).read_text(), (job, name)


def test_a_group_of_other_layers_stopped_midway_resumes_each_job_exactly(
    make_cfg, tmp_path: Path
) -> None:
    """SIGTERM at half way, then resume=true: each job's checkpoint (weights, BatchNorm buffers,
    momentum, schedule) is its uninterrupted solo run's, bit for bit."""
    common = [f"trainer.max_steps={STEPS}", f"data.chunk_size={CHUNK}", "optim.decay_step=25"]
    common += ["logger=csv", "optim=sgd", "model.n_layers=2"]

    def group(resume: bool) -> list[Job]:
        again = ["resume=true"] if resume else []
        cfgs = [
            make_cfg(*common, *job, *again, f"run_dir={tmp_path / f'stacked{i}'}")
            for i, job in enumerate(MIXED)
        ]
        return [prepare_job(cfg) for cfg in cfgs]

    with pytest.raises(RunInterrupted):
        train_jobs(group(resume=False), [SignalAt(STEPS // 2, signal.SIGTERM)])
    resumed = train_jobs(group(resume=True))
    (stopped_at,) = {m["resumed_from_step"] for m in resumed}  # the chunk after the signal
    assert STEPS // 2 <= stopped_at < 25
    for i, job in enumerate(MIXED):
        solo_dir = tmp_path / f"solo{i}"
        train(make_cfg(*common, *job, f"run_dir={solo_dir}"))
        a = checkpoint_state(solo_dir / "checkpoints" / "last.ckpt")
        b = checkpoint_state(tmp_path / f"stacked{i}" / "checkpoints" / "last.ckpt")
        assert_same(b, a)


def test_only_networks_whose_linear_layers_have_the_same_shapes_stack() -> None:
    with pytest.raises(ValueError, match="Linear layers have the same shapes"):
        StackedMLP.from_networks([MLP(11, n_hidden=20), MLP(11, n_hidden=30)])
    with pytest.raises(ValueError, match="Linear layers have the same shapes"):
        StackedMLP.from_networks([MLP(11, n_layers=2), MLP(11, n_layers=3)])


def test_a_layer_some_jobs_lack_passes_their_rows_through() -> None:
    """BatchNorm on and off, tanh and ReLU: positions a job lacks leave its rows unchanged,
    and each job's state comes back under its solo names."""
    nets = [
        MLP(11, n_layers=1),
        MLP(11, n_layers=1, batchnorm=False, output_batchnorm=False, activation="relu"),
    ]
    group = StackedMLP.from_networks(nets)
    assert group.layout.positions == [
        [(0, 0), (1, 0)],
        [(0, 1)],
        [(0, 2)],
        [(1, 1)],
        [(0, 3), (1, 2)],
        [(0, 4)],
    ]
    x = torch.randint(0, 11, (2, 32, 3))
    logits = group(x)
    for job, net in enumerate(nets):
        assert torch.equal(logits[job], net(x[job]))
        assert group.network_state(job).keys() == net.state_dict().keys()
    assert group.layout.layer_names(1) == {"embedding": "embedding", "0": "0", "3": "1", "4": "2"}


def test_groups_side_by_side_draw_no_live_display(make_cfg, tmp_path: Path) -> None:
    # Two processes redrawing rich bars on one terminal garble each other's lines.
    cfgs = [
        make_cfg(f"init.gain={gain}", "logger=csv", f"run_dir={tmp_path / gain}", fast=False)
        for gain in ("1", "3")
    ]  # the default display: the rich bar and the model table
    cfgs = [resolved(c) for c in cfgs]
    for live in (True, False):
        trainer = StackedEngine.build([Job(c) for c in cfgs], live_display=live).trainer
        assert any(isinstance(c, ProgressBar) for c in trainer.callbacks) is live
        assert (trainer.progress_bar_callback is not None) is live
        assert any(isinstance(c, ModelSummary) for c in trainer.callbacks) is live
