"""Metrics for monitoring, in node_exporter's textfile format, written after every run.

``<work>/metrics/imagefleet.prom`` (point node_exporter's
``--collector.textfile.directory`` at ``<work>/metrics``) holds, per cloud,
the time of its last successful publication, this run's stage durations and
bytes sent, and the run's own outcome.  The last success of a cloud that
failed tonight is carried over from ``state.json`` beside it, so an alert on
its age fires only when nights keep failing.  Written atomically: the
collector never reads half a file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.core import atomicfile
from pipeline.run.report import DONE, PAUSED

FILE, STATE = "imagefleet.prom", "state.json"


def _labels(**labels: str) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def number(value: float) -> str:
    """A sample value: whole seconds and bytes stay exact, times keep milliseconds."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def render(report: dict[str, Any], last_success: dict[str, float]) -> str:
    """The exposition text for ``report`` and each cloud's last success time."""
    out = []

    def metric(name: str, kind: str, text: str, samples: list[tuple[str, float]]) -> None:
        out.append(f"# HELP {name} {text}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(f"{name}{labels} {number(value)}" for labels, value in samples)

    clouds = report["clouds"]
    metric("imagefleet_last_success_timestamp_seconds", "gauge",
           "When the cloud last got a verified image (Unix time).",
           [(_labels(cloud=c), t) for c, t in sorted(last_success.items())])
    durations = []
    for cloud, segments in sorted((report.get("timeline") or {}).items()):
        for s in segments:
            durations.append((_labels(cloud=cloud, stage=s["stage"]), s["end"] - s["start"]))
    metric("imagefleet_stage_duration_seconds", "gauge",
           "How long each stage of this run took, per cloud (shared stages repeat).",
           durations)
    metric("imagefleet_upload_bytes", "gauge", "Bytes sent to the cloud by this run.",
           [(_labels(cloud=c["cloud"]), c.get("bytes") or 0) for c in clouds])
    metric("imagefleet_cloud_up", "gauge",
           "1 if this run left the cloud with a verified image, 0 if it failed, "
           "-1 if paused.",
           [(_labels(cloud=c["cloud"]),
             1 if c["status"] == DONE else -1 if c["status"] == PAUSED else 0)
            for c in clouds])
    metric("imagefleet_run_success", "gauge", "1 if the whole run succeeded.",
           [("", 1 if report["ok"] else 0)])
    metric("imagefleet_run_finished_timestamp_seconds", "gauge", "When the run ended.",
           [("", report["finished"])])
    return "\n".join(out) + "\n"


def write(directory: Path, report: dict[str, Any]) -> Path:
    """Update the last-success state with ``report`` and write the textfile."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        last = json.loads((directory / STATE).read_text())
    except (OSError, ValueError):
        last = {}
    for c in report["clouds"]:
        if c["status"] == DONE:
            last[c["cloud"]] = report["finished"]
    atomicfile.write_text(directory / STATE, json.dumps(last, indent=2, sort_keys=True))
    path = directory / FILE
    atomicfile.write_text(path, render(report, last))
    return path
