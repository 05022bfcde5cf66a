"""``imagefleet run`` end to end against the local cloud, with the tiny image.

One failing cloud does not stop the others; a second run of the same date
does no work; the next date redoes nothing unless the build digest changed,
and then uploads only the new build.
"""

from __future__ import annotations

import time

import pytest

from tests.pipeline_run import (
    Pipeline,
    clouds_yaml_for,
    local_cloud,
    our_images,
    tiny_source,
    write_pipeline_yaml,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
NAMES = ["rackspace-like", "hp-like", "auro-like"]


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    yield from local_cloud(tmp_path_factory, NAMES)


def make_pipeline(cloud, root, source=None) -> Pipeline:
    return Pipeline(write_pipeline_yaml(root, source or tiny_source()),
                    clouds_yaml_for(cloud, NAMES, root / "clouds.yaml"), root / "work")


def test_one_failing_cloud_leaves_the_others_done(cloud, tmp_path):
    # hp-like's Glance v1 refuses every image upload as too large: not retried.
    cloud.add_fault("hp-like", kind="status", status=413, service="image", method="POST",
                    times=None, message="Image storage media is full")
    try:
        result = make_pipeline(cloud, tmp_path).run("--workers", "3")
    finally:
        cloud.clear_faults("hp-like")
    assert result.returncode == 1, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("imagefleet: ")]
    assert errors and all("hp-like" in line for line in errors), result.stderr[-2000:]
    assert any("413" in line or "too large" in line for line in errors), errors
    assert "Traceback" not in result.stderr

    report = make_pipeline(cloud, tmp_path).report()
    status = {c["cloud"]: c["status"] for c in report["clouds"]}
    assert status == {"auro-like": "done", "hp-like": "failed", "rackspace-like": "done"}
    assert report["failed"] == ["hp-like"] and not report["ok"]
    hp = next(c for c in report["clouds"] if c["cloud"] == "hp-like")
    assert hp["stages"]["upload"] == "failed" and "413" in hp["error"]
    assert "hp-like" in result.stdout and "failed: hp-like" in result.stdout  # the summary
    assert cloud.leftovers("hp-like") == {}               # no half image left behind
    for name in ("rackspace-like", "auro-like"):
        assert set(cloud.leftovers(name)) == {"images"}


def test_same_date_does_nothing_next_date_only_what_changed(cloud, tmp_path):
    source = tmp_path / "source.raw"
    source.write_bytes(tiny_source().read_bytes())
    with open(source, "r+b") as f:                        # a build no other test published
        f.seek(21 << 20)
        f.write(b"test_same_date")
    pipeline = make_pipeline(cloud, tmp_path / "a", source)
    before = {n: {i["id"] for i in our_images(cloud, n)} for n in NAMES}

    started = time.time()
    assert pipeline.run(date="2026-11-23").returncode == 0
    first = pipeline.tasks_run(since=started)
    assert first["BuildBaseImage"] == 1 and first["UploadImage"] == 3
    new = {n: {i["id"] for i in our_images(cloud, n)} - before[n] for n in NAMES}
    assert all(len(ids) == 1 for ids in new.values()), new

    for date in ("2026-11-23", "2026-11-24"):             # same date; next date, same inputs
        started = time.time()
        result = pipeline.run(date=date)
        assert result.returncode == 0, result.stderr[-2000:]
        assert pipeline.tasks_run(since=started) == {}, date
        assert "work done: none" in result.stdout
        assert pipeline.report()["run"] == date
    assert {n: {i["id"] for i in our_images(cloud, n)} - before[n] for n in NAMES} == new

    with open(source, "r+b") as f:                        # the next night's inputs changed
        f.seek(20 << 20)
        f.write(b"a changed package")
    started = time.time()
    assert pipeline.run(date="2026-11-25").returncode == 0
    assert pipeline.tasks_run(since=started) == first
    after = {n: {i["id"] for i in our_images(cloud, n)} - before[n] for n in NAMES}
    assert all(len(ids) == 2 and new[n] <= ids for n, ids in after.items()), after
