"""Config values checked before anything runs, each failure one sentence naming key and form.

Every value a config sets is checked here, before torch and Lightning are imported (seconds),
so a refused command answers at once. The values that go to torch, Lightning or Hydra's
launchers would otherwise fail as tracebacks far from their key (a negative learning rate: as
no error at all). Our own classes check their arguments again when built, with the same forms,
for code that builds them without a config.
"""

from __future__ import annotations

import os
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from makemore_lab.errors import UserError
from makemore_lab.network.choices import ACTIVATION_NAMES, BIAS_INITS, RUNNING_STATS, SCHEMES
from makemore_lab.network.gains import parse_gain
from makemore_lab.validation import (
    POSITIVE,
    POSITIVE_INT,
    Check,
    boolean,
    integer,
    invalid,
    is_int,
    number,
    one_of,
    optional,
)

SEED = integer(0, 2**63 - 1)  # torch.Generator.manual_seed's range, without negatives

# The weights are float32: a learning rate, gain or scale beyond its range cannot multiply them
# (torch: "value cannot be converted to type float without overflow", mid-training).
FLOAT32_MAX = 3.4028234663852886e38


def float32(positive: bool = True) -> Check:
    """A finite number, positive (or at least 0), up to float32's largest."""
    inner = number(0, FLOAT32_MAX, open_low=positive)
    least = "a positive number" if positive else "a number of at least 0"
    form = f"{least} a 32-bit float can hold (at most 3.4e38: the weights are float32)"
    return lambda value: None if inner(value) is None else form


def manual_steps(off: Any) -> Check:
    """A Lightning option of automatic optimization only: our training steps are manual (a
    chunk of optimizer steps per Lightning batch), where Lightning refuses it mid-start."""
    form = (
        f"{off!r} or null: the training steps are makemore-lab's own (a chunk of optimizer "
        f"steps per Lightning batch), and Lightning does this only for steps it runs itself"
    )
    return lambda value: None if value is None or value == off else form


def gain(value: Any) -> str | None:
    """init.gain's check: parse_gain's own message (it names the value and the forms), and
    float32's range."""
    try:
        parsed = parse_gain(value)
    except UserError as err:
        return str(err)
    return float32()(parsed)


def devices(value: Any) -> str | None:
    """trainer.devices: Lightning's forms, but 0 (which no accelerator accepts)."""
    if (is_int(value) and value >= 1) or value == "auto" or isinstance(value, ListConfig | list):
        return None
    return 'a positive integer, "auto", or a list of device indices'


def max_epochs(value: Any) -> str | None:
    ok = is_int(value) and (value == -1 or value >= 1)
    return None if ok else "-1 (the default: trainer.max_steps ends training) or a positive integer"


def open_unit(value: Any) -> str | None:
    ok = (is_int(value) or isinstance(value, float)) and 0 < value < 1
    return None if ok else "a number strictly between 0 and 1 (tanh lives in (-1, 1))"


