"""Nova's microversions: the range a cloud serves, the version a request asks, what changes.

A personality's ``compute.max_microversion`` is the newest version its Nova
serves (``2.1``: no microversion past the v2.1 base, the clouds of the
talks).  As in Nova (``nova/api/openstack/wsgi.py``
``Request.set_api_version_request``, ``nova/api/openstack/api_version_request.py``):

* the version comes from ``OpenStack-API-Version: compute X`` or, failing
  that, the legacy ``X-OpenStack-Nova-API-Version: X``; none means 2.1 and
  ``latest`` the maximum;
* a malformed version is a 400, one outside the range a 406;
* the answer names the version it was served at (both headers, and ``Vary``);
* from 2.36 the proxies to nova-network, Neutron and Glance answer 404
  (``MAX_PROXY_API_SUPPORT_VERSION = '2.35'``); from 2.37 a server create
  must say ``networks`` (``schemas/servers.py`` ``create_v237``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from localcloud.http import REQUEST_CHECKS, HTTPFault

HEADER = "OpenStack-API-Version"
LEGACY_HEADER = "X-OpenStack-Nova-API-Version"
MIN = (2, 1)
LAST_PROXY = (2, 35)           # the proxy APIs answer up to here
NETWORKS_REQUIRED = (2, 37)    # server create needs "networks" from here
KEYPAIR_TYPE = (2, 2)          # keypairs show their type; create 201, delete 204
_FORMAT = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")

Version = tuple[int, int]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def text(version: Version) -> str:
    return f"{version[0]}.{version[1]}"


def parse(value: str) -> Version:
    match = _FORMAT.match(value.strip())
    if not match:
        raise HTTPFault(400, f"API Version String {value} is of invalid format. Must be of "
                             "format MajorNum.MinorNum.")
    return int(match.group(1)), int(match.group(2))


def served(cloud) -> Version:
    """The newest microversion the cloud's Nova serves."""
    return parse(str(cloud.personality.compute["max_microversion"]))


def asked(headers) -> str | None:
    """The version string a request asks for (microversion_parse's order), or None."""
    for value in headers.getall(HEADER, []):
        for part in value.split(","):
            service, _, version = part.strip().partition(" ")
            if service.lower() == "compute" and version.strip():
                return version.strip()
    legacy = headers.get(LEGACY_HEADER)
    return legacy.strip() if legacy else None


def check(request: web.Request) -> None:
    """Set ``request["compute_version"]``, or refuse the request as Nova would."""
    highest = served(request.app["cloud"])
    value = asked(request.headers)
    if value is None:
        version = MIN
    elif value.lower() == "latest":
        version = highest
    else:
        version = parse(value)
        if not MIN <= version <= highest:
            raise HTTPFault(406, f"Version {text(version)} is not supported by the API. "
                                 f"Minimum is {text(MIN)} and maximum is {text(highest)}.")
    request["compute_version"] = version


def of(request: web.Request) -> Version:
    return request.get("compute_version", MIN)


def until(last: Version, handler: Handler) -> Handler:
    """``handler`` up to microversion ``last``; after it the method is gone: a bare 404."""
    async def versioned(request: web.Request) -> web.StreamResponse:
        if of(request) > last:
            raise HTTPFault(404, "The resource could not be found.")
        return await handler(request)
    return versioned


async def version_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every compute answer names the version it was served at."""
    version = request.get("compute_version")
    if version is not None:
        response.headers[HEADER] = f"compute {text(version)}"
        response.headers[LEGACY_HEADER] = text(version)
        response.headers["Vary"] = f"{HEADER}, {LEGACY_HEADER}"


REQUEST_CHECKS["compute"] = check
