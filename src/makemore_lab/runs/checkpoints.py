"""Checkpoints: written atomically, saved at the last step, read safely.

- `StepCheckpoint`: Lightning's `ModelCheckpoint(every_n_train_steps=N)` saves only at
  multiples of N, and our training stream is one endless epoch, so no epoch-end save happens
  either: a 1,001-step run would end with no checkpoint of its final weights. It saves once
  more at the end.
- `AtomicCheckpointIO`: Lightning writes a checkpoint to a temporary file in the system's temp
  directory and then moves it, which is a copy (not atomic) when that is another filesystem
  (a cluster's local /tmp and a shared outputs/). We write beside the target, then rename.
- (SIGTERM and Ctrl-C save `last.ckpt` through `interrupts.SaveOnInterrupt`.)
- `read_checkpoint`: one clear error for a missing, damaged or foreign checkpoint file;
  `load_checkpoint` rebuilds the trained network from one (sampling).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import nn

from makemore_lab.data.names import Vocab
from makemore_lab.errors import UserError
from makemore_lab.job_state import solo_file, stopped_jobs, with_jobs

log = logging.getLogger(__name__)


class StepCheckpoint(ModelCheckpoint):
    """`ModelCheckpoint` that also writes the last step (top-k file and `last.ckpt`) at the end,
    and nothing once its job's loss stopped being finite (a diverged run keeps the checkpoints
    from before)."""

    job = 0  # the job of the module it saves (a stacked group has several)

    def _should_skip_saving_checkpoint(self, trainer: L.Trainer) -> bool:
        stopped = self.job in stopped_jobs(trainer.lightning_module)
        return stopped or super()._should_skip_saving_checkpoint(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if not self._should_skip_saving_checkpoint(trainer):  # skips a step saved already
            candidates = self._monitor_candidates(trainer)
            self._save_topk_checkpoint(trainer, candidates)
            self._save_last_checkpoint(trainer, candidates)


class AtomicCheckpointIO(TorchCheckpointIO):
    """`torch.save` to `<name>.tmp` in the same directory, then `os.replace`: all or nothing.
    A run's file holds its job's entries (`job_state.py`); reading gives them back."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        checkpoint = solo_file(checkpoint)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        try:
            with tmp.open("wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())  # the bytes are on disk before the name points at them
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def load_checkpoint(self, path: str | Path, *args: Any, **kwargs: Any) -> dict[str, Any]:
        ckpt = super().load_checkpoint(path, *args, **kwargs)
        return with_jobs([ckpt], ckpt)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A makemore-lab checkpoint's contents, or a UserError saying what is wrong with the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"No checkpoint at {path}. Pass a .ckpt file written by train.py (a run's "
            f"checkpoints/last.ckpt, or one of its step*.ckpt files)."
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a damaged file
        raise UserError(
            f"The checkpoint {path} cannot be read ({type(err).__name__}). It may be "
            f"truncated or not a checkpoint; use another one, e.g. the step<N>.ckpt in the "
            f"same checkpoints/ folder."
        ) from None
    if isinstance(ckpt, dict) and "makemore_stacked" in ckpt:
        raise UserError(
            f"{path} is a stacked group's checkpoint, written by an earlier version of "
            f"makemore-lab; it holds several jobs and no job's config. Use a job's own "
            f"checkpoint (<job dir>/checkpoints/last.ckpt), which this version writes."
        )
    hparams = ckpt.get("hyper_parameters", {}) if isinstance(ckpt, dict) else {}
    if "config" not in hparams or "vocab" not in hparams or "state_dict" not in ckpt:
        raise UserError(
            f"{path} is not a makemore-lab checkpoint (it lacks the config, the "
            f"vocabulary or the weights). Use a checkpoint written by train.py."
        )
    return ckpt


def check_resumable(
    ckpt: dict[str, Any], path: Path, model: dict[str, Any], own: dict[str, Any], vocab: str
) -> None:
    """Refuse a checkpoint whose network or data differ from this run's, naming the difference.

    `model` is this run's resolved `model` config, `own` its module's state_dict.
    """
    old_model = ckpt["hyper_parameters"]["config"].get("model", {})
    new_model = model
    changed = [
        f"model.{k}={old_model.get(k)!r} there, {new_model.get(k)!r} here"
        for k in sorted(set(old_model) | set(new_model))
        if old_model.get(k) != new_model.get(k)
    ]
    if ckpt["hyper_parameters"]["vocab"] != vocab:
        changed.append(
            f"the vocabulary is {ckpt['hyper_parameters']['vocab']!r} there, {vocab!r} here "
            f"(another data.path)"
        )
    theirs = ckpt["state_dict"]
    shapes = [
        f"{k} {tuple(theirs[k].shape) if k in theirs else 'missing'} there, "
        f"{tuple(own[k].shape) if k in own else 'missing'} here"
        for k in sorted(set(own) | set(theirs))
        if k not in own or k not in theirs or own[k].shape != theirs[k].shape
    ]
    if changed or shapes:
        raise UserError(
            f"The checkpoint {path} was trained with a different network or data than this "
            f"run: {'; '.join(changed or shapes[:3])}. Resume with the overrides the "
            f"checkpoint was trained with (see its run's config.yaml), or start a new run "
            f"without resume/ckpt_path."
        )


def last_checkpoint(cfg: Any) -> Path | None:
    """Where this run's `last.ckpt` lives: the configured ModelCheckpoint's directory."""
    callback = (cfg.get("callbacks") or {}).get("model_checkpoint")
    if callback is None or not callback.get("dirpath"):
        return None
    name = ModelCheckpoint.CHECKPOINT_NAME_LAST + ModelCheckpoint.FILE_EXTENSION
    return Path(callback.dirpath) / name


def load_checkpoint(path: str | Path) -> tuple[nn.Module, Vocab, dict[str, Any]]:
    """The network, vocabulary and resolved config stored in a makemore-lab checkpoint."""
    path = Path(path)
    if path.is_dir():  # a run directory: take its last checkpoint
        path = path / "checkpoints" / "last.ckpt"
    ckpt = read_checkpoint(path)
    hparams = ckpt["hyper_parameters"]
    config, vocab = hparams["config"], Vocab(hparams["vocab"])
    net = instantiate(config["model"], vocab_size=vocab.size, init=config["init"], _convert_="all")
    state = {
        k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")
    }
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise UserError(
            f"The weights in {path} do not fit the network its config describes ({err})."
        ) from None
    return net, vocab, config
