"""Which build a run publishes: the last one of these inputs, or a new one once it is
older than ``rebuild_age`` (or ``--rebuild``).

The clock is the run's: ``--now`` or ``$IMAGEFLEET_NOW`` (ISO 8601, for tests and
replays), else the system's UTC time.  The builds are found by their records
(``WorkDir.build_record``), which carry the inputs' digest and the build time.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any

from pipeline.core import atomicfile
from pipeline.core.errors import ConfigError
from pipeline.image.buildid import build_id
from pipeline.run.workdir import WorkDir

NOW_ENV = "IMAGEFLEET_NOW"


def parse_time(text: str) -> datetime.datetime:
    """An ISO 8601 time (``Z`` or an offset; none means UTC) as an aware UTC datetime."""
    try:
        value = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as e:
        raise ConfigError(f"not an ISO 8601 time: {text!r}", key="--now") from e
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value.astimezone(datetime.UTC)


def now(text: str | None = None) -> datetime.datetime:
    """The run's clock: ``text``, else ``$IMAGEFLEET_NOW``, else the system clock."""
    text = text or os.environ.get(NOW_ENV)
    if text:
        return parse_time(text)
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def stamp(when: datetime.datetime) -> str:
    """How a build time is written in records and enters the build id."""
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rebuild_due(last_built_at: str | None, when: datetime.datetime, age_hours: float,
                force: bool = False) -> bool:
    """A new build is due when forced, when there is none, or when the last is too old."""
    if force or not last_built_at:
        return True
    return when - parse_time(last_built_at) >= datetime.timedelta(hours=age_hours)


def build_records(layout: WorkDir, name: str = "build.json") -> list[dict[str, Any]]:
    """Every finished build's record (``planned.json``: every claimed build's), oldest
    first.  ``made`` is the build time, or for a build named by its digest alone
    (``imagefleet build``) its record's time."""
    records = []
    for path in (layout.root / "builds").glob(f"*/{name}"):
        try:
            record = json.loads(path.read_text())
            mtime = path.stat().st_mtime
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and record.get("build_id") == path.parent.name:
            made = record.get("built_at") or stamp(
                datetime.datetime.fromtimestamp(mtime, datetime.UTC))
            records.append({**record, "built_at": record.get("built_at") or "", "made": made})
    return sorted(records, key=lambda r: r["made"])


def last_build(layout: WorkDir, digest: str) -> dict[str, Any] | None:
    """The newest build of these inputs a run may still publish: finished with its image
    in the work dir, or chosen by a run that did not finish it (resumed, not restarted)."""
    mine = [r for r in build_records(layout)
            if r.get("digest") == digest and Path(layout.base_image(r["build_id"])).is_file()]
    finished = {r["build_id"] for r in build_records(layout, "build.json")}
    mine += [r for r in build_records(layout, "planned.json")
             if r.get("digest") == digest and r["build_id"] not in finished]
    mine.sort(key=lambda r: r["made"])
    return mine[-1] if mine else None


def claim(layout: WorkDir, digest: str, built_at: str) -> None:
    """Record the build a run chose before it starts (see ``last_build``)."""
    bid = build_id(digest, built_at)
    path = layout.build_claim(bid)
    if built_at and not path.exists() and not layout.build_record(bid).exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomicfile.write_text(path, json.dumps(
            {"build_id": bid, "digest": digest, "built_at": built_at}) + "\n")


def choose_built_at(layout: WorkDir, digest: str, when: datetime.datetime, age_hours: float,
                    force: bool = False) -> str:
    """The build time of the build this run publishes (a new one when due)."""
    last = last_build(layout, digest)
    if rebuild_due(last["made"] if last else None, when, age_hours, force):
        return stamp(when)
    return last["built_at"]
