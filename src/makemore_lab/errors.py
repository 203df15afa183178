"""The exception for mistakes a user can fix (config values, files, checkpoints), and its checks.

The entry points catch it and print its message as one paragraph, without a traceback:
the message itself must name the offending value and say how to fix it.
"""

from collections.abc import Iterable
from typing import Any


class UserError(Exception):
    """A bad input the user can fix; its message names the value and the fix."""


def positive_int(key: str, value: Any) -> int:
    """Return `value` if it is a positive integer, else a UserError naming the config key."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UserError(f"{key}={value!r} must be a positive integer, e.g. {key}=10.")
    return value


def one_of(key: str, value: Any, choices: Iterable[str]) -> str:
    """Return `value` if it is one of `choices`, else a UserError naming the key and choices."""
    choices = tuple(choices)
    if value not in choices:
        raise UserError(f"{key}={value!r} is not supported. Choose one of: {', '.join(choices)}.")
    return value
