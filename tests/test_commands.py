"""The installed commands: they run from any directory, and a plain (non-editable) install
carries the configs, so `makemore-train` composes them without the repository at hand."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT

BIN = Path(sys.executable).parent  # where the venv's console scripts are
# what a build of the project does not read: the checkout's state, data, outputs and caches
NOT_BUILT = {".git", ".venv", "data", "outputs", "multirun", "lightning_logs", "build"}
CACHES = shutil.ignore_patterns("__pycache__", ".pytest_cache", ".ruff_cache", "*.egg-info")


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60):
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **(env or {})},
    )


@pytest.mark.parametrize("command", ["makemore-sample", "makemore-table"])
def test_the_commands_answer_help_outside_the_repository(command: str, tmp_path: Path) -> None:
    script = BIN / command
    assert script.is_file(), f"{script} is missing: install the project (make install)"
    result = run(script, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {command} ") and "Traceback" not in result.stderr


def test_the_scripts_are_wrappers_of_the_commands(tmp_path: Path) -> None:
    """Run by path from elsewhere: the installed package, no sys.path of their own."""
    empty = tmp_path / "empty"
    empty.mkdir()
    scripts = ROOT / "scripts"
    sample = run(sys.executable, scripts / "sample.py", "--help", cwd=tmp_path)
    assert sample.returncode == 0 and "makemore-sample" in sample.stdout, sample.stderr
    ablation = run(sys.executable, scripts / "ablation_table.py", empty, cwd=tmp_path)
    assert ablation.returncode == 2 and "holds no job directories" in ablation.stderr
    layers = run(sys.executable, scripts / "dynamics_table.py", empty, cwd=tmp_path)
    assert layers.returncode == 2 and "no job with a dynamics.csv" in layers.stderr  # --layers


def sources(folder: str, names: list[str]) -> set[str]:
    """copytree's filter: NOT_BUILT at the checkout's top only (conf/data is a config group)."""
    top = NOT_BUILT.intersection(names) if Path(folder) == ROOT else set()
    return top | CACHES(folder, names)


COMPOSE = """
import sys
from pathlib import Path
from hydra import compose, initialize_config_dir
from makemore_lab.cli.app import CONF_DIR
assert Path(CONF_DIR).is_relative_to(Path(sys.argv[1]).resolve()), CONF_DIR
with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
    cfg = compose("config")
assert cfg.model.n_hidden == 100, cfg.model
print("composed from", CONF_DIR)
"""


def test_a_wheel_carries_the_configs_and_an_install_of_it_composes_them(tmp_path: Path) -> None:
    # Built from a copy: a build in the checkout writes build/ and *.egg-info there, and a stale
    # build/lib would slip files into the wheel that the sources no longer have.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=sources)
    pip = (sys.executable, "-m", "pip")
    wheels = tmp_path / "wheels"
    built = run(
        *pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", wheels, source,
        cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-3000:]
    (wheel,) = wheels.glob("makemore_lab-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    conf = ROOT / "conf"  # every config, the experiments among them
    wanted = {f"makemore_lab/conf/{p.relative_to(conf).as_posix()}" for p in conf.rglob("*.yaml")}
    assert "makemore_lab/conf/config.yaml" in wanted and any("/experiment/" in w for w in wanted)
    assert wanted <= names, f"missing {sorted(wanted - names)}; the wheel has {sorted(names)}"
    # the stacked launcher, which Hydra looks for in the hydra_plugins package
    assert "hydra_plugins/makemore_lab_launcher/stacked_launcher.py" in names

    site = tmp_path / "site"
    installed = run(
        *pip, "install", "--no-deps", "--no-index", "--target", site, wheel, cwd=tmp_path
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"  # no conf/ here, nor above
    elsewhere.mkdir()
    env = {"PYTHONPATH": str(site)}  # ahead of the venv's editable install of the checkout
    composed = run(sys.executable, "-c", COMPOSE, site, cwd=elsewhere, env=env)
    assert composed.returncode == 0, composed.stderr[-3000:]
    assert f"composed from {site.resolve()}" in composed.stdout


@pytest.mark.parametrize("option", ["--count=-5", "--count=0", "--seed=9223372036854775808"])
def test_sample_refuses_a_count_or_seed_out_of_range(option: str, tmp_path: Path) -> None:
    from makemore_lab.cli.sample import parser

    with pytest.raises(SystemExit) as raised:
        parser().parse_args([str(tmp_path), option])
    assert raised.value.code == 2  # argparse's one-line error, before any checkpoint is read
