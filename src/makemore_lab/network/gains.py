"""Initialization gains: a number, a fraction such as '5/3', or a nonlinearity's name.

Part of initialization (`initialization.init_network` multiplies weights by the gain), kept in
a module of its own without torch, so that `config.checks` can check `init.gain` before torch
and Lightning are imported: a typo in an override is answered in a fraction of a second.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from makemore_lab.errors import UserError

# Gains that keep activations at unit scale through a nonlinearity (torch.nn.init.calculate_gain).
NAMED_GAINS = {"linear": 1.0, "identity": 1.0, "tanh": 5 / 3, "relu": math.sqrt(2.0)}


def parse_gain(value: Any) -> float:
    """A gain from a number, a fraction string such as '5/3', or a nonlinearity name."""
    hint = (
        f"init.gain={value!r} is not a valid gain. Use a positive number (init.gain=1.5), a "
        f"fraction (init.gain=5/3) or a nonlinearity name ({', '.join(NAMED_GAINS)})."
    )
    if isinstance(value, bool):
        raise UserError(hint)
    if isinstance(value, int | float):
        gain = float(value)
    elif isinstance(value, str) and value.strip().lower() in NAMED_GAINS:
        gain = NAMED_GAINS[value.strip().lower()]
    elif isinstance(value, str):
        try:
            gain = float(Fraction(value.strip().replace(" ", "")))
        except ZeroDivisionError:
            raise UserError(f"{hint} (It divides by zero.)") from None
        except ValueError:
            raise UserError(hint) from None
    else:
        raise UserError(hint)
    if not math.isfinite(gain) or gain <= 0:
        raise UserError(hint)
    return gain
