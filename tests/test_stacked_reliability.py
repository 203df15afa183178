"""A stacked sweep loses nothing and mixes nothing.

Resume by each job's identity (its own directory and last.ckpt), a job's failure kept its own,
signals to the whole process group saved once, no orphans after a kill -9 of the launcher,
the solo run's refusals, and names that fit the filesystem.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import Callback

from conftest import FAST, ROOT, on_file, resolved, run_cli
from makemore_lab.errors import StoppedAfterTraining, UserError
from makemore_lab.launcher.sweep import train_ready
from makemore_lab.runs.job import Job
from makemore_lab.runs.naming import MAX_DIRNAME_BYTES, job_dirname
from makemore_lab.train import prepare_job, train, train_jobs


def record(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def group_of(make_cfg, tmp_path: Path, *overrides: str, jobs: int = 2) -> list:
    return [
        resolved(make_cfg(*overrides, f"init.gain={1 + i}", f"run_dir={tmp_path / str(i)}"))
        for i in range(jobs)
    ]


class SignalAtTrainEnd(Callback):
    """SIGTERM to this process once training has ended, while the records are being written."""

    def on_train_end(self, trainer, pl_module) -> None:
        os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.parametrize("jobs", [1, 2], ids=["solo", "stacked"])
def test_a_signal_once_training_has_ended_waits_for_every_jobs_record(
    make_cfg, tmp_path: Path, jobs: int
) -> None:
    cfgs = group_of(make_cfg, tmp_path, "logger=csv", jobs=jobs)
    with pytest.raises(StoppedAfterTraining) as raised:
        train_jobs([Job(c) for c in cfgs], extra_callbacks=[SignalAtTrainEnd()])
    assert raised.value.exit_code == 143 and "record (metrics.json) was written" in str(
        raised.value
    )
    for cfg in cfgs:
        assert record(Path(cfg.run_dir))["status"] == "completed"
        assert (Path(cfg.run_dir) / "samples.txt").is_file()
        # resume=true finds it finished: nothing is trained again
        again = make_cfg(
            "logger=csv", f"init.gain={cfg.init.gain}", f"run_dir={cfg.run_dir}", "resume=true"
        )
        assert prepare_job(again).finished is not None


def test_a_jobs_failure_after_training_is_its_own(make_cfg, tmp_path: Path, monkeypatch) -> None:
    import makemore_lab.finish as driver

    real = driver.sample_names

    def sample(net, vocab, count: int, seed: int) -> list[str]:
        if seed == 13:
            raise OSError("disk full")
        return real(net, vocab, count=count, seed=seed)

    monkeypatch.setattr(driver, "sample_names", sample)
    cfgs = group_of(make_cfg, tmp_path, "logger=csv")
    cfgs[1].samples.seed = 13
    metrics = train_jobs([Job(c) for c in cfgs])
    assert [m["status"] for m in metrics] == ["completed", "failed"]
    assert record(tmp_path / "1") == {"status": "failed", "error": "OSError: disk full"}
    assert record(tmp_path / "0")["status"] == "completed"


def test_an_error_in_the_shared_step_fails_the_group_and_each_record_says_so(
    make_cfg, tmp_path: Path, monkeypatch
) -> None:
    from makemore_lab.stacked.module import StackedModule

    def broken(self, batch, batch_idx) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(StackedModule, "training_step", broken)
    monkeypatch.setattr(HydraConfig.instance(), "cfg", None)  # train_ready sets it: undone after
    cfgs = group_of(make_cfg, tmp_path, "logger=csv")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        hydra_cfg = compose("config", ["hydra.mode=MULTIRUN"], return_hydra_config=True)
    values = train_ready([Job(c) for c in cfgs], [0, 1], hydra_cfg)
    assert values == {}
    for run in ("0", "1"):
        failed = record(tmp_path / run)
        assert failed["status"] == "failed" and failed["stacked_group"] == ["0", "1"]
        assert failed["error"] == "in its stacked group's shared training step: RuntimeError: boom"


def test_checkpoints_off_write_no_checkpoint_and_refuse_resume(make_cfg, tmp_path: Path) -> None:
    off = ["logger=csv", "callbacks.model_checkpoint=null"]
    train_jobs([Job(c) for c in group_of(make_cfg, tmp_path, *off)])
    train(make_cfg(*off, f"run_dir={tmp_path / 'solo'}"))
    assert not list(tmp_path.rglob("*.ckpt"))  # no Lightning default `epoch=0-step=N.ckpt`
    with pytest.raises(UserError, match="that callback is off"):  # as a solo run refuses
        prepare_job(make_cfg(*off, f"run_dir={tmp_path / 'unfinished'}", "resume=true"))


def test_a_long_job_name_is_cut_to_fit_with_a_stable_hash() -> None:
    overrides = ",".join(f"optim.lr={0.001 * i:.17f}" for i in range(20))
    name = job_dirname(3, overrides)
    assert len(name.encode()) <= MAX_DIRNAME_BYTES and name.startswith("3_optim.lr=0.000")
    assert name == job_dirname(3, overrides)  # stable: a resumed sweep finds its job again
    assert name != job_dirname(3, overrides + "1")
    assert job_dirname(3, "init.gain=5/3") == "3_init.gain=5_3"  # short names as they were


def sweep(names_file: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli("train.py", "-m", *on_file(names_file), *FAST, *args, f"hydra.sweep.dir={out}")


def test_a_resumed_sweep_gives_each_job_its_own_weights_never_another_jobs(
    names_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sweep"
    first = sweep(names_file, out, "init.gain=1,5/3", "hydra/launcher=stacked")
    assert first.returncode == 0, first.stderr[-3000:]
    # the same sweep directory, resumed with another second gain: job 1 is a new job
    again = sweep(
        names_file,
        out,
        "init.gain=1,3",
        "trainer.max_steps=30",
        "resume=true",
        "hydra/launcher=stacked",
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert record(out / "0_init.gain=1")["resumed_from_step"] == 20
    new = record(out / "1_init.gain=3")
    assert new["resumed_from_step"] is None and new["steps"] == 30
    assert record(out / "1_init.gain=5_3")["steps"] == 20  # untouched
    weights = [
        torch.load(out / job / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        for job in ("1_init.gain=3", "1_init.gain=5_3")
    ]
    assert not all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_a_value_float32_cannot_hold_fails_its_job_alone(names_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    result = sweep(names_file, out, "optim.lr=0.1,1e39", "hydra/launcher=stacked")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert record(out / "0_optim.lr=0.1")["status"] == "completed"
    failed = record(out / "1_optim.lr=1e+39")
    assert failed["status"] == "failed" and "a 32-bit float can hold" in failed["error"]


def alive(pids: list[int]) -> bool:
    return any(Path(f"/proc/{pid}").exists() for pid in pids)


def children_of(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in found]


def test_group_processes_stop_and_save_when_the_launcher_is_killed(
    names_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sweep"
    args = [*on_file(names_file), *FAST, "trainer.max_steps=100000", "data.chunk_size=20"]
    args += ["callbacks.model_checkpoint.every_n_train_steps=100", "model.n_hidden=16"]
    args += ["trainer.val_check_interval=100", "seed=1,2", "data.batch_size=32,48"]
    process = subprocess.Popen(
        [
            sys.executable,
            "train.py",
            "-m",
            *args,
            "hydra/launcher=stacked",
            f"hydra.sweep.dir={out}",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while len(list(out.glob("*/checkpoints/step*.ckpt"))) < 4:  # both groups are training
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    groups = children_of(process.pid)
    assert len(groups) == 2
    process.kill()  # kill -9: no handler runs in the launcher
    process.wait()
    deadline = time.monotonic() + 15
    try:
        while alive(groups):
            assert time.monotonic() < deadline, "a group process trains on as an orphan"
            time.sleep(0.1)
    finally:
        if alive(groups):  # never leave them training after a failed assertion
            os.killpg(process.pid, signal.SIGKILL)
    jobs = sorted(out.glob("[0-9]_*"))
    assert len(jobs) == 4
    for job in jobs:  # each saved and recorded: resume=true continues it
        assert record(job)["status"] == "interrupted"
        assert not (job / "run.lock").exists()
        assert (job / "checkpoints" / "last.ckpt").is_file()


def test_a_refused_resume_changes_no_byte_of_the_sweep(names_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    assert sweep(names_file, out, "init.gain=1,5/3", "hydra/launcher=stacked").returncode == 0
    for job in out.glob("[0-9]_*"):  # as a sweep stopped by a signal leaves them
        stopped = {"status": "interrupted", "steps": 20, "signal": 15, "run_dir": str(job)}
        stopped["checkpoint"] = str(job / "checkpoints" / "last.ckpt")
        (job / "metrics.json").write_text(json.dumps(stopped))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    refused = sweep(
        names_file, out, "init.gain=1,5/3", "optim.lr=0.5", "resume=true", "hydra/launcher=stacked"
    )
    assert refused.returncode == 1 and "optim.lr=0.5 here, 0.1 in the checkpoint" in refused.stderr
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after.keys() == before.keys()
    assert [p for p in before if before[p] != after[p]] == []  # multirun.yaml included
