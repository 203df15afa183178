"""The exceptions for mistakes a user can fix (config values, files, checkpoints) and for stops.

The entry points catch it and print its message as one paragraph, without a traceback:
the message itself must name the offending value and say how to fix it.
"""

import signal


class UserError(Exception):
    """A bad input the user can fix; its message names the value and the fix."""


class TrainingDiverged(UserError):
    """The minibatch loss became NaN or infinite: training stops at the end of that chunk."""

    def __init__(
        self,
        step: int,
        loss: float,
        last_finite: float | None,
        hint: str,
        cause: str = "The updates grew too large for this network;",
    ) -> None:
        self.step, self.loss, self.last_finite = step, loss, last_finite
        before = (
            f"the last finite one was {last_finite:.4f}, at step {step - 1}"
            if last_finite is not None
            else "no finite loss before it"
        )
        super().__init__(
            f"training diverged at step {step}: the minibatch loss was {loss} ({before}). "
            f"{cause} {hint} The run stopped there and "
            f"its metrics.json says status: diverged."
        )


class RunInterrupted(UserError):
    """SIGTERM or Ctrl-C stopped training; a checkpoint was saved to resume from."""

    def __init__(self, signum: int, step: int, checkpoint: str, resume: str) -> None:
        self.exit_code = 128 + signum  # the shell's convention: 130 for Ctrl-C, 143 for SIGTERM
        super().__init__(
            f"{signal.Signals(signum).name} stopped training at step {step}; its state "
            f"(weights, optimizer, schedule, BatchNorm statistics, batch sampler) is saved in "
            f"{checkpoint}. Continue exactly where it stopped with: {resume}"
        )


class StoppedAfterTraining(RunInterrupted):
    """SIGTERM or Ctrl-C arrived once training had ended: the records were written first."""

    def __init__(self, signum: int, resume: str) -> None:
        self.exit_code = 128 + signum
        UserError.__init__(
            self,
            f"{signal.Signals(signum).name} arrived after training had ended: every job's "
            f"record (metrics.json) was written first, and the run stops here. A sweep "
            f"continues with: {resume}",
        )
