"""Quotas: the personality's limits (or the admin API's), what is in use, and exhaustion.

Each API asks ``exceeded`` and raises its own error shape: Nova 403 ``forbidden``
("Quota exceeded for instances: ..."), Neutron 409 ``OverQuota``, Cinder 413
``overLimit``. The
``quota_exceeded`` fault makes a resource count as exhausted for the matching
request, whatever is really in use.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from localcloud.cloud import Cloud
from localcloud.http import take_fault


def _user_records(kind: str) -> Callable[[Cloud], int]:
    return lambda cloud: sum(1 for d in cloud.store.list_records(cloud.name, kind)
                             if not d.get("_system"))


def _servers(cloud: Cloud) -> list[dict]:
    return cloud.store.list_records(cloud.name, "server")


USAGE: dict[str, Callable[[Cloud], int]] = {
    "instances": lambda cloud: len(_servers(cloud)),
    "cores": lambda cloud: sum(s["_vcpus"] for s in _servers(cloud)),
    "ram": lambda cloud: sum(s["_ram"] for s in _servers(cloud)),
    "key_pairs": _user_records("keypair"),
    "floating_ips": _user_records("floatingip"),
    "ports": _user_records("port"),
    "networks": _user_records("network"),
    "subnets": _user_records("subnet"),
    "security_groups": _user_records("secgroup"),
    "security_group_rules": _user_records("secrule"),
    "volumes": lambda cloud: len(cloud.store.list_records(cloud.name, "volume")),
    "gigabytes": lambda cloud: sum(v["size"] for v in
                                   cloud.store.list_records(cloud.name, "volume")),
}


def limits(cloud: Cloud) -> dict[str, int]:
    """The personality's quotas with the admin API's overrides on top."""
    return dict(cloud.personality.quotas, **(cloud.store.get_meta(f"quotas:{cloud.name}") or {}))


def set_limits(cloud: Cloud, changes: dict[str, int]) -> dict[str, int]:
    unknown = set(changes) - set(cloud.personality.quotas)
    if unknown or not all(isinstance(v, int) and v >= -1 for v in changes.values()):
        raise ValueError(f"quotas are integers >= -1 for {sorted(cloud.personality.quotas)}")
    overrides = dict(cloud.store.get_meta(f"quotas:{cloud.name}") or {}, **changes)
    cloud.store.set_meta(f"quotas:{cloud.name}", overrides)
    return limits(cloud)


def usage(cloud: Cloud) -> dict[str, int]:
    return {name: count(cloud) for name, count in USAGE.items()}


def exceeded(request: web.Request, resource: str, requested: int = 1) -> tuple[int, int] | None:
    """(in use, limit) when ``requested`` more of ``resource`` would pass the quota."""
    cloud: Cloud = request.app["cloud"]
    limit = limits(cloud)[resource]
    if take_fault(request, "quota_exceeded", lambda f: f.params["resource"] == resource):
        return max(limit, 0), max(limit, 0)
    used = USAGE[resource](cloud)
    if limit >= 0 and used + requested > limit:
        return used, limit
    return None
