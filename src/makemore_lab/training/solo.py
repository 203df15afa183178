"""The solo engine: one job, `MakemoreModule` on the configured network and optimizer.

It takes any optimizer and schedule the config names, compiles when asked, and is the
reference the stacked engine's results are compared with bit for bit (tests/test_stacked*.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback
from torch import nn

from makemore_lab.runs.checkpoints import AtomicCheckpointIO, check_resumable
from makemore_lab.runs.job import Job
from makemore_lab.training.engine import Engine, build_trainer, check_optimizer, instantiate_all
from makemore_lab.training.interrupts import SaveOnInterrupt
from makemore_lab.training.module import MakemoreModule


@dataclass
class SoloEngine(Engine):
    """One job: its network is the module's, its loggers the trainer's."""

    def network(self, job: int) -> nn.Module:
        return self.module.net

    @classmethod
    def build(cls, job: Job, extra_callbacks: Sequence[Callback] = ()) -> SoloEngine:
        """Data, network, module and Trainer from the resolved job (`job.ckpt`: the checkpoint
        it continues from, read already; None: it starts at step 0)."""
        cfg = job.cfg
        # One generator draws the weights (embedding first, in layer order) and then every
        # batch's indices: the lecture's random stream, reproducible to the digit.
        generator = torch.Generator().manual_seed(cfg.seed)
        datamodule = instantiate(cfg.data, generators=[generator])
        datamodule.prepare_data()
        datamodule.setup("fit")
        net = instantiate(
            cfg.model,
            vocab_size=datamodule.vocab.size,
            init=cfg.init,
            generator=generator,
            _convert_="all",
        )
        check_optimizer(cfg, net)
        module = MakemoreModule(
            net,
            optimizer=instantiate(cfg.optim.optimizer),
            generator=generator,
            scheduler=instantiate(cfg.optim.scheduler) if cfg.optim.get("scheduler") else None,
            config=job.config,
            vocab=datamodule.vocab.chars,
            compile=cfg.compile,
            cuda_graphs=cfg.cuda_graphs,
        )
        if job.ckpt is not None:  # a foreign or damaged checkpoint stops us before training
            check_resumable(
                job.ckpt,
                job.resume_from,
                job.config["model"],
                module.state_dict(),
                datamodule.vocab.chars,
            )
        on_interrupt = SaveOnInterrupt(job.last) if job.last is not None else None
        # The interrupt handler runs after the configured callbacks and before extra ones
        # (tests that send a signal from a callback expect it seen at the next chunk's end).
        interrupt = [on_interrupt] if on_interrupt is not None else []
        trainer = build_trainer(
            cfg,
            logger=instantiate_all(cfg.get("logger")) or False,
            callbacks=[*instantiate_all(cfg.get("callbacks")), *interrupt, *extra_callbacks],
            plugins=[AtomicCheckpointIO()],
            default_root_dir=cfg.run_dir,
        )
        return cls([job], datamodule, module, trainer, job.resume_from, on_interrupt)
