"""`train(cfg) -> metrics`: build the data, network, module and trainer from the config, fit, write.

Plain and testable: tests call it with configs from Hydra's compose API; `app.py` is the
Hydra application that calls it for `python train.py`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shlex
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, OmegaConf

from makemore_lab.atomic import write_json
from makemore_lab.checkpointing import (
    AtomicCheckpointIO,
    SaveOnInterrupt,
    check_resumable,
    last_checkpoint,
    read_checkpoint,
)
from makemore_lab.config_checks import check_config
from makemore_lab.errors import RunInterrupted, TrainingDiverged, UserError
from makemore_lab.module import MakemoreModule, split_loss
from makemore_lab.run_summary import end_summary, start_summary
from makemore_lab.sampling import sample_names

log = logging.getLogger(__name__)
# `import lightning` gives the "lightning" logger a console handler of its own. Under Hydra,
# whose root handlers print and write the run's train.log, every Lightning line would show twice.
if logging.getLogger().hasHandlers():
    logging.getLogger("lightning").handlers.clear()
# Lightning's advertisement for its cloud logger, printed at every start.
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
    lambda record: "litlogger" not in record.getMessage()
)
# Lightning's own deprecation noise, not actionable by users of this project.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
# With manual optimization ModelCheckpoint warns that it saves the state after the step's
# update; that is what we want (a checkpoint at step N holds N updates).
warnings.filterwarnings("ignore", message=r".*pre-optimization state was saved")
# A resumed run writes into its own checkpoints/ folder again; new runs get new directories.
warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")


def resolve_threads(threads: int | None) -> int | None:
    """Torch threads for this job: as configured, or shared fairly under a parallel launcher.

    With `hydra/launcher=joblib`, n jobs run at once; each leaving torch at its default (one
    thread per core) would oversubscribe the machine, so each gets cores // n (at least 1).
    """
    if threads:
        return int(threads)
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    n_jobs = OmegaConf.select(HydraConfig.get(), "launcher.n_jobs")
    if n_jobs is None:
        return None
    cores = os.cpu_count() or 1
    parallel = cores + 1 + n_jobs if n_jobs < 0 else n_jobs  # joblib: -1 = all cores
    return max(1, cores // max(1, parallel))


def batch_cadences(cfg: DictConfig) -> dict[str, Any]:
    """Lightning's batch-counted settings, from our step-counted config.

    A Lightning batch is `data.chunk_size` optimizer steps, and Lightning validates and saves
    checkpoints between batches: those cadences must be multiples of the chunk, and
    `val_check_interval` (steps in our config) becomes a number of batches.
    """
    chunk = cfg.data.chunk_size
    steps = {"trainer.val_check_interval": cfg.trainer.get("val_check_interval")}
    for name, callback in (cfg.get("callbacks") or {}).items():
        if callback is not None and callback.get("every_n_train_steps"):
            steps[f"callbacks.{name}.every_n_train_steps"] = callback.every_n_train_steps
    for key, value in steps.items():
        if isinstance(value, int) and value % chunk:
            divisors = [d for d in range(chunk, 0, -1) if value % d == 0][:1]
            raise UserError(
                f"{key}={value} is not a multiple of data.chunk_size={chunk}: one training "
                f"step runs {chunk} optimizer steps, and Lightning validates and saves "
                f"checkpoints only between them. Use a multiple of {chunk} for {key}, or a "
                f"chunk size that divides {value} (e.g. data.chunk_size={divisors[0]})."
            )
    interval = steps["trainer.val_check_interval"]
    return {"val_check_interval": interval // chunk} if isinstance(interval, int) else {}


def check_run_dir(cfg: DictConfig) -> dict[str, Any] | None:
    """Refuse to overwrite an earlier run; with `resume=true`, skip one that completed.

    Returns the recorded metrics of a completed run being resumed (a resumed sweep skips its
    finished jobs), None when this run may go ahead.
    """
    path = Path(cfg.run_dir) / "metrics.json"
    if not path.exists():
        return None
    try:
        previous = json.loads(path.read_text())
    except ValueError:
        previous = {}
    status = previous.get("status")
    if cfg.get("resume") and status == "completed":
        log.info("resume=true: %s completed already; nothing to do", cfg.run_dir)
        return previous
    if cfg.get("resume"):
        return None  # interrupted, failed or diverged: go on from its last checkpoint
    hint = " It was interrupted: add resume=true to continue it." if status == "interrupted" else ""
    raise UserError(
        f"run_dir={cfg.run_dir} already holds a run (its metrics.json says status: {status}), "
        f"and a new run would overwrite its config, checkpoints and metrics. Choose another "
        f"directory (hydra.run.dir=... for a run, hydra.sweep.dir=... for a sweep) or move the "
        f"old run away first.{hint}"
    )


def resume_from(cfg: DictConfig) -> Path | None:
    """The checkpoint to continue from: `ckpt_path`, or with `resume=true` this run's last one."""
    if cfg.get("ckpt_path"):
        return Path(cfg.ckpt_path)
    if not cfg.get("resume"):
        return None
    last = last_checkpoint(cfg)
    if last is None:
        raise UserError(
            "resume=true continues from the checkpoint callbacks.model_checkpoint writes, but "
            "that callback is off (callbacks.model_checkpoint=null). Turn it back on, or pass "
            "the checkpoint to continue from as ckpt_path=path/to/last.ckpt."
        )
    if not last.is_file():  # e.g. a sweep's job that had not started, or not saved yet
        log.warning("resume=true: there is no checkpoint at %s, so this run starts at step 0", last)
        return None
    return last


