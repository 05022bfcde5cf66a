"""The end-of-run tables: which conformance checks pass on each target, and the
resilience scenarios with what they leaked.

These hooks run where the test reports arrive: the one process of a serial
run, or the controller under pytest-xdist, which collects nothing and so
never imports a sub-directory's conftest. ``tests/conftest.py`` (loaded by
every process) calls them. The items carry what the tables need in their
``user_properties`` (reports cross processes); fixtures' notes go through
pytest's cache (``note``).
"""

from __future__ import annotations

from typing import Any

TARGETS = ("upstream", "localcloud")          # the conformance targets, in column order
CHECK = "conformance-check"                   # user property: [check, target]
NOTES = "imagefleet/conformance-notes"        # cache key: lines for the summary
LEAKS = "leaks"                               # user property: resources a scenario left

_outcomes: dict[tuple[str, str], str] = {}
_scenarios: list[tuple[str, str, int]] = []


def note(config, line: str) -> None:
    """A line for the summary, from whichever process runs the fixture."""
    cache = getattr(config, "cache", None)        # None with -p no:cacheprovider
    if cache is not None:
        cache.set(NOTES, [*cache.get(NOTES, []), line])


def sessionstart(session) -> None:
    cache = getattr(session.config, "cache", None)
    if cache is not None and not hasattr(session.config, "workerinput"):
        cache.set(NOTES, [])


def logreport(report) -> None:
    props: dict[str, Any] = dict(report.user_properties)
    found = props.get(CHECK)
    if found is not None:
        key = (found[0], found[1])
        if report.when == "call" or (report.when == "setup" and not report.passed):
            if hasattr(report, "wasxfail"):
                _outcomes[key] = "xpass" if report.passed else "xfail"
            else:
                _outcomes[key] = report.outcome
        elif report.when == "teardown" and report.failed:
            _outcomes[key] = "failed"
    leaked = props.get(LEAKS)
    if leaked is not None and (report.when == "call" or
                               (report.when == "setup" and report.outcome != "passed")):
        result = "xfailed" if hasattr(report, "wasxfail") else report.outcome
        _scenarios.append((report.nodeid.split("::", 1)[-1], result, leaked))


def terminal_summary(tr) -> None:
    if _outcomes:
        _conformance(tr)
    if _scenarios:
        _resilience(tr)


def _conformance(tr) -> None:
    checks = sorted({c for c, _ in _outcomes})
    width = max(len(c) for c in checks)
    tr.section("conformance: which checks pass on each target")
    tr.write_line(f"{'check':<{width}}  " + "  ".join(f"{t:<11}" for t in TARGETS))
    for check in checks:
        cells = [_outcomes.get((check, t), "-") for t in TARGETS]
        tr.write_line(f"{check:<{width}}  " + "  ".join(f"{c:<11}" for c in cells))
    for t in TARGETS:
        passed = sum(1 for (_, tt), o in _outcomes.items() if tt == t and o == "passed")
        ran = sum(1 for (_, tt) in _outcomes if tt == t)
        tr.write_line(f"{t}: {passed} of {ran} checks pass")
    tr.write_line("xfail: a known difference, see docs/upstream.md")
    cache = getattr(tr.config, "cache", None)
    for line in (cache.get(NOTES, []) if cache is not None else []):
        tr.write_line(line)


def _resilience(tr) -> None:
    write = tr.write_line
    tr.section("resilience scenarios")
    width = max(len(name) for name, _, _ in _scenarios)
    write(f"{'scenario':<{width}}  {'result':<7}  leaked")
    for name, outcome, leaked in _scenarios:
        write(f"{name:<{width}}  {outcome:<7}  {leaked}")
    passed = sum(outcome == "passed" for _, outcome, _ in _scenarios)
    leaked = sum(n for _, _, n in _scenarios)
    write(f"tried {len(_scenarios)}, passed {passed}, resources leaked {leaked} (must be 0)")
