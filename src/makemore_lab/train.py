"""`train(cfg) -> metrics`: build, fit, evaluate, record, sample. One run, start to end.

Plain and testable: tests call it with configs from Hydra's compose API; `app.py` is the
Hydra application that calls it for `python train.py`.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf
from torch import nn

from makemore_lab import run_claim, run_record
from makemore_lab.checkpointing import (
    AtomicCheckpointIO,
    SaveOnInterrupt,
    check_resumable,
    last_checkpoint,
    read_checkpoint,
)
from makemore_lab.config_checks import check_config, check_device, step_cadences
from makemore_lab.data import NamesDataModule, Vocab
from makemore_lab.dynamics import TrainingDynamics
from makemore_lab.errors import RunInterrupted, TrainingDiverged
from makemore_lab.lightning_module import MakemoreModule, split_loss
from makemore_lab.resume import (
    check_resume,
    checkpoint_to_resume,
    finished_run,
    resume_command,
)
from makemore_lab.run_summary import end_summary, start_summary
from makemore_lab.sampling import sample_names

log = logging.getLogger(__name__)


@dataclass
class Run:
    """What `build` makes of a config, and what the later steps of `train` work on."""

    cfg: DictConfig
    datamodule: NamesDataModule
    module: MakemoreModule
    trainer: L.Trainer
    ckpt_path: Path | None  # the checkpoint this run continues from, if any
    first_step: int  # the step this process starts at (a resumed run: its checkpoint's)
    on_interrupt: SaveOnInterrupt | None

    @property
    def run_dir(self) -> Path:
        return Path(self.cfg.run_dir)


def train(cfg: DictConfig, extra_callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
    """Train the configured network, evaluate it and write the run's outputs; return metrics.

    `extra_callbacks` join the configured ones (benchmarks and tests use it to observe a run).
    """
    started = time.perf_counter()
    check_config(cfg)
    check_device(cfg)
    finished = finished_run(cfg)  # before anything is written there
    if finished is not None:
        return finished
    run_dir, resume = Path(cfg.run_dir), bool(cfg.get("resume"))
    run_claim.check(run_dir, resume)  # another run's directory: refused, before any write
    ckpt = check_resume(cfg)  # another run's settings: refused, still before any write
    run_claim.claim(run_dir, resume)
    run_claim.write_hydra_record(cfg, run_dir)
    start_run_dir(cfg)
    run = build(cfg, extra_callbacks, ckpt)
    fit_seconds = fit(run)
    net, steps = run.module.net, run.trainer.global_step
    losses = evaluate(net, run.datamodule, run.trainer.loggers, steps)
    metrics = record(
        run.run_dir,
        run.module.step0_loss_value,
        losses,
        steps=steps,
        first_step=run.first_step if run.ckpt_path is not None else None,
        fit_seconds=fit_seconds,
        wall_seconds=time.perf_counter() - started,
        vocab_size=run.datamodule.vocab.size,
    )
    metrics["diagnosis"] = diagnosis_of(run.trainer, job=0)
    finish(run.cfg, net, run.datamodule.vocab, metrics)
    run_claim.release(run_dir)  # on an error, the caller records it first (app.handle_job_error)
    return metrics


def finish(cfg: DictConfig, net: nn.Module, vocab: Vocab, metrics: dict[str, Any]) -> None:
    """Sample (a completed run: a NaN model has no distribution), write metrics.json, say so."""
    run_dir = Path(cfg.run_dir)
    if metrics["status"] == "completed":
        names = sample_names(net, vocab, count=cfg.samples.count, seed=cfg.samples.seed)
        (run_dir / "samples.txt").write_text("\n".join(names) + "\n")
    run_record.write_finished(run_dir, metrics)
    log.info("finished\n%s", end_summary(metrics, str(run_dir)))


def start_run_dir(cfg: DictConfig) -> None:
    """Create the run directory, say what runs, save the resolved config, set torch's threads."""
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    log.info("makemore-lab run\n%s", start_summary(cfg))
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    threads = resolve_threads(cfg.get("threads"))
    if threads:
        torch.set_num_threads(threads)


def build(
    cfg: DictConfig, extra_callbacks: Sequence[Callback] = (), ckpt: dict[str, Any] | None = None
) -> Run:
    """Data, network, LightningModule and Trainer from the config; the checkpoint to resume
    (`ckpt`: it, read already)."""
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
    config = OmegaConf.to_container(cfg, resolve=True)
    module = MakemoreModule(
        net,
        optimizer=instantiate(cfg.optim.optimizer),
        scheduler=instantiate(cfg.optim.scheduler) if cfg.optim.get("scheduler") else None,
        config=config,
        vocab=datamodule.vocab.chars,
        compile=cfg.compile,
    )
    ckpt_path = checkpoint_to_resume(cfg)
    first_step = 0
    if ckpt_path is not None:  # a foreign or damaged checkpoint stops us before training
        ckpt = ckpt if ckpt is not None else read_checkpoint(ckpt_path)
        check_resumable(
            ckpt, ckpt_path, config["model"], module.state_dict(), datamodule.vocab.chars
        )
        first_step = int(ckpt.get("global_step", 0))
        del ckpt  # Lightning reads the file again to restore it
    last = last_checkpoint(cfg)
    on_interrupt = SaveOnInterrupt(last) if last is not None else None
    # The interrupt handler runs after the configured callbacks and before extra ones (tests
    # that send a signal from a callback expect it to be seen at the next chunk's end).
    callbacks = [*instantiate_all(cfg.get("callbacks")), *([on_interrupt] if on_interrupt else [])]
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        **batch_cadences(cfg),
        logger=instantiate_all(cfg.get("logger")) or False,
        callbacks=[*callbacks, *extra_callbacks],
        plugins=[AtomicCheckpointIO()],
        default_root_dir=cfg.run_dir,
    )
    return Run(cfg, datamodule, module, trainer, ckpt_path, first_step, on_interrupt)


