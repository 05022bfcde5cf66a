"""Gather a run's stage records from the work directory into the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.run.report import CloudRow, cloud_row
from pipeline.settings.clouds import Cloud


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _failures(work_dir: Path, since: float) -> list[dict[str, Any]]:
    records = []
    for path in sorted((work_dir / "failures").glob("*.json")):
        record = _read(path)
        if record and record.get("time", 0) >= since:
            records.append(record)
    return records


FAILED_STAGE = {"BuildBaseImage": "build", "ConvertImage": "convert", "LocalBoot": "local_boot",
                "UploadImage": "upload", "VerifyImage": "verify"}


def collect_rows(work_dir: Path, build_id: str, clouds: list[Cloud],
                 since: float) -> list[CloudRow]:
    """One row per cloud from the records the tasks wrote and this run's failures."""
    failures = _failures(work_dir, since)
    rows = []
    for cloud in clouds:
        fmt = cloud.disk_format
        mine = [f for f in failures if f.get("where") == cloud.name]
        shared = [f for f in failures if f.get("task") in ("BuildBaseImage", "ConvertImage",
                                                              "LocalBoot") and fmt in f["task_id"]
                  or f.get("task") == "BuildBaseImage"]
        failure = (mine or shared or [None])[0]
        base = work_dir / "builds" / build_id / "base.raw"
        converted = work_dir / "images" / build_id / f"image.{fmt}"
        rows.append(cloud_row(
            cloud.name, cloud.profile.name, fmt,
            build={} if base.is_file() else None,
            convert=_read(Path(f"{converted}.json")) if converted.is_file() else None,
            local_boot=_read(work_dir / "localboot" / build_id / f"{fmt}.json"),
            upload=_read(work_dir / "uploads" / build_id / f"{cloud.name}.json"),
            verify=_read(work_dir / "verify" / build_id / f"{cloud.name}.json"),
            error=failure["error"] if failure else None,
            failed_stage=FAILED_STAGE.get(failure["task"]) if failure else None))
    return rows
