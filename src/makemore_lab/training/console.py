"""Lightning's console lines once, without its advert or warnings users cannot act on."""

from __future__ import annotations

import logging
import warnings


def _not_an_advert(record: logging.LogRecord) -> bool:
    return "litlogger" not in record.getMessage()


def quiet_lightning() -> None:
    """Lightning's console lines once, without its advert or warnings users cannot act on."""
    # `import lightning` gives the "lightning" logger a console handler of its own; under
    # Hydra, whose root handlers print and write the run's train.log, every line would show
    # twice. Called after the import, in the process that trains.
    if logging.getLogger().hasHandlers():
        logging.getLogger("lightning").handlers.clear()
    # Lightning's advertisement for its cloud logger, printed at every start (a logger adds
    # the same filter once, however many jobs of a sweep this process runs).
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_not_an_advert)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    # With manual optimization ModelCheckpoint warns that it saves the state after the step's
    # update; that is what we want (a checkpoint at step N holds N updates).
    warnings.filterwarnings("ignore", message=r".*pre-optimization state was saved")
    # A resumed run writes into its own checkpoints/ folder again; new runs get new directories.
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    # On a machine with SLURM's client, Lightning advises `srun` for every run started
    # without it; a run here is one process, and on SLURM the launchers start it with srun.
    warnings.filterwarnings("ignore", message=r"The `srun` command is available on your system")
