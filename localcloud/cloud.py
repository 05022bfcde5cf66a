"""One served cloud: its personality, port, credentials and the services it mounts.

The catalog comes from the personality's ``services`` list and each service
module's ``SERVICE`` description, so a new service (compute, network) is a new
module with a ``SERVICE`` and an entry in ``server.SERVICE_MODULES``.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from localcloud.faults import FaultRegistry
from localcloud.forwarding import Forwarder
from localcloud.guests import Hypervisor
from localcloud.personality import Personality
from localcloud.store import Store

HOST = "127.0.0.1"
DOMAIN = {"id": "default", "name": "Default"}


@dataclass(frozen=True)
class Service:
    """How a service module plugs into a cloud."""

    type: str
    name: str
    prefix: str                                   # path prefix on the cloud's port
    endpoint: Callable[[Cloud, str], str]         # (cloud, project_id) -> catalog URL
    add_routes: Callable[[web.Application], None]
    resume: Callable[[Cloud], None] | None = None  # restart background work after a restart
    resources: Callable[[Cloud], dict[str, list]] | None = None  # what accounting lists


@dataclass
class Cloud:
    name: str
    personality: Personality
    store: Store
    faults: FaultRegistry
    port: int
    token_ttl: int
    credentials: dict[str, str]
    services: dict[str, Service]
    jobs: set[asyncio.Task] = field(default_factory=set)
    index: int = 0                       # position among the clouds served: its address slice
    region: str = ""                     # the region this one serves ("": every region)
    # region -> the Cloud serving it, when the personality's regions are ``separate``
    siblings: dict[str, Cloud] = field(default_factory=dict, repr=False)
    hypervisor: Hypervisor | None = None  # the process's qemu guests (compute)
    forwarder: Forwarder | None = None    # port 22 of reachable addresses (compute)

    @property
    def realm(self) -> str:
        """Whose users and tokens these are: every region of a personality shares them."""
        return self.personality.name

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def auth_url(self) -> str:
        """The identity URL clouds.yaml carries: versioned, at the preferred version."""
        return f"{self.base_url}/identity/{self.personality.identity[0]}"

    def has(self, flag: str, value: str) -> bool:
        """Whether the personality's list flag ``flag`` holds ``value``."""
        return value in getattr(self.personality, flag)

    def catalog(self, project_id: str) -> list[dict[str, Any]]:
        """Services in catalog order: type, name, id and one URL per region (all
        interfaces share it); a ``separate`` region's URL is its own cloud's."""
        entries = []
        for stype in self.personality.services:
            service = self.services[stype]
            urls = {r: service.endpoint(self.siblings.get(r, self), project_id)
                    for r in self.personality.regions}
            entries.append({"type": stype, "name": service.name,
                            "id": uuid.uuid5(uuid.NAMESPACE_URL, f"{self.realm}/{stype}").hex,
                            "urls": urls})
        return entries

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
        """Run background work (an import) that outlives the request that started it."""
        task = asyncio.get_running_loop().create_task(coro)
        self.jobs.add(task)
        task.add_done_callback(self.jobs.discard)
        return task


def load_credentials(store: Store, cloud_name: str) -> dict[str, str]:
    """The cloud's user, project and application credential, made once and kept."""
    key = f"credentials:{cloud_name}"
    creds = store.get_meta(key)
    if creds is None:
        creds = {
            "user_id": uuid.uuid4().hex, "username": "demo",
            "password": secrets.token_urlsafe(18),
            "project_id": uuid.uuid4().hex, "project_name": "demo",
            "domain_id": DOMAIN["id"], "domain_name": DOMAIN["name"],
            "application_credential_id": uuid.uuid4().hex,
            "application_credential_name": "imagefleet",
            "application_credential_secret": secrets.token_urlsafe(24),
        }
        store.set_meta(key, creds)
    return creds