# key -> check; a key absent from the config (a callback turned off) is skipped.
CHECKS: dict[str, Check] = {
    "seed": SEED,
    "threads": optional(POSITIVE_INT),
    "eval_threads": optional(POSITIVE_INT),
    "compile": boolean,
    "cuda_graphs": boolean,
    "resume": boolean,
    "ckpt_path": lambda v: None if v is None or isinstance(v, str) else "null or a file path",
    "init.scheme": one_of(SCHEMES),
    "init.output_scheme": optional(one_of(SCHEMES)),
    "init.bias": one_of(BIAS_INITS),
    "init.gain": gain,
    "init.bias_scale": float32(positive=False),
    "init.output_scale": float32(positive=False),
    "init.output_bias_scale": float32(positive=False),
    "model.block_size": POSITIVE_INT,
    "model.n_embd": POSITIVE_INT,
    "model.n_hidden": POSITIVE_INT,
    "model.n_layers": POSITIVE_INT,
    "model.activation": one_of(ACTIVATION_NAMES),
    "model.batchnorm": boolean,
    "model.output_batchnorm": boolean,
    "model.bn.eps": number(0),
    "model.bn.momentum": number(0, 1),
    "model.bn.unbiased": boolean,
    "model.bn.running": one_of(RUNNING_STATS),
    "data.download": boolean,
    "data.batch_size": POSITIVE_INT,
    "data.chunk_size": POSITIVE_INT,
    "data.eval_batch_size": POSITIVE_INT,
    "optim.lr": float32(),
    "optim.optimizer.lr": float32(),  # the optimizer's own (it follows optim.lr by default)
    "optim.decay_step": integer(0),
    "optim.decay_gamma": float32(),
    "trainer.max_steps": POSITIVE_INT,
    "trainer.max_epochs": max_epochs,
    "trainer.devices": devices,
    "trainer.log_every_n_steps": POSITIVE_INT,
    "trainer.val_check_interval": POSITIVE_INT,
    "trainer.gradient_clip_val": manual_steps(0),
    "trainer.accumulate_grad_batches": manual_steps(1),
    "callbacks.model_checkpoint.every_n_train_steps": POSITIVE_INT,
    "callbacks.model_checkpoint.save_top_k": integer(-1),
    "callbacks.progress_bar.refresh_rate": integer(0),
    "callbacks.dynamics.every_n_steps": POSITIVE_INT,
    "callbacks.dynamics.heatmap_bins": POSITIVE_INT,
    "callbacks.dynamics.histograms": boolean,
    "callbacks.dynamics.figures": boolean,
    "callbacks.dynamics.figure_workers": integer(0),
    "samples.count": integer(0),
    "samples.seed": SEED,
    "callbacks.dynamics.saturation_threshold": open_unit,
}

# Options of the launchers in conf/hydra/launcher/, checked before the first job starts.
LAUNCHER_CHECKS: dict[str, Check] = {
    "n_jobs": lambda v: None if is_int(v) and v != 0 else "a non-zero integer (-1 = one per core)",
    # the stacked launcher's: its groups as processes here, or as SLURM array elements
    "executor": lambda v: None if v in ("local", "slurm") else "local or slurm",
    "mixed_layers": lambda v: None if v in (True, False, "auto") else "true, false or auto",
    "split_groups": lambda v: None if v in (True, False, "auto") else "true, false or auto",
    # submitit's: null leaves the cluster's default
    "timeout_min": optional(POSITIVE_INT),
    "cpus_per_task": optional(POSITIVE_INT),
    "gpus_per_node": optional(integer(0)),
    "tasks_per_node": optional(POSITIVE_INT),
    "mem_gb": optional(POSITIVE),
    "nodes": optional(POSITIVE_INT),
    "array_parallelism": optional(POSITIVE_INT),
    "signal_delay_s": optional(integer(0)),
    "max_requeues": integer(0),
}


def check_config(cfg: DictConfig) -> None:
    """Raise a UserError for the first value in CHECKS that is not of its allowed form."""
    for key, check in CHECKS.items():
        value = OmegaConf.select(cfg, key, default="<absent>")
        if isinstance(value, str) and value == "<absent>":
            continue
        form = check(value)
        if form:
            raise invalid(key, value, form)
    check_diagnosis(cfg)
    check_cadences(cfg)
    check_block_size(cfg)
    check_batchnorm_batch(cfg)


def check_diagnosis(cfg: DictConfig) -> None:
    """Each rule threshold of the diagnosis is a number (its keys: Hydra refuses a new one
    unless it is added with `+`, and `dynamics/diagnosis.py` then names the known ones)."""
    thresholds = OmegaConf.select(cfg, "callbacks.dynamics.diagnosis") or {}
    for key, value in thresholds.items():
        form = number()(value)
        if form:
            raise invalid(f"callbacks.dynamics.diagnosis.{key}", value, form)


