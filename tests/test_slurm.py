"""Sweeps on a real SLURM: a one-node cluster started on this machine (`scripts/slurm_local.sh`).

`make test-slurm` runs these (Debian: `apt-get install slurm-wlm munge`; `.ci/run` installs them
as root); without the daemons they skip with the reason. `make test` leaves them out.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from subprocess import PIPE

import pytest

from conftest import FAST, ROOT, on_file, run_cli

pytestmark = pytest.mark.slurm

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch")
JOBS = ["0_init.gain=1", "1_init.gain=5_3"]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment of a running one-node SLURM (its SLURM_CONF), stopped afterwards."""
    missing = [d for d in DAEMONS if shutil.which(d) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (Debian: apt-get install slurm-wlm munge)")
    where = tmp_path_factory.mktemp("slurm")
    up = slurm_local("up", where)
    assert up.returncode == 0, up.stderr
    conf = up.stdout.strip().split("export SLURM_CONF=")[1]
    try:
        yield {"SLURM_CONF": conf}
    finally:
        down = slurm_local("down", where)
        assert down.returncode == 0, down.stderr


def slurm_local(command: str, where: Path) -> subprocess.CompletedProcess:
    """`scripts/slurm_local.sh up|down <where>`, as `make slurm-up` runs it."""
    script = ROOT / "scripts" / "slurm_local.sh"
    return subprocess.run(
        ["bash", str(script), command, str(where)], capture_output=True, text=True, timeout=60
    )


def test_a_sweep_through_submitit_on_slurm_equals_the_basic_launchers(
    slurm: dict[str, str], names_file: Path, tmp_path: Path
) -> None:
    args = ["train.py", "-m", *on_file(names_file), *FAST, "init.gain=1,5/3"]
    on_slurm = ["hydra/launcher=slurm", "hydra.launcher.partition=local"]
    on_slurm += ["hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1"]
    result = run_cli(*args, *on_slurm, f"hydra.sweep.dir={tmp_path / 'slurm'}", env=slurm)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "makemore-lab: all 2 jobs completed" in result.stdout
    logs = list((tmp_path / "slurm" / ".submitit").rglob("*_log.out"))
    assert len(logs) == 2  # each job ran as a SLURM task, its log under the sweep
    local = run_cli(*args, f"hydra.sweep.dir={tmp_path / 'basic'}")
    assert local.returncode == 0, local.stderr[-3000:]
    for job in ("0_init.gain=1", "1_init.gain=5_3"):
        a = json.loads((tmp_path / "slurm" / job / "metrics.json").read_text())
        b = json.loads((tmp_path / "basic" / job / "metrics.json").read_text())
        keys = ("status", "step0_loss", "train_loss", "val_loss", "test_loss", "steps")
        assert {k: a[k] for k in keys} == {k: b[k] for k in keys}


def test_stacked_groups_as_slurm_array_elements_equal_the_local_stacked_sweep(
    slurm: dict[str, str], names_file: Path, tmp_path: Path
) -> None:
    """The headline sweep, BatchNorm on and off as two stacked groups: one array element
    each; every job's numbers and dynamics are the local stacked sweep's, bit for bit."""
    args = ["train.py", "-m", *on_file(names_file), *FAST]
    args += ["model.batchnorm=true,false", "init.gain=1,5/3"]
    on_slurm = ["hydra/launcher=stacked_slurm", "hydra.launcher.slurm.partition=local"]
    on_slurm += ["hydra.launcher.slurm.mem_gb=1"]
    result = run_cli(*args, *on_slurm, f"hydra.sweep.dir={tmp_path / 'slurm'}", env=slurm)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "makemore-lab: all 4 jobs completed" in result.stdout
    submitit = (tmp_path / "slurm" / ".submitit").iterdir()
    elements = sorted(p.name for p in submitit if re.fullmatch(r"\d+_\d+", p.name))
    assert [e.split("_")[1] for e in elements] == ["0", "1"]  # one array, an element a group
    assert len({e.split("_")[0] for e in elements}) == 1
    local = run_cli(*args, "hydra/launcher=stacked", f"hydra.sweep.dir={tmp_path / 'local'}")
    assert local.returncode == 0, local.stderr[-3000:]
    jobs = sorted(p.name for p in (tmp_path / "local").glob("[0-9]_*"))
    assert jobs == sorted(p.name for p in (tmp_path / "slurm").glob("[0-9]_*")) and len(jobs) == 4
    keys = ("status", "step0_loss", "train_loss", "val_loss", "test_loss", "steps")
    for job in jobs:
        a = json.loads((tmp_path / "slurm" / job / "metrics.json").read_text())
        b = json.loads((tmp_path / "local" / job / "metrics.json").read_text())
        assert {k: a[k] for k in keys} == {k: b[k] for k in keys}
        assert a["stacked_group"] == b["stacked_group"]
        for name in ("dynamics.csv", "samples.txt"):
            assert (tmp_path / "slurm" / job / name).read_bytes() == (
                tmp_path / "local" / job / name
            ).read_bytes()


# Long enough to be stopped mid-run (about 10 s of training for a group of two here).
LONG = [
    "trainer.max_steps=10000",
    "trainer.val_check_interval=5000",
    "data.chunk_size=50",
    "callbacks.model_checkpoint.every_n_train_steps=2000",
]
EXACT = ("status", "step0_loss", "train_loss", "val_loss", "test_loss", "steps")


def start_sweep(slurm: dict[str, str], names_file: Path, out: Path, *args: str) -> subprocess.Popen:
    command = [sys.executable, "train.py", "-m", *on_file(names_file), *FAST, *LONG, *args]
    command += ["hydra/launcher=stacked_slurm", "hydra.launcher.slurm.partition=local"]
    command += ["hydra.launcher.slurm.mem_gb=1", f"hydra.sweep.dir={out}"]
    env = {**os.environ, **slurm}
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=PIPE, stderr=PIPE, text=True)


