"""Bad input costs one clear sentence, and nothing trains.

A user sees one paragraph on stderr, starting `makemore-lab: error: `, with no traceback, and
exit status 2; no checkpoint or event file is written. A few commands pin that contract through
the real CLI: a config value, launcher options, a data file, a value only torch can judge and an
output directory. Every other bad value is tested in process, where it is caught: by
`check_config` (every value of conf/, before torch and Lightning are imported, so a refused
command answers in about a second), by `check_launcher` (a multirun's launcher), or by torch
when `train` builds the optimizer.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hydra.errors import InstantiationException
from omegaconf import OmegaConf

from conftest import FAST, on_file, run_cli
from makemore_lab.cli.app import launcher_of
from makemore_lab.config.checks import CHECKS, check_config, check_launcher
from makemore_lab.errors import UserError
from makemore_lab.runs.failures import find_user_error
from makemore_lab.train import train

POSITIVE_INT = "is not valid: it must be a positive integer"

# (case, arguments after the usual test settings, what the one paragraph must say)
CLI_CASES = [
    (
        "config value",
        ["optim.lr=-0.1"],
        "optim.lr=-0.1 is not valid: it must be a positive number",
    ),
    (
        "launcher option",
        ["-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=0", "seed=1,2"],
        r"hydra.launcher.n_jobs=0 is not valid: .*--cfg hydra",
    ),
    (
        "stacked launcher option",
        ["-m", "hydra/launcher=stacked", "hydra.launcher.mixed_layers=maybe", "seed=1,2"],
        "hydra.launcher.mixed_layers='maybe' is not valid: it must be true, false or auto",
    ),
    (
        "data file",
        ["data.path={tmp}/does/not/exist.txt"],  # replaces the names file given before it
        "exist.txt does not exist",
    ),
    (
        "value checked when built",
        ["+optim.optimizer.nesterov=true"],
        r"optim.optimizer \(torch.optim.SGD\) .*[Nn]esterov",
    ),
    (
        "output directory",
        ["-m", "hydra.sweep.dir=/sys/makemore-lab", "seed=1,2"],  # root may not write there
        "hydra.sweep.dir=/sys/makemore-lab cannot be written",
    ),
]

# Values `check_config` refuses before torch and Lightning are even imported.
CONFIG_CASES = [
    ("optim.lr=0", "optim.lr=0 is not valid"),
    ("optim.decay_gamma=0", "optim.decay_gamma=0 is not valid"),
    ("trainer.max_steps=abc", "trainer.max_steps='abc' is not valid"),
    ("trainer.log_every_n_steps=0", "must be a positive integer"),
    ("trainer.val_check_interval=-10", "trainer.val_check_interval=-10"),
    ("model.bn.momentum=2", r"model.bn.momentum=2 .* a number in \[0, 1\]"),
    ("model.bn.running=mean", "model.bn.running='mean' .* var or std"),
    ("init.output_scale=-1", "init.output_scale=-1 is not valid"),
    ("init.gain=5/3+", r"init.gain='5/3\+' is not a valid gain"),
    ("init.gain=abc", "init.gain='abc' is not a valid gain"),
    ("init.gain=5/0", "is not a valid gain.*divides by zero"),
    ("seed=-1", "seed=-1 is not valid: it must be an integer from 0 to"),
    ("cuda_graphs=auto", "cuda_graphs='auto' is not valid"),
    ("threads=0", "threads=0 is not valid: it must be null or a positive integer"),
    ("resume=maybe", "resume='maybe' is not valid: it must be true or false"),
    ("samples.count=-1", "samples.count=-1"),
    ("seed=9223372036854775808", "seed=9223372036854775808 .* from 0 to 9223372036854775807"),
    ("samples.seed=9223372036854775808", "samples.seed=9223372036854775808 is not valid"),
    ("trainer.max_epochs=0", r"trainer.max_epochs=0 .* -1 \(the default"),
    ("trainer.devices=0", "trainer.devices=0 .* a positive integer"),
    ("data.block_size=5", "data.block_size=5 but model.block_size=3"),
    ("callbacks.dynamics.saturation_threshold='0.9'", "threshold='0.9' .* strictly between"),
    ("data.batch_size=1", "data.batch_size=1 with BatchNorm"),
    # values a float32 weight cannot be multiplied by (torch overflows mid-training otherwise)
    ("optim.lr=1e39", r"optim.lr=1e\+39 .* a 32-bit float can hold"),
    ("optim.optimizer.lr=1e39", r"optim.optimizer.lr=1e\+39 .* a 32-bit float can hold"),
    ("init.gain=1e39", r"init.gain=1e\+39 .* a 32-bit float can hold"),
    ("init.output_scale=1e39", "a number of at least 0 a 32-bit float can hold"),
    # Lightning's options of automatic optimization only: our steps are manual
    ("trainer.gradient_clip_val=1.0", "trainer.gradient_clip_val=1.0 .* makemore-lab's own"),
    ("trainer.accumulate_grad_batches=4", "trainer.accumulate_grad_batches=4 .* 1 or null"),
    # what our own classes check again when built (for code that builds them without a config)
    ("data.chunk_size=0", f"data.chunk_size=0 {POSITIVE_INT}"),
    ("data.batch_size=0", f"data.batch_size=0 {POSITIVE_INT}"),
    ("model.n_layers=-2", f"model.n_layers=-2 {POSITIVE_INT}"),
    ("model.activation=gelu", "model.activation='gelu' is not valid: .* tanh, relu or identity"),
    ("init.scheme=xavier", "init.scheme='xavier' is not valid: .* kaiming or randn"),
    ("init.output_scheme=he", "init.output_scheme='he' is not valid: .* kaiming or randn"),
    ("init.bias=ones", "init.bias='ones' is not valid: .* zeros or randn"),
    ("callbacks.dynamics.saturation_threshold=1.5", "strictly between 0 and 1"),
    ("callbacks.dynamics.every_n_steps=0", f"callbacks.dynamics.every_n_steps=0 {POSITIVE_INT}"),
    ("callbacks.dynamics.heatmap_bins=0", f"callbacks.dynamics.heatmap_bins=0 {POSITIVE_INT}"),
    ("callbacks.dynamics.diagnosis.dead_pct=abc", "dead_pct='abc' .* a finite number"),
]

# Values only torch can judge, refused when `train` builds the optimizer and its scheduler.
BUILD_CASES = [
    ("+optim.scheduler.foo=1", r"optim.scheduler \(torch.optim.lr_scheduler.MultiStepLR\) .*foo"),
    ("+optim.optimizer.nesterov=true", r"optim.optimizer \(torch.optim.SGD\) .*[Nn]esterov"),
]

# Names files the datamodule refuses when it reads them: (file name, its bytes, the message)
BAD_FILES = [
    ("binary.txt", b"\x00\x01\x02names\x00", "looks binary"),
    ("empty.txt", b"\n\n", "holds no names"),
    ("five.txt", b"emma\nava\nmia\nzoe\nkai\n", r"holds 5 name\(s\).*leaves a split empty"),
    ("one_long_line.txt", b"a" * 1_000_000, r"holds 1 name\(s\)"),
]


def user_error_of(call: Callable[[], object]) -> str:
    """What the user reads: the UserError behind the error `call` raises (Hydra may wrap it)."""
    with pytest.raises((UserError, InstantiationException)) as raised:
        call()
    error = find_user_error(raised.value)
    assert error is not None, f"not a user error: {raised.value!r}"
    assert "\n" not in str(error), "more than one paragraph"
    return str(error)


def assert_nothing_trained(where: str | Path) -> None:
    where = Path(where)
    assert not (where / "checkpoints").exists() and not list(where.rglob("events.out.*"))


@pytest.fixture(scope="module")
def cli_results(
    names_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """Each CLI case's result and output directory; the commands run at once (mostly start-up)."""
    tmp = tmp_path_factory.mktemp("bad_cli_input")

    def run(case: tuple[str, list[str], str]) -> tuple[subprocess.CompletedProcess, Path]:
        name, args, _ = case
        args = [a.format(tmp=tmp) for a in args]
        where = tmp / name.replace(" ", "_")
        out = "hydra.sweep.dir" if "-m" in args else "hydra.run.dir"
        chosen = [a.split("=", 1)[1] for a in args if a.startswith(f"{out}=")]  # the case's own
        where = Path(chosen[0]) if chosen else where
        return run_cli("train.py", *on_file(names_file), *FAST, *args, f"{out}={where}"), where

    with ThreadPoolExecutor(max_workers=len(CLI_CASES)) as pool:
        return dict(zip([c[0] for c in CLI_CASES], pool.map(run, CLI_CASES), strict=True))


