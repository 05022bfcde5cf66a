"""The run report: ``report.json`` for machines, ``report.html`` for people, a
terminal summary.  Built from the stage records the tasks write, so it tells
what really happened, including failures."""

from __future__ import annotations

import html
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.cloud import bootfigures
from pipeline.core import atomicfile
from pipeline.run.nights_html import STYLE, render_sections

STAGES = ("build", "convert", "local_boot", "upload", "verify")
DONE, FAILED, PENDING, PAUSED = "done", "failed", "pending", "paused"
MAX_LINES = 20          # changelog lines per cloud in the terminal summary


@dataclass
class CloudRow:
    cloud: str
    profile: str
    disk_format: str
    stages: dict[str, str] = field(default_factory=dict)
    mechanism: str | None = None
    image_id: str | None = None
    bytes: int | None = None
    upload_seconds: float | None = None
    upload_rate_mib_s: float | None = None
    skipped_upload: bool = False
    converted_by_cloud: dict | None = None   # {"from", "to", "size"}: Glance converted on import
    sent_compressed: str | None = None  # "gzip": the raw's gzip went, Glance inflated it
    verify: str | None = None
    address: str | None = None
    address_source: str | None = None
    seconds_to_active: float | None = None
    seconds_to_reachable: float | None = None
    build_id_read: str | None = None
    verify_check: str | None = None     # which check ran: build-id, ssh-banner, cloud-only
    boot_volume_gb: int | None = None   # the test boot's root was a volume of this size
    accel: str | None = None            # the local boot's accelerator, and why (or its fallback)
    accel_note: str | None = None
    boot_figures: dict | None = None    # systemd-analyze of the local boot (pipeline.cloud.bootfigures)
    error: str | None = None
    failed_stage: str | None = None     # also "retention", which has no column
    retention_skipped: list[dict] = field(default_factory=list)   # {"id", "reason", "hidden"}
    unchanged_since: str | None = None  # nothing uploaded: this build's image stands
    changed_since: str | None = None    # the build the new image replaces
    changes: list[str] | None = None    # the changelog since then, one line per package

    @property
    def status(self) -> str:
        if self.stages and all(v == PAUSED for v in self.stages.values()):
            return PAUSED
        if self.error or FAILED in self.stages.values():
            return FAILED
        return DONE if all(v == DONE for v in self.stages.values()) else PENDING


def cloud_row(cloud: str, profile: str, disk_format: str, *, build: dict | None,
              convert: dict | None, local_boot: dict | None, upload: dict | None,
              verify: dict | None, error: str | None, failed_stage: str | None,
              retention: dict | None = None) -> CloudRow:
    """One cloud's row from the stage records (``None``: the stage has no record)."""
    records = {"build": build, "convert": convert, "local_boot": local_boot,
               "upload": upload, "verify": verify}
    row = CloudRow(cloud=cloud, profile=profile, disk_format=disk_format, error=error,
                   failed_stage=failed_stage)
    for stage in STAGES:
        row.stages[stage] = DONE if records[stage] is not None else PENDING
    if failed_stage in row.stages:
        row.stages[failed_stage] = FAILED
    if local_boot:
        row.accel, row.accel_note = local_boot.get("accel"), accel_note(local_boot)
        row.boot_figures = local_boot.get("boot_figures")
    if upload:
        row.mechanism = upload.get("mechanism")
        row.image_id = upload.get("image_id")
        row.bytes = upload.get("bytes")
        row.skipped_upload = bool(upload.get("skipped"))
        row.converted_by_cloud = upload.get("converted_by_cloud")
        row.sent_compressed = upload.get("compressed")
        row.upload_seconds = upload.get("seconds")
        row.unchanged_since = upload.get("unchanged_since")
        row.changed_since = upload.get("changed_since")
        row.changes = upload.get("changes")
        if row.bytes and row.upload_seconds:
            row.upload_rate_mib_s = round(row.bytes / 2**20 / row.upload_seconds, 1)
    if verify:
        row.verify = "unchanged" if verify.get("unchanged_since") else "passed"
        row.address = verify.get("address")
        row.address_source = verify.get("address_source")
        row.seconds_to_active = verify.get("seconds_to_active")
        row.seconds_to_reachable = verify.get("seconds_to_reachable")
        row.build_id_read = verify.get("build_id")
        row.verify_check = verify.get("check")
        row.boot_volume_gb = verify.get("volume_gb")
    elif row.stages["verify"] == FAILED:
        row.verify = "failed"
    row.retention_skipped = [{k: s.get(k) for k in ("id", "reason", "hidden")}
                             for s in (retention or {}).get("skipped") or []]
    return row


