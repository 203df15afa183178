"""One vocabulary for checking values: a check returns None for a good value, else its allowed form.

`require(key, value, check)` raises the one-paragraph UserError that names the key, the value
and the form. Our classes check their own arguments with it when they are built; the config
checks (`config_checks.py`) use the same checks for values that go to torch, Lightning or Hydra.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from makemore_lab.errors import UserError

Check = Callable[[Any], str | None]


def is_int(value: Any) -> bool:
    """An int that is not a bool (YAML's `true` must not pass as 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def integer(low: int | None = None, high: int | None = None) -> Check:
    names = {None: "an integer", 0: "a non-negative integer", 1: "a positive integer"}
    form = names.get(low, f"an integer >= {low}")
    if high is not None:
        form = f"an integer from {low} to {high}"

    def check(v: Any) -> str | None:
        ok = is_int(v) and (low is None or v >= low) and (high is None or v <= high)
        return None if ok else form

    return check


def number(low: float = -math.inf, high: float = math.inf, open_low: bool = False) -> Check:
    """A finite number in [low, high] ((low, high] with `open_low`)."""
    bracket = "(" if open_low else "["
    form = {
        (0, math.inf, True): "a positive number",
        (-math.inf, math.inf, False): "a finite number",
    }.get((low, high, open_low), f"a number in {bracket}{low}, {high}]")

    def check(v: Any) -> str | None:
        ok = (is_int(v) or isinstance(v, float)) and math.isfinite(v)
        ok = ok and (v > low if open_low else v >= low) and v <= high
        return None if ok else form

    return check


def boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def one_of(choices: Iterable[str]) -> Check:
    choices = tuple(choices)
    form = " or ".join([", ".join(choices[:-1]), choices[-1]] if len(choices) > 1 else choices)
    return lambda v: None if v in choices else form


def optional(check: Check) -> Check:
    return lambda v: None if v is None else check(v) and f"null or {check(v)}"


POSITIVE_INT, POSITIVE = integer(1), number(0, math.inf, open_low=True)


def invalid(key: str, value: Any, form: str) -> UserError:
    """The one-paragraph error for `key=value` that is not of the allowed `form`."""
    if form.startswith(f"{key}="):  # a check that words its own message (init.gain)
        return UserError(form)
    shows = "--cfg hydra" if key.startswith("hydra.") else "--cfg job"
    return UserError(
        f"{key}={value!r} is not valid: it must be {form}. Fix the override (or the YAML in "
        f"conf/ that sets it); `python train.py {shows}` prints every value in use."
    )


def require(key: str, value: Any, check: Check) -> Any:
    """Return `value` if `check` accepts it, else raise the UserError naming `key`."""
    form = check(value)
    if form:
        raise invalid(key, value, form)
    return value


def require_all(group: str, check: Check, **values: Any) -> None:
    """`require` each `group.<name>=value` (e.g. a class's sizes, all positive integers)."""
    for name, value in values.items():
        require(f"{group}.{name}", value, check)
