"""One run per run directory, and resume refuses what it would ignore (README, Reliability).

A run claims its directory (`run.lock`) before writing there: a live run's directory is refused
to everyone, a dead unfinished one unless `resume=true`; a refused command changes no byte of
the earlier run. Resume compares every setting that changes training with the checkpoint's, and
`trainer.max_steps` may grow (train on) but not fall below the checkpoint's step.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import FAST, on_file, run_cli
from makemore_lab.errors import UserError
from makemore_lab.runs import record as run_record
from makemore_lab.runs.claim import LOCK, _process_start
from makemore_lab.runs.resume import check_resume


def files(run: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}


def dead_pid() -> int:
    """The pid of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def claimed_by(run: Path, pid: int) -> None:
    """`run` as a run of process `pid` left it: its log, config.yaml, a claim, no metrics.json."""
    run.mkdir(parents=True)
    (run / "app.log").write_text("[the run's log]\n")  # Hydra's log, appended to by later commands
    (run / "config.yaml").write_text("seed: 1\n")
    holder = {"pid": pid, "host": socket.gethostname(), "start": _process_start(pid)}
    (run / LOCK).write_text(json.dumps(holder))


def test_a_live_runs_directory_is_refused_even_with_resume(names_file: Path, tmp_path) -> None:
    run = tmp_path / "run"
    claimed_by(run, os.getpid())  # this test process: alive while the command runs
    before = files(run)
    for extra in ([], ["resume=true"]):
        result = run_cli("train.py", *on_file(names_file), *FAST, f"hydra.run.dir={run}", *extra)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert "belongs to a run that is still going" in result.stderr
        assert f"process {os.getpid()}" in result.stderr
    assert files(run) == before


def test_a_killed_run_is_refused_without_resume_and_continued_with_it(
    names_file: Path, tmp_path
) -> None:
    run = tmp_path / "run"
    claimed_by(run, dead_pid())
    before = files(run)
    args = ["train.py", *on_file(names_file), *FAST, f"hydra.run.dir={run}"]
    refused = run_cli(*args)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "holds an unfinished run" in refused.stderr and "is gone" in refused.stderr
    assert "Add resume=true" in refused.stderr
    assert files(run) == before  # not even a `failed` record: it is not this command's run
    resumed = run_cli(*args, "resume=true")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run / "metrics.json").read_text())["status"] == "completed"
    assert not (run / LOCK).exists()  # released once the run recorded how it ended


def test_an_unclaimed_unfinished_run_is_refused_too(names_file: Path, tmp_path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("seed: 1\n")  # a run started here, left no record
    result = run_cli("train.py", *on_file(names_file), *FAST, f"hydra.run.dir={run}")
    assert result.returncode == 2 and "holds an unfinished run" in result.stderr
    assert (run / "config.yaml").read_text() == "seed: 1\n"
    assert not (run / "metrics.json").exists() and not (run / ".hydra").exists()


@pytest.fixture(scope="module")
def completed_run(names_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One completed 20-step run (the FAST settings), trained once for the tests that read it
    or continue a copy of it."""
    from hydra import compose, initialize_config_dir

    from conftest import ROOT
    from makemore_lab.train import train

    run = tmp_path_factory.mktemp("completed") / "run"
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        train(compose("config", [*on_file(names_file), *FAST, f"run_dir={run}"]))
    return run


def test_resume_refuses_changed_training_settings_naming_each(
    names_file: Path, tmp_path, completed_run: Path
) -> None:
    args = ["train.py", *on_file(names_file), *FAST]
    ckpt = completed_run / "checkpoints" / "last.ckpt"
    new = tmp_path / "new"
    changed = run_cli(
        *args, f"ckpt_path={ckpt}", "optim.lr=0.5", "data.batch_size=16", f"hydra.run.dir={new}"
    )
    assert changed.returncode == 2 and "Traceback" not in changed.stderr
    message = changed.stderr.split("makemore-lab: error: ")[1]
    assert "optim.lr=0.5 here, 0.1 in the checkpoint" in message
    assert "data.batch_size=16 here, 32 in the checkpoint" in message
    assert "optim.optimizer.lr" not in message  # it follows optim.lr: named once
    assert not (new / "config.yaml").exists()
    adam = run_cli(*args, f"ckpt_path={ckpt}", "optim=adam", f"hydra.run.dir={tmp_path / 'a'}")
    assert adam.returncode == 2 and "optim.optimizer._target_='torch.optim.Adam'" in adam.stderr


def test_max_steps_may_grow_on_resume_but_not_fall_below_the_checkpoint(
    names_file: Path, tmp_path, completed_run: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(completed_run, run)  # 20 steps, completed
    args = ["train.py", *on_file(names_file), *FAST, f"hydra.run.dir={run}"]
    longer = run_cli(*args, "trainer.max_steps=30", "resume=true")
    assert longer.returncode == 0, longer.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["steps"] == 30
    assert metrics["resumed_from_step"] == 20
    ckpt = run / "checkpoints" / "last.ckpt"
    shorter = run_cli(
        *args[:-1], f"ckpt_path={ckpt}", "trainer.max_steps=10", f"hydra.run.dir={tmp_path / 'b'}"
    )
    assert shorter.returncode == 2
    assert "Nothing to train" in shorter.stderr and "trainer.max_steps=30 or more" in shorter.stderr


def test_a_group_checkpoint_of_an_earlier_version_is_refused_not_misread(
    make_cfg, tmp_path: Path
) -> None:
    # Earlier versions kept a stacked group's state only in <sweep>/stacked/jobs_<nums>/.
    sweep, run = tmp_path / "sweep", tmp_path / "sweep" / "job0"
    group = sweep / "stacked" / "jobs_0_1" / "checkpoints" / "last.ckpt"
    group.parent.mkdir(parents=True)
    torch.save({"global_step": 20, "state_dict": {}, "makemore_stacked": {}}, group)
    run.mkdir()
    run_record.write_interrupted(run, 20, group, 15)
    with pytest.raises(UserError, match=r"earlier version of makemore-lab.*new directory"):
        check_resume(make_cfg(f"run_dir={run}", "resume=true"))
    with pytest.raises(UserError, match=r"stacked group's checkpoint.*a job's own checkpoint"):
        check_resume(make_cfg(f"run_dir={tmp_path / 'new'}", f"ckpt_path={group}"))
