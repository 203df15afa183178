"""The lecture's statistics of a network's insides: the callback, the numbers, the report,
the figures and the diagnosis in words.

`makemore_lab.dynamics.TrainingDynamics` is the public name conf/callbacks/default.yaml builds.
"""

from makemore_lab.dynamics.callback import TrainingDynamics

__all__ = ["TrainingDynamics"]
