"""Sweeps through the real CLI with every launcher, and the ablation tables built from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from conftest import FAST, ROOT, hparams_records, on_file, run_cli, scalar_tags
from makemore_lab.runs.hparams import METRICS

TABLE = ("-m", "makemore_lab.cli.table")  # makemore-table, with the interpreter of the tests


def sweep(names_file: Path, out: Path, *overrides: str, env: dict[str, str] | None = None):
    return run_cli(
        "train.py",
        "-m",
        *on_file(names_file),
        *FAST,
        f"hydra.sweep.dir={out}",
        *overrides,
        env=env,
    )


def table(out: Path, *flags: str) -> str:
    result = run_cli(*TABLE, str(out), *flags)
    assert result.returncode == 0, result.stderr
    for name in ("ablation.md", "ablation.csv", "loss_curves.png", "depth_init.png"):
        assert (out / name).is_file(), name
    if any(out.glob("*/distributions.json")):  # jobs that trained (not hand-made ones)
        for name in ("depth_end.png", "activations_init.png", "activations_final.png"):
            assert (out / name).is_file(), name  # the lecture's plots, one panel per job
    return (out / "ablation.md").read_text()


def test_lecture_presets_sweep_and_table_with_the_lectures_numbers(
    names_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "lecture"
    result = sweep(names_file, out, "experiment=original,batchnorm")
    assert result.returncode == 0, result.stderr[-3000:]
    md = table(out, "--reference")
    rows = [line for line in md.splitlines() if line.startswith("|")]
    assert "ref train" in rows[0] and "Δ val ref" in rows[0] and len(rows) == 4
    assert rows[2].startswith("| experiment=original | 1 | completed |") and "2.1245" in rows[2]
    assert rows[3].startswith("| experiment=batchnorm | 1 | completed |") and "2.1048" in rows[3]


@pytest.mark.parametrize(
    "launcher",
    ["basic", pytest.param("parallel", marks=pytest.mark.slow)],  # joblib: test-all
)
def test_a_failed_job_does_not_stop_the_sweep_and_the_table_names_it(
    names_file: Path, tmp_path: Path, launcher: str
) -> None:
    out = tmp_path / "failing"
    result = sweep(names_file, out, "init.gain=abc,1", f"hydra/launcher={launcher}")
    assert result.returncode == 1  # the sweep names the failure at the end...
    assert "init.gain='abc' is not a valid gain" in result.stderr
    assert "1 of 2 jobs did not complete: 0_init.gain=abc (failed)" in result.stderr
    assert "Traceback" not in result.stderr
    assert json.loads((out / "1_init.gain=1" / "metrics.json").read_text())["status"] == "completed"
    failed = json.loads((out / "0_init.gain=abc" / "metrics.json").read_text())
    assert failed["status"] == "failed" and "init.gain" in failed["error"]
    md = table(out)  # ...and its table shows both jobs
    assert "| init.gain=abc | 0 | failed |" in md and "| init.gain=1 | 1 | completed |" in md


def test_a_job_that_crashes_prints_its_traceback_and_the_sweep_goes_on(
    names_file: Path, tmp_path: Path
) -> None:
    """Not a bad input we check but an exception inside Lightning (a value it does not check)."""
    out = tmp_path / "crash"
    result = sweep(names_file, out, "+trainer.limit_train_batches=1.0,abc")
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "TypeError" in result.stderr
    job = "1_+trainer.limit_train_batches=abc"
    assert f"1 of 2 jobs did not complete: {job} (failed)" in result.stderr
    failed = json.loads((out / job / "metrics.json").read_text())
    assert failed["status"] == "failed" and "TypeError" in failed["error"]
    done = json.loads((out / "0_+trainer.limit_train_batches=1.0" / "metrics.json").read_text())
    assert done["status"] == "completed"


def test_the_table_of_a_sweep_killed_mid_way_shows_what_finished(
    names_file: Path, tmp_path: Path
) -> None:
    """A job still running (or killed) when the table is built has no metrics.json yet."""
    out = tmp_path / "killed"
    assert sweep(names_file, out, "init.gain=1,2").returncode == 0
    (out / "1_init.gain=2" / "metrics.json").unlink()  # as if the sweep died during job 1
    md = table(out)
    assert "| init.gain=1 | 1 | completed |" in md
    assert "| init.gain=2 | 0 | unfinished (no metrics.json) |" in md


def fake_job(sweep: Path, name: str, overrides: list[str], metrics: str | None) -> Path:
    """A job directory as Hydra and the run leave it, without training: overrides, metrics."""
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if metrics is not None:
        (job / "metrics.json").write_text(metrics)
    return job


def test_a_damaged_metrics_json_is_an_unreadable_row_not_a_crash(tmp_path: Path) -> None:
    out = tmp_path / "damaged"
    done = {"status": "completed", "train_loss": 2.5, "val_loss": 2.6, "steps": 20}
    fake_job(out, "0_init.gain=1", ["init.gain=1"], json.dumps(done))
    fake_job(out, "1_init.gain=2", ["init.gain=2"], '{"status": "compl')  # cut off mid-write
    fake_job(out, "2_init.gain=3", ["init.gain=3"], "[1, 2]")  # JSON, but not a record
    fake_job(out, "3_init.gain=4", ["init.gain=4"], None)  # still running
    md = table(out)
    assert "| init.gain=1 | 1 | completed |  | 2.5000 | 2.6000 |" in md  # no loss@0 recorded
    assert "| init.gain=2 | 0 | unreadable |" in md and "| init.gain=3 | 0 | unreadable |" in md
    assert "| init.gain=4 | 0 | unfinished (no metrics.json) |" in md


def test_a_seeded_sweep_is_one_row_and_one_hparams_group_per_config(
    names_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "seeds"
    assert sweep(names_file, out, "seed=range(1,3)", "init.gain=1,3").returncode == 0
    md = table(out, "--reference")  # as `make table` asks; no preset here, so no ref columns
    assert "ref train" not in md
    assert "| init.gain=1 | 2 | completed |" in md and "| init.gain=3 | 2 | completed |" in md
    assert "±" in md
    # TensorBoard's HParams view: one experiment at the sweep's root, a session per job
    (experiment,) = hparams_records(out, recursive=False)
    infos = {info.name: info for info in experiment.experiment.hparam_infos}
    assert {"init.gain", "seed", "model.batchnorm", "optim.lr"} <= infos.keys()
    assert [v.number_value for v in infos["init.gain"].domain_discrete.values] == [1.0, 3.0]
    assert [m.name.tag for m in experiment.experiment.metric_infos] == list(METRICS)
    for job in sorted(out.glob("[0-9]_*")):
        records = hparams_records(job / "tensorboard")
        assert not [r for r in records if r.HasField("experiment")]  # the root's alone
        (start,) = [r.session_start_info for r in records if r.HasField("session_start_info")]
        gain, seed = start.hparams["init.gain"].number_value, start.hparams["seed"].number_value
        assert start.group_name == f"init.gain={gain:g}" and seed in (1.0, 2.0)
        assert job.name.endswith(f"seed={seed:g}")
        assert "final/val_loss" in scalar_tags(job / "tensorboard")


@pytest.mark.slow  # long end-to-end: joblib's worker processes; make test-all (CI) runs it
def test_parallel_launcher_runs_jobs_with_one_thread_each(names_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "joblib"
    # threads=null: each job's share of the cores is computed, not the configured default
    result = sweep(names_file, out, "hydra/launcher=parallel", "threads=null", "init.gain=1,5/3")
    assert result.returncode == 0, result.stderr[-3000:]
    for job in ("0_init.gain=1", "1_init.gain=5_3"):
        metrics = json.loads((out / job / "metrics.json").read_text())
        assert metrics["status"] == "completed" and metrics["threads"] == 1
    assert "| init.gain=5/3 | 1 | completed |" in table(out)


@pytest.mark.slow  # long end-to-end: submitit's worker processes; make test-all (CI) runs it
def test_submitit_local_launcher(names_file: Path, tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    out = tmp_path / "submitit"
    result = sweep(
        names_file,
        out,
        "hydra/launcher=submitit_local",
        "init.gain=1,5/3",
        "hydra.launcher.timeout_min=10",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / ".submitit").is_dir()
    assert "| init.gain=1 | 1 | completed |" in table(out)


@pytest.mark.slow  # long end-to-end: Optuna's sweeper; make test-all (CI) runs it
def test_optuna_search_runs_two_trials_and_reports_the_best(
    names_file: Path, tmp_path: Path
) -> None:
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    out = tmp_path / "optuna"
    result = sweep(names_file, out, "hparams_search=optuna", "hydra.sweeper.n_trials=2")
    assert result.returncode == 0, result.stderr[-3000:]
    best = (out / "optimization_results.yaml").read_text()
    assert "best_value" in best and "optim.lr" in best and "init.gain" in best
    vals = [json.loads(p.read_text())["val_loss"] for p in out.glob("*/metrics.json")]
    assert len(vals) == 2
    assert f"{min(vals):.6f}"[:5] in best  # the best trial is the lower val loss
    assert table(out).count("| completed |") == 2


def test_deep_study_is_a_multirun_over_batchnorm_gain_and_activation() -> None:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["experiment=deep_study"], return_hydra_config=True)
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert dict(cfg.hydra.sweeper.params) == {
        "model.batchnorm": "true,false",
        "init.gain": "0.5,1,5/3,3",
        "model.activation": "tanh,identity",
    }


def test_table_of_a_directory_without_jobs_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli(*TABLE, str(tmp_path))
    assert result.returncode == 2 and "holds no job directories" in result.stderr


DIVERGING = ["model.activation=identity", "model.batchnorm=false", "init.gain=3"]


def test_a_diverging_run_stops_with_one_paragraph_and_exit_status_2(
    names_file: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    result = run_cli(
        "train.py",
        *on_file(names_file),
        *FAST,
        *DIVERGING,
        "optim.lr=50",
        "trainer.max_steps=200",
        f"hydra.run.dir={run}",
    )
    assert result.returncode == 2
    assert "makemore-lab: error: training diverged at step " in result.stderr
    assert "optim.lr=50" in result.stderr and "Traceback" not in result.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and metrics["steps"] < 200


def test_a_diverging_job_does_not_stop_the_sweep_and_the_table_names_it(
    names_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "diverging"
    linear = ["model.activation=identity", "model.batchnorm=false", "init.gain=1"]
    result = sweep(names_file, out, *linear, "optim.lr=50,0.1")  # lr 50 diverges, 0.1 trains
    assert result.returncode == 1  # the sweep names the diverged job at the end
    assert "training diverged at step" in result.stderr
    assert "1 of 2 jobs did not complete: 0_optim.lr=50 (diverged)" in result.stderr
    ok = json.loads((out / "1_optim.lr=0.1" / "metrics.json").read_text())
    assert ok["status"] == "completed"
    md = table(out)
    assert "| optim.lr=50 | 0 | diverged |" in md and "| optim.lr=0.1 | 1 | completed |" in md


def test_the_lectures_distribution_plot_has_one_panel_per_job_on_shared_axes(
    tmp_path: Path,
) -> None:
    from makemore_lab.reports.figures import panels_figure

    jobs = []
    for i, scale in enumerate((1.0, 3.0, 0.5)):
        job = tmp_path / str(i)
        job.mkdir()
        curve = [[x * scale for x in (-1, 0, 1)], [0.2, 0.6, 0.2]]
        (job / "distributions.json").write_text(
            json.dumps({"activations_init": {"block1_Tanh": curve}})
        )
        jobs.append(job)
    (tmp_path / "empty").mkdir()  # a job without the file (it failed early): no panel
    fig = panels_figure([*jobs, tmp_path / "empty"], ["a", "b", "c", "d"], "activations_init")
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in shown] == ["a", "b", "c"]
    assert len({ax.get_xlim() for ax in shown}) == 1  # shared: the jobs compare at a glance
    assert shown[0].get_xlim()[1] >= 3.0
    assert panels_figure(jobs, ["a", "b", "c"], "gradients_final") is None
