"""Bad input costs one clear sentence: every kind of bad value, through the real CLI.

The commands run concurrently (each is mostly Python start-up), then each case is its own test.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import FAST, on_file, run_cli
from makemore_lab.config_checks import CHECKS, check_config

# (name, command-line arguments after the usual test settings, what the message must say)
CASES = [
    ("negative lr", ["optim.lr=-0.1"], "optim.lr=-0.1 is not valid: it must be a positive number"),
    ("zero lr", ["optim.lr=0"], "optim.lr=0 is not valid"),
    ("decay gamma", ["optim.decay_gamma=0"], "optim.decay_gamma=0 is not valid"),
    ("steps not a number", ["trainer.max_steps=abc"], "trainer.max_steps='abc' is not valid"),
    ("log cadence", ["trainer.log_every_n_steps=0"], "must be a positive integer"),
    ("val cadence", ["trainer.val_check_interval=-10"], "trainer.val_check_interval=-10"),
    ("bn momentum", ["model.bn.momentum=2"], r"model.bn.momentum=2 .* a number in \[0, 1\]"),
    ("bn running", ["model.bn.running=mean"], "model.bn.running='mean' .* var or std"),
    ("output scale", ["init.output_scale=-1"], "init.output_scale=-1 is not valid"),
    ("gain expression", ["init.gain=5/3+"], "init.gain='5/3\\+' is not a valid gain"),
    ("threshold", ["callbacks.dynamics.saturation_threshold=1.5"], "strictly between 0 and 1"),
    ("seed", ["seed=-1"], "seed=-1 is not valid: it must be a non-negative integer"),
    ("threads", ["threads=0"], "threads=0 is not valid: it must be null or a positive integer"),
    ("resume", ["resume=maybe"], "resume='maybe' is not valid: it must be true or false"),
    ("samples", ["samples.count=-1"], "samples.count=-1"),
    ("chunk", ["data.chunk_size=0"], "data.chunk_size=0 must be a positive integer"),
    (
        "parallel launcher",
        ["-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=0", "seed=1,2"],
        r"hydra.launcher.n_jobs=0 is not valid: .*--cfg hydra",
    ),
    (
        "slurm launcher",
        ["-m", "hydra/launcher=slurm", "hydra.launcher.timeout_min=-3", "seed=1,2"],
        "hydra.launcher.timeout_min=-3 is not valid",
    ),
    ("gain word", ["init.gain=abc"], "init.gain='abc' is not a valid gain"),
    ("gain zero division", ["init.gain=5/0"], "is not a valid gain.*divides by zero"),
    ("hidden size", ["model.n_hidden=0"], "model.n_hidden=0 must be a positive integer"),
    ("layers", ["model.n_layers=-2"], "model.n_layers=-2 must be a positive integer"),
    ("batch size", ["data.batch_size=0"], "data.batch_size=0 must be a positive integer"),
    ("activation", ["model.activation=gelu"], "model.activation='gelu' is not supported"),
    ("missing data file", ["data.path={tmp}/does/not/exist.txt"], "exist.txt does not exist"),
    ("binary data file", ["data.path={binary}"], "looks binary"),
    ("empty data file", ["data.path={empty}"], "holds no names"),
    (
        "checksum",
        ["data.path={tmp}/fresh.txt", "data.download=true", "data.url=file://{names}"],
        "has sha256 .* kept aside as .*fresh.txt.rejected and not used",
    ),
]


@pytest.fixture(scope="module")
def results(
    names_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    tmp = tmp_path_factory.mktemp("bad_input")
    (tmp / "binary.txt").write_bytes(b"\x00\x01\x02names\x00")
    (tmp / "empty.txt").write_text("\n\n")
    paths = {"binary": tmp / "binary.txt", "empty": tmp / "empty.txt", "tmp": tmp}
    paths["names"] = names_file
    # The checksum case: a URL whose content is not the file we expect.
    wrong = "0" * 64
    assert hashlib.sha256(names_file.read_bytes()).hexdigest() != wrong

    def run(case: tuple[str, list[str], str]) -> tuple[subprocess.CompletedProcess, Path]:
        name, args, _ = case
        args = [a.format(**paths) for a in args]
        where = tmp / name.replace(" ", "_")
        out = "hydra.sweep.dir" if "-m" in args else "hydra.run.dir"
        extra = [f"data.sha256={wrong}"] if name == "checksum" else []
        base = on_file(names_file) if not any(a.startswith("data.path") for a in args) else []
        return run_cli("train.py", *base, *FAST, *args, *extra, f"{out}={where}"), where

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip([c[0] for c in CASES], pool.map(run, CASES), strict=True))


@pytest.mark.parametrize(("name", "args", "message"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_value_is_one_paragraph_naming_it_and_nothing_trains(
    results: dict, name: str, args: list[str], message: str
) -> None:
    result, where = results[name]
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    paragraph = result.stderr.split("makemore-lab: error: ")[1].strip()
    assert "\n" not in paragraph and re.search(message, paragraph), paragraph
    assert not (where / "checkpoints").exists() and not list(where.rglob("events.out.*"))


def test_the_checksum_failure_keeps_the_download_aside(results: dict) -> None:
    _, where = results["checksum"]
    fresh = where.parent / "fresh.txt"
    assert not fresh.exists() and fresh.with_name("fresh.txt.rejected").is_file()


def test_every_default_config_passes_and_each_checked_key_exists(make_cfg) -> None:
    """The checks name real keys (a renamed key would silently go unchecked)."""
    cfg = make_cfg(fast=False)
    check_config(cfg)
    missing = [k for k in CHECKS if OmegaConf.select(cfg, k, default="<absent>") == "<absent>"]
    assert missing == []
