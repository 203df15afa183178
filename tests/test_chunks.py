"""A Lightning batch is a chunk of optimizer steps: every cadence still counts optimizer steps.

The same run with 1, 4 or 6 minibatches per `training_step` must be the same run: the same
minibatches, weights and losses, bit for bit, and the same steps for the learning-rate decay,
logged points, validation, checkpoints and the dynamics callback.
"""

from __future__ import annotations

import csv
from pathlib import Path

import lightning as L
import pytest
import torch

from conftest import on_file, run_cli
from makemore_lab.train import train

STEPS = [
    "trainer.max_steps=26",  # not a multiple of the chunk: the last chunk is cut short
    "trainer.val_check_interval=12",
    "callbacks.model_checkpoint.every_n_train_steps=12",
    "callbacks.model_checkpoint.save_top_k=-1",  # keep every step checkpoint
    "trainer.log_every_n_steps=5",
    "optim.decay_step=9",
    "callbacks.dynamics.every_n_steps=7",
    "logger=csv",
]


def logged_points(run: Path) -> set[tuple[int, str, str]]:
    with (run / "csv" / "metrics.csv").open() as f:
        return {
            (int(r["step"]), k, v)
            for r in csv.DictReader(f)
            for k, v in r.items()
            if v and k != "step"
        }


def test_chunk_size_changes_nothing_but_speed(make_cfg, tmp_path: Path) -> None:
    runs = {}
    for chunk in (1, 4, 6):
        cfg = make_cfg(*STEPS, f"data.chunk_size={chunk}", f"run_dir={tmp_path / str(chunk)}")
        runs[chunk] = (train(cfg), Path(cfg.run_dir))
    (one, one_dir), *others = runs.values()
    points = logged_points(one_dir)
    steps_of = {
        key: sorted(s for s, k, _ in points if k == key) for key in ("train/loss", "val/loss")
    }
    assert steps_of["train/loss"] == [4, 9, 14, 19, 24]  # the last step of each 5-step window
    assert steps_of["val/loss"] == [12, 24]
    lr = {s: float(v) for s, k, v in points if k == "train/lr"}
    # the lr each logged step used: step 9 is the first at 0.01 (0.1 * 0.1 in float64)
    assert lr == pytest.approx({4: 0.1, 9: 0.01, 14: 0.01, 19: 0.01, 24: 0.01})
    dynamics_steps = {s for s, k, _ in points if k.startswith("act_mean/")}
    assert dynamics_steps == {0, 7, 14, 21, 25}  # every 7 steps and the last one
    checkpoints = sorted(p.name for p in (one_dir / "checkpoints").glob("step*.ckpt"))
    assert checkpoints == ["step12.ckpt", "step24.ckpt", "step26.ckpt"]
    for metrics, run in others:
        for key in ("step0_loss", "train_loss", "val_loss", "test_loss", "steps"):
            assert metrics[key] == one[key], key
        assert logged_points(run) == points
        assert sorted(p.name for p in (run / "checkpoints").glob("step*.ckpt")) == checkpoints
        for name in checkpoints:
            a = torch.load(one_dir / "checkpoints" / name, weights_only=False)["state_dict"]
            b = torch.load(run / "checkpoints" / name, weights_only=False)["state_dict"]
            assert all(torch.equal(a[k], b[k]) for k in a), name


def test_a_cadence_that_splits_a_chunk_is_refused_with_the_fix(names_file: Path, tmp_path) -> None:
    result = run_cli(
        "train.py",
        *on_file(names_file),
        "data.chunk_size=100",
        "trainer.val_check_interval=1001",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 2
    assert (
        "trainer.val_check_interval=1001 is not a multiple of data.chunk_size=100" in result.stderr
    )
    assert "data.chunk_size=91" in result.stderr  # the largest chunk that divides 1001
    assert "Traceback" not in result.stderr


@pytest.mark.slow  # torch.compile's first steps take half a minute: `make test-all` (CI) runs it
def test_compiled_training_follows_the_eager_loss_trajectory(make_cfg, tmp_path: Path) -> None:
    from torch._dynamo.utils import counters

    common = [
        "trainer.max_steps=30",
        "trainer.log_every_n_steps=1",
        "model.n_layers=2",
        "model.n_hidden=32",
        "callbacks.dynamics.every_n_steps=10",  # collected steps run eagerly, the rest compiled
        "logger=csv",
    ]
    eager = make_cfg(*common, f"run_dir={tmp_path / 'eager'}")
    compiled = make_cfg(*common, "compile=true", f"run_dir={tmp_path / 'compiled'}")
    train(eager)
    torch._dynamo.reset()
    counters.clear()
    train(compiled)
    assert counters["stats"]["unique_graphs"] >= 1  # something was compiled...
    assert not counters["recompiles"]  # ...once: the statistics' eager steps cost no recompile

    def losses(cfg) -> list[float]:
        points = logged_points(Path(cfg.run_dir))
        return [float(v) for _, v in sorted((s, v) for s, k, v in points if k == "train/loss")]

    assert len(losses(eager)) == 30
    # Fused kernels round differently, so not bit for bit; a real difference would be far larger.
    assert losses(compiled) == pytest.approx(losses(eager), rel=1e-3)


class OptimizerStepHooks(L.Callback):
    """Counts Lightning's `on_before_optimizer_step`: the steps that took Lightning's wrapper."""

    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.steps.append(trainer.global_step)


def test_only_watched_steps_take_lightnings_optimizer_wrapper(make_cfg, tmp_path: Path) -> None:
    # The lean path: the other steps call torch directly and advance `global_step` themselves.
    hooks = OptimizerStepHooks()
    cfg = make_cfg(*STEPS, "data.chunk_size=6", f"run_dir={tmp_path / 'run'}")
    metrics = train(cfg, extra_callbacks=[hooks])
    assert hooks.steps == [0, 7, 14, 21, 25]  # the dynamics callback's collected steps
    assert metrics["steps"] == 26
    checkpoint = torch.load(Path(cfg.run_dir) / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 26
