"""Histograms and images to whichever loggers a run has (TensorBoard, W&B; CSV takes neither).

Lightning's `log_metrics` is logger-agnostic for scalars only; these two functions are the
equivalent for the statistics callback's histograms and figures.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from lightning.pytorch.loggers import Logger, TensorBoardLogger, WandbLogger


def figure_to_array(fig) -> np.ndarray:
    """Render a matplotlib figure to an (H, W, 3) uint8 array."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def log_histogram(loggers: Iterable[Logger], tag: str, values: torch.Tensor, step: int) -> None:
    values = values.detach().float().flatten().cpu()
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_histogram(tag, values, step)
        elif isinstance(logger, WandbLogger):
            import wandb

            logger.experiment.log(
                {tag: wandb.Histogram(values.numpy()), "trainer/global_step": step}
            )


def log_image(loggers: Iterable[Logger], tag: str, image: np.ndarray, step: int) -> None:
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(tag, image, step, dataformats="HWC")
        elif isinstance(logger, WandbLogger):
            import wandb

            logger.experiment.log({tag: wandb.Image(image), "trainer/global_step": step})
