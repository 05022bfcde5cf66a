"""The resilience suite's summary: scenarios tried, passed, resources leaked (must be 0).

Each test records what it left behind with the ``leaks`` fixture::

    def test_x(leaks, cloud):
        ...
        leaks.count(cloud, "hp-like")       # adds the local cloud's leftovers

The table is printed at the end of every run that ran a scenario (tests/summaries.py).
"""

from __future__ import annotations

import pytest

from tests.summaries import LEAKS

KEEP = {"images"}        # published images are the product, not a leak


class Leaks:
    def __init__(self) -> None:
        self.total = 0
        self.details: list[str] = []

    def count(self, lc, cloud: str, allowed: set[str] = frozenset(KEEP)) -> int:
        """Count ``cloud``'s leftovers other than ``allowed`` kinds; returns the count."""
        left = {kind: items for kind, items in lc.leftovers(cloud).items()
                if kind not in allowed}
        found = sum(len(items) for items in left.values())
        if found:
            self.details.append(f"{cloud}: {sorted(left)}")
        self.total += found
        return found

    def add(self, what: str, n: int) -> int:
        if n:
            self.details.append(f"{what}: {n}")
        self.total += n
        return n


@pytest.fixture
def leaks(request):
    found = Leaks()
    request.node.user_properties.append((LEAKS, found))
    return found


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """The report carries the leak count, not the Leaks object (reports cross processes
    under pytest-xdist)."""
    outcome = yield
    report = outcome.get_result()
    report.user_properties = [(k, v.total if isinstance(v, Leaks) else v)
                              for k, v in report.user_properties]
    if LEAKS not in dict(report.user_properties):     # a scenario that counts nothing
        report.user_properties.append((LEAKS, 0))
