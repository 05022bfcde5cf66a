"""The tasks' own facts: the run date is today's when the task is made, and a failure
record names its stage itself."""

from __future__ import annotations

import datetime
import json

import luigi
import pytest

from pipeline.core.errors import PipelineError
from pipeline.run.workdir import WorkDir
from tasks import publish
from tasks.localboot import LocalBoot
from tasks.upload import UploadImage


def test_publish_date_defaults_to_the_day_the_task_is_made(monkeypatch):
    monkeypatch.setattr(publish, "today", lambda: datetime.date(2026, 11, 23))
    first = publish.Publish(digest="d" * 64, clouds=["hp"])
    monkeypatch.setattr(publish, "today", lambda: datetime.date(2026, 11, 24))
    second = publish.Publish(digest="d" * 64, clouds=["hp"])
    assert (first.date, second.date) == (datetime.date(2026, 11, 23), datetime.date(2026, 11, 24))
    assert publish.Publish(date=datetime.date(2026, 1, 2), digest="d").date.day == 2


@pytest.fixture
def work_dir(tmp_path):
    cfg = luigi.configuration.get_config()
    saved = cfg.get("imagefleet", "work_dir", None)
    cfg.set("imagefleet", "work_dir", str(tmp_path))
    yield WorkDir(tmp_path)
    if saved is None:
        cfg.remove_option("imagefleet", "work_dir")
    else:
        cfg.set("imagefleet", "work_dir", saved)


@pytest.mark.parametrize(("task", "stage", "cloud", "disk_format"), [
    (UploadImage(digest="a" * 64, cloud="hp-like"), "upload", "hp-like", None),
    (LocalBoot(digest="a" * 64, disk_format="qcow2"), "local_boot", None, "qcow2"),
])
def test_a_failure_record_names_its_stage_and_what_it_stops(work_dir, task, stage, cloud,
                                                              disk_format):
    line = task.on_failure(PipelineError("Glance v1 returned 413", step=stage))
    record = json.loads(work_dir.failure_record(task.task_id).read_text())
    assert (record["stage"], record["cloud"], record["disk_format"]) == (stage, cloud, disk_format)
    assert record["error"] == line and "Glance v1 returned 413" in line