def check_note(c: dict[str, Any]) -> str:
    """Which verify check ran, where the address column cannot say it ("" otherwise)."""
    parts = []
    if c.get("verify_check") == "cloud-only":
        parts.append("cloud-only: ACTIVE, not reached from here")
    if c.get("boot_volume_gb"):
        parts.append(f"booted from a {c['boot_volume_gb']} GiB volume")
    return "; ".join(parts)


def retention_note(skipped: list[dict] | None) -> str:
    """The images retention could not delete, and why ("" if none)."""
    if not skipped:
        return ""
    return "retention skipped " + ", ".join(
        f"{s['id']} ({s['reason']}{', hidden' if s.get('hidden') else ''})" for s in skipped)
def paused_row(cloud: str, profile: str, disk_format: str) -> CloudRow:
    """A cloud kept in the configuration but skipped by runs (``paused`` in pipeline.yaml)."""
    return CloudRow(cloud=cloud, profile=profile, disk_format=disk_format,
                    stages=dict.fromkeys(STAGES, PAUSED))


def accel_note(local_boot: dict) -> str | None:
    """Why the local boot ran under its accelerator; a fallback names its cause and cost."""
    fallback = local_boot.get("accel_fallback")
    if fallback:
        return (f"{fallback['from'].upper()} boot failed after {fallback['seconds_lost']:g} s "
                f"({fallback['why']}); booted again under {fallback['to'].upper()}")
    return local_boot.get("accel_why")


def compression_note(row: dict) -> str:
    """What went over the wire when it was not the image itself ("" otherwise)."""
    if not row.get("sent_compressed"):
        return ""
    return (f", sent as {row['sent_compressed']} ({row.get('bytes')} bytes), inflated by "
            f"the cloud's Glance")


def conversion_note(converted: dict | None) -> str:
    """How the cloud changed our upload, for the details column ("" if it did not)."""
    if not converted:
        return ""
    return (f", converted by the cloud from {converted['from']} to {converted['to']} "
            f"({converted['size']} bytes)")


def make_report(run_id: str, build_id: str, rows: list[CloudRow],
                started: float | None = None,
                tasks_run: dict[str, int] | None = None) -> dict[str, Any]:
    """``tasks_run``: the tasks this run executed, by family (the rest were complete)."""
    rows = sorted(rows, key=lambda r: r.cloud)
    return {
        "run": run_id, "build_id": build_id,
        "started": started, "finished": time.time(),
        "tasks_run": dict(sorted((tasks_run or {}).items())),
        "ok": all(r.status in (DONE, PAUSED) for r in rows),
        "failed": [r.cloud for r in rows if r.status == FAILED],
        "clouds": [dict(vars(r), status=r.status) for r in rows],
    }


