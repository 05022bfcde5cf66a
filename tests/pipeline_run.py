"""The whole pipeline, as a user runs it, against the local cloud with the tiny image.

``imagefleet run`` in a subprocess (its own process group, so a test can
SIGKILL it the way the OOM killer or a power cut would), with a
``pipeline.yaml`` whose ``image.source`` is the tiny image
(``tests/localcloud/tinyimage.py``: boots to an SSH banner in about 10 s under
TCG) and ``verify.check: ssh-banner``.  Build, convert, local boot, upload,
cloud boot and reachability are all real; only diskimage-builder is replaced
by the prebuilt file, so a whole run takes tens of seconds, not minutes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from localcloud.testing import RunningCloud, running_cloud
from pipeline.core.ports import free_port
from pipeline.run import ledger
from tests.built_image import REPO
from tests.localcloud import tinyimage

DATE = "2026-11-23"


def tiny_source() -> Path:
    """The tiny raw image (built once, cached under work/test-assets)."""
    return tinyimage.tiny_image("raw")


def write_pipeline_yaml(directory: Path, source: Path, *, name: str = "tinyfleet",
                        keep: int = 2, extra: dict[str, Any] | None = None) -> Path:
    """A pipeline.yaml publishing ``source`` with the repository's vendor profiles."""
    directory.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"image": {"name": name, "source": str(source)},
                            "vendors_dir": str(REPO / "config" / "vendors"),
                            "verify": {"check": "ssh-banner"}, "retention": {"keep": keep}}
    for key, value in (extra or {}).items():
        data[key] = value
    path = directory / "pipeline.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@dataclass
class Pipeline:
    """One pipeline installation: its config, its clouds.yaml, its work directory."""

    config: Path
    clouds_yaml: Path
    work: Path
    env: dict[str, str] = field(default_factory=dict)

    def argv(self, command: str, *args: str) -> list[str]:
        """The command line, with the options ``command`` takes (see ``tasks/cli.py``)."""
        argv = [sys.executable, "-m", "tasks.cli", command]
        if command != "report":
            argv += ["--config", str(self.config), "--clouds-yaml", str(self.clouds_yaml)]
        if command != "check-config":
            argv += ["--work-dir", str(self.work)]
        return [*argv, *args]

    def _env(self, extra: dict[str, str] | None) -> dict[str, str]:
        env = dict(os.environ, PYTHONPATH=str(REPO), **self.env, **(extra or {}))
        env.pop("OS_CLOUD", None)
        return env

    def run(self, *args: str, command: str = "run", date: str | None = DATE,
            timeout: float = 900, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess:
        """Run to the end; stdout and stderr captured as text."""
        if command == "run" and date:
            args = ("--date", date, *args)
        return subprocess.run(self.argv(command, *args), cwd=REPO, env=self._env(env),
                              capture_output=True, text=True, timeout=timeout)

    def start(self, *args: str, date: str = DATE, env: dict[str, str] | None = None,
              log: Path | None = None) -> subprocess.Popen:
        """Start ``imagefleet run`` in its own process group; output to ``log``."""
        log = log or self.work.parent / "pipeline.out"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            return subprocess.Popen(self.argv("run", "--date", date, *args), cwd=REPO,
                                    env=self._env(env), stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    def report(self) -> dict[str, Any]:
        return json.loads((self.work / "reports" / "latest" / "report.json").read_text())

    def tasks_run(self, since: float = 0.0) -> dict[str, int]:
        return ledger.counts(self.work, since)

    def ledger(self, since: float = 0.0) -> list[dict[str, Any]]:
        return ledger.entries(self.work, since)


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the run and everything in its process group; reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=30)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2,
             process: subprocess.Popen | None = None):
    """Poll ``predicate`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the run ended (exit {process.returncode}) before {what}")
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def clouds_yaml_for(lc, names: Sequence[str], dest: Path,
                    rename: dict[str, str] | None = None) -> Path:
    """The local cloud's clouds.yaml restricted to ``names`` (optionally renamed)."""
    written = yaml.safe_load(lc.clouds_yaml.read_text())["clouds"]
    rename = rename or {}
    clouds = {rename.get(n, n): written[n] for n in names}
    dest.write_text(yaml.safe_dump({"clouds": clouds}, sort_keys=False))
    return dest


def twin_personalities(directory: Path, bases: Sequence[str]) -> list[str]:
    """Each of ``bases``, and a copy of it named ``<name>-2`` (by its file's path), for a
    local cloud that serves every vendor twice."""
    from localcloud.personality import PERSONALITY_DIR
    directory.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    for base in bases:
        data = yaml.safe_load((PERSONALITY_DIR / f"{base}.yaml").read_text())
        data["name"] = f"{base}-2"
        copy = directory / f"{base}-2.yaml"
        copy.write_text(yaml.safe_dump(data, sort_keys=False))
        names += [base, str(copy)]
    return names


def clouds_yaml_with_profiles(lc, names: Sequence[str], dest: Path) -> Path:
    """``clouds_yaml_for``, where each ``<name>-2`` twin publishes with its vendor's profile."""
    clouds_yaml_for(lc, names, dest)
    clouds = yaml.safe_load(dest.read_text())["clouds"]
    for name, entry in clouds.items():
        entry.setdefault("imagefleet", {})["profile"] = name.removesuffix("-2")
    dest.write_text(yaml.safe_dump({"clouds": clouds}, sort_keys=False))
    return dest


def our_images(lc, cloud: str, name: str = "tinyfleet") -> list[dict]:
    """Images in ``cloud`` whose name starts with our image name."""
    images = lc.resources(cloud).get("images", [])
    return [i for i in images if str(i.get("name", "")).startswith(f"{name}-")]


def local_cloud(tmp_path_factory: pytest.TempPathFactory, names: Sequence[str],
                **options: Any) -> Iterator[RunningCloud]:
    """A local cloud serving the personalities ``names``, its data in a fresh tmp directory.

    For a fixture to ``yield from``; ``options`` go to ``running_cloud`` (``extra_args``...).
    """
    with running_cloud(names, tmp_path_factory.mktemp("localcloud"), **options) as lc:
        yield lc


def scheduler_tasks(url: str, status: str) -> dict[str, dict]:
    """luigid's API: the tasks it lists with ``status``, by task id."""
    response = requests.get(f"{url}/api/task_list", timeout=10, params={"data": json.dumps(
        {"status": status, "upstream_status": "", "search": ""})})
    response.raise_for_status()
    return response.json()["response"]


@contextmanager
def running_luigid(root: Path, config: Path = REPO / "config" / "luigi.cfg") -> Iterator[str]:
    """A real luigid on a free loopback port, reading ``config``; yields its URL.

    Its state file, logs and output (``luigid.out``) are under ``root``; it is
    terminated on exit.
    """
    port = free_port()
    argv = [str(Path(sys.executable).with_name("luigid")), "--address", "127.0.0.1",
            "--port", str(port), "--state-path", str(root / "state.pickle"),
            "--logdir", str(root)]
    env = dict(os.environ, LUIGI_CONFIG_PATH=str(config))
    with open(root / "luigid.out", "wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(f"{url}/api/task_list", timeout=2,
                                params={"data": json.dumps({"status": "DONE"})}).ok
        except requests.ConnectionError:
            return False
    try:
        wait_for(up, 30, "luigid to answer", process=process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)
