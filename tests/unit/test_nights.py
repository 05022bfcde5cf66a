"""The morning report's timeline and history, and the node_exporter metrics."""

from __future__ import annotations

import json
import re

from pipeline.run import failures, metrics
from pipeline.run.nights import failed_entries, history, timeline
from pipeline.run.nights_html import render_sections
from pipeline.run.workdir import WorkDir

T0 = 1_000.0


def entry(task, start, end, **params):
    return {"task": task, "started": T0 + start, "time": T0 + end, **params}


def test_each_cloud_gets_the_shared_stages_of_its_format_and_its_own():
    entries = [entry("BuildBaseImage", 0, 30), entry("ConvertImage", 30, 32, disk_format="vhd"),
               entry("ConvertImage", 30, 31, disk_format="qcow2"),
               entry("LocalBoot", 32, 60, disk_format="qcow2"),
               entry("UploadImage", 60, 70, cloud="hp"), entry("VerifyImage", 70, 95, cloud="hp"),
               entry("UploadImage", 33, 80, cloud="rax"),
               {"task": "UploadImage", "time": T0 + 5, "cloud": "rax"}]   # an old ledger line
    bars = timeline(entries, {"hp": "qcow2", "rax": "vhd"}, T0)
    assert [(b["stage"], b["start"], b["end"]) for b in bars["hp"]] == [
        ("build", 0, 30), ("convert", 30, 31), ("local_boot", 32, 60), ("upload", 60, 70),
        ("verify", 70, 95)]
    assert [b["stage"] for b in bars["rax"]] == ["build", "convert", "upload"]


def test_a_failed_stage_has_its_bar_marked_failed(tmp_path):
    layout = WorkDir(tmp_path)
    failures.record(layout, failures.Failure(
        task_id="VerifyImage_hp_x", stage="verify", error="hp: reach: no banner", cloud="hp",
        started=T0 + 70, time=T0 + 95))
    failures.record(layout, failures.Failure(        # an older run's: not tonight's
        task_id="UploadImage_hp_y", stage="upload", error="old", cloud="hp",
        started=T0 - 50, time=T0 - 40))
    entries = [entry("UploadImage", 60, 70, cloud="hp")] + failed_entries(tmp_path, T0)
    bars = timeline(entries, {"hp": "qcow2"}, T0)["hp"]
    assert bars == [{"stage": "upload", "start": 60, "end": 70},
                    {"stage": "verify", "start": 70, "end": 95, "failed": True}]
    page = render_sections({"timeline": {"hp": bars}})
    assert 'class="bar verify failed"' in page and "verify (failed): 70–95 s" in page
    assert 'class="bar upload"' in page


def _report(run, status, build, **row):
    return {"run": run, "build_id": build, "ok": status == "done", "finished": 50.0,
            "clouds": [{"cloud": "hp", "status": status, "bytes": row.pop("bytes", 0), **row}]}


def test_history_lists_the_last_nights_newest_first(tmp_path):
    layout = WorkDir(tmp_path)
    for run, status, build, extra in [
            ("2026-11-28", "done", "b1", {"bytes": 10}),
            ("2026-11-29", "done", "b2", {"unchanged_since": "b1"})]:
        (layout.report_dir(run)).mkdir(parents=True)
        (layout.report_dir(run) / "report.json").write_text(
            json.dumps(_report(run, status, build, **extra)))
    tonight = _report("2026-11-30", "failed", "b3", changed_since="b1", changes=["↑ a 1 → 2"])
    rows = history(layout, tonight)["hp"]
    assert [(r["run"], r["status"], r["build_id"]) for r in rows] == [
        ("2026-11-30", "failed", "b3"), ("2026-11-29", "done", "b2"),
        ("2026-11-28", "done", "b1")]
    assert rows[0]["what"] == "changed since build b1 (1 changes)"
    assert rows[1]["what"] == "unchanged since build b1"
    page = render_sections({"history": {"hp": rows},
                            "timeline": {"hp": [{"stage": "build", "start": 0, "end": 10}]},
                            "bytes_sent": {"hp": 2048}, "links": {"build log": "../x.log"}})
    assert "unchanged since build b1" in page and 'href="../x.log"' in page
    assert "2,048" in page and 'class="bar build"' in page


def test_metrics_keep_the_last_success_of_a_failing_cloud(tmp_path):
    good = _report("2026-11-29", "done", "b2", bytes=1234)
    good["timeline"] = {"hp": [{"stage": "upload", "start": 3.0, "end": 10.5}]}
    path = metrics.write(tmp_path, good)
    bad = {**_report("2026-11-30", "failed", "b3"), "finished": 90.0}
    text = metrics.write(tmp_path, bad).read_text()
    assert path.name == "imagefleet.prom"
    assert 'imagefleet_last_success_timestamp_seconds{cloud="hp"} 50' in text
    assert 'imagefleet_cloud_up{cloud="hp"} 0' in text
    assert "imagefleet_run_success 0" in text
    first = metrics.render(good, {"hp": 50.0})
    assert 'imagefleet_stage_duration_seconds{cloud="hp",stage="upload"} 7.5' in first
    assert 'imagefleet_upload_bytes{cloud="hp"} 1234' in first
    # the exposition format: HELP and TYPE before each family, one sample a line
    for line in text.splitlines():
        assert re.match(r"^(# (HELP|TYPE) \w+ .+|\w+(\{[^}]*\})? -?[0-9.e+]+)$", line), line
