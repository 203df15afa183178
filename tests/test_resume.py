"""Exact resume: an interrupted run, resumed, ends with the uninterrupted run's numbers.

Interruptions are real signals (SIGTERM, SIGINT) delivered to the training process, from a
callback at a chosen step (in-process) or from outside with `kill` (through the CLI).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from conftest import FAST, ROOT, on_file, run_cli
from makemore_lab.errors import RunInterrupted
from makemore_lab.train import train

N = 40  # steps of the full run; FAST's chunks are 5 steps
COMPARED = ("status", "step0_loss", "train_loss", "val_loss", "test_loss", "steps")


class SignalAt(Callback):
    """Sends this process `signum` when training reaches `step`, as `kill` or Ctrl-C would."""

    def __init__(self, step: int, signum: int) -> None:
        self.step, self.signum, self.sent = step, signum, False

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step >= self.step and not self.sent:
            self.sent = True
            os.kill(os.getpid(), self.signum)


def checkpoint_state(path: Path) -> dict[str, Any]:
    ckpt = torch.load(path, weights_only=True)
    return {k: ckpt[k] for k in ("state_dict", "optimizer_states", "lr_schedulers", "global_step")}


def assert_same(a: Any, b: Any) -> None:
    """Equal structures, tensors bit for bit."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    else:
        assert a == b


