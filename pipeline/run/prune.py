"""Local disk hygiene: after a successful run, keep the newest ``work.keep`` builds.

An older build loses its base image, its converted images, its local boots
(console logs) and test-boot scratch, and its build log.  Its small records
stay (``build.json``, ``manifest.json``, upload and retention records), so a
later night can still name what changed since it.  The build just published
is never pruned, whatever its age.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from typing import Any

from pipeline.run.builds import build_records
from pipeline.run.workdir import WorkDir

LOG = logging.getLogger(__name__)


def builds_to_prune(records: Sequence[dict[str, Any]], keep: int,
                    protect: set[str]) -> list[str]:
    """Build ids beyond the newest ``keep`` (records oldest first), never ``protect``."""
    ids = [r["build_id"] for r in records]
    return [b for b in ids[:max(len(ids) - max(keep, 1), 0)] if b not in protect]


def bulky_paths(layout: WorkDir, build_id: str) -> list:
    return [layout.base_image(build_id), layout.root / "images" / build_id,
            layout.local_boot_dir(build_id), layout.verify_dir(build_id),
            layout.log(f"build-{build_id}.log")]


def prune(layout: WorkDir, keep: int, protect: set[str]) -> list[str]:
    """Remove the bulky files of the builds beyond ``keep``; returns the build ids."""
    pruned = []
    for build_id in builds_to_prune(build_records(layout), keep, protect):
        removed = False
        for path in bulky_paths(layout, build_id):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
                removed = True
            elif path.exists():
                path.unlink(missing_ok=True)
                removed = True
        if removed:
            pruned.append(build_id)
    if pruned:
        LOG.info("work dir: pruned builds %s (keeping %d)", ", ".join(pruned), keep)
    return pruned
