"""The central scheduler: a real ``luigid`` on loopback, the whole pipeline through it.

Three personalities (Swift+task on a public network, v1 PUT behind a neutron
floating IP, v2 PUT behind a nova-network floating IP) publish the tiny image
through ``imagefleet run --scheduler-url`` with three workers; the scheduler's
own API must list every task DONE.  Then two ``luigi --module tasks Publish``
worker processes (as on two hosts sharing the work directory) run the next
build against the same ``luigid``: the ledger shows each task ran once.  No
password, token or key appears in what the scheduler shows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.browser import check_report_in_browser, chromium_binary
from tests.built_image import REPO
from tests.pipeline_run import (
    DATE,
    Pipeline,
    clouds_yaml_for,
    local_cloud,
    our_images,
    running_luigid,
    scheduler_tasks,
    tiny_source,
    write_pipeline_yaml,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
NAMES = ["rackspace-like", "hp-like", "auro-like"]
FAMILIES = {"BuildBaseImage", "ConvertImage", "LocalBoot", "UploadImage", "VerifyImage",
            "RetainImages", "Publish"}


@pytest.fixture(scope="module")
def luigid(tmp_path_factory):
    """A real luigid on a free loopback port, our luigi.cfg, state and logs in tmp."""
    with running_luigid(tmp_path_factory.mktemp("luigid")) as url:
        yield url


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    yield from local_cloud(tmp_path_factory, NAMES)


@pytest.fixture(scope="module")
def pipeline(cloud, tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    return Pipeline(write_pipeline_yaml(root, tiny_source()),
                    clouds_yaml_for(cloud, NAMES, root / "clouds.yaml"), root / "work")


def secrets_of(cloud) -> list[str]:
    found = []
    for name in NAMES:
        auth = cloud.config(name)["auth"]
        found += [str(v) for k, v in auth.items() if "password" in k or "secret" in k]
    return [s for s in found if s]


def test_publish_through_luigid_with_three_workers(luigid, cloud, pipeline):
    started = time.time()
    result = pipeline.run("--workers", "3", "--scheduler-url", luigid)
    assert result.returncode == 0, result.stderr[-3000:]

    done = scheduler_tasks(luigid, "DONE")
    families = {t["name"] for t in done.values()}
    assert FAMILIES <= families, f"the scheduler lists {sorted(families)}"
    for status in ("FAILED", "PENDING", "RUNNING"):
        assert scheduler_tasks(luigid, status) == {}, status
    per_cloud = [t for t in done.values() if t["name"] == "VerifyImage"]
    assert sorted(t["params"]["cloud"] for t in per_cloud) == sorted(NAMES)

    ran = pipeline.tasks_run(since=started)
    assert ran == {"BuildBaseImage": 1, "ConvertImage": 2, "LocalBoot": 2, "UploadImage": 3,
                   "VerifyImage": 3, "RetainImages": 3}
    report = pipeline.report()
    assert report["ok"] and [c["status"] for c in report["clouds"]] == ["done"] * 3
    for name in NAMES:
        assert len(our_images(cloud, name)) == 1
        assert set(cloud.leftovers(name)) == {"images"}       # no server, FIP, key, rule

    shown = json.dumps(done)
    for secret in secrets_of(cloud):
        assert secret not in shown
    if chromium_binary():
        statuses = check_report_in_browser(pipeline.work / "reports" / DATE, sorted(NAMES),
                                           "report-luigid")
        assert set(statuses.values()) == {"done"}


def test_two_worker_processes_share_one_luigid_and_run_each_task_once(luigid, cloud, pipeline,
                                                                      tmp_path):
    # A new source file is a new build: every stage has work to do again.
    source = tmp_path / "next.raw"
    source.write_bytes(tiny_source().read_bytes())
    with open(source, "r+b") as f:
        f.seek(20 << 20)
        f.write(b"next night's build")
    config = write_pipeline_yaml(tmp_path / "config", source)
    cfg = tmp_path / "luigi.cfg"
    cfg.write_text((REPO / "config" / "luigi.cfg").read_text() + f"""
[imagefleet]
work_dir = {pipeline.work}
config = {config}
clouds_yaml = {pipeline.clouds_yaml}
""")
    host, port = luigid.removeprefix("http://").split(":")
    argv = [sys.executable, "-m", "luigi", "--module", "tasks", "Publish", "--date", "2026-11-24",
            "--scheduler-host", host, "--scheduler-port", port, "--workers", "1",
            "--worker-keep-alive"]
    env = dict(os.environ, LUIGI_CONFIG_PATH=str(cfg), PYTHONPATH=str(REPO))
    started = time.time()
    workers = [subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=900)[0] for w in workers]
    for worker, output in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, output[-3000:]

    entries = pipeline.ledger(since=started)
    by_task: dict[str, list[int]] = {}
    for entry in entries:
        by_task.setdefault(entry["task_id"], []).append(entry["pid"])
    twice = {task: pids for task, pids in by_task.items() if len(pids) > 1}
    assert not twice, f"ran more than once: {twice}"
    families = [e["task"] for e in entries]
    assert sorted(set(families)) == sorted(FAMILIES - {"Publish"})
    assert families.count("UploadImage") == 3 and families.count("BuildBaseImage") == 1
    pids = {e["pid"] for e in entries}
    print(f"\n{len(entries)} tasks, each once, run by {len(pids)} worker processes")
    for name in NAMES:
        assert len(our_images(cloud, name)) == 2          # last night's and tonight's
        assert set(cloud.leftovers(name)) == {"images"}
