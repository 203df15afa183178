"""A job's config without its seed: the name the seeds of one config share.

Seeds are a sweep's repeats, not a setting: the table (`makemore-table`), TensorBoard's HParams
view and W&B's groups all gather a config's seeds under this one name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


def without_seed(override_dirname: str) -> str:
    """Hydra's `key=value,...` name of a job's varying overrides, without `seed=...`: the
    name of its config, shared by the seeds of that config."""
    return re.sub(r"(^|,)seed=[^,]*", "", override_dirname).strip(",")


def config_label(overrides: Iterable[str]) -> str:
    """A job's overrides but its seed, as the tables write a config: 'init.gain=1, ...'."""
    return ", ".join(o for o in overrides if not o.lstrip("+~").startswith("seed="))
