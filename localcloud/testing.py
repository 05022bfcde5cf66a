"""Run the local cloud in a subprocess for tests and rehearsals.

    with running_cloud(["hp-like", "rackspace-like"], tmp_path) as lc:
        lc.clouds_yaml                 # give this to the pipeline (OS_CLIENT_CONFIG_FILE)
        lc.add_fault("hp-like", kind="status", status=503, method="POST")
        assert lc.leftovers("hp-like") == {}
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from localcloud.personality import PERSONALITY_DIR

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 30.0


class LocalCloudError(RuntimeError):
    """The local cloud did not start, or an admin call failed."""


@dataclass
class RunningCloud:
    process: subprocess.Popen
    data_dir: Path
    clouds_yaml: Path
    admin_url: str
    clouds: dict[str, dict]          # name -> url, auth_url, admin_url, credentials
    startup_seconds: float

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        response = requests.request(method, self.admin_url + path, timeout=30, **kwargs)
        if response.status_code >= 400:
            raise LocalCloudError(f"admin {method} {path}: {response.status_code} "
                                  f"{response.text}")
        return response.json() if response.content else None

    def config(self, cloud: str) -> dict:
        """The cloud's entry in the written clouds.yaml."""
        return yaml.safe_load(self.clouds_yaml.read_text())["clouds"][cloud]

    def add_fault(self, cloud: str = "*", **spec: Any) -> dict:
        return self.admin("POST", "/admin/faults", json=dict(spec, cloud=cloud))["faults"][0]

    def faults(self, cloud: str | None = None) -> list[dict]:
        return self.admin("GET", "/admin/faults", params={"cloud": cloud} if cloud else None)[
            "faults"]

    def clear_faults(self, cloud: str | None = None) -> None:
        self.admin("DELETE", "/admin/faults", params={"cloud": cloud} if cloud else None)

    def resources(self, cloud: str) -> dict[str, list]:
        return self.admin("GET", f"/admin/clouds/{cloud}/resources")

    def leftovers(self, cloud: str) -> dict[str, list]:
        """Only the kinds of resource that still have members: {} means nothing leaked."""
        return {kind: items for kind, items in self.resources(cloud).items() if items}

    def rss_bytes(self) -> int:
        """Resident memory of the local-cloud process, from /proc."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise LocalCloudError("no VmRSS in /proc status")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(personalities: Sequence[str], data_dir: Path, faults: list[dict] | None = None,
          extra_args: Sequence[str] = ()) -> RunningCloud:
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    ready = data_dir / "ready.json"
    ready.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "localcloud", "--data-dir", str(data_dir),
            "--ready-file", str(ready), *extra_args]
    for name in personalities:
        argv += ["--personality", name]
    if faults:
        faults_file = data_dir / "faults.yaml"
        faults_file.write_text(yaml.safe_dump(list(faults)))
        argv += ["--faults", str(faults_file)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")) if p))
    output = open(data_dir / "localcloud.out", "ab")
    began = time.monotonic()
    process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT, env=env)
    output.close()
    deadline = began + READY_TIMEOUT
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            tail = (data_dir / "localcloud.out").read_text(errors="replace")[-2000:]
            raise LocalCloudError(f"local cloud did not start: {tail}")
        time.sleep(0.01)
    startup = time.monotonic() - began
    state = yaml.safe_load(ready.read_text())
    return RunningCloud(process=process, data_dir=data_dir,
                        clouds_yaml=Path(state["clouds_yaml"]), admin_url=state["admin_url"],
                        clouds=state["clouds"], startup_seconds=startup)


@contextmanager
def running_cloud(personalities: Sequence[str], data_dir: Path,
                  faults: list[dict] | None = None,
                  extra_args: Sequence[str] = ()) -> Iterator[RunningCloud]:
    """Start the local cloud in a subprocess, yield it once ready, stop it after."""
    cloud = start(personalities, data_dir, faults, extra_args)
    try:
        yield cloud
    finally:
        cloud.stop()


def personality_file(directory: Path, base: str, **changes: Any) -> str:
    """A shipped personality with ``changes`` (same name), written to ``directory``.

    For a test that needs one flag different, e.g. small listing pages:
    ``personality_file(d, "hp-like", image_listing={"limit_default": 2, "limit_max": 3})``.
    """
    data = yaml.safe_load((PERSONALITY_DIR / f"{base}.yaml").read_text())
    path = Path(directory) / f"{base}.yaml"
    path.write_text(yaml.safe_dump({**data, **changes}))
    return str(path)
