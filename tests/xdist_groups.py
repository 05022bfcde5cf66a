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

Order: pytest-xdist hands out scopes by test count, which puts the modules that
run a few long tests (a whole pipeline, a kill-and-resume lane) last, and one
worker then finishes them alone. ``ordered`` hands out the longest first
(longest-processing-time scheduling) by the seconds in ``SECONDS``, measured in a
fresh-clone run; a scope not listed is cheap and follows by test count.
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


# scope -> seconds it took in the fresh-clone run of 2026-11-30 (junit times summed per
# scope, both workers busy); only what is worth ordering. Refresh from a
# ``--junitxml`` run when a scope grows. base-image: 1118 s then, less one real boot.
SECONDS = {
    "base-image": 900,
    "tests/resilience/test_kill_resume.py": 413,
    "upstream": 330,
    "tests/resilience/test_cloud_faults.py": 251,
    "tests/integration/test_scheduler.py": 215,
    "tests/integration/test_publish.py": 210,
    "tests/integration/test_nightly.py": 201,
    "tests/integration/test_accel_hosts.py": 174,
    "tests/resilience/test_load.py": 169,
    "tests/localcloud/test_stock_clients_compute.py": 102,
    "tests/localcloud/test_boot.py": 90,
    "tests/resilience/test_secrets.py": 80,
    "tests/resilience/test_bad_input.py": 69,
    "tests/integration/test_regions.py": 62,
    "tests/integration/test_compute_behaviours.py": 43,
    "tests/integration/test_verify_volume.py": 32,
}


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


def ordered(nodeids: list[str]) -> list[str]:
    """The test ids, their scopes longest first (``SECONDS``), then by test count;
    ties keep collection order, and so does each scope's own tests."""
    counts: dict[str, int] = defaultdict(int)
    first: dict[str, int] = {}
    for index, nodeid in enumerate(nodeids):
        scope = group_of(nodeid)
        counts[scope] += 1
        first.setdefault(scope, index)

    def rank(nodeid: str) -> tuple[int, int, int]:
        scope = group_of(nodeid)
        return -SECONDS.get(scope, 0), -counts[scope], first[scope]

    return sorted(nodeids, key=rank)


def make_scheduler(config, log):
    """``--dist loadscope`` with the groups and the order above (pytest-xdist's
    scheduler hook)."""
    from xdist.scheduler import LoadScopeScheduling

    class ByGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

        def schedule(self) -> None:
            # xdist builds its queue and hands out the first scopes in one call;
            # build the queue here in our order first (the workers keep their own
            # collection order: work is sent to them as indexes into it), and
            # leave every other case (differing collections, fewer scopes than
            # workers) to xdist.
            collections = list(self.registered_collections.values())
            if (self.collection is None and collections
                    and all(c == collections[0] for c in collections)
                    and len({group_of(n) for n in collections[0]}) >= len(self.nodes)):
                self.collection = list(collections[0])
                for nodeid in ordered(self.collection):
                    self.workqueue.setdefault(group_of(nodeid), {})[nodeid] = False
                for node in self.nodes:
                    self._assign_work_unit(node)
            super().schedule()

    return ByGroup(config, log)
