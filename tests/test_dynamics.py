"""The training-dynamics callback logs what a hand computation on the same batch gives."""

from __future__ import annotations

import csv
import json
import math
import re
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import DYNAMICS_STATS, FAST, OFFLINE, on_file, run_cli
from makemore_lab.data.datamodule import NamesDataModule
from makemore_lab.dynamics.callback import TrainingDynamics
from makemore_lab.dynamics.writer import chart_names
from makemore_lab.errors import RunInterrupted, TrainingDiverged, UserError
from makemore_lab.network.layers import Linear
from makemore_lab.train import train


def read_csv(run: Path) -> dict[tuple[int, str, str], float]:
    with (run / "dynamics.csv").open() as f:
        return {
            (int(r["step"]), r["layer"], r["stat"]): float(r["value"]) for r in csv.DictReader(f)
        }


def read_tensorboard(run: Path) -> EventAccumulator:
    events = EventAccumulator(
        str(run / "tensorboard"), size_guidance={"scalars": 0, "histograms": 0, "images": 0}
    )
    events.Reload()
    return events


def by_hand(cfg, optimizer: str) -> dict[tuple[str, str], float]:
    """Step 0 of the run, redone without Lightning: same init, same batch, same update."""
    g = torch.Generator().manual_seed(cfg.seed)
    dm = NamesDataModule(path=cfg.data.path, download=False, generators=[g])
    dm.setup()
    net = instantiate(
        cfg.model, vocab_size=dm.vocab.size, init=cfg.init, generator=g, _convert_="all"
    )
    xs, ys, _ = next(iter(dm.train_dataloader()))
    x, y = xs[0, 0], ys[0, 0]  # the first minibatch of the first chunk
    outs, h = [], net.embedding(x).view(x.shape[0], -1)  # the forward pass, written out
    for layer in net.layers:
        h = layer(h)
        h.retain_grad()
        outs.append(h)
    F.cross_entropy(h, y).backward()
    want: dict[tuple[str, str], float] = {}
    for i, (layer, t) in enumerate(zip(net.layers, outs, strict=True)):
        name = str(i)
        want[name, "act_mean"], want[name, "act_std"] = t.mean().item(), t.std().item()
        want[name, "act_grad_mean"], want[name, "act_grad_std"] = (
            t.grad.mean().item(),
            t.grad.std().item(),
        )
        if type(layer).__name__ == "Tanh":
            want[name, "act_saturated_pct"] = (t.abs() > 0.97).float().mean().item() * 100
        if type(layer).__name__ == "ReLU":
            want[name, "act_dead_pct"] = (t == 0).all(0).float().mean().item() * 100
    weights = {"embedding": net.embedding.weight}
    weights |= {str(i): m.weight for i, m in enumerate(net.layers) if isinstance(m, Linear)}
    before = {k: p.detach().clone() for k, p in weights.items()}
    opt = (torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam)(
        net.parameters(), lr=cfg.optim.lr
    )
    opt.step()
    for k, p in weights.items():
        want[k, "weight_grad_mean"], want[k, "weight_grad_std"] = (
            p.grad.mean().item(),
            p.grad.std().item(),
        )
        want[k, "grad_data_ratio"] = (p.grad.std() / before[k].std()).item()
        want[k, "update_data_ratio_log10"] = math.log10(
            ((p.detach() - before[k]).std() / before[k].std()).item()
        )
        if optimizer == "sgd":  # the lecture's formula, for plain SGD
            lecture = math.log10(((cfg.optim.lr * p.grad).std() / before[k].std()).item())
            assert want[k, "update_data_ratio_log10"] == pytest.approx(lecture, abs=1e-4)
    return want


