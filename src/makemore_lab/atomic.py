"""Atomic file writes: write beside the target, then rename, so a reader (or a run killed
half-way) never sees half a file: it sees the old file or the new one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_bytes(path: str | Path, data: bytes) -> None:
    """Replace `path` with `data` in one step (`os.replace` is atomic within a filesystem)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_text(path: str | Path, text: str) -> None:
    """`write_bytes` of `text` in UTF-8."""
    write_bytes(path, text.encode())


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    """`data` as indented JSON, written atomically (metrics.json and friends)."""
    write_text(path, json.dumps(data, indent=2) + "\n")
