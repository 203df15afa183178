"""Histograms and images to whichever loggers a run has (TensorBoard, W&B; CSV takes neither).

Lightning's `log_metrics` is logger-agnostic for scalars only; these two functions are the
equivalent for the dynamics callback's histograms and figures.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import NamedTuple

import torch
from lightning.pytorch.loggers import Logger, TensorBoardLogger, WandbLogger


def log_histogram(
    loggers: Iterable[Logger], tag: str, values: torch.Tensor, step: int, bins: int = 64
) -> None:
    """One histogram of `values`, binned once with torch (TensorBoard's numpy path is slower)."""
    loggers = [lg for lg in loggers if isinstance(lg, TensorBoardLogger | WandbLogger)]
    if not loggers:
        return
    v = values.detach().float().flatten().cpu()
    v = v[torch.isfinite(v)]  # a diverging run has NaN/inf: bin what is finite, if anything
    if v.numel() == 0:
        return
    lo, hi = v.min().item(), v.max().item()
    if not hi > lo:  # a constant tensor: one narrow bucket around its value
        lo, hi = lo - 0.5e-6, hi + 0.5e-6
    counts = torch.histc(v, bins=bins, min=lo, max=hi)
    edges = torch.linspace(lo, hi, bins + 1)
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_histogram_raw(
                tag,
                min=lo,
                max=hi,
                num=v.numel(),
                sum=v.sum().item(),
                sum_squares=v.square().sum().item(),
                bucket_limits=edges[1:].tolist(),
                bucket_counts=counts.tolist(),
                global_step=step,
            )
        else:
            import wandb

            histogram = wandb.Histogram(np_histogram=(counts.numpy(), edges.numpy()))
            logger.experiment.log({tag: histogram, "trainer/global_step": step})


class Png(NamedTuple):
    """An encoded RGB PNG and its size: what a figure's worker hands the loggers."""

    data: bytes
    height: int
    width: int


def log_image(loggers: Iterable[Logger], tag: str, png: Png, step: int) -> None:
    """The PNG as it is, into TensorBoard's event file (`add_image` takes pixels and encodes
    them again: up to 50 ms a figure, in the training process); W&B gets its pixels."""
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            from tensorboard.compat.proto.summary_pb2 import Summary

            image = Summary.Image(
                height=png.height, width=png.width, colorspace=3, encoded_image_string=png.data
            )
            summary = Summary(value=[Summary.Value(tag=tag, image=image)])
            # what `SummaryWriter.add_image` does with the Summary it builds
            logger.experiment._get_file_writer().add_summary(summary, step)
        elif isinstance(logger, WandbLogger):
            import wandb
            from PIL import Image

            image = wandb.Image(Image.open(io.BytesIO(png.data)))
            logger.experiment.log({tag: image, "trainer/global_step": step})


def log_text(loggers: Iterable[Logger], tag: str, text: str, step: int) -> None:
    """A block of text (the diagnosis): TensorBoard's Text tab, a W&B HTML panel."""
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_text(tag, text, step)
        elif isinstance(logger, WandbLogger):
            import wandb

            html = "<br>".join(text.split("\n\n"))
            logger.experiment.log({tag: wandb.Html(html), "trainer/global_step": step})
