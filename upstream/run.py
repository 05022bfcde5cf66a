"""Upstream Keystone, Glance and Swift on 127.0.0.1: the second conformance target.

``python -m upstream.run venv`` builds the services' venv (``make upstream-venv``,
which ``make test`` runs first); ``start`` installs it too if missing
(cached under the work dir), writes their configs, bootstraps Keystone, Glance
and the Swift rings from empty state and starts everything on free loopback
ports (``start --compute``: Nova, Placement and Neutron too, ``compute.py``);
``stop`` ends every process it started; ``status`` prints the state.
The work dir is ``$IMAGEFLEET_UPSTREAM_DIR`` or ``work/upstream``; nothing
outside it is written. The conformance fixture calls the same ``start``.

This module holds the work dir ``Layout``, the state file, start, stop and the
CLI; the venv and the config files come from ``install.py``, Keystone's
bootstrap from ``bootstrap.py``, process and port helpers from ``procs.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keystoneauth1 import exceptions as ksa_exc

from pipeline.core import runner
from pipeline.core.errors import PipelineError
from pipeline.core.waiting import iterate_timeout
from upstream.bootstrap import REGION, bootstrap_catalog, bootstrap_keystone_db, use_wal
from upstream.install import CLOUD_NAME, clouds_yaml, ensure_venv, write_configs
from upstream.procs import (
    _cmdline,
    _cwd,
    answers,
    free_ports,
    group_members,
    kill_groups,
    rss_kib,
    service_env,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DIR_ENV = "IMAGEFLEET_UPSTREAM_DIR"

PORT_NAMES = ("keystone", "glance", "swift", "account", "container", "object")
START_TIMEOUT = 120


class UpstreamError(Exception):
    """The upstream services could not be installed, started or stopped."""


@dataclass(frozen=True)
class Layout:
    """Where everything lives: the venv (kept) and the data dir (rebuilt per start)."""

    root: Path

    @classmethod
    def from_env(cls, root: str | os.PathLike | None = None) -> Layout:
        root = root or os.environ.get(DIR_ENV) or REPO / "work" / "upstream"
        return cls(Path(root).resolve())

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def stamp(self) -> Path:
        return self.venv / ".imagefleet-installed"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def logs(self) -> Path:
        return self.data / "logs"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def clouds_yaml(self) -> Path:
        return self.data / "clouds.yaml"

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)


# --- processes --------------------------------------------------------------

def _ours(pid: int, lay: Layout) -> bool:
    """The pid is alive and still one of our services (not a reused pid): its
    command line or its working directory (``spawn`` starts every service in the
    data dir) names the work dir. The command line alone does not do: gunicorn
    and Nova retitle their processes where setproctitle is installed (Nova and
    Neutron bring it), and the broker's script names only itself until it
    execs Erlang."""
    root = str(lay.root)
    return root in _cmdline(pid) or (_cwd(pid) + "/").startswith(root + "/")


def spawn(lay: Layout, name: str, argv: list[str], env: dict[str, str]) -> int:
    """Start one long-running service in its own process group, logging to a file."""
    lay.logs.mkdir(parents=True, exist_ok=True)
    with open(lay.logs / f"{name}.log", "ab") as log:
        proc = subprocess.Popen([str(a) for a in argv], env=service_env(env),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                cwd=lay.data, start_new_session=True)
    return proc.pid


# --- start / stop -------------------------------------------------------------

@contextlib.contextmanager
def locked(lay: Layout) -> Iterator[None]:
    """One start or stop at a time per work dir (make and pytest may race)."""
    lay.root.mkdir(parents=True, exist_ok=True)
    with open(lay.root / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_state(lay: Layout) -> dict[str, Any] | None:
    try:
        return json.loads(lay.state_file.read_text())
    except (OSError, ValueError):
        return None


def healthy(state: dict[str, Any], lay: Layout) -> bool:
    """Every recorded process is ours and alive, and every service answers."""
    if not all(_ours(pid, lay) for pid in state.get("pids", {}).values()):
        return False
    ports = state["ports"]
    return (answers(f"http://127.0.0.1:{ports['keystone']}/v3") == 200
            and answers(f"http://127.0.0.1:{ports['glance']}/") == 300
            and all(answers(f"http://127.0.0.1:{ports[p]}/healthcheck") == 200
                    for p in ("swift", "account", "container", "object")))


def _stop_recorded(lay: Layout, state: dict[str, Any] | None) -> list[str]:
    ours = {name: pid for name, pid in ((state or {}).get("pids") or {}).items()
            if any(_ours(p, lay) for p in group_members(pid))}
    kill_groups(list(ours.values()))
    return list(ours)


def stop(root: str | os.PathLike | None = None) -> list[str]:
    """Stop every service the state file records; returns their names."""
    lay = Layout.from_env(root)
    with locked(lay):
        stopped = _stop_recorded(lay, read_state(lay))
        lay.state_file.unlink(missing_ok=True)
        return stopped


def start(root: str | os.PathLike | None = None) -> dict[str, Any]:
    """Running upstream services, reused when healthy, else started from empty state.

    Returns the state: ports, pids, URLs, credentials, the clouds.yaml path and
    ``reused``, ``install_s`` and ``start_s`` for the caller to report.
    """
    lay = Layout.from_env(root)
    with locked(lay):
        state = read_state(lay)
        if state and healthy(state, lay):
            return {**state, "reused": True}
        install_s = ensure_venv(lay)
        _stop_recorded(lay, state)
        lay.state_file.unlink(missing_ok=True)
        started = time.monotonic()
        state = _start_fresh(lay)
        state.update(reused=False, install_s=install_s,
                     start_s=round(time.monotonic() - started, 1))
        lay.state_file.write_text(json.dumps(state, indent=2) + "\n")
        return state


def _start_fresh(lay: Layout) -> dict[str, Any]:
    if lay.data.exists():
        shutil.rmtree(lay.data)
    lay.logs.mkdir(parents=True)
    ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True))
    token = secrets.token_hex
    state: dict[str, Any] = {
        "root": str(lay.root), "ports": ports, "pids": {}, "region": REGION,
        "auth_url": f"http://127.0.0.1:{ports['keystone']}/v3",
        "admin": {"username": "admin", "password": token(12), "project_name": "admin"},
        "demo": {"username": "demo", "password": token(12), "project_name": "demo"},
        "service_passwords": {"glance": token(12), "swift": token(12)},
        "clouds_yaml": str(lay.clouds_yaml), "cloud": CLOUD_NAME,
    }
    write_configs(lay, ports, {"glance_password": state["service_passwords"]["glance"],
                               "swift_password": state["service_passwords"]["swift"],
                               "hash_suffix": token(8)})
    # Record pids as they appear, so a failed start can still be stopped.
    def record(name: str, pid: int) -> None:
        state["pids"][name] = pid
        lay.state_file.write_text(json.dumps(state, indent=2) + "\n")

    try:
        _bootstrap_and_spawn(lay, state, ports, record)
    except BaseException:
        _stop_recorded(lay, state)
        raise
    lay.clouds_yaml.write_text(clouds_yaml(state))
    return state


def _bootstrap_and_spawn(lay: Layout, state: dict[str, Any], ports: dict[str, int],
                         record) -> None:
    serve = HERE / "serve.py"
    glance_env = {"OS_GLANCE_CONFIG_DIR": str(lay.data / "glance")}
    runner.run([lay.python, HERE / "rings.py", lay.data / "swift", ports["account"],
                ports["container"], ports["object"]], env=service_env(), inherit_env=False,
               log_path=lay.logs / "bootstrap.log", where="upstream", step="swift rings")
    for kind in ("account", "container", "object"):
        record(f"swift-{kind}", spawn(lay, f"swift-{kind}", [
            lay.python, serve, "swift", kind, lay.data / "swift" / f"{kind}-server.conf"], {}))
    # glance-manage runs while keystone bootstraps: the two do not meet.
    with open(lay.logs / "glance-manage.log", "wb") as glance_log:
        glance_db = subprocess.Popen(
            [lay.bin("glance-manage"), "--config-file",
             str(lay.data / "glance" / "glance-api.conf"), "db_sync"],
            env=service_env(glance_env), stdin=subprocess.DEVNULL, stdout=glance_log,
            stderr=glance_log, start_new_session=True)
    try:
        bootstrap_keystone_db(lay, state)
        record("keystone", spawn(lay, "keystone", [lay.python, serve, "keystone",
                                                   ports["keystone"]],
                                 {"OS_KEYSTONE_CONFIG_DIR": str(lay.data / "keystone")}))
        if glance_db.wait(timeout=START_TIMEOUT) != 0:
            raise UpstreamError(f"glance-manage db_sync exited {glance_db.returncode} "
                                f"(see {lay.logs / 'glance-manage.log'})")
        use_wal(lay.data / "glance" / "glance.db")
    finally:
        if glance_db.poll() is None:
            runner.terminate(glance_db)
    record("swift-proxy", spawn(lay, "swift-proxy", [
        lay.python, serve, "swift", "proxy", lay.data / "swift" / "proxy-server.conf"], {}))
    record("glance", spawn(lay, "glance", [lay.python, serve, "glance", ports["glance"]],
                           glance_env))
    wait_for(lay, state, f"{state['auth_url']}", 200, "keystone")
    try:
        bootstrap_catalog(state)
    except ksa_exc.ClientException as e:
        raise UpstreamError(f"keystone catalog bootstrap failed: {e} "
                            f"(see {lay.logs / 'keystone.log'})") from e
    wait_for(lay, state, f"http://127.0.0.1:{ports['glance']}/", 300, "glance")
    for name in ("swift", "account", "container", "object"):
        wait_for(lay, state, f"http://127.0.0.1:{ports[name]}/healthcheck", 200, name)


def wait_for(lay: Layout, state: dict[str, Any], url: str, status: int, name: str) -> None:
    for _ in iterate_timeout(START_TIMEOUT, f"upstream {name} to answer {url}", wait=0.25):
        if answers(url) == status:
            return
        dead = [n for n, pid in state["pids"].items() if not _ours(pid, lay)]
        if dead:
            raise UpstreamError(f"upstream {', '.join(dead)} exited during start "
                                f"(see {lay.logs})")


def memory(state: dict[str, Any]) -> dict[str, int]:
    """Resident memory (KiB) of each service's process group."""
    return {name: sum(rss_kib(p) for p in group_members(pid))
            for name, pid in state.get("pids", {}).items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="upstream", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["start", "stop", "status", "venv"])
    parser.add_argument("--dir", help=f"work dir (default ${DIR_ENV} or work/upstream)")
    parser.add_argument("--compute", action="store_true",
                        help="start: Nova, Placement and Neutron too (upstream/compute.py)")
    args = parser.parse_args(argv)
    try:
        if args.command == "venv":
            lay = Layout.from_env(args.dir)
            with locked(lay):
                took = ensure_venv(lay)
            print(f"upstream: venv {lay.venv} " + (f"installed in {took:.0f} s" if took
                                                    else "up to date"))
        elif args.command == "start":
            state = start(args.dir)
            how = "reused" if state["reused"] else f"started in {state['start_s']} s"
            if state.get("install_s"):
                how += f" (venv installed in {state['install_s']:.0f} s)"
            print(f"upstream: {how}; OS_CLIENT_CONFIG_FILE={state['clouds_yaml']} "
                  f"OS_CLOUD={state['cloud']}")
            if args.compute:
                from upstream import compute  # it imports this module
                print(compute.describe(compute.start(args.dir)))
        elif args.command == "stop":
            stopped = stop(args.dir)
            print(f"upstream: stopped {', '.join(stopped) or 'nothing'}")
        else:
            state = read_state(Layout.from_env(args.dir))
            if not state:
                print("upstream: not running")
                return 1
            mem = memory(state)
            print(json.dumps({"ports": state["ports"], "pids": state["pids"],
                              "rss_mib": {k: round(v / 1024) for k, v in mem.items()},
                              "rss_total_mib": round(sum(mem.values()) / 1024),
                              "clouds_yaml": state["clouds_yaml"]}, indent=2))
    except (UpstreamError, PipelineError) as e:
        print(f"imagefleet: upstream: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