def fit(run: Run) -> float:
    """Train; record a divergence or an interruption (and raise it). Returns the fit's seconds."""
    started = time.perf_counter()
    try:
        run.trainer.fit(
            run.module, datamodule=run.datamodule, ckpt_path=run.ckpt_path, weights_only=True
        )
    except TrainingDiverged as err:  # recorded, then reported by the caller (exit status 2)
        run_record.write_diverged(
            run.run_dir, err, run.module.step0_loss_value, run.trainer.global_step
        )
        raise
    seconds = time.perf_counter() - started
    if run.on_interrupt is not None and run.on_interrupt.signal is not None:
        signal, steps = run.on_interrupt.signal, run.trainer.global_step
        run_record.write_interrupted(run.run_dir, steps, run.on_interrupt.path, signal)
        raise RunInterrupted(signal, steps, str(run.on_interrupt.path), resume_command(run.cfg))
    return seconds


def evaluate(
    net: nn.Module, datamodule: NamesDataModule, loggers: Sequence[Logger], step: int
) -> dict[str, float]:
    """Each split's mean loss with the trained network, logged as final/<split>_loss."""
    # Lightning hands the model back on the CPU after fit: evaluate (and sample) where the
    # splits live, the training device.
    net.to(datamodule.splits["train"][0].device)
    losses = {
        f"{split}_loss": split_loss(net, datamodule.eval_batches(split))
        for split in ("train", "val", "test")
    }
    for logger in loggers:
        logger.log_metrics({f"final/{k}": v for k, v in losses.items()}, step=step)
        logger.finalize("success")
        if isinstance(logger, WandbLogger):
            logger.experiment.finish()  # each job of a multirun is its own W&B run
    return losses


def record(
    run_dir: Path,
    step0_loss: float | None,
    losses: dict[str, float],
    steps: int,
    first_step: int | None,
    fit_seconds: float,
    wall_seconds: float,
    vocab_size: int | None = None,
) -> dict[str, Any]:
    """A trained run's metrics.json contents: status, losses, steps and speed.

    `first_step` is the step a resumed run started from (None: it started at step 0).
    `diverged` also covers a finite blow-up: a final train loss above both the loss before
    training and a uniform guess over the vocabulary (log `vocab_size`) did not train.
    """
    diverged = not all(math.isfinite(v) for v in losses.values())
    if diverged:
        log.warning(
            "the losses are not finite: the run diverged (try a smaller optim.lr or init.gain)"
        )
    elif step0_loss is not None and vocab_size:
        worse = max(step0_loss, math.log(vocab_size))
        if losses["train_loss"] > worse:
            diverged = True
            log.warning(
                "the final train loss %.4g is above the loss before training (%.4g) and a "
                "uniform guess (%.4g): the run diverged without overflowing (try a smaller "
                "optim.lr or init.gain)",
                losses["train_loss"],
                step0_loss,
                math.log(vocab_size),
            )
    trained = steps - (first_step or 0)
    return {
        "status": "diverged" if diverged else "completed",
        "step0_loss": step0_loss,
        **losses,
        "steps": steps,
        "fit_seconds": round(fit_seconds, 3),
        "resumed_from_step": first_step,
        "steps_per_second": round(trained / fit_seconds, 1) if fit_seconds > 0 else None,
        "wall_seconds": round(wall_seconds, 3),
        "threads": torch.get_num_threads(),
        "run_dir": str(run_dir),
    }


def diagnosis_of(trainer: L.Trainer, job: int) -> list[str]:
    """The dynamics callback's diagnosis of job `job` (none without the callback)."""
    for callback in trainer.callbacks:
        if isinstance(callback, TrainingDynamics):
            return callback.jobs[job].report.diagnosis_lines()
    return []


def resolve_threads(threads: int | None) -> int | None:
    """Torch threads for this job: as configured, or shared fairly under a parallel launcher.

    With `hydra/launcher=joblib` and `threads=null`, n jobs run at once; each leaving torch at
    its default (one thread per core) would oversubscribe the machine, so each gets
    cores // n (at least 1).
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
    """Lightning's batch-counted `val_check_interval` from our step-counted one.

    A Lightning batch is `data.chunk_size` optimizer steps (`check_cadences` made sure the
    step cadences are multiples of it).
    """
    interval = step_cadences(cfg)["trainer.val_check_interval"]
    return (
        {"val_check_interval": interval // cfg.data.chunk_size} if isinstance(interval, int) else {}
    )


def instantiate_all(group: DictConfig | None) -> list[Any]:
    """Loggers and callbacks are dicts of named configs, so several can be selected at once."""
    return [instantiate(c) for c in (group or {}).values() if c is not None and "_target_" in c]
