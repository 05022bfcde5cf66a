"""Glance v1, v2, tasks and interoperable import, one call per method.

Each call goes through the cloud's image Adapter (relative paths only), turns
a failed status into the pipeline's error (``session.Api``) and an
image into one ``Image`` shape whichever API version answered.  Requests that
carry the image data are sent once: no keystoneauth re-auth or retry, since
the stream cannot be replayed; ``pipeline.cloud.upload`` starts over instead.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from pipeline.cloud.discovery import ImageApi
from pipeline.cloud.images import V1_META, V1_PROP, Image
from pipeline.cloud.session import Api
from pipeline.core import errors
from pipeline.core.waiting import iterate_timeout

LOG = logging.getLogger(__name__)

OCTET = {"Content-Type": "application/octet-stream"}
JSON_PATCH = {"Content-Type": "application/openstack-images-v2.1-json-patch"}
WAITING = frozenset({"queued", "saving", "importing", "uploading"})
FAILED = frozenset({"killed", "deleted", "pending_delete", "deactivated"})
PAGE = 200                    # images asked per listing page (the cloud may cap it lower)
HIDDEN_SINCE = 7              # os_hidden exists from Image API v2.7
IMAGE_TASKS_SINCE = 12        # GET /v2/images/{id}/tasks exists from Image API v2.12
IMPORTING = "os_glance_importing_to_stores"
FAILED_IMPORT = "os_glance_failed_import"
IMPORT_LOCK = "os_glance_import_task"   # held by an import flow until it has ended
LOCK_GRACE = 60.0             # seconds an active image may keep the lock before we go on
TASK_GRACE = 15.0             # seconds a reverted import's task may take to say why


class Glance(Api):
    """The image service of one cloud, at the API version discovery chose."""

    default_step = "upload"

    def __init__(self, api: ImageApi, where: str):
        super().__init__(api.adapter, where)
        self.api = api
        self.version = api.version
        self.service = f"Glance v{api.version}"

    # --- plumbing ---------------------------------------------------------

    def _send_data(self, method: str, url: str, body: Any, **kwargs: Any) -> Any:
        """A request carrying the image: sent once (no re-auth, no retry)."""
        headers = {**OCTET, **kwargs.pop("headers", {})}
        return self.call(method, url, data=body, headers=headers, allow_reauth=False,
                         connect_retries=0, **kwargs)

    # --- images -----------------------------------------------------------

    def find(self, name: str) -> list[Image]:
        """Images called ``name`` that this project can see."""
        if self.version == "1":
            body = self.call("GET", "images/detail", params={"name": name}).json()
            images = [Image.from_v1(i) for i in body.get("images", [])]
        else:
            body = self.call("GET", "images", params={"name": name}).json()
            images = [Image.from_v2(i) for i in body.get("images", [])]
        return [i for i in images if i.name == name]

    def list_all(self, step: str = "retention", hidden: bool = False) -> list[Image]:
        """Every image this project can see, page by page (v2 ``next`` links, v1 markers).

        ``hidden``: the hidden ones too, where the API has them (Glance lists them only
        when asked, ``os_hidden=true``, and then only them)."""
        if self.version == "1":
            return self._list_v1(step)
        images = self._list_v2(step, {"limit": PAGE})
        if hidden and self.hides:
            images += self._list_v2(step, {"limit": PAGE, "os_hidden": "true"})
        return images

    def _list_v2(self, step: str, params: dict[str, Any]) -> list[Image]:
        images: list[Image] = []
        url: str | None = "images"
        while url:
            body = self.call("GET", url, params=params, step=step).json()
            images += [Image.from_v2(i) for i in body.get("images", [])]
            nxt = body.get("next")
            url, params = (nxt.split("/v2/", 1)[-1].lstrip("/") if nxt else None), None
        return images

    def _list_v1(self, step: str) -> list[Image]:
        """v1 has no ``next`` link: ask again after the last id while pages come back full.

        Glance caps ``limit`` at its ``api_limit_max``, so "full" is the first page's size.
        """
        images: list[Image] = []
        params: dict[str, Any] = {"limit": PAGE}
        full = None
        while True:
            body = self.call("GET", "images/detail", params=params, step=step).json()
            page = [Image.from_v1(i) for i in body.get("images", [])]
            images += page
            full = full or len(page)
            if not page or len(page) < full:
                return images
            params = {"limit": PAGE, "marker": page[-1].id}

    @property
    def hides(self) -> bool:
        """Whether images can be hidden from listings (``os_hidden``, Image API v2.7+)."""
        return self.version == "2" and (self.api.minor or 0) >= HIDDEN_SINCE

    def hide(self, image: Image) -> None:
        """Keep an image out of default listings, so it stops being chosen by name."""
        patch = [{"op": "replace", "path": "/os_hidden", "value": True}]
        self.call("PATCH", f"images/{image.id}", json=patch, headers=JSON_PATCH,
                  step="retention")

    def protect(self, image: Image) -> None:
        """Make an image undeletable (``protected``), once it is good."""
        if self.version == "1":
            self.call("PUT", f"images/{image.id}", headers={
                f"{V1_META}protected": "True", "x-glance-registry-purge-props": "false"})
            return
        patch = [{"op": "replace", "path": "/protected", "value": True}]
        self.call("PATCH", f"images/{image.id}", json=patch, headers=JSON_PATCH)

    def rename(self, image: Image, name: str, step: str = "promote") -> None:
        """Give an image another name (v2 JSON patch, v1 ``x-image-meta-name``)."""
        if self.version == "1":
            self.call("PUT", f"images/{image.id}", step=step, headers={
                f"{V1_META}name": name, "x-glance-registry-purge-props": "false"})
        else:
            self.call("PATCH", f"images/{image.id}", headers=JSON_PATCH, step=step,
                      json=[{"op": "replace", "path": "/name", "value": name}])
        image.name = name

    def get(self, image_id: str) -> Image:
        if self.version == "1":
            resp = self.call("HEAD", f"images/{image_id}")
            return Image.from_v1_headers(resp.headers)
        return Image.from_v2(self.call("GET", f"images/{image_id}").json())

    def delete(self, image_id: str) -> bool:
        """Delete an image; False if it was already gone."""
        resp = self.call("DELETE", f"images/{image_id}", ok=(404,), step="cleanup")
        return resp.status_code != 404

    def create_v1(self, fields: Mapping[str, Any], properties: Mapping[str, str],
                  body: Any) -> Image:
        """Glance v1: one POST with ``x-image-meta-*`` headers and the data.

        Header names use dashes (Glance reads ``-`` as ``_``; proxies such as nginx
        drop header names with underscores).
        """
        headers = {f"{V1_META}{k.replace('_', '-')}": str(v) for k, v in fields.items()
                   if v is not None}
        headers.update({f"{V1_PROP}{k}": str(v) for k, v in properties.items()})
        resp = self._send_data("POST", "images", body, headers=headers)
        return Image.from_v1(resp.json()["image"])

    def create_v2(self, fields: Mapping[str, Any], properties: Mapping[str, str]) -> Image:
        """Glance v2: the image record, still ``queued``; ``fields`` keep their JSON types
        (``min_disk`` integer, ``tags`` array), extra properties are strings."""
        body = {k: v for k, v in fields.items() if v is not None}
        body.update({k: str(v) for k, v in properties.items()})
        return Image.from_v2(self.call("POST", "images", json=body).json())

    def put_file(self, image_id: str, body: Any) -> None:
        self._send_data("PUT", f"images/{image_id}/file", body)

    def stage(self, image_id: str, body: Any) -> None:
        """Interoperable import, step one: the data into the staging area."""
        self._send_data("PUT", f"images/{image_id}/stage", body)

    def import_image(self, image_id: str, method: str, uri: str | None = None) -> None:
        """Interoperable import, step two: ask Glance to import by ``method``."""
        spec: dict[str, Any] = {"name": method}
        if uri:
            spec["uri"] = uri
        self.call("POST", f"images/{image_id}/import", json={"method": spec})

    def set_properties(self, image: Image, properties: Mapping[str, str],
                       visibility: str | None = None) -> None:
        """Add or replace properties (v2 JSON patch, v1 property headers), and on v2
        the visibility (what an import task that takes only a name could not set)."""
        missing = {k: str(v) for k, v in properties.items() if image.properties.get(k) != str(v)}
        patch = []
        if self.version != "1" and visibility and image.visibility not in (None, visibility):
            patch.append({"op": "replace", "path": "/visibility", "value": visibility})
        if not missing and not patch:
            return
        if self.version == "1":
            # v1 replaces every property with those sent (purge-props defaults to true):
            # send them all, and ask it not to purge.
            merged = {**{k: str(v) for k, v in image.properties.items()}, **missing}
            headers = {f"{V1_PROP}{k}": v for k, v in merged.items()}
            self.call("PUT", f"images/{image.id}",
                      headers={**headers, "x-glance-registry-purge-props": "false"})
            return
        patch += [{"op": "add", "path": f"/{k}", "value": v} for k, v in missing.items()]
        self.call("PATCH", f"images/{image.id}", json=patch, headers=JSON_PATCH)

    def set_fields(self, image: Image, fields: Mapping[str, Any]) -> None:
        """Replace typed v2 fields (``min_disk``, ``min_ram``, ``tags``) with their JSON
        types: what an import task that takes only a name could not set."""
        if fields:
            self.call("PATCH", f"images/{image.id}", headers=JSON_PATCH,
                      json=[{"op": "replace", "path": f"/{k}", "value": v}
                            for k, v in fields.items()])

    def wait_active(self, image_id: str, timeout: float, poll: float,
                    imported: bool = False) -> Image:
        """Poll until ``active``; ``killed`` and failed imports fail with what Glance says.

        ``imported``: an interoperable import was accepted, so ``queued`` with no store
        still importing means it failed (single-store Glance says so only in the task list)
        unless the import's flow has not begun yet (a web-download image stays ``queued``
        until its task runs), and ``active`` counts once the flow has dropped its lock (``IMPORT_LOCK``): its last
        image save replaces every property, so what we set before would be lost.
        """
        status = "unknown"
        active_since = None
        try:
            for _ in iterate_timeout(timeout, "image not active", wait=poll):
                try:
                    image = self.get(image_id)
                except errors.Retriable as e:     # a poll may fail; the wait goes on
                    LOG.debug("%s: polling image %s: %s", self.where, image_id, e)
                    continue
                status = image.status
                if status == "active":
                    if not (imported and image.properties.get(IMPORT_LOCK)):
                        return image
                    active_since = active_since or time.monotonic()
                    if time.monotonic() - active_since > LOCK_GRACE:
                        LOG.warning("%s: image %s still holds its import lock %g s after "
                                    "going active; going on", self.where, image_id,
                                    LOCK_GRACE)
                        return image
                    continue
                failed = image.properties.get(FAILED_IMPORT)
                reverted = (imported and status == "queued"
                            and not image.properties.get(IMPORTING))
                if failed or reverted:
                    error = self._import_failed(image_id, failed, poll)
                    if error is not None:
                        raise error
                if status in FAILED or status not in WAITING:
                    raise errors.UploadError(f"{self.service} image {image_id} went to "
                                             f"{status}", where=self.where)
        except errors.WaitTimeout as e:
            raise errors.WaitTimeout(f"{self.service} image {image_id} still {status} after "
                                     f"{timeout:g} s", where=self.where, step="upload") from e
        raise AssertionError("unreachable")

    def _import_failed(self, image_id: str, stores: str | None,
                       poll: float) -> errors.UploadError | None:
        """One line for a failed import: Glance's own message, from the image's task list.

        Glance reverts the image before it marks the task failed, so a task still running
        is given ``TASK_GRACE`` seconds to say why.  None: no store failed and the image
        left ``queued`` meanwhile (the flow had not begun when we looked)."""
        where = f" in {stores}" if stores else ""
        message = None
        with contextlib.suppress(errors.WaitTimeout):
            for _ in iterate_timeout(TASK_GRACE, "import task to end", wait=poll):
                message, running = self.import_task_failure(image_id)
                if message is not None or not running:
                    break
        if message is None and not stores and self._import_went_on(image_id):
            return None
        if message is None:
            message = "no reason given" + (
                "" if self.api.minor is None or self.api.minor >= IMAGE_TASKS_SINCE else
                f" (no image task list before Image API v2.{IMAGE_TASKS_SINCE})")
        return errors.UploadError(f"{self.service} import of image {image_id} failed{where}: "
                                  f"{message}", where=self.where)

    def _import_went_on(self, image_id: str) -> bool:
        """The image is past ``queued`` now, or a store is importing it."""
        try:
            image = self.get(image_id)
        except errors.Retriable:
            return False
        return image.status != "queued" or bool(image.properties.get(IMPORTING))

    def import_task_failure(self, image_id: str) -> tuple[str | None, bool]:
        """The message of the image's newest failed task (Image API v2.12+), if any, and
        whether a task of the image is still pending or processing."""
        if self.api.minor is not None and self.api.minor < IMAGE_TASKS_SINCE:
            return None, False
        try:
            resp = self.call("GET", f"images/{image_id}/tasks", ok=(404,))
        except errors.PipelineError as e:     # the reason is a bonus; the failure stands
            LOG.debug("%s: task list of image %s: %s", self.where, image_id, e)
            return None, False
        if resp.status_code == 404:
            return None, False
        tasks = sorted(resp.json().get("tasks") or [], key=lambda t: t.get("created_at") or "",
                       reverse=True)
        running = any(t.get("status") in ("pending", "processing") for t in tasks)
        return next((t.get("message") or "no message" for t in tasks
                     if t.get("status") == "failure"), None), running

    # --- tasks ------------------------------------------------------------

    def create_import_task(self, import_from: str, disk_format: str,
                           image_properties: Mapping[str, Any]) -> str:
        """POST /v2/tasks type import; returns the task id."""
        body = {"type": "import", "input": {"import_from": import_from,
                                            "import_from_format": disk_format,
                                            "image_properties": dict(image_properties)}}
        return self.call("POST", "tasks", json=body).json()["id"]

    def wait_task(self, task_id: str, timeout: float, poll: float) -> str:
        """Poll an import task to success; returns the image id it made."""
        status = "unknown"
        try:
            for _ in iterate_timeout(timeout, "task not done", wait=poll):
                try:
                    task = self.call("GET", f"tasks/{task_id}").json()
                except errors.Retriable as e:
                    LOG.debug("%s: polling task %s: %s", self.where, task_id, e)
                    continue
                status = task.get("status", "")
                if status == "success":
                    image_id = (task.get("result") or {}).get("image_id")
                    if not image_id:
                        raise errors.UploadError(f"import task {task_id} succeeded without "
                                                 "an image id", where=self.where)
                    return image_id
                if status == "failure":
                    message = task.get("message") or "no message"
                    raise errors.UploadError(f"import task {task_id} failed: {message}",
                                             where=self.where)
        except errors.WaitTimeout as e:
            raise errors.WaitTimeout(f"import task {task_id} still {status} after "
                                     f"{timeout:g} s", where=self.where, step="upload") from e
        raise AssertionError("unreachable")

    def task_image_id(self, task_id: str) -> str | None:
        """The image a task made, if any (to clean up after a failed task)."""
        try:
            task = self.call("GET", f"tasks/{task_id}", step="cleanup").json()
        except errors.PipelineError:
            return None
        return (task.get("result") or {}).get("image_id")