def wait_for_file(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    """Until `path` exists (the run has got that far), while the sweep still runs."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.2)


def slurm_command(slurm: dict[str, str], *args: str) -> str:
    run = subprocess.run(args, env={**os.environ, **slurm}, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return run.stdout


@pytest.fixture(scope="module")
def uninterrupted(names_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The preempted sweep's reference: the same group trained through without a stop (one
    group, as on SLURM, not split over this machine's cores)."""
    out = tmp_path_factory.mktemp("uninterrupted")
    args = ["train.py", "-m", *on_file(names_file), *FAST, *LONG, "init.gain=1,5/3"]
    args += ["hydra/launcher=stacked", "hydra.launcher.split_groups=false"]
    result = run_cli(*args, f"hydra.sweep.dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.mark.parametrize("how", ["scancel --signal=USR2", "scontrol requeue"])
def test_a_preempted_group_is_requeued_and_ends_as_an_uninterrupted_run(
    how: str, slurm: dict[str, str], names_file: Path, tmp_path: Path, uninterrupted: Path
) -> None:
    """SIGUSR2 (submitit's preemption and time-limit warning): the group saves at its chunk's
    end and requeues itself; SIGTERM from `scontrol requeue`: it saves, SLURM requeues it.
    Either way the next attempt resumes each job without resume=true, to the same numbers."""
    sweep = start_sweep(slurm, names_file, tmp_path, "init.gain=1,5/3")
    wait_for_file(tmp_path / JOBS[0] / "checkpoints" / "step2000.ckpt", sweep)
    (task,) = slurm_command(slurm, "squeue", "-h", "-r", "-o", "%i").split()
    slurm_command(slurm, *how.split(), task)
    out, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 0, err[-3000:]
    assert "makemore-lab: all 2 jobs completed" in out
    for job in JOBS:
        a = json.loads((tmp_path / job / "metrics.json").read_text())
        b = json.loads((uninterrupted / job / "metrics.json").read_text())
        assert {k: a[k] for k in EXACT} == {k: b[k] for k in EXACT}
        assert 2000 <= a["resumed_from_step"] < 10000  # stopped mid-run, lost under a chunk
        checkpoints = sorted(p.name for p in (tmp_path / job / "checkpoints").iterdir())
        assert checkpoints == ["last.ckpt", "step10000.ckpt"]  # no last-v1.ckpt
        for name in ("samples.txt", "dynamics.csv"):
            assert (tmp_path / job / name).read_bytes() == (uninterrupted / job / name).read_bytes()
    log = "".join(p.read_text() for p in (tmp_path / ".submitit").rglob("*_log.*"))
    stopped = "SIGUSR2" if "USR2" in how else "SIGTERM"
    assert f"{stopped} received: finishing this chunk" in log
    assert ("requeued itself" in log) == (stopped == "SIGUSR2")
    assert "SLURM requeued" in log  # the next attempt knew it was one


def test_a_cancelled_task_is_reported_failed_and_the_other_task_finishes(
    slurm: dict[str, str], names_file: Path, tmp_path: Path
) -> None:
    """BatchNorm on and off do not stack: two tasks, each a job trained alone. Cancelling one
    records its job failed with the SLURM state and log; the sweep ends with its summary and
    exit 1, no traceback, no task left in the queue."""
    sweep = start_sweep(slurm, names_file, tmp_path, "model.batchnorm=true,false")
    second = tmp_path / "1_model.batchnorm=False"
    wait_for_file(second / "checkpoints" / "step2000.ckpt", sweep)
    tasks = sorted(slurm_command(slurm, "squeue", "-h", "-r", "-o", "%i").split())
    assert [t.split("_")[1] for t in tasks] == ["0", "1"]
    slurm_command(slurm, "scancel", tasks[1])
    out, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 1, err[-3000:]
    assert "Traceback" not in out + err
    record = json.loads((second / "metrics.json").read_text())
    assert record["status"] == "failed" and record["slurm"]["state"] == "CANCELLED"
    assert Path(record["slurm"]["log"]).is_file() and record["checkpoint"].endswith("last.ckpt")
    assert f"SLURM task {tasks[1]} ended CANCELLED" in out  # the launcher's log
    assert f"1_model.batchnorm=False (failed: SLURM task {tasks[1]} CANCELLED, log " in err
    first = json.loads((tmp_path / "0_model.batchnorm=True" / "metrics.json").read_text())
    assert first["status"] == "completed"
    assert slurm_command(slurm, "squeue", "-h", "-o", "%i").strip() == ""


def test_the_slurm_benchmark_runs_both_launchers_to_the_same_losses(
    slurm: dict[str, str], names_file: Path
) -> None:
    """`python -m benchmarks.slurm`, tiny: its JSON line, both sweeps' val losses equal."""
    command = ["-m", "benchmarks.slurm", "--jobs", "2", "--steps", "20", "--data", str(names_file)]
    result = run_cli(*command, env=slurm)
    assert result.returncode == 0, result.stderr[-3000:]
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["same_val_losses"] is True and line["jobs"] == 2
    assert line["slurm_stacked_over_per_job"] > 0
