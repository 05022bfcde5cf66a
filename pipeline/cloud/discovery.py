"""Which Glance API to talk to, and where.

keystoneauth1 does the discovery (``get_all_version_data``, an Adapter with
``min_version``/``max_version``): it reads the version list at an unversioned
endpoint's root and copes with a catalog that lists only a versioned endpoint.
What clouds in the wild still need on top of that (the fall-backs the talks
describe) is decided by the pure ``choose_image_api``: a profile pin wins, then
what discovery found (newest supported first), then the version at the end of
the catalog URL, and with nothing to go on, try v2, then v1.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import keystoneauth1.exceptions as ksa_exc
from keystoneauth1 import adapter as ksa_adapter
from keystoneauth1 import session as ksa_session

from pipeline.cloud.session import adapter, cloud_errors, response_error
from pipeline.core import errors
from pipeline.settings.clouds import CloudConfig

LOG = logging.getLogger(__name__)

SUPPORTED_MAJORS = ("2", "1")          # newest first: the order to try them in
_URL_VERSION = re.compile(r"/v(\d+)(?:\.\d+)?/?$")
_DEPRECATED = ("DEPRECATED", "DELETED")


def version_from_url(url: str | None) -> str | None:
    """The major version a catalog URL ends with (``.../v2``, ``.../v1.1/``), if any."""
    match = _URL_VERSION.search(url or "")
    return match.group(1) if match else None


def _major(entry: Any) -> tuple[str | None, str]:
    """(major, status) of a discovered version: a VersionData/dict, a string or a tuple."""
    status = "CURRENT"
    if isinstance(entry, Mapping):
        status = str(entry.get("status") or entry.get("raw_status") or "CURRENT").upper()
        entry = entry.get("version")
    if entry is None:
        return None, status
    if isinstance(entry, tuple | list):
        return (str(int(entry[0])) if entry else None), status
    text = str(entry).lstrip("vV")
    head = text.split(".")[0]
    return (head if head.isdigit() else None), status


def choose_image_api(pin: str | None, discovered_versions: Iterable[Any],
                     endpoint_url: str | None) -> list[str]:
    """The Glance major versions to try, in order.

    ``pin`` is the profile's (or clouds.yaml's) ``api_version``;
    ``discovered_versions`` what keystoneauth's discovery returned (VersionData,
    ``{"version", "status"}`` dicts or version strings; unknown is ``None``);
    ``endpoint_url`` the catalog URL.
    """
    if pin is not None:
        pin = str(pin).lstrip("vV").split(".")[0]
        if pin not in SUPPORTED_MAJORS:
            raise errors.EndpointNotFound(
                f"image API version {pin} is not supported (supported: "
                f"{', '.join(sorted(SUPPORTED_MAJORS))})")
        return [pin]
    current: list[str] = []
    deprecated: list[str] = []
    for entry in discovered_versions:
        major, status = _major(entry)
        if major not in SUPPORTED_MAJORS:
            continue
        bucket = deprecated if status in _DEPRECATED else current
        if major not in bucket:
            bucket.append(major)
    found = sorted(current, key=SUPPORTED_MAJORS.index)
    found += sorted((m for m in deprecated if m not in found), key=SUPPORTED_MAJORS.index)
    if found:
        return found
    suffix = version_from_url(endpoint_url)
    if suffix in SUPPORTED_MAJORS:
        return [suffix]
    return list(SUPPORTED_MAJORS)


@dataclass
class ImageApi:
    """The Glance API chosen for one cloud: version, its Adapter and what it offers."""

    version: str
    adapter: ksa_adapter.Adapter = field(repr=False)
    endpoint: str
    import_methods: tuple[str, ...] = ()
    discovered: tuple[str, ...] = ()
    minor: int | None = None        # the newest vN.minor discovery showed (None: unknown)


def newest_minor(discovered_versions: Iterable[Any], major: str) -> int | None:
    """The highest minor version discovery lists for ``major`` (v2.9 -> 9), if any."""
    minors = []
    for entry in discovered_versions:
        if _major(entry)[0] != major:
            continue
        version = entry.get("version") if isinstance(entry, Mapping) else entry
        if isinstance(version, tuple | list):
            parts = [str(p) for p in version[1:2]]
        else:
            parts = str(version).lstrip("vV").split(".")[1:2]
        if parts and parts[0].isdigit():
            minors.append(int(parts[0]))
    return max(minors) if minors else None


def discovered_versions(session: ksa_session.Session, cloud: CloudConfig) -> list[Any]:
    """keystoneauth's version data for the cloud's image endpoint (empty if none)."""
    try:
        data = session.get_all_version_data(service_type="image", interface=cloud.interface,
                                            region_name=cloud.region_name)
    except ksa_exc.DiscoveryFailure as e:
        LOG.debug("%s: image version discovery failed: %s", cloud.key, e)
        return []
    found: list[Any] = []
    for interfaces in data.values():
        for services in interfaces.values():
            found.extend(services.get("image", []))
    return found


def discover_image_api(session: ksa_session.Session, cloud: CloudConfig,
                       pin: str | None = None) -> ImageApi:
    """Find the Glance API to use: discovery, then the fall-backs, each probed once."""
    with cloud_errors(cloud.key, "discovery"):
        catalog_url = session.get_endpoint(service_type="image", interface=cloud.interface,
                                           region_name=cloud.region_name, skip_discovery=True)
        override = cloud.cloud_region().get_endpoint("image")
        found = [] if override else discovered_versions(session, cloud)
        candidates = choose_image_api(pin, found, override or catalog_url)
        seen = tuple(sorted({m for m in (_major(v)[0] for v in found) if m}))
        LOG.debug("%s: image API candidates %s (discovered %s, catalog %s)",
                  cloud.key, candidates, seen or "nothing", catalog_url)
        tried = []
        for major in candidates:
            image = _versioned_adapter(session, cloud, major, override or catalog_url)
            if image is None:
                tried.append(f"v{major}: not offered")
                continue
            ad, url = image
            resp = ad.get("images", params={"limit": 1}, raise_exc=False)
            if resp.status_code < 300:
                methods = _import_methods(ad) if major == "2" else ()
                LOG.info("%s: Glance v%s at %s%s", cloud.key, major, url,
                         f" (import methods: {', '.join(methods)})" if methods else "")
                return ImageApi(version=major, adapter=ad, endpoint=url,
                                import_methods=methods, discovered=seen,
                                minor=newest_minor(found, major))
            if resp.status_code in (401, 403) or resp.status_code >= 500:
                raise response_error(resp, f"Glance v{major}", where=cloud.key,
                                     step="discovery")
            tried.append(f"v{major}: {resp.status_code} at {url}")
    raise errors.EndpointNotFound("no usable image API (" + "; ".join(tried) + ")",
                                  where=cloud.key)


def _versioned_adapter(session: ksa_session.Session, cloud: CloudConfig, major: str,
                       catalog_url: str) -> tuple[ksa_adapter.Adapter, str] | None:
    """An Adapter bound to Glance ``v{major}``: through discovery if it can, else by URL."""
    ad = adapter(session, cloud, "image", min_version=major, max_version=f"{major}.latest")
    try:
        data = ad.get_endpoint_data()
    except ksa_exc.DiscoveryFailure:
        data = None
    if data is not None and data.api_version and str(data.api_version[0]) == major:
        return ad, data.url
    # The talks' fall-back: discovery said nothing usable, so the catalog URL is
    # the only authority; use its version suffix, or append the major we try.
    url = guess_versioned_url(catalog_url, major)
    if url is None:
        return None
    return adapter(session, cloud, "image", endpoint_override=url), url


def guess_versioned_url(catalog_url: str, major: str) -> str | None:
    """``catalog_url`` as Glance ``v{major}``: kept if it says so, else root + ``/v{major}``."""
    suffix = version_from_url(catalog_url)
    if suffix == major:
        return catalog_url.rstrip("/")
    if suffix is not None:
        return None
    return catalog_url.rstrip("/") + f"/v{major}"


def _import_methods(ad: ksa_adapter.Adapter) -> tuple[str, ...]:
    """Glance v2's interoperable import methods (``GET /v2/info/import``); none if absent."""
    resp = ad.get("info/import", raise_exc=False)
    if resp.status_code != 200:
        return ()
    try:
        value = resp.json().get("import-methods", {}).get("value", [])
    except (ValueError, AttributeError):
        return ()
    return tuple(str(m) for m in value) if isinstance(value, Sequence) else ()