@pytest.mark.parametrize(("name", "args", "message"), CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_the_cli_prints_one_paragraph_exits_2_and_trains_nothing(
    cli_results: dict, name: str, args: list[str], message: str
) -> None:
    result, where = cli_results[name]
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    paragraph = result.stderr.split("makemore-lab: error: ")[1].strip()
    assert "\n" not in paragraph and re.search(message, paragraph), paragraph
    assert_nothing_trained(where)


def test_a_refused_command_and_help_answer_without_importing_torch_or_lightning(
    tmp_path: Path,
) -> None:
    probe = (
        "import sys\n"
        "from makemore_lab.cli.app import main\n"
        "sys.argv = ['train.py', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    code = exit.code\n"
        "print('exit', code, 'torch' in sys.modules, 'lightning' in sys.modules, file=sys.stderr)"
    )
    for args in (
        ["model.n_hidden=-3"],
        ["init.scheme=xavier", "callbacks.dynamics.every_n_steps=0"],
        ["--help"],
    ):
        result = run_cli("-c", probe, *args, f"hydra.run.dir={tmp_path / 'run'}")
        assert result.stderr.strip().endswith("False False"), (args, result.stderr[-2000:])
        assert ("makemore-lab: error: " in result.stderr) == (args != ["--help"])
    assert not list(tmp_path.rglob("*.ckpt"))


def test_our_classes_check_their_arguments_when_built_without_a_config() -> None:
    from makemore_lab.dynamics import TrainingDynamics
    from makemore_lab.network.initialization import init_network
    from makemore_lab.network.model import MLP

    with pytest.raises(UserError, match=f"model.n_hidden=0 {POSITIVE_INT}"):
        MLP(27, n_hidden=0)
    with pytest.raises(UserError, match=re.escape("model.activation='gelu'")):
        MLP(27, activation="gelu")
    with pytest.raises(UserError, match=re.escape("init.bias='ones'")):
        init_network(MLP(27, n_layers=1).layers, None, bias="ones")
    with pytest.raises(UserError, match=re.escape("callbacks.dynamics.heatmap_bins=0")):
        TrainingDynamics("unused", heatmap_bins=0)


@pytest.mark.parametrize(("override", "message"), CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_check_config_names_the_bad_value_and_its_form(make_cfg, override, message) -> None:
    cfg = make_cfg(override)
    with pytest.raises(UserError, match=message) as raised:
        check_config(cfg)
    assert "\n" not in str(raised.value)


def test_check_launcher_names_a_bad_launcher_option_before_any_job() -> None:
    argv = ["train.py", "-m", "hydra/launcher=slurm", "hydra.launcher.timeout_min=-3", "seed=1,2"]
    launcher = launcher_of(argv)
    assert launcher is not None
    with pytest.raises(UserError, match=re.escape("hydra.launcher.timeout_min=-3 is not valid")):
        check_launcher(launcher)
    # the stacked launcher's SLURM resources, and its executor
    stacked = ["train.py", "-m", "hydra/launcher=stacked_slurm", "seed=1,2"]
    launcher = launcher_of([*stacked, "hydra.launcher.slurm.cpus_per_task=0"])
    assert launcher is not None and launcher.executor == "slurm"
    with pytest.raises(UserError, match=re.escape("hydra.launcher.slurm.cpus_per_task=0 is not")):
        check_launcher(launcher)
    launcher = launcher_of([*stacked, "hydra.launcher.n_jobs=4"])
    with pytest.raises(UserError, match=r"hydra\.launcher\.n_jobs=4 has no effect on SLURM"):
        check_launcher(launcher)
    launcher = launcher_of([*stacked, "hydra.launcher.executor=kubernetes"])
    with pytest.raises(UserError, match=r"hydra\.launcher\.executor='kubernetes' .*local or slurm"):
        check_launcher(launcher)


@pytest.mark.parametrize(("override", "message"), BUILD_CASES, ids=[c[0] for c in BUILD_CASES])
def test_a_value_refused_when_built_stops_the_run_before_training(
    make_cfg, override, message
) -> None:
    cfg = make_cfg(override)
    assert re.search(message, user_error_of(lambda: train(cfg)))
    assert_nothing_trained(cfg.run_dir)


@pytest.mark.parametrize(("name", "content", "message"), BAD_FILES, ids=[f[0] for f in BAD_FILES])
def test_a_names_file_that_is_not_names_stops_the_run_before_training(
    make_cfg, tmp_path: Path, name, content, message
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    cfg = make_cfg(data=path)
    assert re.search(message, user_error_of(lambda: train(cfg)))
    assert_nothing_trained(cfg.run_dir)


def test_a_download_with_the_wrong_checksum_is_kept_aside_and_not_used(
    make_cfg, names_file: Path, tmp_path: Path
) -> None:
    fresh = tmp_path / "fresh.txt"
    cfg = make_cfg(
        "data.download=true",
        f"data.url={names_file.as_uri()}",
        f"data.sha256={'0' * 64}",
        data=fresh,
    )
    message = user_error_of(lambda: train(cfg))
    assert re.search("has sha256 .* kept aside as .*fresh.txt.rejected and not used", message)
    assert not fresh.exists() and fresh.with_name("fresh.txt.rejected").is_file()
    assert_nothing_trained(cfg.run_dir)


def test_every_default_config_passes_and_each_checked_key_exists(make_cfg) -> None:
    """The checks name real keys (a renamed key would silently go unchecked)."""
    cfg = make_cfg(fast=False)
    check_config(cfg)
    missing = [k for k in CHECKS if OmegaConf.select(cfg, k, default="<absent>") == "<absent>"]
    assert missing == []


def test_a_directory_as_data_path_is_named_as_one(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg(data=tmp_path)
    assert "is a directory" in user_error_of(lambda: train(cfg))


def test_a_gpu_trainer_without_a_gpu_is_refused_before_training(make_cfg) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    cfg = make_cfg("trainer=gpu")
    assert "torch sees none on this machine" in user_error_of(lambda: train(cfg))
    assert_nothing_trained(cfg.run_dir)


def test_a_loss_that_is_nan_before_any_update_is_not_blamed_on_the_learning_rate(
    make_cfg,
) -> None:
    # five linear layers at gain 1e20 (within float32, as the checks require) overflow at once
    linear = ["model.activation=identity", "model.batchnorm=false", "init.gain=1e20"]
    message = user_error_of(lambda: train(make_cfg(*linear)))
    assert "diverged at step 0" in message and "learning rate is not the cause" in message
    assert "init.gain=1e+20" in message and "smaller learning rate" not in message


def test_a_finite_blow_up_is_recorded_diverged_not_completed(make_cfg) -> None:
    metrics = train(make_cfg("optim.lr=1e10", "model.batchnorm=true"))
    assert metrics["status"] == "diverged"
    assert metrics["train_loss"] > metrics["step0_loss"]


def test_an_output_dir_that_cannot_be_created_is_one_paragraph(
    names_file: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = run_cli("train.py", *on_file(names_file), *FAST, f"hydra.run.dir={blocker}/run")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{blocker} is a file, not a directory" in result.stderr


def test_an_unwritable_output_dir_is_refused(monkeypatch, tmp_path: Path) -> None:
    from makemore_lab.cli import app

    monkeypatch.setattr(app.os, "access", lambda path, mode: False)  # as a non-root user sees it
    with pytest.raises(UserError, match="is not writable for this user"):
        app.check_output_dir(["train.py", f"hydra.run.dir={tmp_path / 'run'}"])