def write_report(directory: Path, report: dict[str, Any]) -> Path:
    """Write report.json and report.html atomically; point ``latest`` at them."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in (("report.json", json.dumps(report, indent=2, sort_keys=True) + "\n"),
                       ("report.html", render_html(report))):
        atomicfile.write_text(directory / name, text)
    latest = directory.parent / "latest"
    tmp_link = directory.parent / ".latest.tmp"
    tmp_link.unlink(missing_ok=True)
    tmp_link.symlink_to(directory.name)
    os.replace(tmp_link, latest)
    return directory / "report.json"


def _fmt(value: Any, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}{suffix}"
    return f"{value}{suffix}"


def render_table(report: dict[str, Any]) -> str:
    """The short terminal summary: a row per cloud."""
    header = f"{'cloud':<18} {'status':<7} {'format':<6} {'mechanism':<17} {'MiB/s':>7} " \
             f"{'reach s':>7}  address / error"
    lines = [f"run {report['run']}  build {report['build_id']}", header]
    for c in report["clouds"]:
        tail = c["error"] or what_changed(c) or (
            f"{c['address']} ({c['address_source']})" if c["address"] else "") or \
            check_note(c)
        rate = "skipped" if c["skipped_upload"] else _fmt(c["upload_rate_mib_s"])
        lines.append(f"{c['cloud']:<18} {c['status']:<7} {c['disk_format']:<6} "
                     f"{_fmt(c['mechanism']):<17} {rate:>7} {_fmt(c['seconds_to_reachable']):>7}"
                     f"  {tail}")
    for c in report["clouds"]:
        if c.get("retention_skipped"):
            lines.append(f"{c['cloud']}: {retention_note(c['retention_skipped'])}")
    boots = {c["disk_format"]: c for c in report["clouds"] if c.get("accel")}
    for fmt, c in sorted(boots.items()):
        lines.append(f"local boot {fmt}: {c['accel']} ({c.get('accel_note') or '-'})")
        if c.get("boot_figures"):
            lines.append(f"first boot {fmt}: {bootfigures.summary(c['boot_figures'])}")
    for c in report["clouds"]:
        lines += [f"{c['cloud']}: {line}" for line in (c.get("changes") or [])[:MAX_LINES]]
    ok = sum(c["status"] == DONE for c in report["clouds"])
    lines.append(work_done_line(report))
    lines.append(f"{ok}/{len(report['clouds'])} clouds done"
                 + (f"; failed: {', '.join(report['failed'])}" if report["failed"] else ""))
    return "\n".join(lines)


def what_changed(cloud: dict[str, Any]) -> str:
    """"unchanged since build X", or how many packages changed since which build."""
    if cloud.get("unchanged_since"):
        return f"unchanged since build {cloud['unchanged_since']}"
    if cloud.get("changed_since"):
        changes = cloud.get("changes")
        count = f"{len(changes)} changes" if changes is not None else "changelog not kept"
        return f"changed since build {cloud['changed_since']} ({count})"
    return ""


def work_done_line(report: dict[str, Any]) -> str:
    """What this run executed; "every stage was already complete" only when nothing failed."""
    ran = report.get("tasks_run") or {}
    if ran:
        return "work done: " + ", ".join(f"{n} {k}" for k, n in ran.items())
    failed = [c for c in report["clouds"] if c["status"] == FAILED]
    if not failed:
        return "work done: none (every stage was already complete)"
    return "work done: none; failed: " + ", ".join(
        f"{c['cloud']} ({_failed_stage(c)})" for c in failed)


def _failed_stage(cloud: dict[str, Any]) -> str:
    """The stage the row names; a report written before rows named it: its red column."""
    return cloud.get("failed_stage") or next(
        (s for s in STAGES if cloud["stages"].get(s) == FAILED), "stage unknown")


_COLOURS = {DONE: "#c8f0c8", FAILED: "#f4c0c0", PENDING: "#eeeeee", PAUSED: "#fff3c4"}


def render_html(report: dict[str, Any]) -> str:
    """One page: a row per cloud, a column per stage, status colours, timings, the error."""
    e = html.escape
    head = "".join(f"<th>{e(s.replace('_', ' '))}</th>" for s in STAGES)
    rows = []
    for c in report["clouds"]:
        cells = "".join(
            f'<td class="{e(c["stages"][s])}" style="background:{_COLOURS[c["stages"][s]]}">'
            f'{e(c["stages"][s])}</td>' for s in STAGES)
        detail = (f"{e(_fmt(c['mechanism']))}, {e(_fmt(c['upload_rate_mib_s'], ' MiB/s'))}"
                  f"{e(conversion_note(c.get('converted_by_cloud')))}"
                  f"{e(compression_note(c))}; "
                  f"{e(_fmt(c['address']))} via {e(_fmt(c['address_source']))}, "
                  f"reachable after {e(_fmt(c['seconds_to_reachable'], ' s'))}, "
                  f"check {e(_fmt(c.get('verify_check')))}"
                  f"{e(' (' + check_note(c) + ')' if check_note(c) else '')}; "
                  f"local boot under {e(_fmt(c.get('accel')))}"
                  f"<span class=accel> ({e(c.get('accel_note') or '-')})</span>"
                  + (f"; <span class=boot>first boot: "
                     f"{e(bootfigures.summary(c['boot_figures']))}</span>"
                     if c.get("boot_figures") else "")
                  + (f"; <span class=retention>{e(retention_note(skipped))}</span>"
                     if (skipped := c.get("retention_skipped")) else ""))
        changes = "".join(f"<li>{e(line)}</li>" for line in c.get("changes") or [])
        rows.append(f'<tr class="cloud" data-status="{e(c["status"])}"><th>{e(c["cloud"])}</th>'
                    f"<td>{e(c['profile'])}</td><td>{e(c['disk_format'])}</td>{cells}"
                    f"<td>{detail}</td><td class=changes>{e(what_changed(c))}"
                    f"{'<ul>' + changes + '</ul>' if changes else ''}</td>"
                    f"<td class=error>{e(c['error'] or '')}</td></tr>")
    title = f"imagefleet run {report['run']}"
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{e(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #999;padding:.3em .6em;text-align:left}}.error{{color:#900}}
{STYLE}</style>
</head><body><h1>{e(title)}</h1>
<p>build {e(report['build_id'])} &middot; {'all clouds done' if report['ok'] else
 'failed: ' + e(', '.join(report['failed']))}</p>
<table><thead><tr><th>cloud</th><th>profile</th><th>format</th>{head}<th>details</th>
<th>what changed</th><th>error</th></tr></thead><tbody>
{chr(10).join(rows)}
</tbody></table>
{render_sections(report)}
</body></html>
"""