def resume_command(cfg: DictConfig) -> str:
    """The command that continues this run (or sweep) where it stopped."""
    if not HydraConfig.initialized():
        return f"ckpt_path={last_checkpoint(cfg)} (with this run's other settings)"
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.MULTIRUN:
        return (
            f"the same sweep command with hydra.sweep.dir={hydra_cfg.sweep.dir} resume=true "
            f"(finished jobs are skipped)"
        )
    kept = [o for o in hydra_cfg.overrides.task if not o.startswith(("resume=", "hydra.run.dir="))]
    args = [*kept, f"hydra.run.dir={cfg.run_dir}", "resume=true"]
    return "python train.py " + " ".join(shlex.quote(a) for a in args)


def _instantiate_all(group: DictConfig | None) -> list[Any]:
    """Loggers and callbacks are dicts of named configs, so several can be selected at once."""
    return [instantiate(c) for c in (group or {}).values() if c is not None and "_target_" in c]


def train(cfg: DictConfig, extra_callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
    """Train the configured network, evaluate it and write the run's outputs; return metrics.

    `extra_callbacks` join the configured ones (benchmarks and tests use it to observe a run).
    """
    started = time.perf_counter()
    run_dir = Path(cfg.run_dir)
    check_config(cfg)
    finished = check_run_dir(cfg)  # before anything is written there
    if finished is not None:
        return finished
    run_dir.mkdir(parents=True, exist_ok=True)
    log.info("makemore-lab run\n%s", start_summary(cfg))
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    threads = resolve_threads(cfg.get("threads"))
    if threads:
        torch.set_num_threads(threads)

    # One generator draws the weights (embedding first, in layer order) and then every batch's
    # indices: the lecture's random stream, which makes its numbers reproducible to the digit.
    generator = torch.Generator().manual_seed(cfg.seed)
    datamodule = instantiate(cfg.data, generator=generator)
    datamodule.prepare_data()
    datamodule.setup("fit")
    net = instantiate(
        cfg.model,
        vocab_size=datamodule.vocab.size,
        init=cfg.init,
        generator=generator,
        _convert_="all",
    )
    module = MakemoreModule(
        net,
        optimizer=instantiate(cfg.optim.optimizer),
        scheduler=instantiate(cfg.optim.scheduler) if cfg.optim.get("scheduler") else None,
        config=OmegaConf.to_container(cfg, resolve=True),
        vocab=datamodule.vocab.chars,
        compile=cfg.compile,
    )
    ckpt_path = resume_from(cfg)
    first_step = 0  # the step this process starts at: a resumed run starts at its checkpoint's
    if ckpt_path is not None:  # a foreign or damaged checkpoint stops us before training
        ckpt = read_checkpoint(ckpt_path)
        check_resumable(ckpt, ckpt_path, module, datamodule.vocab.chars)
        first_step = int(ckpt.get("global_step", 0))
        del ckpt  # Lightning reads the file again to restore it
    last = last_checkpoint(cfg)
    on_interrupt = [SaveOnInterrupt(last)] if last is not None else []
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        **batch_cadences(cfg),
        logger=_instantiate_all(cfg.get("logger")) or False,
        callbacks=[*_instantiate_all(cfg.get("callbacks")), *on_interrupt, *extra_callbacks],
        plugins=[AtomicCheckpointIO()],
        default_root_dir=str(run_dir),
    )

    fit_started = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except TrainingDiverged as err:  # recorded, then reported by the caller (exit status 2)
        write_json(
            run_dir / "metrics.json",
            {
                "status": "diverged",
                "diverged_at_step": err.step,
                "loss": str(err.loss),
                "last_finite_loss": err.last_finite,
                "step0_loss": module.step0_loss.item() if module.step0_loss is not None else None,
                "steps": trainer.global_step,
                "error": str(err),
                "run_dir": str(run_dir),
            },
        )
        raise
    fit_seconds = time.perf_counter() - fit_started
    if on_interrupt and on_interrupt[0].signal is not None:
        write_json(
            run_dir / "metrics.json",
            {
                "status": "interrupted",
                "steps": trainer.global_step,
                "checkpoint": str(last),
                "signal": on_interrupt[0].signal,
                "run_dir": str(run_dir),
            },
        )
        raise RunInterrupted(
            on_interrupt[0].signal, trainer.global_step, str(last), resume_command(cfg)
        )

    # Lightning hands the model back on the CPU after fit: evaluate (and sample) where the
    # splits live, the training device.
    net.to(datamodule.splits["train"][0].device)
    losses = {
        f"{split}_loss": split_loss(net, datamodule.eval_batches(split))
        for split in ("train", "val", "test")
    }
    steps = trainer.global_step
    diverged = not all(math.isfinite(v) for v in losses.values())
    metrics: dict[str, Any] = {
        "status": "diverged" if diverged else "completed",
        "step0_loss": module.step0_loss.item() if module.step0_loss is not None else None,
        **losses,
        "steps": steps,
        "fit_seconds": round(fit_seconds, 3),
        "resumed_from_step": first_step if ckpt_path is not None else None,
        "steps_per_second": (
            round((steps - first_step) / fit_seconds, 1) if fit_seconds > 0 else None
        ),
        "wall_seconds": round(time.perf_counter() - started, 3),
        "threads": torch.get_num_threads(),
        "run_dir": str(run_dir),
    }
    for logger in trainer.loggers:
        logger.log_metrics({f"final/{k}": v for k, v in losses.items()}, step=steps)
        logger.finalize("success")
        if isinstance(logger, WandbLogger):
            logger.experiment.finish()  # each job of a multirun is its own W&B run
    if diverged:  # a NaN model has no distribution to sample from
        log.warning(
            "the losses are not finite: the run diverged (try a smaller optim.lr or init.gain)"
        )
    else:
        names = sample_names(net, datamodule.vocab, count=cfg.samples.count, seed=cfg.samples.seed)
        (run_dir / "samples.txt").write_text("\n".join(names) + "\n")
    write_json(run_dir / "metrics.json", metrics)
    log.info("finished\n%s", end_summary(metrics, str(run_dir)))
    return metrics
