"""The run report: rows from stage records, JSON and HTML, the terminal table."""

from __future__ import annotations

import json

from pipeline.run.report import (
    FAILED,
    cloud_row,
    make_report,
    render_html,
    render_table,
    write_report,
)

UPLOAD = {"mechanism": "task", "image_id": "img-1", "bytes": 100 * 2**20, "seconds": 4.0,
          "skipped": False}
VERIFY = {"address": "127.100.0.5", "address_source": "public", "seconds_to_active": 3.0,
          "seconds_to_reachable": 41.5, "build_id": "abc"}


def rows():
    good = cloud_row("rax", "rackspace-like", "vhd", build={}, convert={}, local_boot={},
                     upload=UPLOAD, verify=VERIFY, error=None, failed_stage=None)
    bad = cloud_row("hp", "hp-like", "qcow2", build={}, convert={}, local_boot={}, upload=None,
                    verify=None, error="hp: upload: Glance v1 returned 413 (quota)",
                    failed_stage="upload")
    return good, bad


def test_rows_carry_stage_status_and_figures():
    good, bad = rows()
    assert good.status == "done" and good.upload_rate_mib_s == 25.0
    assert good.address_source == "public" and good.verify == "passed"
    assert bad.status == FAILED and bad.stages["upload"] == FAILED
    assert bad.stages["verify"] == "pending"


def test_report_json_html_and_table(tmp_path):
    report = make_report("2026-11-23", "abc", list(rows()))
    assert report["failed"] == ["hp"] and not report["ok"]
    path = write_report(tmp_path / "2026-11-23", report)
    assert json.loads(path.read_text())["clouds"][1]["cloud"] == "rax"
    assert (tmp_path / "latest" / "report.html").is_file()
    page = render_html(report)
    assert page.count('<tr class="cloud"') == 2
    assert "Glance v1 returned 413" in page
    table = render_table(report)
    assert "1/2 clouds done; failed: hp" in table
    assert "127.100.0.5 (public)" in table


def test_html_escapes_cloud_text():
    _, bad = rows()
    bad.error = "<script>alert(1)</script>"
    page = render_html(make_report("r", "b", [bad]))
    assert "<script>alert" not in page and "&lt;script&gt;" in page


def test_local_boot_accelerator_and_its_fallback_reach_the_row_and_summary():
    fell_back = {"accel": "tcg", "accel_why": "a KVM boot failed although the probe passed",
                 "accel_fallback": {"from": "kvm", "to": "tcg", "seconds_lost": 30.4,
                                    "why": "KVM boot showed nothing past the boot loader"}}
    plain = {"accel": "tcg", "accel_why": "/dev/kvm missing or not writable",
             "accel_fallback": None}
    a = cloud_row("rax", "rackspace-like", "vhd", build={}, convert={}, local_boot=fell_back,
                  upload=UPLOAD, verify=VERIFY, error=None, failed_stage=None)
    b = cloud_row("hp", "hp-like", "qcow2", build={}, convert={}, local_boot=plain,
                  upload=UPLOAD, verify=VERIFY, error=None, failed_stage=None)
    assert a.accel == "tcg"
    assert a.accel_note == ("KVM boot failed after 30.4 s (KVM boot showed nothing past the "
                            "boot loader); booted again under TCG")
    assert b.accel_note == "/dev/kvm missing or not writable"
    report = make_report("2026-11-30", "abc", [a, b])
    table = render_table(report)
    assert "local boot vhd: tcg (KVM boot failed after 30.4 s" in table
    assert "local boot qcow2: tcg (/dev/kvm missing" in table
    assert "booted again under TCG" in render_html(report)


def test_a_run_with_a_failure_never_says_every_stage_was_complete():
    report = make_report("2026-11-23", "abc", list(rows()), tasks_run={})
    table = render_table(report)
    assert "every stage was already complete" not in table
    assert "work done: none; failed: hp (upload)" in table


def test_a_run_that_found_everything_done_says_so():
    good, _ = rows()
    table = render_table(make_report("2026-11-24", "abc", [good], tasks_run={}))
    assert "work done: none (every stage was already complete)" in table


def test_a_failure_without_a_column_is_named_by_its_stage():
    good, _ = rows()
    late = cloud_row("ovh", "ovh-like", "qcow2", build={}, convert={}, local_boot={},
                     upload=UPLOAD, verify=VERIFY, error="ovh: retention: 503",
                     failed_stage="retention")
    table = render_table(make_report("r", "abc", [good, late], tasks_run={}))
    assert "work done: none; failed: ovh (retention)" in table


def test_a_conversion_by_the_cloud_shows_in_the_row(tmp_path):
    converted = {"from": "qcow2", "to": "raw", "size": 2**30}
    row = cloud_row("vexx", "vexxhost-like", "qcow2", build={}, convert={}, local_boot={},
                    upload={**UPLOAD, "converted_by_cloud": converted}, verify=VERIFY,
                    error=None, failed_stage=None)
    assert row.converted_by_cloud == converted and row.status == "done"
    report = make_report("2026-11-23", "abc", [row])
    assert report["clouds"][0]["converted_by_cloud"] == converted
    assert "converted by the cloud from qcow2 to raw" in render_html(report)


def test_a_gzip_sent_for_glance_to_inflate_shows_in_the_row():
    row = cloud_row("up", "upstream", "raw", build={}, convert={}, local_boot={},
                    upload={**UPLOAD, "mechanism": "web-download", "bytes": 151_000_000,
                            "compressed": "gzip"},
                    verify=VERIFY, error=None, failed_stage=None)
    page = render_html(make_report("2026-11-30", "abc", [row]))
    assert "sent as gzip (151000000 bytes), inflated by the cloud&#x27;s Glance" in page
    plain = render_html(make_report("2026-11-30", "abc", list(rows())))
    assert "sent as gzip" not in plain


def test_images_retention_could_not_delete_show_with_their_reason():
    retention = {"keep": 2, "kept": "img-1", "deleted": ["img-0"], "skipped": [
        {"id": "img-p", "name": "imagefleet-debian-b1", "reason": "protected",
         "detail": "Glance v2 returned 403", "hidden": True},
        {"id": "img-b", "name": "imagefleet-debian-b2", "reason": "in use by the store",
         "detail": "Glance v2 returned 409", "hidden": False}]}
    row = cloud_row("vexx", "vexxhost-like", "qcow2", build={}, convert={}, local_boot={},
                    upload=UPLOAD, verify=VERIFY, error=None, failed_stage=None,
                    retention=retention)
    assert row.status == "done"
    report = make_report("2026-11-23", "abc", [row])
    assert [s["id"] for s in report["clouds"][0]["retention_skipped"]] == ["img-p", "img-b"]
    note = "retention skipped img-p (protected, hidden), img-b (in use by the store)"
    assert f"vexx: {note}" in render_table(report)
    assert note in render_html(report)
    plain = make_report("r", "abc", [cloud_row(
        "rax", "rackspace-like", "vhd", build={}, convert={}, local_boot={}, upload=UPLOAD,
        verify=VERIFY, error=None, failed_stage=None, retention={"skipped": []})])
    assert "retention skipped" not in render_table(plain) + render_html(plain)
def test_a_paused_cloud_is_shown_and_does_not_fail_the_run():
    from pipeline.run.report import make_report, paused_row, render_html, render_table
    report = make_report("2026-11-30", "b1", [paused_row("hp-east", "hp-like", "qcow2")])
    assert report["ok"] and report["clouds"][0]["status"] == "paused"
    assert "hp-east            paused" in render_table(report)
    assert 'data-status="paused"' in render_html(report)
