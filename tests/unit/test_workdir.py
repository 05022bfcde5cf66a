"""The work-dir layout and the failure records: the one place tasks, report and CLI ask."""

from __future__ import annotations

import json
from types import SimpleNamespace

from pipeline.run import failures
from pipeline.run.runreport import collect_rows
from pipeline.run.workdir import WorkDir


def test_every_build_file_has_one_path(tmp_path):
    wd = WorkDir(tmp_path)
    assert wd.base_image("b1") == tmp_path / "builds" / "b1" / "base.raw"
    assert wd.converted("b1", "qcow2") == tmp_path / "images" / "b1" / "image.qcow2"
    assert wd.convert_record("b1", "vhd") == tmp_path / "images" / "b1" / "image.vhd.json"
    assert wd.local_boot_record("b1", "raw") == tmp_path / "localboot" / "b1" / "raw.json"
    assert wd.upload_record("b1", "hp") == tmp_path / "uploads" / "b1" / "hp.json"
    assert wd.verify_record("b1", "hp") == tmp_path / "verify" / "b1" / "hp.json"
    assert wd.retention_record("b1", "hp") == tmp_path / "retention" / "b1" / "hp.json"
    assert wd.failure_record("T_1") == tmp_path / "failures" / "T_1.json"


def cloud(name, fmt):
    return SimpleNamespace(name=name, disk_format=fmt, profile=SimpleNamespace(name=f"{name}-like"))


CLOUDS = [cloud("hp", "qcow2"), cloud("vexx", "qcow2"), cloud("rax", "vhd")]


def record(wd, task_id, stage, **about):
    failures.record(wd, failures.Failure(task_id=task_id, stage=stage,
                                         error=f"{task_id}: broke", **about))


def rows_by_cloud(tmp_path, since=0.0):
    return {r.cloud: r for r in collect_rows(tmp_path, "b1", CLOUDS, since=since)}


def test_a_failure_stops_the_clouds_it_names_by_its_own_stage(tmp_path):
    wd = WorkDir(tmp_path)
    record(wd, "LocalBoot_q", "local_boot", where="local qcow2", disk_format="qcow2")
    record(wd, "UploadImage_r", "upload", where="rax", cloud="rax")
    rows = rows_by_cloud(tmp_path)
    assert rows["hp"].stages["local_boot"] == rows["vexx"].stages["local_boot"] == "failed"
    assert rows["hp"].error == "LocalBoot_q: broke"
    assert rows["rax"].stages == {"build": "pending", "convert": "pending",
                                  "local_boot": "pending", "upload": "failed",
                                  "verify": "pending"}


def test_a_build_failure_stops_every_cloud_and_old_failures_do_not_count(tmp_path):
    wd = WorkDir(tmp_path)
    record(wd, "BuildBaseImage_b", "build")
    assert {r.stages["build"] for r in rows_by_cloud(tmp_path).values()} == {"failed"}
    later = json.loads(wd.failure_record("BuildBaseImage_b").read_text())["time"] + 1
    assert all(r.error is None for r in rows_by_cloud(tmp_path, since=later).values())


def test_records_the_tasks_wrote_make_the_stages_done(tmp_path):
    wd = WorkDir(tmp_path)
    for path, text in ((wd.base_image("b1"), ""), (wd.converted("b1", "vhd"), ""),
                       (wd.convert_record("b1", "vhd"), "{}"),
                       (wd.local_boot_record("b1", "vhd"), "{}"),
                       (wd.upload_record("b1", "rax"), '{"image_id": "i-1"}')):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    rax = rows_by_cloud(tmp_path)["rax"]
    assert [s for s, v in rax.stages.items() if v == "done"] == [
        "build", "convert", "local_boot", "upload"]
    assert rax.image_id == "i-1"
