"""Keystone's bootstrap: its database, keys and admin (keystone-manage), then the
projects, service users and catalog that bootstrap does not make."""

from __future__ import annotations

import contextlib
import getpass
import grp
import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keystoneauth1 import session as ksa_session
from keystoneauth1.identity import v3

from pipeline.core import runner
from upstream.procs import service_env

if TYPE_CHECKING:
    from upstream.run import Layout

REGION = "RegionOne"


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

    def endpoints_in(self, service_type: str, region: str, url: str) -> list[str]:
        """Public and internal endpoints of the existing ``service_type`` in ``region``
        (made if missing); returns their ids."""
        if self.session.get(f"{self.url}/regions/{region}", raise_exc=False).status_code == 404:
            self.post("/regions", "region", {"id": region})
        sid = self.get(f"/services?type={service_type}", "services")[0]["id"]
        return [self.post("/endpoints", "endpoint", {"service_id": sid, "interface": interface,
                                                     "region_id": region, "url": url})["id"]
                for interface in ("public", "internal")]

    def delete_endpoints(self, ids: list[str]) -> None:
        for endpoint_id in ids:
            self.session.delete(f"{self.url}/endpoints/{endpoint_id}", raise_exc=False)

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