@pytest.mark.parametrize(
    ("optim", "overrides"),
    [
        ("sgd", ["model.batchnorm=false"]),
        ("adam", ["optim=adam"]),
        ("sgd", ["model.activation=relu"]),
    ],
    ids=["sgd-tanh", "adam-batchnorm", "sgd-relu"],
)
def test_step0_statistics_match_a_hand_computation_in_csv_and_tensorboard(
    make_cfg, optim, overrides
) -> None:
    cfg = make_cfg(
        "trainer.max_steps=1", "model.n_layers=2", "logger=[tensorboard,csv]", *overrides
    )
    train(cfg)
    run = Path(cfg.run_dir)
    want = by_hand(cfg, optim)
    logged = read_csv(run)
    assert {(layer, stat) for (_, layer, stat) in logged} == set(want)  # every statistic, no more
    kinds = {
        f"{i}": type(m).__name__ for i, m in enumerate(instantiate(cfg.model, vocab_size=11).layers)
    }
    kinds["embedding"] = "Embedding"
    events = read_tensorboard(run)
    for (layer, stat), value in want.items():
        assert logged[0, layer, stat] == pytest.approx(value, rel=1e-4, abs=1e-7), (layer, stat)
        (scalar,) = events.Scalars(f"{stat}/{chart_names(kinds)[layer]}")
        assert scalar.step == 0 and scalar.value == pytest.approx(value, rel=1e-4, abs=1e-7), (
            layer,
            stat,
        )


def test_tensorboard_gets_every_kind_of_scalar_histogram_and_figure(make_cfg) -> None:
    cfg = make_cfg(
        "trainer.max_steps=12",
        "callbacks.dynamics.every_n_steps=5",
        "callbacks.dynamics.figures=true",
    )
    train(cfg)
    run = Path(cfg.run_dir)
    tags = read_tensorboard(run).Tags()
    sections = {t.split("/")[0] for t in tags["scalars"]}
    assert set(DYNAMICS_STATS) <= sections
    assert "act_saturated_pct/block1_Tanh" in tags["scalars"]
    assert {t.split("/")[0] for t in tags["histograms"]} == {
        "hist_act",
        "hist_act_grad",
        "hist_weight_grad",
    }
    figures = {
        "activations_init",
        "gradients_init",
        "weight_gradients_init",
        "activations_final",
        "gradients_final",
        "weight_gradients_final",
        "update_data_ratio",
        "activations_over_time",
    }
    assert {t.removeprefix("figures/") for t in tags["images"]} == figures
    assert {p.stem for p in (run / "figures").glob("*.png")} == figures
    # collected at step 0, every 5 steps, and at the last step (11) -- and at no other step
    assert {step for step, _, _ in read_csv(run)} == {0, 5, 10, 11}
    report = (run / "dynamics.md").read_text()
    assert "## Step 0 (initialization)" in report and "## Step 11 (end of training)" in report
    assert (
        "layer 2 (Tanh): mean " in report
        and ", saturated: " in report
        and "grad:data ratio" in report
    )


