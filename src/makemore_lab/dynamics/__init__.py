"""The lecture's statistics of a network's insides: the callback, the numbers, the report,
the figures and the diagnosis in words.

`makemore_lab.dynamics.TrainingDynamics` is the public name conf/callbacks/default.yaml builds.
It is imported when first asked for: the callback needs Lightning (seconds to import), the
figures and the diagnosis that `makemore-table` reads do not.
"""

from typing import Any

__all__ = ["TrainingDynamics"]


def __getattr__(name: str) -> Any:
    if name == "TrainingDynamics":
        from makemore_lab.dynamics.callback import TrainingDynamics

        return TrainingDynamics
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
