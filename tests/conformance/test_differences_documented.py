"""The known-differences table in docs/upstream.md is the one the suite applies."""

from __future__ import annotations

import re

import pytest

from tests.conformance.differences import DIFFERENCES
from tests.conftest import REPO


def documented(path: str) -> dict[str, str]:
    text = (REPO / path).read_text()
    table = text.split("## Known differences", 1)[1]
    return {m.group(1): m.group(2).strip()
            for m in re.finditer(r"^\| `(test_\w+)` \| (.+) \|$", table, re.MULTILINE)}


@pytest.mark.parametrize("path", ["docs/upstream.md", "README.md"])
def test_every_difference_is_documented_with_its_reason(path):
    assert documented(path) == DIFFERENCES


def test_every_difference_names_a_check():
    names = set()
    for path in (REPO / "tests" / "conformance").rglob("test_*.py"):
        names |= set(re.findall(r"^def (test_\w+)\(", path.read_text(), re.MULTILINE))
    assert set(DIFFERENCES) <= names
