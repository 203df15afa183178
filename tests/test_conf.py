"""conf/ explains itself: every option carries a one-line comment in its YAML file."""

from __future__ import annotations

import re

import pytest

from conftest import ROOT

KEY = re.compile(r"^\s*(- )?[\w./@-]+:(\s|$)")
FILES = sorted((ROOT / "conf").rglob("*.yaml"))


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_every_option_has_a_comment_on_its_line_or_the_line_above(path) -> None:
    lines = path.read_text().splitlines()
    silent, in_defaults = [], False
    for i, line in enumerate(lines):
        if line.startswith("defaults:"):  # the defaults list names groups, not options
            in_defaults = True
            continue
        if in_defaults and line.startswith((" ", "-")):
            continue
        in_defaults = False
        above = lines[i - 1].strip() if i else ""
        if KEY.match(line) and "#" not in line and not above.startswith("#"):
            silent.append(f"line {i + 1}: {line.strip()}")
    assert silent == [], f"options without a comment in {path.name}: {silent}"