class HookSpy(Callback):
    """Runs after the dynamics callback: counts the forward hooks left on the layers."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seen.append(sum(len(layer._forward_hooks) for layer in pl_module.net.layers))


def test_hooks_are_removed_after_collecting(make_cfg) -> None:
    spy = HookSpy()
    train(
        make_cfg("trainer.max_steps=8", "data.chunk_size=2", "callbacks.dynamics.every_n_steps=4"),
        extra_callbacks=[spy],
    )
    assert spy.seen == [0] * 4  # 4 chunks of 2 steps; 0, 4 and 7 were collected


def test_every_callback_method_named_like_a_hook_is_a_lightning_hook() -> None:
    # Lightning silently ignores a misspelt hook: make sure ours are all real.
    ours = [name for name in vars(TrainingDynamics) if name.startswith("on_")]
    assert ours and all(callable(getattr(Callback, name, None)) for name in ours), ours


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("every_n_steps", 0),
        ("saturation_threshold", 1.5),
        ("saturation_threshold", 0),
        ("heatmap_bins", -1),
    ],
)
def test_bad_callback_settings_are_rejected_by_name(key: str, value, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=rf"callbacks\.dynamics\.{key}={value}"):
        TrainingDynamics(dirpath=str(tmp_path), **{key: value})


def test_init_statistics_show_the_lectures_pattern(make_cfg, tmp_path: Path) -> None:
    # Deep tanh net, no BatchNorm: gain 5/3 keeps stds near 0.65-0.75 with the first layer the most
    # saturated; gain 1 lets the std shrink with depth; with BatchNorm the gain stops mattering.
    def init_stats(*overrides: str) -> dict[tuple[str, str], float]:
        cfg = make_cfg(
            "trainer.max_steps=1",
            "logger=csv",
            f"run_dir={tmp_path / str(len(list(tmp_path.iterdir())))}",
            *overrides,
        )
        train(cfg)
        return {
            (layer, stat): v
            for (step, layer, stat), v in read_csv(Path(cfg.run_dir)).items()
            if step == 0
        }

    tanh = ["1", "3", "5", "7", "9"]  # Linear, Tanh, Linear, Tanh, ...
    kaiming = init_stats("model.batchnorm=false", "init.gain=5/3")
    assert all(0.6 < kaiming[t, "act_std"] < 0.8 for t in tanh)
    assert kaiming["1", "act_saturated_pct"] > kaiming["9", "act_saturated_pct"]
    assert kaiming["1", "act_saturated_pct"] > 10
    unit = init_stats("model.batchnorm=false", "init.gain=1")
    stds = [unit[t, "act_std"] for t in tanh]
    assert stds == sorted(stds, reverse=True) and stds[-1] < 0.6 * stds[0]
    bn1, bn53 = init_stats("init.gain=1"), init_stats("init.gain=5/3")
    for t in ["2", "5", "8", "11", "14"]:  # Linear, BatchNorm1d, Tanh, ...
        assert bn1[t, "act_std"] == pytest.approx(bn53[t, "act_std"], abs=1e-3)
        assert bn1[t, "act_saturated_pct"] == pytest.approx(bn53[t, "act_saturated_pct"], abs=0.5)


def test_wandb_offline_gets_scalars_histograms_and_images_one_run_per_job(
    names_file: Path, tmp_path: Path
) -> None:
    pytest.importorskip("wandb")
    sweep = tmp_path / "sweep"
    result = run_cli(
        "train.py",
        "-m",
        "init.gain=1,5/3",
        "logger=[tensorboard,wandb]",
        "callbacks.dynamics.every_n_steps=5",
        *on_file(names_file),
        *FAST,
        "callbacks.dynamics.figures=true",
        f"hydra.sweep.dir={sweep}",
        env=OFFLINE,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for job in ("0_init.gain=1", "1_init.gain=5_3"):
        (run,) = (sweep / job / "wandb").glob("offline-run-*")  # exactly one W&B run per job
        (events,) = run.glob("run-*.wandb")
        data = events.read_bytes()
        for tag in (
            "act_saturated_pct/block1_Tanh",
            "update_data_ratio_log10/block1_Linear",
            "hist_act/block1_Tanh",
            "hist_weight_grad/embedding",
            "final/val_loss",
        ):
            assert tag.encode() in data, (job, tag)
        # a W&B histogram is stored as a nested item: the tag, then its "bins" and "values"
        assert re.search(rb"hist_act/block1_Tanh.{1,3}bins", data, re.DOTALL)
        assert re.search(rb"hist_act_grad/block1_Tanh.{1,3}values", data, re.DOTALL)
        images = {
            p.name.rsplit("_", 2)[0]
            for p in (run / "files" / "media" / "images" / "figures").glob("*.png")
        }
        assert {"activations_init", "update_data_ratio", "activations_over_time"} <= images


def test_figures_drawn_by_worker_processes_are_the_ones_drawn_in_the_run(
    make_cfg, tmp_path: Path
) -> None:
    """The figure pool draws off the training process; the PNGs and TensorBoard's images are
    byte for byte what drawing them in the training process gives, and TensorBoard holds each
    figure's PNG file as it is (encoded once)."""
    runs = {}
    for workers in (0, 2):
        run = tmp_path / f"workers{workers}"
        train(
            make_cfg(
                "trainer.max_steps=12",
                "callbacks.dynamics.every_n_steps=5",
                "callbacks.dynamics.figures=true",
                f"callbacks.dynamics.figure_workers={workers}",
                f"run_dir={run}",
            )
        )
        images = read_tensorboard(run).Tags()["images"]
        logged = {t: read_tensorboard(run).Images(t)[0].encoded_image_string for t in images}
        runs[workers] = ({p.name: p.read_bytes() for p in (run / "figures").glob("*.png")}, logged)
    assert len(runs[0][0]) == 8 and len(runs[0][1]) == 8
    assert runs[2] == runs[0]
    files, logged = runs[0]
    assert {f"figures/{name.removesuffix('.png')}": png for name, png in files.items()} == logged