@pytest.mark.parametrize(
    "optim", ["optim=sgd optim.decay_step=25", "optim=adam optim.decay_step=25"]
)
def test_run_to_n_equals_run_to_half_then_resume(
    make_cfg: Callable[..., Any], tmp_path: Path, optim: str
) -> None:
    """The issue's test: N steps straight vs N/2, SIGTERM, resume to N; losses compared exactly.

    The learning rate decays at step 25, after the interruption, so the schedule's state counts;
    Adam's moments make the optimizer's state count too.
    """
    settings = [f"trainer.max_steps={N}", *optim.split()]
    straight = train(make_cfg(*settings, f"run_dir={tmp_path / 'straight'}"))

    run_dir = tmp_path / "interrupted"
    with pytest.raises(RunInterrupted) as stopped:
        # The signal arrives during step 15's chunk end; the next chunk finishes, then it saves.
        train(make_cfg(*settings, f"run_dir={run_dir}"), [SignalAt(N // 2 - 5, signal.SIGTERM)])
    assert stopped.value.exit_code == 143
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["status"] == "interrupted" and record["steps"] == N // 2
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler was put back

    resumed = train(make_cfg(*settings, f"run_dir={run_dir}", "resume=true"))
    assert {k: resumed[k] for k in COMPARED} == {k: straight[k] for k in COMPARED}
    assert resumed["resumed_from_step"] == N // 2
    # Everything a later resume or analysis reads is the same too.
    assert_same(
        checkpoint_state(run_dir / "checkpoints" / "last.ckpt"),
        checkpoint_state(tmp_path / "straight" / "checkpoints" / "last.ckpt"),
    )
    assert (run_dir / "dynamics.csv").read_text() == (
        tmp_path / "straight" / "dynamics.csv"
    ).read_text()


def test_resuming_from_an_older_checkpoint_drops_what_was_collected_after_it(
    make_cfg: Callable[..., Any], tmp_path: Path
) -> None:
    """After a hard kill the last checkpoint is older than the run's files: as if from step 10."""
    settings = [f"trainer.max_steps={N}", "callbacks.dynamics.every_n_steps=5"]
    settings.append("callbacks.model_checkpoint.save_top_k=-1")  # keep step10.ckpt
    straight = train(make_cfg(*settings, f"run_dir={tmp_path / 'straight'}"))
    run_dir = tmp_path / "killed"
    with pytest.raises(RunInterrupted):
        train(make_cfg(*settings, f"run_dir={run_dir}"), [SignalAt(25, signal.SIGTERM)])
    older = run_dir / "checkpoints" / "step10.ckpt"
    resumed = train(make_cfg(*settings, f"run_dir={run_dir}", "resume=true", f"ckpt_path={older}"))
    assert resumed["resumed_from_step"] == 10
    exact = [k for k in COMPARED if k != "step0_loss"]
    assert {k: resumed[k] for k in exact} == {k: straight[k] for k in exact}
    # a stacked job's step-0 loss sums its batch in another order: within 1e-6
    assert resumed["step0_loss"] == pytest.approx(straight["step0_loss"], rel=1e-6)
    assert (run_dir / "dynamics.csv").read_text() == (
        tmp_path / "straight" / "dynamics.csv"
    ).read_text()


@pytest.fixture
def terminal_sigint() -> Iterator[None]:
    """SIGINT as in a terminal: a script's background job starts with it ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_saves_a_checkpoint_and_exits_130(
    make_cfg: Callable[..., Any], tmp_path: Path, terminal_sigint: None
) -> None:
    with pytest.raises(RunInterrupted, match="SIGINT stopped training at step 10") as stopped:
        train(make_cfg(f"trainer.max_steps={N}"), [SignalAt(5, signal.SIGINT)])
    assert stopped.value.exit_code == 130
    assert "ckpt_path=" in str(stopped.value)  # outside Hydra: the checkpoint to pass
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 10 and "sampler_state" in ckpt["NamesDataModule"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


@pytest.mark.slow  # long end-to-end: two CLI runs and a signal; make test-all (CI) runs it
def test_sigterm_from_outside_then_resume_through_the_cli(names_file: Path, tmp_path: Path) -> None:
    """`kill` a running `python train.py`, run the command it prints, get the straight numbers."""
    steps = [*on_file(names_file), *FAST, "trainer.max_steps=600", "data.chunk_size=20"]
    steps += ["callbacks.model_checkpoint.every_n_train_steps=100", "model.n_hidden=16"]
    steps += ["trainer.val_check_interval=100", "callbacks.dynamics.every_n_steps=100"]
    run_dir = tmp_path / "killed"

    def start(name: str) -> subprocess.Popen:
        with (tmp_path / f"{name}.log").open("w") as log:  # files, not pipes: nothing blocks
            return subprocess.Popen(
                [sys.executable, "train.py", *steps, f"hydra.run.dir={tmp_path / name}"],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    straight = start("straight")  # alongside, for the reference
    process = start("killed")
    deadline = time.monotonic() + 120
    while not list((run_dir / "checkpoints").glob("step*.ckpt")):  # training is under way
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=120)
    stderr = (tmp_path / "killed.log").read_text()
    record = json.loads((run_dir / "metrics.json").read_text())
    assert process.returncode == 143, stderr[-2000:]
    assert record["status"] == "interrupted" and 0 < record["steps"] < 600
    command = stderr.split("Continue exactly where it stopped with: ")[1].split()
    assert command[:2] == ["python", "train.py"] and command[-1] == "resume=true"

    resumed = run_cli(*command[1:])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert straight.wait(timeout=120) == 0, (tmp_path / "straight.log").read_text()[-3000:]
    a = json.loads((run_dir / "metrics.json").read_text())
    b = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    assert {k: a[k] for k in COMPARED} == {k: b[k] for k in COMPARED}
    assert a["resumed_from_step"] == record["steps"]


def test_resume_skips_a_completed_run_and_a_plain_rerun_is_refused(
    make_cfg: Callable[..., Any], tmp_path: Path
) -> None:
    first = train(make_cfg())
    files = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    again = train(make_cfg("resume=true"))
    assert again == json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert again["val_loss"] == first["val_loss"]
    assert {p: p.read_bytes() for p in files} == files  # nothing rewritten


def test_resume_with_no_checkpoint_yet_starts_at_step_0(
    make_cfg: Callable[..., Any], tmp_path: Path
) -> None:
    """A sweep resumed with resume=true runs the jobs that never started from scratch."""
    metrics = train(make_cfg("resume=true"))
    assert metrics["status"] == "completed" and metrics["resumed_from_step"] is None


def trained_checkpoint(make_cfg: Callable[..., Any], run_dir: Path, *overrides: str) -> Path:
    train(make_cfg(*overrides, f"run_dir={run_dir}"))
    return run_dir / "checkpoints" / "last.ckpt"


def test_a_checkpoint_of_another_network_is_refused_naming_the_difference(
    make_cfg: Callable[..., Any], names_file: Path, tmp_path: Path
) -> None:
    ckpt = trained_checkpoint(make_cfg, tmp_path / "wide", "model.n_hidden=64")
    result = run_cli(
        "train.py",
        *on_file(names_file),
        *FAST,
        f"ckpt_path={ckpt}",
        f"hydra.run.dir={tmp_path / 'new'}",
    )
    assert result.returncode == 2
    message = result.stderr.split("makemore-lab: error: ")[1]
    assert "model.n_hidden=100 here, 64 in the checkpoint" in message
    assert "Traceback" not in result.stderr


def test_a_corrupted_or_missing_checkpoint_is_refused(
    make_cfg: Callable[..., Any], names_file: Path, tmp_path: Path
) -> None:
    ckpt = trained_checkpoint(make_cfg, tmp_path / "run")
    damaged = tmp_path / "damaged.ckpt"
    damaged.write_bytes(ckpt.read_bytes()[:5000])  # a copy cut short
    for path, expected in [(damaged, "cannot be read"), (tmp_path / "nope.ckpt", "No checkpoint")]:
        result = run_cli(
            "train.py",
            *on_file(names_file),
            *FAST,
            f"ckpt_path={path}",
            f"hydra.run.dir={tmp_path / path.stem}",
        )
        assert result.returncode == 2 and expected in result.stderr, result.stderr[-2000:]
        assert not (tmp_path / path.stem / "checkpoints").exists()  # refused before training


def test_checkpoints_are_written_whole_or_not_at_all(
    make_cfg: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A save that fails half-way (disk full, a kill) leaves the previous checkpoint intact."""
    train(make_cfg())
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    before = last.read_bytes()

    def torn_save(obj: Any, f: Any) -> None:
        f.write(b"half a checkpoint")
        raise OSError("No space left on device")

    from makemore_lab.runs.checkpoints import AtomicCheckpointIO

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(OSError, match="No space left"):
        AtomicCheckpointIO().save_checkpoint({"state_dict": {}}, last)
    assert last.read_bytes() == before
    assert [p.name for p in last.parent.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.slow  # long end-to-end: a sweep, a signal, its resume; make test-all (CI) runs it
def test_sigterm_stops_a_sweep_and_the_same_command_with_resume_finishes_it(
    names_file: Path, tmp_path: Path
) -> None:
    """Killed during job 1 of 3: job 0 is kept, job 1 resumes, job 2 runs, all complete."""
    out = tmp_path / "sweep"
    args = ["-m", *on_file(names_file), *FAST, "trainer.max_steps=600", "data.chunk_size=20"]
    args += ["callbacks.model_checkpoint.every_n_train_steps=100", "model.n_hidden=16"]
    args += ["trainer.val_check_interval=100", "seed=1,2,3", f"hydra.sweep.dir={out}"]
    with (tmp_path / "sweep.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "train.py", *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log
        )
    deadline = time.monotonic() + 120
    while not list((out / "1_seed=2" / "checkpoints").glob("step*.ckpt")):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 143  # the sweep stops: job 2 never starts
    assert not (out / "2_seed=3").exists()
    done = (out / "0_seed=1" / "metrics.json").read_bytes()

    resumed = run_cli("train.py", *args, "resume=true")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (out / "0_seed=1" / "metrics.json").read_bytes() == done  # left alone
    statuses = [
        json.loads((out / j / "metrics.json").read_text()) for j in ("1_seed=2", "2_seed=3")
    ]
    assert [m["status"] for m in statuses] == ["completed", "completed"]
    assert statuses[0]["resumed_from_step"] > 0 and statuses[1]["resumed_from_step"] is None


EARLIER = Path(__file__).parent / "data" / "earlier_version"  # its README says how they were made
TINY = ["model.n_hidden=8", "model.n_layers=2", "callbacks.dynamics=null", "logger=csv"]


@pytest.mark.parametrize(
    ("name", "setting"),
    [("solo_adam_step10.ckpt", "optim=adam"), ("stacked_job_gain3_step10.ckpt", "init.gain=3")],
)
def test_a_checkpoint_of_the_earlier_version_continues_exactly(
    make_cfg: Callable[..., Any], names_file: Path, tmp_path: Path, name: str, setting: str
) -> None:
    """A solo run's and a stacked job's checkpoint written before the engines shared one job
    state load, and continue to the uninterrupted run's numbers."""
    settings = [*TINY, setting, "trainer.max_steps=20"]
    straight = train(make_cfg(*settings, f"run_dir={tmp_path / 'straight'}"))
    ckpt = torch.load(EARLIER / name, weights_only=True)
    assert "makemore" in ckpt and "sampler_state" in ckpt["NamesDataModule"]  # the old keys
    # the same names file, which this test's copy holds under another path
    ckpt["hyper_parameters"]["config"]["data"]["path"] = str(names_file)
    torch.save(ckpt, tmp_path / name)
    resumed = train(
        make_cfg(*settings, f"run_dir={tmp_path / 'resumed'}", f"ckpt_path={tmp_path / name}")
    )
    assert resumed["resumed_from_step"] == 10
    exact = [k for k in COMPARED if k != "step0_loss"]
    assert {k: resumed[k] for k in exact} == {k: straight[k] for k in exact}
    # a stacked job's step-0 loss sums its batch in another order: within 1e-6
    assert resumed["step0_loss"] == pytest.approx(straight["step0_loss"], rel=1e-6)
