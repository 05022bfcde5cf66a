"""Installing and configuring the upstream services: their venv and config files.

The services' venv is built from ``requirements.txt`` and cached under the work
dir, stamped with the digest of that file and the Python version; the configs
are ``templates/`` filled in per start (data dir, ports, passwords), and
``clouds_yaml`` renders the client config for the running services. Nothing
here starts a process that outlives the call: ``run.py`` does that.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import shutil
import string
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.core import runner
from upstream.bootstrap import REGION
from upstream.procs import service_env

if TYPE_CHECKING:
    from upstream.run import Layout

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
REQUIREMENTS = HERE / "requirements.txt"
INSTALL_TIMEOUT = 900
CLOUD_NAME = "upstream"


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
    # neutron-server runs under python -O (compute.py): its optimized bytecode is
    # compiled here, once, rather than at every first start of a fresh venv.
    site = next((lay.venv / "lib").glob("python3*/site-packages"))
    runner.run([lay.python, "-O", "-m", "compileall", "-q", "-j", "0", site],
               env=service_env(), inherit_env=False, log_path=log, check=False,
               timeout=INSTALL_TIMEOUT, where="upstream", step="install")
    lay.stamp.write_text(digest + "\n")
    return time.monotonic() - started


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
            out = {"imagefleet": {"profile": profile}, **out}
        return out
    clouds = {CLOUD_NAME: entry(state["admin"], CLOUD_NAME),
              f"{CLOUD_NAME}-demo": entry(state["demo"], None)}
    return json.dumps({"clouds": clouds}, indent=2) + "\n"