def test_a_run_stopped_midway_keeps_the_figures_it_asked_for(make_cfg, tmp_path: Path) -> None:
    from test_resume import SignalAt

    cfg = make_cfg(
        "trainer.max_steps=40", "callbacks.dynamics.figures=true", f"run_dir={tmp_path / 'run'}"
    )
    with pytest.raises(RunInterrupted):
        train(cfg, [SignalAt(10, signal.SIGTERM)])
    drawn = {p.stem for p in (tmp_path / "run" / "figures").glob("*.png")}
    assert {"activations_init", "gradients_init", "weight_gradients_init"} <= drawn


def test_a_diverging_run_stops_at_the_end_of_its_chunk_and_is_recorded(make_cfg) -> None:
    # A linear 5-layer net with gain 3 and a huge lr overflows to inf/NaN within a few steps:
    # the callback keeps recording what it sees (NaN statistics, histograms of what is
    # finite), and the run stops at the end of the chunk where the loss stopped being finite.
    cfg = make_cfg(
        "model.activation=identity",
        "model.batchnorm=false",
        "init.gain=3",
        "optim.lr=50",
        "trainer.max_steps=40",
        "callbacks.dynamics.every_n_steps=1",
        "callbacks.dynamics.figures=true",
    )
    with pytest.raises(TrainingDiverged) as raised:
        train(cfg)
    err = raised.value
    metrics = json.loads((Path(cfg.run_dir) / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and metrics["diverged_at_step"] == err.step
    stop = (err.step // 5 + 1) * 5  # the end of the chunk of 5 steps where it happened
    assert err.step < 40 and metrics["steps"] == stop
    assert math.isfinite(err.last_finite) and not math.isfinite(err.loss)
    assert "optim.lr=50" in str(err) and "model.batchnorm=true" in str(err)
    logged = read_csv(Path(cfg.run_dir))
    assert max(step for step, _, _ in logged) == stop - 1  # every step collected until the stop
    assert any(math.isnan(v) for (_, _, stat), v in logged.items() if stat == "act_std")


def test_heat_map_rows_are_binned_over_the_whole_runs_range() -> None:
    # A layer whose outputs widen 10x during training: binned over the final range, its step-0
    # mass sits in the middle bins and the last row spreads out, none piled into the edge bins.
    from makemore_lab.dynamics.report import PERCENTILES, bin_percentiles

    g = torch.Generator().manual_seed(0)
    rows = torch.stack(
        [torch.quantile(torch.randn(3200, generator=g) * s, PERCENTILES) for s in (0.1, 1.0)]
    )
    counts, lo, hi = bin_percentiles(rows, bins=20)
    assert counts.shape == (2, 20)
    assert np.allclose(counts.sum(1), 1.0)  # every row's whole mass, nothing clipped
    assert lo == rows[:, 0].min().item() and hi == rows[:, -1].max().item()
    assert counts[1, 0] < 0.05 and counts[1, -1] < 0.05  # the wide row: thin tails, no pile-up
    assert counts[0, 8:12].sum() > 0.9  # the narrow row: in the middle of the shared range


def test_runs_with_and_without_batchnorm_share_a_chart_at_every_depth(
    make_cfg, tmp_path: Path
) -> None:
    # Module indices differ (a BatchNorm block is 3 modules, a plain one 2); chart names do not.
    tags = {}
    for bn in ("true", "false"):
        cfg = make_cfg(f"model.batchnorm={bn}", f"run_dir={tmp_path / bn}", "trainer.max_steps=5")
        train(cfg)
        scalars = read_tensorboard(Path(cfg.run_dir)).Tags()["scalars"]
        tags[bn] = {t for t in scalars if t.split("/")[0] in ("act_std", "act_saturated_pct")}
    tanh = {f"act_saturated_pct/block{k}_Tanh" for k in range(1, 6)}
    assert tanh <= tags["true"] and tanh <= tags["false"]
    shared = tags["true"] & tags["false"]
    assert {f"act_std/block{k}_Tanh" for k in range(1, 6)} | {"act_std/output_Linear"} <= shared
    assert tags["true"] - tags["false"] == {
        f"act_std/block{k}_BatchNorm1d" for k in range(1, 6)
    } | {"act_std/output_BatchNorm1d"}
