"""What one optimizer step costs in Lightning's manual optimization, beyond the math.

    python scripts/step_overhead.py            # 10,000 steps per variant, 3 repeats

A model with one 3-element parameter makes the step's arithmetic negligible, so what is timed
is the per-step machinery: Lightning's `manual_backward` + `LightningOptimizer.step` (which
dispatch the backward and optimizer hooks to every callback and count `global_step`) against
plain `loss.backward()` + `optimizer.step()` in the same training_step, with no callbacks and
with the project's four default ones. CPU time per step, medians over repeats.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Iterator

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelSummary, TQDMProgressBar

CHUNK = 100


class Tiny(L.LightningModule):
    def __init__(self, lightning_step: bool) -> None:
        super().__init__()
        self.p = torch.nn.Parameter(torch.ones(3))
        self.automatic_optimization, self.lightning_step, self.seconds = False, lightning_step, 0.0

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        opt = self.optimizers()
        started = time.process_time()
        for _ in range(CHUNK):
            loss = (self.p * 2).sum()
            if self.lightning_step:
                opt.zero_grad()
                self.manual_backward(loss)
                opt.step()
            else:
                opt.optimizer.zero_grad()
                loss.backward()
                opt.optimizer.step()
        self.seconds += time.process_time() - started

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self) -> Iterator[torch.Tensor]:
        return iter(lambda: torch.zeros(1), None)  # endless


def micros_per_step(lightning_step: bool, callbacks: bool, steps: int) -> float:
    module = Tiny(lightning_step)
    extra = [TQDMProgressBar(), ModelSummary(), L.pytorch.callbacks.ModelCheckpoint()]
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=steps // CHUNK,  # batches, whether or not Lightning counts steps
        logger=False,
        default_root_dir=tempfile.mkdtemp(),  # ModelCheckpoint writes here
        callbacks=extra if callbacks else [],
        enable_checkpointing=callbacks,
        enable_progress_bar=callbacks,
        enable_model_summary=callbacks,
    )
    trainer.fit(module)
    return 1e6 * module.seconds / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    variants = {
        "plain backward + step, no callbacks": (False, False),
        "Lightning's, no callbacks": (True, False),
        "plain backward + step, 3 callbacks": (False, True),
        "Lightning's, 3 callbacks": (True, True),
    }
    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, (lightning_step, callbacks) in variants.items():
            results[name].append(micros_per_step(lightning_step, callbacks, args.steps))
    print(f"\n{'variant':<38} {'µs per optimizer step':>22}")
    for name, values in results.items():
        print(f"{name:<38} {statistics.median(values):>22.0f}")


if __name__ == "__main__":
    main()
