"""`hydra/launcher=stacked`: the same sweep, the same results, in one process.

The headline sweep runs with the basic launcher and with the stacked one; every job's final
losses, samples, dynamics.csv and dynamics.md must be the same bit for bit (the step-0 loss
within 1e-6: the stacked loss sums each job's batch in another order). Then: which jobs stack,
a diverging job in a group, and a stacked job's checkpoint continued as a solo run.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from conftest import FAST, ROOT, on_file, run_cli
from makemore_lab.launcher.composing import composer
from makemore_lab.launcher.grouping import choose_grouping, group_jobs, split_to_fill
from test_dynamics import OFFLINE

HEADLINE = ["model.batchnorm=true,false", "init.gain=1,5/3"]
JOBS = [
    "0_init.gain=1,model.batchnorm=True",
    "1_init.gain=5_3,model.batchnorm=True",
    "2_init.gain=1,model.batchnorm=False",
    "3_init.gain=5_3,model.batchnorm=False",
]
EXACT = ("train_loss", "val_loss", "test_loss", "steps", "status")


def sweep(names_file: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli("train.py", "-m", *on_file(names_file), *FAST, *args, f"hydra.sweep.dir={out}")


# The dynamics callback's figures, which a run draws at step 0 and at the end.
FIGURES = {
    f"{what}_{when}.png"
    for what in ("activations", "gradients", "weight_gradients")
    for when in ("init", "final")
} | {"update_data_ratio.png", "activations_over_time.png"}


@pytest.fixture(scope="module")
def two_sweeps(names_file: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("sweeps")
    basic = sweep(names_file, tmp / "basic", *HEADLINE)
    figures = "callbacks.dynamics.figures=true"  # the basic sweep: its numbers, not its figures
    mixed = "hydra.launcher.mixed_layers=true"  # BatchNorm on and off in one group
    whole = "hydra.launcher.split_groups=false"  # not halves, one per core
    stacked = sweep(
        names_file, tmp / "stacked", *HEADLINE, "hydra/launcher=stacked", figures, mixed, whole
    )
    assert basic.returncode == 0, basic.stderr[-3000:]
    assert stacked.returncode == 0, stacked.stderr[-3000:]
    assert "makemore-lab: all 4 jobs completed" in stacked.stdout
    printed = stacked.stdout + stacked.stderr
    # BatchNorm on and off in one group: the BatchNorm jobs' rows alone meet its layers
    assert "stacked launcher: 4 jobs in 1 group\n" in printed
    assert "#0, #1, #2, #3: 4 jobs stacked" in printed
    return tmp / "basic", tmp / "stacked"


def test_every_stacked_job_writes_what_its_solo_run_writes(two_sweeps) -> None:
    basic, stacked = two_sweeps
    for job in JOBS:
        a = json.loads((basic / job / "metrics.json").read_text())
        b = json.loads((stacked / job / "metrics.json").read_text())
        assert {k: a[k] for k in EXACT} == {k: b[k] for k in EXACT}, job
        assert b["step0_loss"] == pytest.approx(a["step0_loss"], rel=1e-6)
        assert b["stacked_group"]["jobs"] == 4
        for name in ("samples.txt", "dynamics.csv", "dynamics.md"):
            assert (basic / job / name).read_text() == (stacked / job / name).read_text(), name
        overrides = [(run / job / ".hydra" / "overrides.yaml").read_text() for run in two_sweeps]
        # the same task overrides, but the figures the stacked sweep draws
        assert [line for line in overrides[0].splitlines() if "figures" not in line] == [
            line for line in overrides[1].splitlines() if "figures" not in line
        ]
        # the config each job trained with: composed once by the stacked sweep (composing)
        configs = [(run / job / ".hydra" / "config.yaml").read_text() for run in two_sweeps]
        assert [line for line in configs[0].splitlines() if "figures:" not in line] == [
            line for line in configs[1].splitlines() if "figures:" not in line
        ]
        assert {p.name for p in (stacked / job / "figures").glob("*.png")} == FIGURES
        assert list((stacked / job / "tensorboard").glob("events.out.tfevents.*"))


def test_the_sample_and_table_commands_read_a_stacked_sweep(two_sweeps) -> None:
    basic, stacked = two_sweeps
    sampled = run_cli("-m", "makemore_lab.cli.sample", str(stacked / JOBS[0]), "--count", "3")
    solo = run_cli("-m", "makemore_lab.cli.sample", str(basic / JOBS[0]), "--count", "3")
    assert sampled.returncode == 0 and sampled.stdout == solo.stdout, sampled.stderr
    table = run_cli("-m", "makemore_lab.cli.table", str(stacked))
    assert table.returncode == 0, table.stderr
    assert table.stdout.count("| completed |") == 4


def test_a_stacked_jobs_checkpoint_continues_as_a_solo_run(
    names_file: Path, tmp_path: Path, two_sweeps
) -> None:
    """ckpt_path= a stacked job's last.ckpt, 10 steps more: the solo run's 30 steps exactly."""
    _, stacked = two_sweeps
    ckpt = stacked / JOBS[1] / "checkpoints" / "last.ckpt"
    common = ["train.py", *on_file(names_file), *FAST, "init.gain=5/3", "trainer.max_steps=30"]
    go_on = run_cli(*common, f"ckpt_path='{ckpt}'", f"hydra.run.dir={tmp_path / 'on'}")
    straight = run_cli(*common, f"hydra.run.dir={tmp_path / 'straight'}")
    assert go_on.returncode == 0 and straight.returncode == 0, go_on.stderr[-3000:]
    a = json.loads((tmp_path / "on" / "metrics.json").read_text())
    b = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    assert a["resumed_from_step"] == 20
    assert {k: a[k] for k in EXACT} == {k: b[k] for k in EXACT}
    weights = [
        torch.load(tmp_path / run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        for run in ("on", "straight")
    ]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[1])


def test_a_diverging_job_is_recorded_and_its_group_trains_on(names_file, tmp_path) -> None:
    out = tmp_path / "sweep"
    result = sweep(
        names_file,
        out,
        "model.batchnorm=false",
        "model.activation=identity",
        "init.gain=1",
        "optim.lr=0.1,1000000",
        "hydra/launcher=stacked",
    )
    assert result.returncode == 1  # the sweep names the job that did not complete
    records = {p.name: json.loads((p / "metrics.json").read_text()) for p in out.glob("[0-9]_*")}
    assert records["0_optim.lr=0.1"]["status"] == "completed"
    diverged = records["1_optim.lr=1000000"]
    assert diverged["status"] == "diverged" and diverged["diverged_at_step"] < 20
    assert "1 of 2 jobs did not complete: 1_optim.lr=1000000 (diverged)" in result.stderr


def configs(*jobs: list[str]) -> list:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return [compose("config", overrides=job) for job in jobs]


def test_the_launch_takes_the_config_the_sweepers_check_composed() -> None:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        hydra_loader = GlobalHydra.instance().config_loader()
        master = hydra_loader.load_configuration("config", ["seed=1"], RunMode.MULTIRUN)
        composed: list[list[str]] = []

        class Counted:
            def load_sweep_config(self, master: DictConfig, overrides: list[str]) -> DictConfig:
                composed.append(overrides)
                return hydra_loader.load_sweep_config(master, overrides)

        loader = composer(Counted())
        assert composer(loader) is loader  # a second setup keeps one wrapper
        checked = loader.load_sweep_config(master, ["seed=3", "init.gain=1"])  # the check
        taken = loader.take(master, ("seed=3", "init.gain=1"))  # the launch
        assert composed == [["seed=3", "init.gain=1"]]
        assert taken is not checked and OmegaConf.to_yaml(taken) == OmegaConf.to_yaml(checked)
        assert taken.seed == 3 and taken.hydra.overrides.task == ["seed=3", "init.gain=1"]
        unchecked = loader.take(master, ("seed=4",))  # nothing kept for it: composed now
        assert composed[-1] == ["seed=4"] and unchecked.seed == 4
        loader.load_sweep_config(master, ["seed=5"])
        loader.forget()  # a check no launch took is not kept
        assert loader.take(master, ("seed=5",)).seed == 5 and composed[-1] == ["seed=5"]
        # SLURM pickles the launcher, its context and this loader with each array task
        copied = pickle.loads(pickle.dumps(composer(hydra_loader)))
        assert copied.get_search_path() is not None and copied.kept == {}


def test_jobs_stack_when_seed_init_learning_rate_or_their_norm_and_activation_differ() -> None:
    cfgs = configs(
        ["seed=1"],
        ["seed=2", "init.gain=3", "init.scheme=randn", "optim.lr=0.05"],
        ["model.n_hidden=50"],  # other shapes: a group of its own
        ["optim=adam"],  # not stackable: alone
        ["trainer.max_steps=10"],  # another length: its own group
        ["model.n_hidden=50", "optim.decay_step=5"],
        ["compile=true"],  # alone
        ["model.batchnorm=false", "model.activation=relu"],  # other layers, the same shapes
        ["model.bn.eps=0", "model.bn.running=std", "model.output_batchnorm=false"],
    )
    grouping = group_jobs(cfgs)
    assert grouping.groups == [[0, 1, 7, 8], [2, 5], [3], [4], [6]]
    assert group_jobs(cfgs, mixed_layers=False).groups == [[0, 1], [2, 5], [3], [4], [6], [7], [8]]
    assert grouping.alone.keys() == {3, 4, 6}
    assert "no other job shares" in grouping.alone[4]


@pytest.mark.parametrize(
    ("mixed_layers", "slots", "trainer", "groups"),
    [
        ("auto", 2, "cpu", 2),  # two groups apart fill the two cores
        ("auto", 1, "cpu", 1),  # one at a time: together, one group's steps for both
        ("auto", 2, "gpu", 1),  # a GPU's step costs about its largest job's: together
        (True, 2, "cpu", 1),
        (False, 1, "gpu", 2),
    ],
)
def test_jobs_of_other_layers_share_a_group_where_that_is_faster(
    mixed_layers, slots: int, trainer: str, groups: int
) -> None:
    cfgs = configs(
        *(
            [f"model.batchnorm={bn}", f"init.gain={g}", f"trainer={trainer}"]
            for bn in ("true", "false")
            for g in ("1", "5/3")
        )
    )
    grouping = choose_grouping(cfgs, mixed_layers, slots)
    assert len(grouping.groups) == groups
    if (mixed_layers, groups) == ("auto", 2):
        assert "=true joins them: 1 group)" in grouping.note


@pytest.mark.parametrize(
    ("split", "slots", "trainer", "local", "groups"),
    [
        ("auto", 2, "cpu", True, [[0, 1, 2], [3, 4]]),  # halves fill the two cores
        ("auto", 4, "cpu", True, [[0], [1], [2], [3, 4]]),  # the first largest first
        ("auto", 8, "cpu", True, [[0], [1], [2], [3], [4]]),  # no more groups than jobs
        ("auto", 1, "cpu", True, [[0, 1, 2, 3, 4]]),  # one at a time: one group
        ("auto", 2, "gpu", True, [[0, 1, 2, 3, 4]]),  # a GPU's step: its largest job's
        ("auto", 2, "cpu", False, [[0, 1, 2, 3, 4]]),  # SLURM: a task per group, as it was
        (True, 2, "cpu", False, [[0, 1, 2], [3, 4]]),
        (False, 2, "cpu", True, [[0, 1, 2, 3, 4]]),
    ],
)
def test_a_group_is_split_so_that_every_process_trains_one_on_a_cpu(
    split, slots: int, trainer: str, local: bool, groups: list
) -> None:
    cfgs = configs(*([f"seed={seed}", f"trainer={trainer}"] for seed in range(5)))
    grouping = split_to_fill(group_jobs(cfgs), cfgs, split, slots, local)
    assert grouping.groups == groups
    if len(groups) > 1:
        assert "hydra.launcher.split_groups=false keeps them together" in grouping.note
    if [3] in groups:  # a job split off alone says why
        at_once = min(slots, len(groups))
        assert grouping.alone[3] == f"split from its group so that {at_once} groups train at once"


@pytest.mark.parametrize(
    "signum",
    # three sweeps and two signals, a minute of CPU: `make test-all` (CI) runs both
    [pytest.param(s, marks=pytest.mark.slow) for s in (signal.SIGINT, signal.SIGTERM)],
    ids=["ctrl-c", "sigterm"],
)
def test_a_signal_to_the_process_group_stops_a_stacked_sweep_and_resume_finishes_it_exactly(
    names_file: Path, tmp_path: Path, signum: int
) -> None:
    """Two groups side by side (two widths), each in its own process. The signal
    goes to the whole process group, as a terminal's Ctrl-C or `kill -TERM -<pgid>` sends it:
    every process gets it and the launcher forwards it once more, and each group saves each
    job once. The same command with resume=true finishes all, bit for bit as an uninterrupted
    sweep."""
    args = ["train.py", "-m", *on_file(names_file), *FAST, "trainer.max_steps=400"]
    args += ["data.chunk_size=20", "callbacks.model_checkpoint.every_n_train_steps=100"]
    args += ["trainer.val_check_interval=100", "seed=1,2"]
    args += ["model.n_hidden=16,24", "hydra/launcher=stacked"]
    straight = run_cli(*args, f"hydra.sweep.dir={tmp_path / 'straight'}")
    assert straight.returncode == 0, straight.stderr[-3000:]
    out = tmp_path / "killed"
    with (tmp_path / "killed.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, *args, f"hydra.sweep.dir={out}"],
            cwd=ROOT,
            stdout=log,
            stderr=log,
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )
    deadline = time.monotonic() + 120
    while len(list(out.glob("*/checkpoints/step*.ckpt"))) < 2:  # each job's own
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(process.pid, signum)
    code = process.wait(timeout=120)
    assert code == 128 + signum, (tmp_path / "killed.log").read_text()[-3000:]
    jobs = sorted(p.name for p in out.glob("[0-9]_*"))
    assert len(jobs) == 4
    stopped = {job: json.loads((out / job / "metrics.json").read_text()) for job in jobs}
    assert all(r["status"] == "interrupted" and 0 < r["steps"] < 400 for r in stopped.values())
    assert not list(out.glob("*/run.lock"))  # every claim released
    for job in jobs:  # each job's own last.ckpt, in the solo format, which the sampler reads
        assert stopped[job]["checkpoint"] == str(out / job / "checkpoints" / "last.ckpt")
    sampled = run_cli("-m", "makemore_lab.cli.sample", str(out / jobs[0]), "--count", "2")
    assert sampled.returncode == 0, sampled.stderr
    # ckpt_path= an interrupted job's own checkpoint continues it, as a solo run, to the end
    solo = [a for a in args if not a.startswith(("seed=", "model.n_hidden=", "hydra/"))]
    solo += ["seed=1", "model.n_hidden=16"]
    on = tmp_path / "on"
    ckpt = out / jobs[0] / "checkpoints" / "last.ckpt"
    go_on = run_cli(*solo[:1], *solo[2:], f"ckpt_path='{ckpt}'", f"hydra.run.dir={on}")
    assert go_on.returncode == 0, go_on.stderr[-3000:]
    weights = [
        torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        for run in (on, tmp_path / "straight" / jobs[0])
    ]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[1])

    resumed = run_cli(*args, f"hydra.sweep.dir={out}", "resume=true")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for job in jobs:
        a = json.loads((out / job / "metrics.json").read_text())
        b = json.loads((tmp_path / "straight" / job / "metrics.json").read_text())
        assert {k: a[k] for k in (*EXACT, "step0_loss")} == {
            k: b[k] for k in (*EXACT, "step0_loss")
        }
        assert a["resumed_from_step"] == stopped[job]["steps"]
        assert (out / job / "dynamics.csv").read_text() == (
            tmp_path / "straight" / job / "dynamics.csv"
        ).read_text()
        checkpoints = sorted(p.name for p in (out / job / "checkpoints").iterdir())
        assert checkpoints == ["last.ckpt", "step400.ckpt"]  # no last-v1.ckpt beside it


def test_every_job_of_a_stacked_sweep_is_its_own_wandb_run(names_file, tmp_path) -> None:
    pytest.importorskip("wandb")
    out = tmp_path / "sweep"
    four = ["seed=1,2", "init.gain=1,5/3", "logger=[csv,wandb]", "hydra/launcher=stacked"]
    four.append("hydra.launcher.split_groups=false")  # one group of four
    result = run_cli(
        "train.py", "-m", *on_file(names_file), *FAST, *four, f"hydra.sweep.dir={out}", env=OFFLINE
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "#0, #1, #2, #3: 4 jobs stacked" in result.stdout + result.stderr
    jobs = sorted(p for p in out.glob("[0-9]_*"))
    assert len(jobs) == 4
    for job in jobs:
        (run,) = (job / "wandb").glob("offline-run-*")  # exactly one W&B run per job
        (events,) = run.glob("run-*.wandb")
        data = events.read_bytes()
        # its own config (the hyperparameters a solo run logs) and its own final losses
        assert f'"run_dir":"{job}"'.encode() in data
        assert sum(f'"run_dir":"{other}"'.encode() in data for other in jobs) == 1
        metrics = json.loads((job / "metrics.json").read_text())
        assert repr(metrics["val_loss"]).encode() in data
        # its group: the sweep and its config without the seed, so W&B bands a config's seeds
        gain = job.name.split("init.gain=")[1].split(",")[0].replace("_", "/")
        assert f"{out.name}/init.gain={gain}".encode() in data
        assert (job / "csv" / "hparams.yaml").read_text().count(str(job)) >= 1


def test_optuna_stacks_each_batch_of_trials(names_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "search"
    result = sweep(
        names_file,
        out,
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.n_jobs=2",  # two trials at a time: stacked
        "hydra/launcher=stacked",
        "hydra.launcher.split_groups=false",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    printed = result.stdout + result.stderr
    assert "#0, #1: 2 jobs stacked" in printed and "#2, #3: 2 jobs stacked" in printed
    best = (out / "optimization_results.yaml").read_text()
    assert "best_params" in best and "init.gain" in best


def test_two_groups_of_four_side_by_side_return_every_job(names_file, tmp_path) -> None:
    """Four jobs' results are larger than a pipe's buffer: the launcher reads them as they come
    (it once waited for the group's process to end first, which never happened)."""
    out = tmp_path / "sweep"
    result = sweep(
        names_file,
        out,
        "seed=1,2,3,4",
        "model.n_hidden=50,100",
        "trainer.max_steps=10",
        "hydra/launcher=stacked",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "makemore-lab: all 8 jobs completed" in result.stdout
    assert "2 groups" in result.stdout + result.stderr


def test_a_cpu_sweep_splits_its_group_over_the_processes_with_the_same_numbers(
    names_file: Path, tmp_path: Path
) -> None:
    four = ["seed=1,2,3,4", "hydra/launcher=stacked"]  # n_jobs=2: two groups at once
    split = sweep(names_file, tmp_path / "split", *four)
    whole = sweep(names_file, tmp_path / "whole", *four, "hydra.launcher.split_groups=false")
    assert split.returncode == 0, split.stderr[-3000:]
    assert whole.returncode == 0, whole.stderr[-3000:]
    printed = split.stdout + split.stderr
    assert "stacked launcher: 4 jobs in 2 groups\n" in printed
    assert "#0, #1: 2 jobs stacked" in printed and "#2, #3: 2 jobs stacked" in printed
    assert "hydra.launcher.split_groups=false keeps them together" in printed
    jobs = sorted(p.name for p in (tmp_path / "split").glob("[0-9]_*"))
    assert len(jobs) == 4
    for job in jobs:
        a = json.loads((tmp_path / "split" / job / "metrics.json").read_text())
        b = json.loads((tmp_path / "whole" / job / "metrics.json").read_text())
        assert {k: a[k] for k in EXACT} == {k: b[k] for k in EXACT}, job
        assert (a["stacked_group"]["jobs"], b["stacked_group"]["jobs"]) == (2, 4)
