"""Which API version each compute and network call is spoken at (pure decisions).

Nova: the microversion is negotiated from the range the cloud's version
document offers (keystoneauth1 ``EndpointData.min_microversion`` /
``max_microversion``) and the range whose request and response shapes this
pipeline was written and tested against (2.1 to ``NEWEST_KNOWN``).  The
nova-network proxies (``os-floating-ips``, ``os-security-groups``,
``os-floating-ip-pools``, ``os-tenant-networks``) answer only up to 2.35
(Nova ``api_version_request.py``: ``MAX_PROXY_API_SUPPORT_VERSION``), so a
nova-network cloud is spoken to at 2.35 at most; from 2.37 a server create
must say ``networks`` (``auto``, ``none`` or a list).

Neutron: no version discovery at all, as openstacksdk does
(``openstack/config/cloud_region.py``, ``get_session_client``: "Older neutron
has inaccessible discovery document"): the catalog URL with ``/v2.0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keystoneauth1 import discover

from pipeline.core import errors

BASE = (2, 1)                  # Nova's v2.1 base, what no header at all means
NEWEST_KNOWN = (2, 37)         # explicit "networks" on create; nothing later is needed
LAST_PROXY = (2, 35)           # the nova-network proxies answer up to here
NETWORKS_REQUIRED = (2, 37)
NEUTRON_VERSION = "v2.0"

Version = tuple[int, int]


@dataclass(frozen=True)
class ComputeVersion:
    """The microversion to send (None: the cloud offers none) and what it allows."""

    microversion: str | None
    proxies: bool               # nova-network's proxy APIs still answer
    networks_required: bool     # a server create must say "networks"


def _version(value: Any) -> Version | None:
    if value in (None, "", (), []):
        return None
    major, minor = discover.normalize_version_number(value)[:2]
    return int(major), int(minor)


def _text(version: Version) -> str:
    return f"{version[0]}.{version[1]}"


def choose_compute_version(offered_min: Any, offered_max: Any,
                           network_api: str) -> ComputeVersion:
    """The highest microversion both sides know, capped at 2.35 for nova-network.

    ``offered_*`` are what the version document says (None when it lists no
    microversions: a v2.0 or plain v2.1 Nova, spoken to without the header).
    A cloud whose lowest microversion is above what we can use is refused.
    """
    low, high = _version(offered_min), _version(offered_max)
    ceiling = min(NEWEST_KNOWN, LAST_PROXY) if network_api == "nova-network" else NEWEST_KNOWN
    if high is None or high <= BASE:
        return ComputeVersion(None, proxies=True, networks_required=False)
    if low is not None and low > ceiling:
        need = ("its nova-network proxies are gone" if network_api == "nova-network"
                else "the newest this pipeline knows")
        raise errors.CloudError(f"Nova offers microversions {_text(low)} to {_text(high)}, "
                                f"none at or below {_text(ceiling)} ({need})")
    chosen = min(high, ceiling)
    return ComputeVersion(_text(chosen), proxies=chosen <= LAST_PROXY,
                          networks_required=chosen >= NETWORKS_REQUIRED)


def server_networks(network_id: str | None, version: ComputeVersion) -> Any:
    """The create request's ``networks``: the chosen one, else ``auto`` where it is
    required (the cloud chooses, as it does when the field is left out before 2.37)."""
    if network_id:
        return [{"uuid": network_id}]
    return "auto" if version.networks_required else None


def neutron_endpoint(catalog_url: str) -> str:
    """Neutron's API root from its catalog URL, without discovery: ``.../v2.0``."""
    url = catalog_url.rstrip("/")
    return url if url.rsplit("/", 1)[-1] == NEUTRON_VERSION else f"{url}/{NEUTRON_VERSION}"
