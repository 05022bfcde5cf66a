"""Upstream Keystone, Glance and Swift on 127.0.0.1: the second conformance target.

``python -m upstream.run start`` installs the services into their own venv
(cached under the work dir), writes their configs, bootstraps Keystone, Glance
and the Swift rings from empty state and starts everything on free loopback
ports; ``stop`` ends every process it started; ``status`` prints the state.
The work dir is ``$IMAGEFLEET_UPSTREAM_DIR`` or ``work/upstream``; nothing
outside it is written. The conformance fixture calls the same ``start``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import getpass
import grp
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import string
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keystoneauth1 import exceptions as ksa_exc
from keystoneauth1 import session as ksa_session
from keystoneauth1.identity import v3

from pipeline import runner
from pipeline.errors import PipelineError
from pipeline.waiting import iterate_timeout

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TEMPLATES = HERE / "templates"
REQUIREMENTS = HERE / "requirements.txt"
DIR_ENV = "IMAGEFLEET_UPSTREAM_DIR"
REGION = "RegionOne"
CLOUD_NAME = "upstream"
PORT_NAMES = ("keystone", "glance", "swift", "account", "container", "object")
START_TIMEOUT = 120
INSTALL_TIMEOUT = 900


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


# --- install ----------------------------------------------------------------

def requirements_digest() -> str:
    text = REQUIREMENTS.read_bytes() + sys.version.split()[0].encode()
    return hashlib.sha256(text).hexdigest()


def ensure_venv(lay: Layout) -> float | None:
    """Build the services' venv unless the cached one matches requirements.txt.

    Returns the seconds spent installing, or None when the cache was used.
    """
    digest = requirements_digest()
    if lay.stamp.is_file() and lay.stamp.read_text().strip() == digest:
        return None
    started = time.monotonic()
    if lay.venv.exists():
        shutil.rmtree(lay.venv)
    lay.root.mkdir(parents=True, exist_ok=True)
    log = lay.root / "install.log"
    runner.run([sys.executable, "-m", "venv", lay.venv], env=service_env(), inherit_env=False,
               log_path=log, where="upstream", step="install")
    runner.run([lay.python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                "-r", REQUIREMENTS], env=service_env(), inherit_env=False, log_path=log,
               timeout=INSTALL_TIMEOUT, where="upstream", step="install")
    lay.stamp.write_text(digest + "\n")
    return time.monotonic() - started


# --- processes --------------------------------------------------------------

def free_ports(count: int) -> list[int]:
    """Ports the kernel picks on 127.0.0.1, all distinct."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _ours(pid: int, lay: Layout) -> bool:
    """The pid is alive and still one of our services (not a reused pid)."""
    return str(lay.root) in _cmdline(pid)


def group_members(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(entry.name))
    return pids


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def service_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without what would steer the services' Python or clients."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "OS_", "VIRTUAL_ENV"))}
    return {**env, **(extra or {})}


def spawn(lay: Layout, name: str, argv: list[str], env: dict[str, str]) -> int:
    """Start one long-running service in its own process group, logging to a file."""
    lay.logs.mkdir(parents=True, exist_ok=True)
    with open(lay.logs / f"{name}.log", "ab") as log:
        proc = subprocess.Popen([str(a) for a in argv], env=service_env(env),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                cwd=lay.data, start_new_session=True)
    return proc.pid


