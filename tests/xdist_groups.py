"""How the suite is shared between pytest-xdist workers (``make test``: ``-n 2``).

A module runs whole on one worker, so its module-scoped fixtures (a local
cloud, a lane of pipeline runs) are set up once. Modules that use a resource
that must exist once per machine share a group, and so a worker: the one
diskimage-builder build (``base_image``) and the upstream services
(``upstream/run.py`` starts them once; the session that started them stops
them). Everything else is spread by module.

The scheduler sees only test ids, so the groups are listed here by path; the
collection check below fails the run when a module uses a shared fixture and
is not listed, so the table cannot fall behind the tests.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

# path prefix -> group
GROUPS = {
    "tests/conformance/": "upstream",
    "tests/e2e/": "base-image",
    "tests/integration/test_verify.py": "base-image",
}
# fixture -> the group every module using it must be in
SHARED = {"base_image": "base-image", "upstream_cloud": "upstream",
          "upstream_compute": "upstream"}


def group_of(nodeid: str) -> str:
    """The scheduling group of a test id: its listed group, else its module."""
    module = nodeid.split("::", 1)[0]
    for prefix, group in GROUPS.items():
        if module.startswith(prefix):
            return group
    return module


def check(items: list[pytest.Item]) -> None:
    """Refuse a module that uses a shared fixture outside that fixture's group."""
    used: dict[str, set[str]] = defaultdict(set)
    for item in items:
        used[item.nodeid.split("::", 1)[0]].update(getattr(item, "fixturenames", ()))
    for module, fixtures in sorted(used.items()):
        for fixture, group in SHARED.items():
            if fixture in fixtures and group_of(module) != group:
                raise pytest.UsageError(
                    f"{module} uses {fixture}: list it under {group!r} in tests/xdist_groups.py")


def make_scheduler(config, log):
    """``--dist loadscope`` with the groups above (pytest-xdist's scheduler hook)."""
    from xdist.scheduler import LoadScopeScheduling

    class ByGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

    return ByGroup(config, log)
