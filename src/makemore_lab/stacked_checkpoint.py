"""One job's checkpoint, in the solo format, cut out of its stacked group's checkpoint.

A solo run's `last.ckpt` is Lightning's: the weights, the optimizer and schedule, the loop
counters, the callbacks', the datamodule's and the module's state. A job of a stacked group has
all of these inside its group's checkpoint; this writes them as its solo run would have, so
`makemore-sample`, `ckpt_path=` and `resume=true` treat the job like any other run. The loop
counters are the group's: a group steps its jobs together, chunk by chunk, as each would alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from makemore_lab.stacked_steps import StepDecay

if TYPE_CHECKING:
    from makemore_lab.stacked_train import Group

SHARED = ("epoch", "global_step", "pytorch-lightning_version", "loops")


def solo_checkpoint(group_ckpt: dict[str, Any], job: int, cfg: DictConfig, group: Group) -> dict:
    """Job `job`'s checkpoint (its network already holds its final weights)."""
    net, steps = group.nets[job], group_ckpt["global_step"]
    stacked = group_ckpt["makemore_stacked"]
    ckpt = {key: group_ckpt[key] for key in SHARED}
    ckpt["state_dict"] = {f"net.{k}": v for k, v in net.state_dict().items()}
    ckpt["optimizer_states"], ckpt["lr_schedulers"] = solo_optimizer_states(cfg, net, steps)
    dynamics = group_ckpt["callbacks"].get("TrainingDynamics")
    ckpt["callbacks"] = {"TrainingDynamics": dynamics["jobs"][job]} if dynamics else {}
    ckpt["hparams_name"] = "kwargs"
    ckpt["hyper_parameters"] = {
        "config": OmegaConf.to_container(cfg, resolve=True),
        "vocab": group.datamodule.vocab.chars,
        "compile": cfg.compile,
    }
    sampler = group_ckpt["StackedNamesDataModule"]["sampler_states"][job]
    ckpt["NamesDataModule"] = {"sampler_state": sampler}
    step0 = stacked["step0_losses"][job] if stacked["step0_losses"] else None
    ckpt["makemore"] = {
        "window": list(stacked["unlogged"][job]),
        "last_loss": stacked["last_losses"][job],
        "step0_loss": step0,
    }
    return ckpt


def solo_optimizer_states(cfg: DictConfig, net: Any, steps: int) -> tuple[list, list]:
    """The solo run's optimizer and schedule state after `steps` steps."""
    optimizer = instantiate(cfg.optim.optimizer)(params=net.parameters())
    rate = StepDecay.of(cfg).at(steps)  # the rate the next step would use
    for group in optimizer.param_groups:
        group["initial_lr"] = cfg.optim.lr
        group["lr"] = rate
    if cfg.optim.get("scheduler") is None:
        return [optimizer.state_dict()], []
    scheduler = instantiate(cfg.optim.scheduler)(optimizer=optimizer)
    # MultiStepLR after `steps` steps: its counters, and the rate it has set
    scheduler.last_epoch, scheduler._step_count = steps, steps + 1
    scheduler._last_lr = [rate]
    for group in optimizer.param_groups:
        group["lr"] = rate
    return [optimizer.state_dict()], [scheduler.state_dict()]
