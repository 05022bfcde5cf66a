"""Staging an image in Swift for a Glance import task (or web-download).

python-swiftclient's ``SwiftService`` does the transfer, with the token and
storage URL of the cloud's one keystoneauth Session (it has no retries of its
own: ``pipeline.cloud.upload`` starts over instead).  A file larger than the
cluster's ``max_file_size`` (``/info``) goes up as a static large object in
segments of that size.  Everything we write carries ``X-Delete-After``, so an
interrupted run cannot leave it forever; ``delete`` removes the object and its
segments.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import swiftclient.client
from swiftclient.exceptions import ClientException
from swiftclient.service import SwiftError, SwiftService, SwiftUploadObject
from swiftclient.utils import generate_temp_url

from pipeline.cloud.connection import Connection
from pipeline.cloud.session import cloud_errors, request_timeouts, timed_out, verify_option
from pipeline.core import errors
from pipeline.core.progress import FileReader, Progress

LOG = logging.getLogger(__name__)

# swiftclient logs the first 16 characters of a token by default; none will do.
swiftclient.client.logger_settings["reveal_sensitive_prefix"] = 0

SEGMENT_THREADS = 4
# Credentials SwiftService would otherwise pick up from OS_*/ST_* variables.
_NO_AMBIENT_AUTH = ("auth", "user", "key", "os_username", "os_user_id", "os_password",
                    "os_auth_url", "os_auth_type", "os_application_credential_id",
                    "os_application_credential_secret", "os_tenant_id", "os_tenant_name",
                    "os_project_id", "os_project_name")


def choose_segment_size(size: int, info: Mapping[str, Any]) -> int | None:
    """Segment size for ``size`` bytes under the cluster's ``/info``; None: one object.

    The segment is as large as the cluster allows (``swift.max_file_size``);
    segments need the ``slo`` middleware and at most ``max_manifest_segments``.
    """
    max_file = (info.get("swift") or {}).get("max_file_size")
    if not max_file or size <= max_file:
        return None
    if "slo" not in info:
        raise errors.UploadError(f"image ({size} bytes) exceeds Swift's max_file_size "
                                 f"({max_file}) and the cluster offers no static large objects")
    slo = info["slo"] or {}
    segment = int(max_file)
    if slo.get("min_segment_size") and segment < slo["min_segment_size"]:
        segment = int(slo["min_segment_size"])
    max_segments = slo.get("max_manifest_segments") or 1000
    if math.ceil(size / segment) > max_segments:
        raise errors.UploadError(f"image ({size} bytes) needs more than {max_segments} "
                                 f"segments of {segment} bytes")
    return segment


@dataclass
class StagedObject:
    container: str
    name: str
    size: int
    segment_container: str | None = None
    segmented: bool = False
    segments: list[str] = field(default_factory=list)

    @property
    def import_from(self) -> str:
        """The ``container/object`` a Glance import task reads."""
        return f"{self.container}/{self.name}"


class SwiftStaging:
    """Swift as the staging area of one cloud."""

    def __init__(self, conn: Connection, *, container: str, delete_after: int):
        self.session = conn.session
        self.cloud = conn.cloud.config
        self.container = container
        self.segment_container = f"{self.container}_segments"
        self.delete_after = int(delete_after)
        self.adapter = conn.object_store

    def _options(self) -> dict[str, Any]:
        with cloud_errors(self.cloud.key, "staging"):
            token = self.session.get_token()
            storage_url = self.adapter.get_endpoint()
        verify = verify_option(self.cloud)
        options: dict[str, Any] = dict.fromkeys(_NO_AMBIENT_AUTH)
        options.update({
            "os_auth_token": token, "os_storage_url": storage_url, "retries": 0,
            "timeout": request_timeouts(self.cloud),
            "insecure": verify is False, "os_cacert": verify if isinstance(verify, str) else None,
            "segment_threads": SEGMENT_THREADS, "object_uu_threads": 2,
            "object_dd_threads": SEGMENT_THREADS, "container_threads": 2,
            # Glance's checksum of the imported image is compared with ours instead.
            "checksum": False,
        })
        return options

    def service(self) -> SwiftService:
        return SwiftService(options=self._options())

    def info(self, swift: SwiftService) -> dict[str, Any]:
        """The cluster's ``/info``; empty if it has none (then: no segmenting)."""
        try:
            result = swift.capabilities()
        except (ClientException, SwiftError) as e:
            LOG.debug("%s: no Swift /info: %s", self.cloud.key, e)
            return {}
        return dict(result.get("capabilities") or {}) if result.get("success") else {}

    def plan(self, name: str, size: int) -> StagedObject:
        """Where ``name`` will be staged (known before the upload, for cleanup)."""
        return StagedObject(self.container, name, size, self.segment_container)

    def upload(self, path: str | os.PathLike, staged: StagedObject,
               progress: Progress | None = None) -> StagedObject:
        """Stage ``path`` as ``staged``; the container is created if missing."""
        size, name = staged.size, staged.name
        with self.service() as swift:
            segment_size = choose_segment_size(size, self.info(swift))
            expire = f"X-Delete-After: {self.delete_after}"
            options: dict[str, Any] = {"header": [expire], "leave_segments": True}
            if segment_size:
                staged.segmented = True
                options.update({"segment_size": segment_size, "use_slo": True,
                                "segment_container": staged.segment_container})
                source: Any = os.fspath(path)   # SwiftService reads each segment itself
                LOG.info("%s: staging %s as %d segments of %d bytes", self.cloud.key, name,
                         math.ceil(size / segment_size), segment_size)
            else:
                source = FileReader(path, progress)
                options["header"].append("Content-Type: application/octet-stream")
            try:
                results = swift.upload(self.container, [SwiftUploadObject(source, name)],
                                       options=options)
                for res in results:
                    self._follow(swift, res, staged, progress)
            finally:
                if isinstance(source, FileReader):
                    source.close()
        return staged

    def _follow(self, swift: SwiftService, res: Mapping[str, Any], staged: StagedObject,
                progress: Progress | None) -> None:
        """Act on one SwiftService result: count, expire segments, raise on failure."""
        action = res.get("action")
        if action == "create_container":
            if not res.get("success"):
                LOG.debug("%s: container PUT failed (may exist): %s", self.cloud.key,
                          res.get("error"))
            return
        if action == "upload_segment":
            location = res.get("segment_location", "")
            seg_name = location.split("/", 2)[2] if location.count("/") >= 2 else None
            if seg_name:
                staged.segments.append(seg_name)
            if not res.get("success"):
                raise swift_error(res, f"segment {res.get('segment_index')}", self.cloud.key)
            if progress is not None:
                progress.update(int(res.get("segment_size") or 0))
            if seg_name:
                self._expire(swift, staged.segment_container, seg_name)
            return
        if not res.get("success"):
            raise swift_error(res, f"object {staged.import_from}", self.cloud.key)

    def _expire(self, swift: SwiftService, container: str, name: str) -> None:
        """Segments do not get the upload's headers: give each its X-Delete-After."""
        options = {"header": [f"X-Delete-After: {self.delete_after}"]}
        for res in swift.post(container=container, objects=[name], options=options):
            if not res.get("success"):
                raise swift_error(res, f"expiry of segment {name}", self.cloud.key)

    def delete(self, staged: StagedObject) -> None:
        """Remove the object and its segments; absent ones are fine."""
        with self.service() as swift:
            names = [staged.name]
            for res in swift.delete(container=staged.container, objects=names,
                                    options={"leave_segments": False}):
                if not res.get("success") and _status(res) != 404:
                    raise swift_error(res, f"delete {staged.import_from}", self.cloud.key)
            if staged.segmented:
                leftovers = set(staged.segments) | set(self._listing(
                    swift, staged.segment_container, f"{staged.name}/"))
                if leftovers:
                    for res in swift.delete(container=staged.segment_container,
                                            objects=sorted(leftovers)):
                        if not res.get("success") and _status(res) != 404:
                            raise swift_error(res, "delete segments", self.cloud.key)
        for container in (staged.segment_container if staged.segmented else None,
                          staged.container):
            if container:
                self._drop_if_empty(container)

    def _drop_if_empty(self, container: str) -> None:
        """Remove a staging container nothing else uses; Swift refuses (409) if not empty.

        Through the object-store Adapter: SwiftService's container delete would
        first delete every object in it, someone else's staging included.
        """
        with cloud_errors(self.cloud.key, "cleanup"):
            resp = self.adapter.delete(container, raise_exc=False)
        if resp.status_code not in (204, 404, 409):
            LOG.debug("%s: keeping container %s: %s", self.cloud.key, container,
                      resp.status_code)

    def _listing(self, swift: SwiftService, container: str, prefix: str) -> Iterator[str]:
        for page in swift.list(container=container, options={"prefix": prefix}):
            if not page.get("success"):
                if _status(page) == 404:
                    return
                raise swift_error(page, f"list {container}", self.cloud.key)
            for item in page.get("listing", []):
                yield item["name"]

    def _set_temp_url_key(self) -> str:
        """Give the account a Temp-URL key (as openstacksdk does) when it has none."""
        key = secrets.token_hex(32)
        with cloud_errors(self.cloud.key, "staging"):
            resp = self.adapter.post("", headers={"X-Account-Meta-Temp-URL-Key": key},
                                     raise_exc=False)
        if resp.status_code not in (200, 202, 204):
            raise errors.UploadError(f"cannot set a temp URL key on the Swift account "
                                     f"({resp.status_code})", where=self.cloud.key,
                                     step="staging")
        return key

    def temp_url(self, staged: StagedObject, seconds: int) -> str:
        """A signed GET URL for the staged object (web-download, http task imports)."""
        with self.service() as swift:
            stat = swift.stat()
        headers = (stat.get("headers") or {}) if stat.get("success") else {}
        key = headers.get("x-account-meta-temp-url-key") or self._set_temp_url_key()
        with cloud_errors(self.cloud.key, "staging"):
            storage = urlsplit(self.adapter.get_endpoint())
        path = f"{storage.path.rstrip('/')}/{staged.container}/{staged.name}"
        signed = generate_temp_url(path, int(time.time()) + seconds, key, "GET", absolute=True)
        return f"{storage.scheme}://{storage.netloc}{signed}"


