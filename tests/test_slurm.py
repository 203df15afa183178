"""Sweeps on a real SLURM: a one-node cluster started on this machine (`scripts/slurm_local.sh`).

`make test-slurm` runs these (Debian: `apt-get install slurm-wlm munge`; `.ci/run` installs them
as root); without the daemons they skip with the reason. `make test` leaves them out.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import FAST, ROOT, on_file, run_cli

pytestmark = pytest.mark.slurm

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch")


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
