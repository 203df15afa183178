"""A stacked job trains exactly as it would alone, or is told why it trains alone.

Every setting a user may sweep is here: the ones the stacked engine reproduces train in one
group and must equal their solo runs bit for bit (final weights, the losses in metrics.json,
dynamics.csv, samples, the checkpoint files); the others are listed alone with their reason.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from conftest import resolved
from makemore_lab.errors import TrainingDiverged
from makemore_lab.launcher.grouping import group_jobs
from makemore_lab.launcher.sweep import describe
from makemore_lab.runs.job import Job
from makemore_lab.train import train, train_jobs

# Settings the stacked engine reproduces per job: all of them train as one group.
STACKS = {
    "plain": [],
    "momentum": ["+optim.optimizer.momentum=0.9"],
    "weight_decay": ["+optim.optimizer.weight_decay=0.01"],
    "nesterov": ["+optim.optimizer.momentum=0.9", "+optim.optimizer.nesterov=true"],
    "dampening": ["+optim.optimizer.momentum=0.5", "+optim.optimizer.dampening=0.3"],
    "maximize": ["+optim.optimizer.maximize=true"],
    "the optimizer's own lr": ["optim.optimizer.lr=0.05"],
    "two milestones": ["optim.scheduler.milestones=[4,12]", "optim.scheduler.gamma=0.5"],
}
EXACT = ("status", "train_loss", "val_loss", "test_loss", "steps", "step0_loss")

# Settings it does not reproduce: each job trains alone, and the listing says why.
SCHEDULER = "optim.scheduler._target_=torch.optim.lr_scheduler"
ALONE = {
    "StepLR": (
        [f"{SCHEDULER}.StepLR", "~optim.scheduler.milestones", "+optim.scheduler.step_size=5"],
        "optim.scheduler is StepLR, which the stacked engine does not reproduce",
    ),
    "CosineAnnealingLR": (
        [f"{SCHEDULER}.CosineAnnealingLR", "~optim.scheduler.milestones"],
        "optim.scheduler is CosineAnnealingLR",
    ),
    "Adam": (["optim=adam"], "optim.optimizer is torch.optim.Adam"),
    "fused SGD": (["+optim.optimizer.fused=true"], "optim.optimizer.fused is set"),
    "early stopping": (
        [
            "+callbacks.early_stop._target_=lightning.pytorch.callbacks.EarlyStopping",
            "+callbacks.early_stop.monitor=val/loss",
        ],
        r"callbacks.early_stop \(EarlyStopping\) does not run per job",
    ),
    "a monitored checkpoint": (
        ["+callbacks.model_checkpoint.monitor=val/loss"],
        "callbacks.model_checkpoint.monitor is set",
    ),
    "a custom datamodule": (["data._target_=my_project.Data"], "data._target_ is my_project.Data"),
    "a custom logger": (
        ["+logger.mine._target_=my_project.Logger"],
        r"logger.mine \(my_project.Logger\) has no per-job run",
    ),
    "compile": (["compile=true"], "compile=true"),
    "ckpt_path": (["ckpt_path=some/last.ckpt"], "ckpt_path= continues one checkpoint"),
    "mixed precision": (["+trainer.precision=bf16-mixed"], "trainer.precision is bf16-mixed"),
    "a partial validation": (
        ["+trainer.limit_val_batches=0.5"],
        "trainer.limit_val_batches is set",
    ),
}
COMMON = ["trainer.max_steps=20", "optim.decay_step=8", "logger=csv"]


@pytest.fixture(scope="module")
def trained(names_file: Path, tmp_path_factory: pytest.TempPathFactory):
    """Every STACKS job trained alone (`train`) and all of them as one group."""
    from hydra import compose, initialize_config_dir

    from conftest import FAST, ROOT, on_file

    tmp = tmp_path_factory.mktemp("settings")

    def cfg(where: str, i: int, overrides: list[str]):
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            base = [*on_file(names_file), *FAST, *COMMON, f"init.gain={1 + i / 4}"]
            return compose("config", [*base, *overrides, f"run_dir={tmp / where / str(i)}"])

    solos = [cfg("solo", i, o) for i, o in enumerate(STACKS.values())]
    group = [resolved(cfg("stacked", i, o)) for i, o in enumerate(STACKS.values())]
    assert group_jobs(group).groups == [list(range(len(STACKS)))]
    for solo in solos:
        train(solo)
    train_jobs([Job(c) for c in group])
    return solos, group


@pytest.mark.parametrize("job", range(len(STACKS)), ids=list(STACKS))
def test_a_stacked_job_equals_its_solo_run_bit_for_bit(trained, job: int) -> None:
    solo, stacked = (Path(cfgs[job].run_dir) for cfgs in trained)
    a, b = (json.loads((run / "metrics.json").read_text()) for run in (solo, stacked))
    assert a["status"] == b["status"]
    assert {k: a[k] for k in EXACT if k != "step0_loss"} == {
        k: b[k] for k in EXACT if k != "step0_loss"
    }
    assert b["step0_loss"] == pytest.approx(a["step0_loss"], rel=1e-6)  # summed in another order
    for name in ("samples.txt", "dynamics.csv"):
        if (solo / name).exists() or (stacked / name).exists():
            assert (solo / name).read_text() == (stacked / name).read_text(), name
    files = [sorted(p.name for p in (run / "checkpoints").iterdir()) for run in (solo, stacked)]
    assert files[0] == files[1]
    ckpts = [
        torch.load(run / "checkpoints" / files[0][0], weights_only=True) for run in (solo, stacked)
    ]
    for name, value in ckpts[0]["state_dict"].items():
        assert torch.equal(ckpts[1]["state_dict"][name], value), name
    opt = [c["optimizer_states"][0] for c in ckpts]
    assert opt[0]["param_groups"] == opt[1]["param_groups"]
    for index, state in opt[0]["state"].items():
        assert torch.equal(opt[1]["state"][index]["momentum_buffer"], state["momentum_buffer"])
    assert ckpts[0]["lr_schedulers"] == ckpts[1]["lr_schedulers"]
    assert ckpts[0]["callbacks"].keys() == ckpts[1]["callbacks"].keys()
    hparams = [(run / "csv" / "hparams.yaml").read_text() for run in (solo, stacked)]
    assert hparams[0].replace(str(solo), "RUN") == hparams[1].replace(str(stacked), "RUN")


@pytest.mark.parametrize("setting", list(ALONE))
def test_a_job_the_engine_cannot_reproduce_trains_alone_and_says_why(
    make_cfg, setting: str, caplog
) -> None:
    overrides, reason = ALONE[setting]
    cfgs = [make_cfg(*COMMON), make_cfg(*COMMON, *overrides), make_cfg(*COMMON, "seed=3")]
    grouping = group_jobs(cfgs)
    assert grouping.groups == [[0, 2], [1]]
    assert grouping.alone.keys() == {1}
    for num, cfg in enumerate(cfgs):
        with open_dict(cfg):
            cfg.hydra = {"job": {"num": num}, "overrides": {"task": [f"x={num}"]}}
    with caplog.at_level(logging.INFO):
        describe(grouping, cfgs)
    (line,) = [line for line in caplog.text.splitlines() if "#1 alone:" in line]
    assert re.search(reason, line), line


@pytest.mark.parametrize(
    "setting",
    ["callbacks.model_checkpoint.save_top_k=-1", "callbacks.model_checkpoint.save_last=false"],
)
def test_each_stacked_job_writes_the_checkpoint_files_its_solo_run_writes(
    make_cfg, tmp_path: Path, setting: str
) -> None:
    jobs = [[setting, "init.gain=1"], [setting, "init.gain=3", "seed=5"]]
    group = [resolved(make_cfg(*job, f"run_dir={tmp_path / str(i)}")) for i, job in enumerate(jobs)]
    train_jobs([Job(c) for c in group])
    solo = make_cfg(*jobs[1], f"run_dir={tmp_path / 'solo'}")
    train(solo)
    expected = sorted(p.name for p in (tmp_path / "solo" / "checkpoints").iterdir())
    every = ["last.ckpt", "step10.ckpt", "step20.ckpt"]  # the FAST cadence: every 10 steps
    assert expected == (every if "top_k" in setting else ["step20.ckpt"])
    for run in ("0", "1"):
        assert sorted(p.name for p in (tmp_path / run / "checkpoints").iterdir()) == expected
    for name in expected:
        a, b = (torch.load(tmp_path / run / "checkpoints" / name) for run in ("solo", "1"))
        assert a["global_step"] == b["global_step"]
        assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])


def test_a_stacked_job_that_diverges_is_recorded_as_its_solo_run_records_it(
    make_cfg, tmp_path: Path
) -> None:
    # gain 1e20 through five linear layers overflows the first forward pass: a NaN at step 0,
    # before any update, which is not the learning rate's doing (and the message says so)
    linear = ["model.activation=identity", "model.batchnorm=false"]
    jobs = [[*linear, "init.gain=1"], [*linear, "init.gain=1e20"]]
    group = [resolved(make_cfg(*job, f"run_dir={tmp_path / str(i)}")) for i, job in enumerate(jobs)]
    train_jobs([Job(c) for c in group])
    with pytest.raises(TrainingDiverged, match="No update had happened yet"):
        train(make_cfg(*jobs[1], f"run_dir={tmp_path / 'solo'}"))
    solo, stacked = (json.loads((tmp_path / r / "metrics.json").read_text()) for r in ("solo", "1"))
    assert stacked["status"] == "diverged" and stacked["diverged_at_step"] == 0
    assert stacked["error"] == solo["error"] and stacked["steps"] == solo["steps"]
    written = [
        {p.name for p in (tmp_path / r).rglob("*") if not p.name.startswith("events.out")}
        - {"run.lock"}
        for r in ("solo", "1")
    ]
    assert written[0] == written[1]  # (the solo run's claim is released by its caller, app.py)
    assert json.loads((tmp_path / "0" / "metrics.json").read_text())["status"] == "completed"
