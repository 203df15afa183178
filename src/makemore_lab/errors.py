"""The one exception type for mistakes a user can fix (config values, files, checkpoints).

The entry points catch it and print its message as one paragraph, without a traceback:
the message itself must name the offending value and say how to fix it.
"""


class UserError(Exception):
    """A bad input the user can fix; its message names the value and the fix."""
