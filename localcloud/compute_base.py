"""What the Nova routers share: the API's paths and links, and the flavors.

``compute`` (flavors, keypairs, quotas), ``compute_servers`` and
``compute_novanet`` import this; it imports none of them, so the routers need
no import inside a function.
"""

from __future__ import annotations

from aiohttp import web

from localcloud.cloud import Cloud

PREFIX = "/compute"
API = f"{PREFIX}/v2.1/{{project_id}}"
# id, name, RAM MiB, vCPUs, disk GiB (the long-standing default flavors)
FLAVORS = [("1", "m1.tiny", 512, 1, 1), ("2", "m1.small", 2048, 1, 20),
           ("3", "m1.medium", 4096, 2, 40), ("4", "m1.large", 8192, 4, 80),
           ("42", "m1.nano", 128, 1, 1)]


def endpoint(cloud: Cloud, project_id: str) -> str:
    return f"{cloud.base_url}{PREFIX}/v2.1/{project_id}"


def api_url(request: web.Request) -> str:
    cloud = request.app["cloud"]
    return endpoint(cloud, request.match_info.get("project_id", ""))


def link(request: web.Request, path: str) -> list[dict]:
    cloud = request.app["cloud"]
    pid = request.match_info.get("project_id", "")
    return [{"rel": "self", "href": f"{api_url(request)}/{path}"},
            {"rel": "bookmark", "href": f"{cloud.base_url}{PREFIX}/{pid}/{path}"}]


def flavor(fid: str, zero_disk: bool = False) -> dict | None:
    """``zero_disk``: the personality's ``compute.zero_disk_flavors`` (every root disk 0 GiB,
    so only volume-backed servers boot: ``compute_volumes``)."""
    for row in FLAVORS:
        if row[0] == fid:
            found = dict(zip(("id", "name", "ram", "vcpus", "disk"), row, strict=True))
            return dict(found, disk=0) if zero_disk else found
    return None
