"""The tasks' own facts: the run date is today's when the task is made, a failure
record names its stage itself, and the compression choice is planned with the run."""

from __future__ import annotations

import datetime
import json
from types import SimpleNamespace

import luigi
import pytest

from pipeline.core.errors import PipelineError
from pipeline.run.workdir import WorkDir
from pipeline.settings.config import load_profiles
from tasks import publish
from tasks.base import planned_compression
from tasks.build import ConvertImage
from tasks.localboot import LocalBoot
from tasks.upload import UploadImage
from tests.conftest import REPO


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


@pytest.fixture
def nowhere_config(work_dir, tmp_path):
    """pipeline.yaml and clouds.yaml that do not exist: a task that reads them fails."""
    cfg = luigi.configuration.get_config()
    saved = {k: cfg.get("imagefleet", k, None) for k in ("config", "clouds_yaml")}
    cfg.set("imagefleet", "config", str(tmp_path / "missing" / "pipeline.yaml"))
    cfg.set("imagefleet", "clouds_yaml", str(tmp_path / "missing" / "clouds.yaml"))
    yield work_dir
    for key, value in saved.items():
        if value is None:
            cfg.remove_option("imagefleet", key)
        else:
            cfg.set("imagefleet", key, value)


def test_convert_complete_reads_only_the_work_dir(nowhere_config):
    """The compression choice is a parameter planned with the run: ``complete`` (asked
    again and again by Luigi) reads neither pipeline.yaml nor clouds.yaml."""
    plain = ConvertImage(digest="c" * 64, disk_format="qcow2", compressed=())
    packed = ConvertImage(digest="c" * 64, disk_format="qcow2", compressed=("qcow2",))
    assert plain.task_id != packed.task_id
    image = nowhere_config.converted(packed.build_id, "qcow2")
    image.parent.mkdir(parents=True)
    image.write_bytes(b"qcow2")
    nowhere_config.convert_record(packed.build_id, "qcow2").write_text(
        json.dumps({"compressed": True}))
    assert packed.complete() and not plain.complete()


def test_the_planned_choice_reaches_every_conversion_task():
    compressed = ("qcow2", "raw")
    (retain,) = publish.Publish(digest="d" * 64, clouds=["rax"],
                                compressed=compressed).requires()
    upload = retain.requires().requires()
    assert upload.compressed == compressed and upload.cloud == "rax"
    convert = LocalBoot(digest="d" * 64, disk_format="raw", compressed=compressed).requires()
    assert isinstance(convert, ConvertImage) and convert.compressed == compressed
    assert convert.compress and convert.requires().param_kwargs == {
        "digest": "d" * 64, "built_at": ""}       # one base build, whatever the choice


@pytest.mark.parametrize("clouds, expected", [
    ([("hp-like", "qcow2"), ("rackspace-like", "vhd")], ("qcow2",)),
    ([("upstream", "qcow2")], ("qcow2",)),
    ([("upstream", "raw")], ("qcow2", "raw")),     # its Glance inflates a web-download gzip
    ([("ovh-like", "raw")], ("qcow2",)),
])
def test_planned_compression_over_shipped_profiles(clouds, expected):
    vendors = load_profiles(REPO / "config" / "vendors")
    assert planned_compression(SimpleNamespace(disk_format=fmt, profile=vendors[name])
                               for name, fmt in clouds) == expected
