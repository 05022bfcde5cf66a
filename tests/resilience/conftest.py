"""The resilience suite's summary: scenarios tried, passed, resources leaked (must be 0).

Each test records what it left behind with the ``leaks`` fixture::

    def test_x(leaks, cloud):
        ...
        leaks.count(cloud, "hp-like")       # adds the local cloud's leftovers

The table is printed at the end of every run that collected this directory.
"""

from __future__ import annotations

import pytest

RESULTS: list[tuple[str, str, int]] = []
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
    request.node.user_properties.append(("leaks", found))
    return found


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """The report carries the leak count, not the Leaks object (reports cross processes
    under pytest-xdist)."""
    outcome = yield
    report = outcome.get_result()
    report.user_properties = [(k, v.total if isinstance(v, Leaks) else v)
                              for k, v in report.user_properties]
    if "leaks" not in dict(report.user_properties):     # a scenario that counts nothing
        report.user_properties.append(("leaks", 0))


def pytest_runtest_logreport(report):
    leaked = dict(report.user_properties).get("leaks")
    if leaked is None:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        result = "xfailed" if hasattr(report, "wasxfail") else report.outcome
        RESULTS.append((report.nodeid.split("::", 1)[-1], result, leaked))


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    write = terminalreporter.write_line
    terminalreporter.section("resilience scenarios")
    width = max(len(name) for name, _, _ in RESULTS)
    write(f"{'scenario':<{width}}  {'result':<7}  leaked")
    for name, outcome, leaked in RESULTS:
        write(f"{name:<{width}}  {outcome:<7}  {leaked}")
    passed = sum(outcome == "passed" for _, outcome, _ in RESULTS)
    leaked = sum(n for _, _, n in RESULTS)
    write(f"tried {len(RESULTS)}, passed {passed}, resources leaked {leaked} (must be 0)")