def kill_group(pgid: int, grace: float = 10.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        with contextlib.suppress(Exception):
            for _ in iterate_timeout(grace, f"process group {pgid} to exit", wait=0.2):
                if not group_members(pgid):
                    return
    # The group may hold zombies of a dead parent; reaping is our child's job.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pgid, os.WNOHANG)


def answers(url: str, token: str | None = None) -> int | None:
    """The HTTP status ``url`` answers with, or None if nothing listens yet."""
    req = urllib.request.Request(url, headers={"X-Auth-Token": token} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code
    except (OSError, urllib.error.URLError):
        return None


# --- configuration ------------------------------------------------------------

def render(template: str, dest: Path, values: dict[str, Any]) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    text = string.Template((TEMPLATES / template).read_text()).substitute(values)
    dest.write_text(text)


def write_configs(lay: Layout, ports: dict[str, int], secrets_: dict[str, str]) -> None:
    values = {
        "data": lay.data, "venv": lay.venv, "user": getpass.getuser(),
        "keystone_url": f"http://127.0.0.1:{ports['keystone']}",
        "glance_port": ports["glance"], "swift_port": ports["swift"],
        "account_port": ports["account"], "container_port": ports["container"],
        "object_port": ports["object"], **secrets_,
    }
    render("keystone.conf", lay.data / "keystone" / "keystone.conf", values)
    render("glance-api.conf", lay.data / "glance" / "glance-api.conf", values)
    for name in ("swift.conf", "proxy-server.conf", "account-server.conf",
                 "container-server.conf", "object-server.conf"):
        render(name, lay.data / "swift" / name, values)
    for sub in ("keystone/locks", "glance/images", "glance/staging", "glance/tasks",
                "glance/work", "glance/cache", "glance/locks", "swift/node/d1"):
        (lay.data / sub).mkdir(parents=True, exist_ok=True)


def clouds_yaml(state: dict[str, Any]) -> str:
    """The clouds.yaml for the running services (JSON is valid YAML)."""
    def entry(user: dict[str, str], profile: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "auth_type": "password", "region_name": REGION, "interface": "public",
            "identity_api_version": 3,
            "auth": {"auth_url": state["auth_url"], "username": user["username"],
                     "password": user["password"], "project_name": user["project_name"],
                     "user_domain_name": "Default", "project_domain_name": "Default"},
        }
        if profile:
            out = {"profile": profile, **out}
        return out
    clouds = {CLOUD_NAME: entry(state["admin"], CLOUD_NAME),
              f"{CLOUD_NAME}-demo": entry(state["demo"], None)}
    return json.dumps({"clouds": clouds}, indent=2) + "\n"


# --- bootstrap ----------------------------------------------------------------

def use_wal(db: Path) -> None:
    """Readers no longer block the writer: the servers run several threads."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")


def keystone_manage(lay: Layout, *args: str) -> None:
    runner.run([lay.bin("keystone-manage"), "--config-file",
                lay.data / "keystone" / "keystone.conf", *args],
               env=service_env(), inherit_env=False, log_path=lay.logs / "bootstrap.log",
               where="upstream", step="keystone")


def bootstrap_keystone_db(lay: Layout, state: dict[str, Any]) -> None:
    user, group = getpass.getuser(), grp.getgrgid(os.getgid()).gr_name
    keystone_manage(lay, "db_sync")
    use_wal(lay.data / "keystone" / "keystone.db")
    keystone_manage(lay, "fernet_setup", "--keystone-user", user, "--keystone-group", group)
    keystone_manage(lay, "credential_setup", "--keystone-user", user,
                    "--keystone-group", group)
    url = state["auth_url"]
    keystone_manage(lay, "bootstrap", "--bootstrap-password", state["admin"]["password"],
                    "--bootstrap-admin-url", url, "--bootstrap-public-url", url,
                    "--bootstrap-internal-url", url, "--bootstrap-region-id", REGION)


class KeystoneAdmin:
    """The catalog and accounts that keystone-manage bootstrap does not make."""

    def __init__(self, auth_url: str, password: str) -> None:
        auth = v3.Password(auth_url=auth_url, username="admin", password=password,
                           project_name="admin", user_domain_id="default",
                           project_domain_id="default")
        self.session = ksa_session.Session(auth=auth)
        self.url = auth_url.rstrip("/")

    def get(self, path: str, key: str) -> list[dict[str, Any]]:
        return self.session.get(self.url + path).json()[key]

    def post(self, path: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.session.post(self.url + path, json={key: body}).json()[key]

    def role_id(self, name: str) -> str:
        found = self.get(f"/roles?name={name}", "roles")
        return found[0]["id"] if found else self.post("/roles", "role", {"name": name})["id"]

    def project(self, name: str) -> str:
        return self.post("/projects", "project", {"name": name, "domain_id": "default"})["id"]

    def user(self, name: str, password: str, project_id: str, roles: list[str]) -> None:
        uid = self.post("/users", "user", {"name": name, "password": password,
                                           "domain_id": "default",
                                           "default_project_id": project_id})["id"]
        for role in roles:
            self.session.put(f"{self.url}/projects/{project_id}/users/{uid}/roles/"
                             f"{self.role_id(role)}")

    def service(self, service_type: str, name: str, url: str) -> None:
        sid = self.post("/services", "service", {"type": service_type, "name": name})["id"]
        for interface in ("public", "internal"):
            self.post("/endpoints", "endpoint", {"service_id": sid, "interface": interface,
                                                 "region_id": REGION, "url": url})


def bootstrap_catalog(state: dict[str, Any]) -> None:
    ks = KeystoneAdmin(state["auth_url"], state["admin"]["password"])
    service_project = ks.project("service")
    demo_project = ks.project(state["demo"]["project_name"])
    # Token validation by a service user needs the "service" role under the
    # 2025.1 default policies; admin lets it act on behalf of users too.
    ks.user("glance", state["service_passwords"]["glance"], service_project,
            ["admin", "service"])
    ks.user("swift", state["service_passwords"]["swift"], service_project,
            ["admin", "service"])
    ks.user(state["demo"]["username"], state["demo"]["password"], demo_project, ["member"])
    ks.role_id("ResellerAdmin")
    ports = state["ports"]
    ks.service("image", "glance", f"http://127.0.0.1:{ports['glance']}")
    ks.service("object-store", "swift",
               f"http://127.0.0.1:{ports['swift']}/v1/AUTH_%(project_id)s")


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
    stopped = []
    for name, pid in ((state or {}).get("pids") or {}).items():
        if any(_ours(p, lay) for p in group_members(pid)):
            kill_group(pid)
            stopped.append(name)
    return stopped


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
    parser.add_argument("command", choices=["start", "stop", "status"])
    parser.add_argument("--dir", help=f"work dir (default ${DIR_ENV} or work/upstream)")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            state = start(args.dir)
            how = "reused" if state["reused"] else f"started in {state['start_s']} s"
            if state.get("install_s"):
                how += f" (venv installed in {state['install_s']:.0f} s)"
            print(f"upstream: {how}; OS_CLIENT_CONFIG_FILE={state['clouds_yaml']} "
                  f"OS_CLOUD={state['cloud']}")
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
