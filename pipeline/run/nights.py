"""What the morning report shows beyond tonight's table: the last nights per cloud, a
timeline of this run, bytes sent per cloud and links to the logs.

All of it is read back from the work directory: earlier nights from their
``report.json`` (``WorkDir.reports``), the timeline from the task ledger
(each task's start and end, with its cloud or disk format), the logs from
their homes in ``WorkDir``.  Paths in ``links`` are relative to the report's
own directory, so the HTML page links work from a browser opened on it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pipeline.run import failures, ledger
from pipeline.run.report import what_changed
from pipeline.run.workdir import WorkDir

HISTORY_NIGHTS = 7
STAGE_OF = {"BuildBaseImage": "build", "ConvertImage": "convert", "LocalBoot": "local_boot",
            "UploadImage": "upload", "VerifyImage": "verify", "RetainImages": "retention"}


def timeline(entries: list[dict[str, Any]], clouds: dict[str, str],
             t0: float) -> dict[str, list[dict[str, Any]]]:
    """Each cloud's stages on one axis (seconds since ``t0``): the shared build, its
    format's conversion and local boot, then its own upload, verify and retention.
    ``clouds``: cloud name -> its disk format. An entry names its task (a ledger
    line) or its stage (a failure, ``failed_entries``); a failed stage is marked."""
    bars: dict[str, list[dict[str, Any]]] = {c: [] for c in clouds}
    for e in entries:
        stage = e.get("stage") or STAGE_OF.get(e.get("task", ""))
        if stage is None or e.get("started") is None:
            continue
        for cloud, fmt in clouds.items():
            if e.get("cloud") not in (None, cloud):
                continue
            if e.get("cloud") is None and e.get("disk_format") not in (None, fmt):
                continue
            bars[cloud].append({"stage": stage, "start": round(e["started"] - t0, 1),
                                "end": round(e["time"] - t0, 1),
                                **({"failed": True} if e.get("failed") else {})})
    for segments in bars.values():
        segments.sort(key=lambda s: s["start"])
    return bars


def failed_entries(work_dir: Path, started: float) -> list[dict[str, Any]]:
    """This run's failed tasks as timeline entries (a failure is not in the ledger)."""
    return [{"stage": f.stage, "started": f.started, "time": f.time, "cloud": f.cloud,
             "disk_format": f.disk_format, "failed": True}
            for f in failures.since(WorkDir(work_dir), started)]


def history(layout: WorkDir, tonight: dict[str, Any],
            nights: int = HISTORY_NIGHTS) -> dict[str, list[dict[str, Any]]]:
    """Per cloud, the last ``nights`` runs (tonight first): status, build, what changed."""
    reports = {tonight["run"]: tonight}
    for path in layout.reports.glob("*/report.json"):
        if path.parent.name == "latest" or path.parent.name in reports:
            continue
        try:
            reports[path.parent.name] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    rows: dict[str, list[dict[str, Any]]] = {}
    for run in sorted(reports, reverse=True)[:nights]:
        report = reports[run]
        for c in report.get("clouds", []):
            rows.setdefault(c["cloud"], []).append({
                "run": run, "status": c.get("status"), "build_id": report.get("build_id"),
                "bytes": c.get("bytes"), "what": what_changed(c) or (
                    "first publication" if c.get("status") == "done" else "")})
    return rows


def links(layout: WorkDir, build_id: str, report_dir: Path) -> dict[str, str]:
    """The build log and every console log of this build, relative to ``report_dir``."""
    found = {"build log": layout.log(f"build-{build_id}.log")}
    for console in sorted(layout.local_boot_dir(build_id).glob("logs/*console*.log")):
        found[f"local boot console ({console.name.split('-')[-2]})"] = console
    for console in sorted(layout.verify_dir(build_id).rglob("*console*")):
        found[f"test boot console ({console.stem})"] = console
    return {name: os.path.relpath(path, report_dir) for name, path in found.items()
            if path.is_file()}


def sections(work_dir: Path, report: dict[str, Any], started: float,
             clouds: dict[str, str]) -> dict[str, Any]:
    """The report's extra keys: ``timeline``, ``history``, ``links``, ``bytes_sent``."""
    layout = WorkDir(work_dir)
    report_dir = layout.report_dir(report["run"])
    return {
        "timeline": timeline(ledger.entries(work_dir, since=started)
                             + failed_entries(work_dir, started), clouds, started),
        "history": history(layout, report),
        "links": links(layout, report["build_id"], report_dir),
        "bytes_sent": {c["cloud"]: c.get("bytes") or 0 for c in report["clouds"]},
    }
