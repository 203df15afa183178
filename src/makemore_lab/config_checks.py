"""Config values checked before anything runs, each failure one sentence naming key and form.

Our own classes check their own arguments when they are built (data and model sizes, init
schemes and gains, the statistics callback's settings). The values below go to torch, Lightning
or Hydra's launchers instead, whose errors arrive as tracebacks far from the key that caused
them (or, for a negative learning rate, as no error at all), so they are checked here, first.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from omegaconf import DictConfig, OmegaConf

from makemore_lab.errors import UserError

# Gains that keep activations at unit scale through a nonlinearity (torch.nn.init.calculate_gain).
NAMED_GAINS = {"linear": 1.0, "identity": 1.0, "tanh": 5 / 3, "relu": math.sqrt(2.0)}


def parse_gain(value: Any) -> float:
    """A gain from a number, a fraction string such as '5/3', or a nonlinearity name."""
    hint = (
        f"init.gain={value!r} is not a valid gain. Use a positive number (init.gain=1.5), a "
        f"fraction (init.gain=5/3) or a nonlinearity name ({', '.join(NAMED_GAINS)})."
    )
    if isinstance(value, bool):
        raise UserError(hint)
    if isinstance(value, int | float):
        gain = float(value)
    elif isinstance(value, str) and value.strip().lower() in NAMED_GAINS:
        gain = NAMED_GAINS[value.strip().lower()]
    elif isinstance(value, str):
        try:
            gain = float(Fraction(value.strip().replace(" ", "")))
        except ZeroDivisionError:
            raise UserError(f"{hint} (It divides by zero.)") from None
        except ValueError:
            raise UserError(hint) from None
    else:
        raise UserError(hint)
    if not math.isfinite(gain) or gain <= 0:
        raise UserError(hint)
    return gain


# A check returns None for a good value, else the allowed form ("a positive integer").
Check = Callable[[Any], str | None]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def integer(low: int | None = None) -> Check:
    names = {None: "an integer", 0: "a non-negative integer", 1: "a positive integer"}
    form = names.get(low, f"an integer >= {low}")
    return lambda v: None if _is_int(v) and (low is None or v >= low) else form


def number(low: float = -math.inf, high: float = math.inf, open_low: bool = False) -> Check:
    """A finite number in [low, high] ((low, high] with `open_low`)."""
    bracket = "(" if open_low else "["
    form = (
        "a positive number"
        if (low, high, open_low) == (0, math.inf, True)
        else f"a number in {bracket}{low}, {high}]"
    )

    def check(v: Any) -> str | None:
        ok = _is_number(v) and (v > low if open_low else v >= low) and v <= high
        return None if ok else form

    return check


def boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def optional(check: Check) -> Check:
    return lambda v: None if v is None else check(v) and f"null or {check(v)}"


def gain(value: Any) -> str | None:
    try:
        parse_gain(value)
    except UserError as err:
        return str(err)
    return None


POSITIVE_INT, POSITIVE = integer(1), number(0, math.inf, open_low=True)

# key -> check; a key absent from the config (a callback turned off) is skipped.
CHECKS: dict[str, Check] = {
    "seed": integer(0),
    "threads": optional(POSITIVE_INT),
    "compile": boolean,
    "resume": boolean,
    "ckpt_path": lambda v: None if v is None or isinstance(v, str) else "null or a file path",
    "init.gain": gain,
    "init.bias_scale": number(0),
    "init.output_scale": number(0),
    "init.output_bias_scale": number(0),
    "model.batchnorm": boolean,
    "model.output_batchnorm": boolean,
    "model.bn.eps": number(0),
    "model.bn.momentum": number(0, 1),
    "model.bn.unbiased": boolean,
    "model.bn.running": lambda v: None if v in ("var", "std") else "var or std",
    "data.download": boolean,
    "optim.lr": POSITIVE,
    "optim.decay_step": integer(0),
    "optim.decay_gamma": POSITIVE,
    "trainer.max_steps": POSITIVE_INT,
    "trainer.log_every_n_steps": POSITIVE_INT,
    "trainer.val_check_interval": POSITIVE_INT,
    "callbacks.model_checkpoint.every_n_train_steps": POSITIVE_INT,
    "callbacks.model_checkpoint.save_top_k": integer(-1),
    "callbacks.progress_bar.refresh_rate": integer(0),
    "callbacks.dynamics.histograms": boolean,
    "callbacks.dynamics.figures": boolean,
    "samples.count": integer(0),
    "samples.seed": integer(0),
}

# Options of the launchers in conf/hydra/launcher/, checked before the first job starts.
LAUNCHER_CHECKS: dict[str, Check] = {
    "n_jobs": lambda v: None if _is_int(v) and v != 0 else "a non-zero integer (-1 = one per core)",
    # submitit's: null leaves the cluster's default
    "timeout_min": optional(POSITIVE_INT),
    "cpus_per_task": optional(POSITIVE_INT),
    "gpus_per_node": optional(integer(0)),
    "tasks_per_node": optional(POSITIVE_INT),
    "mem_gb": optional(POSITIVE),
    "nodes": optional(POSITIVE_INT),
    "array_parallelism": optional(POSITIVE_INT),
}


def _fail(key: str, value: Any, form: str) -> UserError:
    if form.startswith(f"{key}="):  # a check that words its own message (init.gain)
        return UserError(form)
    shows = "--cfg hydra" if key.startswith("hydra.") else "--cfg job"
    return UserError(
        f"{key}={value!r} is not valid: it must be {form}. Fix the override (or the YAML in "
        f"conf/ that sets it); `python train.py {shows}` prints every value in use."
    )


def check_config(cfg: DictConfig) -> None:
    """Raise a UserError for the first value in CHECKS that is not of its allowed form."""
    for key, check in CHECKS.items():
        value = OmegaConf.select(cfg, key, default="<absent>")
        if isinstance(value, str) and value == "<absent>":
            continue
        form = check(value)
        if form:
            raise _fail(key, value, form)


def check_launcher(launcher: DictConfig | None) -> None:
    """Check the options of a multirun's launcher (`hydra.launcher.*`)."""
    for key, check in LAUNCHER_CHECKS.items():
        if launcher is not None and key in launcher:
            form = check(launcher[key])
            if form:
                raise _fail(f"hydra.launcher.{key}", launcher[key], form)
    n_jobs = launcher.get("n_jobs") if launcher is not None else None
    if _is_int(n_jobs) and n_jobs < -(os.cpu_count() or 1):
        raise _fail("hydra.launcher.n_jobs", n_jobs, f"at least -{os.cpu_count()} here")