def check_batchnorm_batch(cfg: DictConfig) -> None:
    """BatchNorm's batch statistics need two examples (the variance of one is 0/0, NaN)."""
    uses_bn = cfg.model.get("batchnorm") or cfg.model.get("output_batchnorm")
    if uses_bn and cfg.data.get("batch_size") == 1:
        raise UserError(
            "data.batch_size=1 with BatchNorm (model.batchnorm or model.output_batchnorm): it "
            "normalises each unit over the minibatch, and the variance of one example is 0/0, "
            "so the first loss would be NaN. Use data.batch_size=2 or more, or no BatchNorm."
        )


def check_device(cfg: DictConfig) -> None:
    """A GPU trainer on a machine without one (Lightning's own error is a traceback). Imports
    torch, so it runs where training does, not with the quick checks above."""
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    if accelerator not in ("gpu", "cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        raise UserError(
            f"trainer.accelerator={accelerator} asks for a CUDA GPU, and torch sees none on this "
            f"machine (torch.cuda.is_available() is False; torch {torch.__version__}). Use "
            f"trainer=cpu, or trainer=auto to take a GPU when there is one."
        )


def check_block_size(cfg: DictConfig) -> None:
    """The data's context length is the model's input width: the two must agree."""
    data, model = cfg.data.get("block_size"), cfg.model.get("block_size")
    if is_int(data) and is_int(model) and data != model:
        raise UserError(
            f"data.block_size={data} but model.block_size={model}: the network reads contexts "
            f"of model.block_size characters. Set model.block_size={data} (data.block_size "
            f"follows it by default), or leave data.block_size unset."
        )


def step_cadences(cfg: DictConfig) -> dict[str, Any]:
    """The step-counted settings Lightning acts on between batches: key -> value."""
    steps = {"trainer.val_check_interval": cfg.trainer.get("val_check_interval")}
    for name, callback in (cfg.get("callbacks") or {}).items():
        if callback is not None and callback.get("every_n_train_steps"):
            steps[f"callbacks.{name}.every_n_train_steps"] = callback.every_n_train_steps
    return steps


def check_cadences(cfg: DictConfig) -> None:
    """Validation and checkpoint cadences must be multiples of `data.chunk_size`.

    A Lightning batch is `data.chunk_size` optimizer steps, and Lightning validates and saves
    checkpoints only between batches.
    """
    chunk = cfg.data.chunk_size
    if not is_int(chunk) or chunk < 1:
        return  # the datamodule names it
    for key, value in step_cadences(cfg).items():
        if is_int(value) and value % chunk:
            divisors = [d for d in range(chunk, 0, -1) if value % d == 0][:1]
            raise UserError(
                f"{key}={value} is not a multiple of data.chunk_size={chunk}: one training "
                f"step runs {chunk} optimizer steps, and Lightning validates and saves "
                f"checkpoints only between them. Use a multiple of {chunk} for {key}, or a "
                f"chunk size that divides {value} (e.g. data.chunk_size={divisors[0]})."
            )


def check_launcher(launcher: DictConfig | None) -> None:
    """Check the options of a multirun's launcher (`hydra.launcher.*`, and the stacked
    launcher's `hydra.launcher.slurm.*`)."""
    if launcher is None:
        return
    slurm = launcher.get("slurm")
    for prefix, options in (("", launcher), ("slurm.", slurm if OmegaConf.is_dict(slurm) else {})):
        for key, check in LAUNCHER_CHECKS.items():
            if key in options:
                form = check(options[key])
                if form:
                    raise invalid(f"hydra.launcher.{prefix}{key}", options[key], form)
    n_jobs = launcher.get("n_jobs")
    if is_int(n_jobs) and n_jobs < -(os.cpu_count() or 1):
        raise invalid("hydra.launcher.n_jobs", n_jobs, f"at least -{os.cpu_count()} here")
    if launcher.get("executor") == "slurm" and n_jobs != 1:
        raise UserError(
            f"hydra.launcher.n_jobs={n_jobs} has no effect on SLURM, where each group is an "
            f"element of one job array. Set hydra.launcher.slurm.array_parallelism for how many "
            f"groups run at once, and leave n_jobs at 1."
        )
