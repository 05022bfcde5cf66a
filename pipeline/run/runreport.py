"""Gather a run's stage records from the work directory into the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.run import failures
from pipeline.run.report import CloudRow, cloud_row
from pipeline.run.workdir import WorkDir
from pipeline.settings.clouds import Cloud


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def collect_rows(work_dir: Path, build_id: str, clouds: list[Cloud],
                 since: float) -> list[CloudRow]:
    """One row per cloud from the records the tasks wrote and this run's failures."""
    layout = WorkDir(work_dir)
    failed = failures.since(layout, since)
    rows = []
    for cloud in clouds:
        fmt = cloud.disk_format
        # The cloud's own failure first, then one it shares (its format's, the build's).
        mine = sorted((f for f in failed if f.concerns(cloud.name, fmt)),
                      key=lambda f: f.cloud is None)
        failure = mine[0] if mine else None
        converted = layout.converted(build_id, fmt)
        rows.append(cloud_row(
            cloud.name, cloud.profile.name, fmt,
            build={} if layout.base_image(build_id).is_file() else None,
            convert=_read(layout.convert_record(build_id, fmt)) if converted.is_file() else None,
            local_boot=_read(layout.local_boot_record(build_id, fmt)),
            upload=_read(layout.upload_record(build_id, cloud.name)),
            verify=_read(layout.verify_record(build_id, cloud.name)),
            error=failure.error if failure else None,
            failed_stage=failure.stage if failure else None,
            retention=_read(layout.retention_record(build_id, cloud.name))))
    return rows