def _status(res: Mapping[str, Any]) -> int | None:
    err = res.get("error")
    status = getattr(err, "http_status", None)
    if status is None and isinstance(err, SwiftError):   # SwiftError wraps ClientException
        status = getattr(err.exception, "http_status", None)
    return status


def _swift_reason(err: Any) -> str:
    """Swift's answer in a line: its body (bytes from swiftclient), or the HTTP reason
    when the body is one of the proxy's HTML error pages."""
    body = getattr(err, "http_response_content", "") or ""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    body = body.strip()
    if not body or body.startswith("<"):
        body = str(getattr(err, "http_reason", "") or "").strip()
    return body.splitlines()[0][:200] if body else ""


def swift_error(res: Mapping[str, Any], what: str, where: str) -> errors.PipelineError:
    """The pipeline error for a failed SwiftService result (statuses via the table)."""
    err = res.get("error")
    for sub in res.get("exceptions") or []:        # a failed segmented upload names why
        err = sub[0] if isinstance(sub, tuple | list) else sub
    status = getattr(err, "http_status", None)
    if status:
        reason = _swift_reason(err)
        cause = f"Swift returned {status} for {what}" + (f" ({reason})" if reason else "")
        return errors.from_status(status, cause, where=where, step="staging")
    if isinstance(err, ClientException | SwiftError) or err is None:
        return errors.UploadError(f"Swift: {what}: {err}", where=where, step="staging")
    if timed_out(err):
        return errors.TimedOut(f"Swift: {what}: no progress within the timeout "
                               f"({type(err).__name__}: {_first_line(err)})",
                               where=where, step="staging")
    return errors.ConnectionFailed(f"Swift: {what}: {type(err).__name__}: {_first_line(err)}",
                                   where=where, step="staging")


def _first_line(err: Any) -> str:
    lines = str(err).strip().splitlines()
    return lines[0][:300] if lines else ""
