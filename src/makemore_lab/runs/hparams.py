"""TensorBoard's HParams view: each run's hyperparameters, its group (config without the seed)
and its final metrics, so that the seeds of one config form one row that the view averages.

TensorBoard reads one experiment description per log directory tree (the first it finds), and
Lightning's `log_hyperparams` would write one into every run: so a sweep's jobs write only their
session (values, group, status) and the sweep's end writes the experiment once at its root
(`sweep_experiment`); a single run writes both into its own log directory. The final metrics are
the scalars `final/<split>_loss` the driver logs (`train.evaluate`).
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

from makemore_lab.atomic import write_bytes
from makemore_lab.runs.hydra_record import hydra_record, overrides_of, read_yaml
from makemore_lab.runs.naming import without_seed

METRICS = ("final/train_loss", "final/val_loss", "final/test_loss")  # logged by every run
MISSING = object()  # a key the config does not have
EXPERIMENT_FILE = "events.out.tfevents.0.makemore-lab-hparams"  # rewritten whole, not appended
Value = bool | float | str
TYPES = {
    bool: api_pb2.DATA_TYPE_BOOL,
    float: api_pb2.DATA_TYPE_FLOAT64,
    str: api_pb2.DATA_TYPE_STRING,
}


def as_value(value: Any) -> Value:
    """What the HParams view shows: bools, numbers (a fraction '5/3' too), else text."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(Fraction(str(value).strip()))
    except (ValueError, ZeroDivisionError):
        return "null" if value is None else str(value)


def run_hparams(run_dir: Path) -> dict[str, Value]:
    """The hyperparameters of the run in `run_dir`: the knobs its config lists under `hparams`
    and the keys its command line overrode (in a sweep: those its jobs vary, the ones Hydra
    names its directory after), valued from its resolved config.yaml."""
    config = OmegaConf.create(read_yaml(run_dir / "config.yaml") or {})
    hydra = hydra_record(run_dir)
    choices = hydra.get("runtime", {}).get("choices") or {}
    overridden = [o.lstrip("+~").split("=")[0] for o in overrides_of(run_dir)]
    if in_sweep(run_dir):  # the constant ones are the sweep's, not this job's
        naming = hydra.get("job", {}).get("config", {}).get("override_dirname", {})
        constant = set(naming.get("exclude_keys") or [])
        overridden = [key for key in overridden if key not in constant]
    values: dict[str, Value] = {}
    for key in dict.fromkeys([*config.get("hparams", []), *overridden]):
        if key.startswith("hydra") or key in ("data.path", "run_dir", "resume", "ckpt_path"):
            continue  # where and how it ran, not what it trained
        if key in choices:  # a config group (experiment=batchnorm): the option chosen
            values[key] = as_value(choices[key])
            continue
        node = OmegaConf.select(config, key, default=MISSING)
        if node is not MISSING and not OmegaConf.is_config(node):
            values[key] = as_value(node)
    return values


def _summary(tag: str, data: plugin_data_pb2.HParamsPluginData) -> Summary:
    data.version = metadata.PLUGIN_DATA_VERSION
    plugin = SummaryMetadata.PluginData(
        plugin_name=metadata.PLUGIN_NAME, content=data.SerializeToString()
    )
    return Summary(value=[Summary.Value(tag=tag, metadata=SummaryMetadata(plugin_data=plugin))])


def session_summaries(
    values: Mapping[str, Value], group: str, completed: bool
) -> tuple[Summary, Summary]:
    """A run's session start (its values and group) and end (its status)."""
    start = plugin_data_pb2.SessionStartInfo(group_name=group)  # written at the end: no start time
    for key, value in values.items():
        if isinstance(value, bool):
            start.hparams[key].bool_value = value
        elif isinstance(value, float):
            start.hparams[key].number_value = value
        else:
            start.hparams[key].string_value = value
    status = api_pb2.STATUS_SUCCESS if completed else api_pb2.STATUS_FAILURE
    end = plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=time.time())
    return (
        _summary(
            metadata.SESSION_START_INFO_TAG,
            plugin_data_pb2.HParamsPluginData(session_start_info=start),
        ),
        _summary(
            metadata.SESSION_END_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_end_info=end)
        ),
    )


def experiment_summary(runs: Sequence[Mapping[str, Value]]) -> Summary:
    """The experiment of `runs`' values: each hyperparameter with the values seen, and the
    final metrics."""
    infos = []
    for key in dict.fromkeys(k for values in runs for k in values):
        seen = sorted({values[key] for values in runs if key in values}, key=str)
        kinds = {type(v) for v in seen}
        kind = kinds.pop() if len(kinds) == 1 else str
        domain = [v if kind is not str else str(v) for v in seen]
        info = api_pb2.HParamInfo(name=key, type=TYPES[kind])
        info.domain_discrete.extend(domain)
        infos.append(info)
    metrics = [api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag)) for tag in METRICS]
    experiment = api_pb2.Experiment(hparam_infos=infos, metric_infos=metrics)
    return _summary(
        metadata.EXPERIMENT_TAG, plugin_data_pb2.HParamsPluginData(experiment=experiment)
    )


def write_events(path: Path, summaries: Sequence[Summary]) -> None:
    """`summaries` as a whole TensorBoard event file at `path` (atomically: never half)."""
    buffer = io.BytesIO()
    writer = RecordWriter(buffer)
    now = time.time()
    writer.write(Event(wall_time=now, file_version="brain.Event:2").SerializeToString())
    for summary in summaries:
        writer.write(Event(wall_time=now, summary=summary).SerializeToString())
    write_bytes(path, buffer.getvalue())


def in_sweep(run_dir: Path) -> bool:
    """Whether `run_dir` is a job of a multirun (Hydra wrote the sweep's multirun.yaml)."""
    return (run_dir.parent / "multirun.yaml").is_file()


def log_session(loggers: Sequence[Any], run_dir: Path, completed: bool) -> None:
    """Write the run's session into each TensorBoard logger's run (and, for a run outside a
    sweep, its experiment too); other loggers have no HParams view."""
    from lightning.pytorch.loggers import TensorBoardLogger

    boards = [logger for logger in loggers if isinstance(logger, TensorBoardLogger)]
    if not boards:
        return
    values = run_hparams(run_dir)
    group = without_seed(str(hydra_record(run_dir).get("job", {}).get("override_dirname") or ""))
    summaries = [*session_summaries(values, group, completed)]
    if not in_sweep(run_dir):
        summaries.insert(0, experiment_summary([values]))
    for logger in boards:
        writer = logger.experiment._get_file_writer()  # as Lightning's own log_hyperparams
        for summary in summaries:
            writer.add_summary(summary)
        writer.flush()


def sweep_experiment(sweep_dir: Path, jobs: Sequence[Path]) -> Path | None:
    """Write the sweep's one experiment at its root: the hyperparameters its jobs vary and the
    knobs their configs list, with the values seen, and the final metrics. None (nothing
    written) when no job logged to TensorBoard."""
    logged = [job for job in jobs if any(job.rglob("events.out.tfevents.*"))]
    if not logged:
        return None
    runs = [run_hparams(job) for job in logged]
    config = read_yaml(logged[0] / "config.yaml") or {}
    keys = list(config.get("hparams") or [])
    every = dict.fromkeys(k for r in runs for k in r)
    keys += [k for k in every if len({str(r.get(k)) for r in runs}) > 1]  # what the jobs vary
    shown = [{k: r[k] for k in dict.fromkeys(keys) if k in r} for r in runs]
    path = sweep_dir / EXPERIMENT_FILE
    write_events(path, [experiment_summary(shown)])
    return path
