"""No secret leaves the pipeline: not on the console, not in the work directory, not in luigid.

Three personalities (Keystone v3 password, Keystone v3 application credential,
Keystone v2.0 password) publish the tiny image through a real ``luigid``; then
a fourth clouds.yaml entry with a wrong password fails at authentication.
Every file under the work directory, each run's stdout and stderr, and what
the scheduler shows (task list, task errors) are searched for the passwords,
the application-credential secret, every token the local cloud issued, and
the wrong password.  Tokens in a debug log may only appear hashed.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import sqlite3
from pathlib import Path

import pytest
import requests
import yaml

from tests.built_image import REPO
from tests.pipeline_run import (
    DATE,
    Pipeline,
    clouds_yaml_for,
    local_cloud,
    running_luigid,
    scheduler_tasks,
    tiny_source,
    write_pipeline_yaml,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
NAMES = ["hp-like", "vexxhost-like", "auro-like"]
SECRET_KEYS = ("password", "application_credential_secret")
STATUSES = ("DONE", "FAILED", "PENDING", "RUNNING", "DISABLED")
TOKEN_HEADER = re.compile(r"X-(?:Auth|Subject)-Token['\"]?\s*[:=]\s*['\"]?([^\s'\",]+)", re.I)
SAFE_TOKEN = re.compile(r"^(\{SHA256\}|\*\*\*)")


@pytest.fixture(scope="module")
def luigid(tmp_path_factory):
    """A real luigid on loopback, as in test_scheduler, but a failed task is not retried
    (the CLI's worker would wait for the retry: tens of seconds for a certain 401)."""
    root = tmp_path_factory.mktemp("luigid")
    cfg = (REPO / "config" / "luigi.cfg").read_text()
    assert "retry_count = 2" in cfg
    (root / "luigi.cfg").write_text(cfg.replace("retry_count = 2", "retry_count = 1"))
    with running_luigid(root, root / "luigi.cfg") as url:
        yield url


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    yield from local_cloud(tmp_path_factory, NAMES)


def cloud_secrets(cloud) -> dict[str, str]:
    """Each cloud's password or application-credential secret, as clouds.yaml has them."""
    found = {}
    for name in NAMES:
        auth = cloud.config(name)["auth"]
        found.update({f"{name} {key}": str(auth[key]) for key in SECRET_KEYS if auth.get(key)})
    assert {key.split()[1] for key in found} == set(SECRET_KEYS), found
    return found


def tokens_issued(cloud) -> dict[str, str]:
    """Every token the local cloud handed out, read from its store."""
    store = cloud.data_dir / "localcloud.sqlite3"
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT id, cloud FROM tokens").fetchall()
    return {f"{name} token {token[:8]}": token for token, name in rows}


def scheduler_view(url: str) -> str:
    """Everything luigid shows about the tasks: the task list and each failure's text."""
    shown = {status: scheduler_tasks(url, status) for status in STATUSES}
    errors = {}
    for task_id in [*shown["FAILED"], *shown["DISABLED"]]:
        response = requests.get(f"{url}/api/fetch_error", timeout=10,
                                params={"data": json.dumps({"task_id": task_id})})
        response.raise_for_status()
        errors[task_id] = response.json()["response"]
    return json.dumps({"tasks": shown, "errors": errors})


def work_files(work: Path) -> dict[str, bytes]:
    return {str(p.relative_to(work)): p.read_bytes() for p in work.rglob("*") if p.is_file()}


def leaks_of(found: dict[str, str], places: dict[str, str | bytes]) -> list[str]:
    """``"<secret> in <place>"`` for every secret value that appears in a place."""
    hits = []
    for what, value in found.items():
        for place, text in places.items():
            needle = value.encode() if isinstance(text, bytes) else value
            if needle in text:
                hits.append(f"{what} in {place}")
    return hits


def unhashed_tokens(places: dict[str, str | bytes]) -> list[str]:
    """Token header values in logs that are neither hashed nor masked."""
    hits = []
    for place, text in places.items():
        text = text.decode(errors="replace") if isinstance(text, bytes) else text
        hits += [f"{m.group(1)[:12]}... in {place}" for m in TOKEN_HEADER.finditer(text)
                 if not SAFE_TOKEN.match(m.group(1))]
    return hits


@pytest.fixture(scope="module")
def published(cloud, luigid, tmp_path_factory):
    """One successful run through luigid; its pipeline and captured output."""
    root = tmp_path_factory.mktemp("published")
    pipeline = Pipeline(write_pipeline_yaml(root, tiny_source()),
                        clouds_yaml_for(cloud, NAMES, root / "clouds.yaml"), root / "work")
    result = pipeline.run("--workers", "3", "--scheduler-url", luigid, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return pipeline, result


def test_no_secret_or_token_in_output_work_dir_or_scheduler(cloud, luigid, published, leaks):
    pipeline, result = published
    files = work_files(pipeline.work)
    for expected in ("logs/imagefleet.log", "logs/tasks.jsonl",
                     f"reports/{DATE}/report.json", f"reports/{DATE}/report.html"):
        assert expected in files, sorted(files)
    for name in NAMES:                                   # the records a leak could hide in
        assert any(re.fullmatch(rf"(uploads|verify)/\w+/{name}\.json", f) for f in files)
    tokens = tokens_issued(cloud)
    assert len(tokens) >= len(NAMES), tokens             # every cloud was authenticated to

    places: dict[str, str | bytes] = {"stdout": result.stdout, "stderr": result.stderr,
                                      "luigid": scheduler_view(luigid), **files}
    assert leaks_of({**cloud_secrets(cloud), **tokens}, places) == []
    assert unhashed_tokens(places) == []
    for name in NAMES:
        assert leaks.count(cloud, name) == 0


def test_a_wrong_password_is_not_echoed(cloud, luigid, published, tmp_path, leaks):
    pipeline, _ = published
    shutil.copytree(pipeline.work, tmp_path / "work", symlinks=True)
    wrong = "wrong-" + secrets.token_urlsafe(18)
    clouds = yaml.safe_load(pipeline.clouds_yaml.read_text())
    clouds["clouds"]["hp-like-2"] = dict(cloud.config("hp-like"))
    clouds["clouds"]["hp-like-2"]["auth"] = dict(cloud.config("hp-like")["auth"], password=wrong)
    (tmp_path / "clouds.yaml").write_text(yaml.safe_dump(clouds, sort_keys=False))
    again = Pipeline(pipeline.config, tmp_path / "clouds.yaml", tmp_path / "work")

    result = again.run("--workers", "3", "--scheduler-url", luigid, "-vv", timeout=600)
    assert result.returncode == 1, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("imagefleet: ")]
    assert errors == ["imagefleet: hp-like-2: auth: Keystone rejected the credentials (401)"], \
        result.stderr[-3000:]
    assert again.report()["failed"] == ["hp-like-2"]
    view = scheduler_view(luigid)
    assert "Keystone rejected the credentials" in view   # luigid shows the failure's line

    files = work_files(again.work)
    assert any(f.startswith("failures/") for f in files), sorted(files)
    places: dict[str, str | bytes] = {"stdout": result.stdout, "stderr": result.stderr,
                                      "luigid": view, **files}
    found = {"the wrong password": wrong, **cloud_secrets(cloud), **tokens_issued(cloud)}
    assert leaks_of(found, places) == []
    assert unhashed_tokens(places) == []
    for name in NAMES:
        assert leaks.count(cloud, name) == 0
