"""A stacked group on one GPU: `trainer=gpu` with `hydra/launcher=stacked`.

The group's tensors live on the GPU (the data splits, the stacked weights, the optimizer's
state) and each job ends as its solo GPU run ends. CUDA's kernels may round a batched matrix
product otherwise than the solo one's, so the GPU comparison allows the seventh digit; on the
CPU the same sweep is compared bit for bit (tests/test_stacked_sweep.py). Skipped where torch
sees no CUDA device: `python -m pytest tests/test_gpu.py` on a GPU machine runs them.
"""

from __future__ import annotations

import json

import pytest
import torch

from conftest import FAST, on_file, run_cli

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="no CUDA device here (torch.cuda.is_available() is False); run on a GPU machine",
)

GAINS = ["init.gain=1", "init.gain=5/3"]
JOBS = ["0_init.gain=1", "1_init.gain=5_3"]


def test_a_stacked_group_trains_on_one_gpu_as_its_solo_runs_do(names_file, tmp_path) -> None:
    common = [*on_file(names_file), *FAST, "trainer=gpu"]
    stacked = run_cli(
        "train.py",
        "-m",
        *common,
        "init.gain=1,5/3",
        "hydra/launcher=stacked",
        f"hydra.sweep.dir={tmp_path / 'stacked'}",
    )
    assert stacked.returncode == 0, stacked.stderr[-3000:]
    assert "#0, #1: 2 jobs stacked" in stacked.stdout + stacked.stderr
    for n, (gain, job) in enumerate(zip(GAINS, JOBS, strict=True)):
        solo = run_cli("train.py", *common, gain, f"hydra.run.dir={tmp_path / 'solo' / str(n)}")
        assert solo.returncode == 0, solo.stderr[-3000:]
        a = json.loads((tmp_path / "solo" / str(n) / "metrics.json").read_text())
        b = json.loads((tmp_path / "stacked" / job / "metrics.json").read_text())
        assert b["status"] == "completed" and b["stacked_group"]["jobs"] == 2
        for key in ("train_loss", "val_loss", "test_loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-6), (job, key)
        ckpt = torch.load(
            tmp_path / "stacked" / job / "checkpoints" / "last.ckpt", weights_only=False
        )
        assert ckpt["global_step"] == a["steps"]
        weights = list(ckpt["state_dict"].values())
        assert weights and all(w.is_cuda for w in weights)  # trained on the GPU, saved from it


def gpu_metrics(run_dir) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.parametrize(
    "sweep",
    [[], ["-m", "optim.lr=0.1,0.05", "hydra/launcher=stacked"]],
    ids=["solo", "stacked-own-rates"],
)
def test_steps_replayed_from_cuda_graphs_train_as_the_eager_steps(
    names_file, tmp_path, sweep
) -> None:
    # 40 steps, the rate decayed at 20: two kinds of step, each warmed up, captured, replayed.
    common = [*on_file(names_file), *FAST, "trainer=gpu", "trainer.max_steps=40"]
    common += ["optim.decay_step=20", *sweep]
    runs = {}
    for graphs in ("true", "false"):
        where = tmp_path / graphs
        place = f"hydra.sweep.dir={where}" if sweep else f"hydra.run.dir={where}"
        result = run_cli("train.py", *common, f"cuda_graphs={graphs}", place)
        assert result.returncode == 0, result.stderr[-3000:]
        dirs = sorted(p.parent for p in where.rglob("metrics.json"))
        runs[graphs] = [gpu_metrics(d) for d in dirs]
    assert len(runs["true"]) == (2 if sweep else 1)
    for captured, eager in zip(runs["true"], runs["false"], strict=True):
        assert captured["cuda_graphs"].startswith("captured: 2 graph(s)"), captured["cuda_graphs"]
        assert eager["cuda_graphs"] == "eager: cuda_graphs=false"
        for key in ("step0_loss", "train_loss", "val_loss", "test_loss"):
            assert captured[key] == eager[key], key  # the same kernels, replayed
