"""Nova, one call per method: flavors, keypairs, servers (create, get, wait, delete), console.

Calls go through the cloud's compute Adapter (relative paths, the catalog's
versioned endpoint) at the microversion ``versions.choose_compute_version``
negotiated, sent by keystoneauth1 in both of Nova's headers (none where the
cloud offers no microversion: the v2.1 base).  A failed status becomes the pipeline's error through
``session.Api``; a server in ERROR becomes a ``BootError`` carrying
Nova's fault message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from keystoneauth1 import adapter as ksa_adapter

from pipeline.cloud.session import Api
from pipeline.cloud.versions import ComputeVersion
from pipeline.core import errors
from pipeline.core.waiting import iterate_timeout

LOG = logging.getLogger(__name__)


BASE_VERSION = ComputeVersion(None, proxies=True, networks_required=False)


class NovaApi(Api):
    """A Nova client whose calls carry the negotiated microversion (asked on first use)."""

    service = "Nova"

    def __init__(self, ad: ksa_adapter.Adapter, where: str,
                 version: Callable[[], ComputeVersion] = lambda: BASE_VERSION):
        super().__init__(ad, where)
        self._version = version

    @property
    def version(self) -> ComputeVersion:
        return self._version()

    def call(self, method: str, url: str, **kwargs: Any) -> Any:
        if self.version.microversion:
            kwargs.setdefault("microversion", self.version.microversion)
        return super().call(method, url, **kwargs)


class Nova(NovaApi):

    # --- flavors and keypairs ---------------------------------------------

    def flavors(self) -> list[dict]:
        return self.json("GET", "flavors/detail", "flavors", step="boot")

    def create_keypair(self, name: str, public_key: str) -> dict:
        return self.json("POST", "os-keypairs", "keypair", step="boot",
                         json={"keypair": {"name": name, "public_key": public_key}})

    def keypairs(self) -> list[dict]:
        return [k.get("keypair", k) for k in self.json("GET", "os-keypairs", "keypairs")]

    def delete_keypair(self, name: str) -> bool:
        """False if it was already gone."""
        return self.call("DELETE", f"os-keypairs/{name}", ok=(404,),
                         step="cleanup").status_code != 404

    # --- servers ----------------------------------------------------------

    def create_server(self, body: Mapping[str, Any]) -> dict:
        return self.json("POST", "servers", "server", step="boot", json={"server": dict(body)})

    def servers(self) -> list[dict]:
        return self.json("GET", "servers/detail", "servers", step="cleanup")

    def get_server(self, server_id: str) -> dict | None:
        resp = self.call("GET", f"servers/{server_id}", ok=(404,), step="boot")
        return None if resp.status_code == 404 else resp.json()["server"]

    def delete_server(self, server_id: str) -> bool:
        """Ask for the deletion (it completes later); False if it was already gone."""
        return self.call("DELETE", f"servers/{server_id}", ok=(404,),
                         step="cleanup").status_code != 404

    def wait_active(self, server_id: str, timeout: float, poll: float) -> dict:
        """The server once ACTIVE; ERROR (or vanishing) is a ``BootError`` with Nova's fault."""
        status = "unknown"
        try:
            for _ in iterate_timeout(timeout, f"server {server_id} did not become ACTIVE",
                                     wait=poll, max_wait=max(poll, 10.0)):
                server = self.get_server(server_id)
                if server is None:
                    raise errors.BootError(f"server {server_id} disappeared while building",
                                           where=self.where)
                status = server.get("status", "unknown")
                if status == "ACTIVE":
                    return server
                if status == "ERROR":
                    raise errors.BootError(f"server {server_id} went to ERROR: "
                                           f"{fault_message(server)}", where=self.where)
        except errors.WaitTimeout as e:
            raise errors.BootError(f"server {server_id} was still {status} after "
                                   f"{timeout:g} s", where=self.where) from e
        raise AssertionError("unreachable")

    def wait_gone(self, server_id: str, timeout: float, poll: float) -> None:
        """Until Nova no longer lists the server (its ports and addresses are free)."""
        for _ in iterate_timeout(timeout, f"server {server_id} was not deleted", wait=poll,
                                 max_wait=max(poll, 5.0), where=self.where, step="cleanup"):
            if self.get_server(server_id) is None:
                return

    def console(self, server_id: str, length: int = 50) -> str:
        """The tail of the serial console ('' when the cloud will not say)."""
        try:
            resp = self.call("POST", f"servers/{server_id}/action", step="console",
                             json={"os-getConsoleOutput": {"length": length}})
            return str(resp.json().get("output") or "")
        except errors.PipelineError as e:
            LOG.debug("%s: no console output for %s: %s", self.where, server_id, e)
            return ""

    def server_action(self, server_id: str, action: str, args: Mapping[str, Any]) -> None:
        self.call("POST", f"servers/{server_id}/action", json={action: dict(args)})


def fault_message(server: Mapping[str, Any]) -> str:
    fault = server.get("fault") or {}
    message = str(fault.get("message") or "no fault message")
    details = str(fault.get("details") or "").strip().splitlines()
    if details and details[-1] not in message:
        message += f" ({details[-1][:200]})"
    return message


def console_tail(text: str, lines: int = 5) -> list[str]:
    """The last non-empty console lines, control characters removed."""
    cleaned = ("".join(ch for ch in line if ch.isprintable()).strip()
               for line in text.splitlines())
    return [line for line in cleaned if line][-lines:]


def elapsed(since: float) -> float:
    return round(time.monotonic() - since, 1)
