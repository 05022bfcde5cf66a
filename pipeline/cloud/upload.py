"""Upload one converted image to one cloud: the single call ``UploadImage`` makes.

``upload_image`` picks the Glance API and the mechanism (pure decisions in
``discovery`` and ``mechanism``), skips the upload when an active image of ours
with the same name and sha256 is already there, streams the file, waits for
``active``, compares Glance's checksums with ours (or, where the cloud converted
an interoperable import, records the conversion and leaves the content to the
test boot), and returns a JSON-ready ``UploadRecord``.  Any failure (or an interrupt) deletes what the attempt made:
the half image and the staged Swift object.  Retriable errors (5xx, a reset
connection) start over from the beginning with backoff, up to a cap; a 401 on
the data request re-authenticates once; 413 and quota errors fail at once.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.cloud.arrival import (
    checksum_problem,
    converted_by_cloud,
    metadata_fields,
    recorded_conversion,
    reusable,
)
from pipeline.cloud.connection import Connection
from pipeline.cloud.discovery import ImageApi
from pipeline.cloud.glance import Glance
from pipeline.cloud.images import Image
from pipeline.cloud.marks import (
    CONVERTED_FROM,
    BuildInfo,
    awaiting_marks,
    image_properties,
    is_this_build,
)
from pipeline.cloud.mechanism import Mechanism, choose_upload_mechanism, sends_gzip
from pipeline.cloud.session import cloud_errors
from pipeline.cloud.staging import StagedObject, SwiftStaging
from pipeline.core import errors
from pipeline.core.checksums import Digests, file_digests
from pipeline.core.progress import FileBody, Progress, ProgressFactory, make_progress
from pipeline.core.waiting import iterate_timeout
from pipeline.image.convert import check_converted, compressed_payload
from pipeline.settings.clouds import Cloud
from pipeline.settings.profile import MetadataSection

LOG = logging.getLogger(__name__)

TEMP_URL_SECONDS = 6 * 3600
IMPORTS = (Mechanism.GLANCE_DIRECT, Mechanism.WEB_DOWNLOAD)   # Glance may convert these


@dataclass
class UploadRecord:
    """The output of ``UploadImage``: what arrived where, how, and what it cost."""

    cloud: str
    image_id: str
    image_name: str
    mechanism: str
    api_version: str
    disk_format: str
    checksum: str             # md5, as Glance reports it
    sha256: str
    size: int
    bytes: int                # bytes sent by the successful attempt (0: skipped)
    seconds: float
    attempts: int = 1
    skipped: bool = False
    converted_by_cloud: dict[str, Any] | None = None   # {"from", "to", "size"}
    compressed: str | None = None   # "gzip": the raw's gzip was sent, Glance inflated it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Attempt:
    """What one attempt has made so far, so a failure can remove it."""

    images: list[str] = field(default_factory=list)
    task_id: str | None = None
    staged: StagedObject | None = None


class _Upload:
    """One image to one cloud; ``run`` is ``upload_image``."""

    digests: Digests            # these three are known once ``run`` has started
    glance: Glance
    props: dict[str, str]

    def __init__(self, cloud: Cloud, path: Path, build: BuildInfo,
                 conn: Connection, progress: ProgressFactory, poll_interval: float,
                 metadata: MetadataSection | None = None, gzip: Path | None = None):
        self.cloud = cloud
        self.where = cloud.name
        self.path = path
        self.gzip = gzip
        self.sent_path = path       # the gzip instead where ``run`` decides to send it
        self.build = build
        self.conn = conn
        self.progress_factory = progress
        self.poll = poll_interval
        self.disk_format = cloud.disk_format
        self.name = build.cloud_image_name
        self.image = image = cloud.profile.image
        self.metadata = image.image_metadata(metadata)
        self.timeout = float(image.active_timeout)
        self.staging = SwiftStaging(conn, container=image.staging_container,
                                    delete_after=image.staging_delete_after)

    # --- the mechanisms: each returns the id of the image it made --------

    def _fields(self) -> dict[str, Any]:
        return {"name": self.name, "disk_format": self.disk_format,
                "container_format": self.image.container_format}

    def _v2_fields(self) -> dict[str, Any]:
        """What every v2 mechanism (tasks too) creates the image with."""
        return {**self._fields(), "visibility": self.image.visibility,
                **metadata_fields(self.metadata, "2")}

    def put_v1(self, attempt: _Attempt, progress: Progress) -> str:
        fields = {**self._fields(), "size": self.digests.size, "checksum": self.digests.md5,
                  "is_public": str(self.image.visibility == "public"),
                  **metadata_fields(self.metadata, "1")}
        with FileBody(self.sent_path, progress) as body:
            image = self.glance.create_v1(fields, self.props, body)
        attempt.images.append(image.id)
        return image.id

    def put_v2(self, attempt: _Attempt, progress: Progress) -> str:
        image = self.glance.create_v2(self._v2_fields(), self.props)
        attempt.images.append(image.id)
        with FileBody(self.sent_path, progress) as body:
            self.glance.put_file(image.id, body)
        return image.id

    def glance_direct(self, attempt: _Attempt, progress: Progress) -> str:
        image = self.glance.create_v2(self._v2_fields(), self.props)
        attempt.images.append(image.id)
        with FileBody(self.sent_path, progress) as body:
            self.glance.stage(image.id, body)
        self.glance.import_image(image.id, "glance-direct")
        return image.id

    @property
    def _sent_gzip(self) -> bool:
        return self.sent_path != self.path

    def _staged_plan(self) -> StagedObject:
        suffix = ".gz" if self._sent_gzip else ""
        return self.staging.plan(f"{self.name}.{self.disk_format}{suffix}",
                                 self.sent_path.stat().st_size)

    def _stage(self, attempt: _Attempt, progress: Progress) -> StagedObject:
        attempt.staged = self._staged_plan()
        return self.staging.upload(self.sent_path, attempt.staged, progress)

    def task(self, attempt: _Attempt, progress: Progress) -> str:
        staged = self._stage(attempt, progress)
        # Rackspace-style clouds take "container/object"; upstream Glance wants a URL.
        source = (self.staging.temp_url(staged, TEMP_URL_SECONDS)
                  if self.image.task_import_from == "temp-url"
                  else staged.import_from)
        attempt.task_id = self.glance.create_import_task(
            source, self.disk_format, self._task_image_properties())
        image_id = self.glance.wait_task(attempt.task_id, self.timeout, self.poll)
        attempt.images.append(image_id)
        return image_id

    def _task_image_properties(self) -> dict[str, Any]:
        """What the import task may carry; with ``name`` only, ``_once`` PATCHes the rest
        once the image is active (as openstacksdk's task upload does)."""
        if self.image.task_image_properties == "name":
            return {"name": self.name}
        return {**self._v2_fields(), **self.props}

    def web_download(self, attempt: _Attempt, progress: Progress) -> str:
        staged = self._stage(attempt, progress)
        url = self.staging.temp_url(staged, TEMP_URL_SECONDS)
        image = self.glance.create_v2(self._v2_fields(), self.props)
        attempt.images.append(image.id)
        self.glance.import_image(image.id, "web-download", uri=url)
        return image.id

    RUN = {Mechanism.PUT_V1: put_v1, Mechanism.PUT_V2: put_v2, Mechanism.TASK: task,
           Mechanism.GLANCE_DIRECT: glance_direct, Mechanism.WEB_DOWNLOAD: web_download}

    # --- the whole upload -------------------------------------------------

    def run(self, max_attempts: int, retry_wait: float, retry_timeout: float) -> UploadRecord:
        start = time.monotonic()
        self.digests = file_digests(self.path)
        with cloud_errors(self.where, "upload"):
            self.glance = self.conn.glance
            mechanism = self._mechanism(self.conn.image_api)
            if self.gzip is not None and sends_gzip(self.disk_format, mechanism,
                                                    self.image.raw_compressed_imports):
                self.sent_path = self.gzip
            self.props = image_properties(self.build, self.disk_format, self.digests,
                                          {**self.image.string_properties,
                                           **self.metadata.properties})
            existing = self._existing()
            if existing is not None:
                LOG.info("%s: %s already active as %s (same sha256); nothing to upload",
                         self.where, self.name, existing.id)
                if mechanism in (Mechanism.TASK, Mechanism.WEB_DOWNLOAD):
                    # A run killed while its import task ran left the staged copy behind.
                    self.staging.delete(self._staged_plan())
                return self._record(existing, mechanism, start, sent=0, attempts=0, skipped=True)
            sent_size = self.sent_path.stat().st_size
            LOG.info("%s: uploading %s (%s, %d bytes) as %s by %s", self.where,
                     self.sent_path.name, self.disk_format, sent_size, self.name,
                     mechanism.value)
            progress = self.progress_factory(sent_size, f"{self.where}: upload")
            try:
                image, attempts = self._attempts(mechanism, progress, max_attempts,
                                                 retry_wait, retry_timeout)
                sent = progress.done
            finally:
                progress.close()
            self._drop_superseded(image)
        record = self._record(image, mechanism, start, sent=sent, attempts=attempts)
        LOG.info("%s: %s active as %s in %.1f s", self.where, self.name, image.id,
                 record.seconds)
        return record

    def _mechanism(self, api: ImageApi) -> Mechanism:
        has_swift = self.conn.has_service("object-store")
        return choose_upload_mechanism(self.image.upload, api.version,
                                       api.import_methods, has_swift)

    def _attempts(self, mechanism: Mechanism, progress: Progress, max_attempts: int,
                  retry_wait: float, retry_timeout: float) -> tuple[Image, int]:
        reauthenticated = False
        for number in iterate_timeout(retry_timeout, "upload kept failing", wait=retry_wait,
                                      max_wait=max(retry_wait, 60.0), where=self.where,
                                      step="upload"):
            attempt = _Attempt()
            progress.reset()
            try:
                return self._once(mechanism, attempt, progress), number + 1
            except errors.Unauthorized as e:
                self._cleanup(attempt)
                if reauthenticated or e.step == "auth":
                    raise
                reauthenticated = True
                LOG.warning("%s: %s; re-authenticating once", self.where, e.cause)
                self.conn.session.invalidate()
            except errors.PipelineError as e:
                self._cleanup(attempt)
                if not errors.is_retriable(e) or number + 1 >= max_attempts:
                    raise
                LOG.warning("%s: %s; starting over (attempt %d of %d)", self.where, e.cause,
                            number + 2, max_attempts)
            except BaseException:
                self._cleanup(attempt)
                raise
        raise AssertionError("unreachable")

    def _once(self, mechanism: Mechanism, attempt: _Attempt, progress: Progress) -> Image:
        self._sweep()
        image_id = self.RUN[mechanism](self, attempt, progress)
        imported = mechanism in IMPORTS
        image = self.glance.wait_active(image_id, self.timeout, self.poll, imported=imported)
        converted = converted_by_cloud(image, self.disk_format, self.digests, imported)
        if converted:
            LOG.warning("%s: Glance converted image %s from %s to %s (%d bytes); the test "
                        "boot checks the content", self.where, image.id, converted["from"],
                        converted["to"], converted["size"])
        else:
            self._check_arrived(image)
        self._mark(image, {**self.props,
                           **({CONVERTED_FROM: self.disk_format} if converted else {})},
                   name_only=mechanism is Mechanism.TASK and self._name_only)
        if attempt.staged is not None:
            staged, attempt.staged = attempt.staged, None
            try:
                self.staging.delete(staged)
            except errors.PipelineError as e:   # the image is good; X-Delete-After remains
                LOG.warning("%s: staged object left to expire: %s", self.where, e)
        return image

    def _check_arrived(self, image: Image) -> None:
        problem = checksum_problem(image, self.digests)
        if problem and self._sent_gzip:
            problem += (" (we sent the gzip: is image_decompression enabled for this import "
                        "method? image.raw_compressed_imports)")
        if problem:
            raise errors.ChecksumMismatch(f"image {image.id}: {problem}", where=self.where)
        if image.disk_format != self.disk_format:
            raise errors.UploadError(f"image {image.id} arrived as {image.disk_format}, "
                                     f"not {self.disk_format}", where=self.where)

    # --- what is already there, and what to remove ------------------------

    def _ours(self) -> list[Image]:
        return [i for i in self.glance.find(self.name) if is_this_build(i, self.build)]

    @property
    def _name_only(self) -> bool:
        return self.image.task_image_properties == "name"

    def _mark(self, image: Image, props: dict[str, Any], *, name_only: bool) -> None:
        """Our marks, visibility and metadata on an active image (after a name-only import
        task, the typed fields too), then ``protected``: what makes it ours and final."""
        self.glance.set_properties(image, props, visibility=self.image.visibility)
        image.properties.update(props)
        if name_only:
            self.glance.set_fields(image, metadata_fields(self.metadata, "2"))
        if self.metadata.protected:
            self.glance.protect(image)

    def _existing(self) -> Image | None:
        for image in self._ours():
            if reusable(image, self.build, self.disk_format, self.digests):
                return image
        return self._adopt() if self._name_only else None

    def _adopt(self) -> Image | None:
        """An active image a name-only import task made for this build, with our content,
        whose run was killed before it was marked: mark it instead of uploading again."""
        for image in self.glance.find(self.name):
            if (awaiting_marks(image, self.build) and image.status == "active"
                    and image.disk_format == self.disk_format
                    and checksum_problem(image, self.digests) is None):
                LOG.info("%s: %s was imported by an interrupted run; marking it", self.where,
                         image.id)
                self._mark(image, self.props, name_only=True)
                return image
        return None

    def _sweep(self) -> None:
        """Delete our unfinished images of this name (left by an interrupted run or a stuck
        import task), those a name-only import task made before they were marked too."""
        for image in self.glance.find(self.name):
            ours = is_this_build(image, self.build) or (self._name_only
                                                         and awaiting_marks(image, self.build))
            if ours and image.status != "active":
                LOG.info("%s: deleting unfinished image %s (%s)", self.where, image.id,
                         image.status)
                self.glance.delete(image.id)

    def _drop_superseded(self, keep: Image) -> None:
        """Same build, other content (the file was rebuilt): the new image replaces it."""
        for image in self._ours():
            if image.id != keep.id:
                LOG.info("%s: deleting superseded image %s", self.where, image.id)
                self.glance.delete(image.id)

    def _cleanup(self, attempt: _Attempt) -> None:
        """Remove what a failed attempt made; never masks the failure."""
        steps = [lambda i=i: self.glance.delete(i) for i in attempt.images]
        if attempt.task_id:
            steps.append(lambda: self._delete_task_image(attempt.task_id))
        steps.append(self._sweep)
        if attempt.staged is not None:
            steps.append(lambda: self.staging.delete(attempt.staged))
        for step in steps:
            try:
                step()
            except Exception as e:  # noqa: BLE001 - cleanup must go on
                LOG.warning("%s: cleanup: %s", self.where, e)

    def _delete_task_image(self, task_id: str) -> None:
        image_id = self.glance.task_image_id(task_id)
        if image_id:
            self.glance.delete(image_id)

    def _record(self, image: Image, mechanism: Mechanism, start: float, *, sent: int,
                attempts: int, skipped: bool = False) -> UploadRecord:
        return UploadRecord(
            cloud=self.where, image_id=image.id, image_name=self.name,
            mechanism=mechanism.value, api_version=self.glance.version,
            disk_format=self.disk_format, checksum=image.checksum or self.digests.md5,
            sha256=self.digests.sha256, size=self.digests.size, bytes=sent,
            seconds=round(time.monotonic() - start, 3), attempts=attempts, skipped=skipped,
            converted_by_cloud=recorded_conversion(image, self.disk_format),
            compressed="gzip" if self._sent_gzip and not skipped else None)


def upload_image(cloud: Cloud, image_path: str | os.PathLike, build: BuildInfo, *,
                 connection: Connection | None = None,
                 progress: ProgressFactory = make_progress, poll_interval: float = 2.0,
                 max_attempts: int = 4, retry_wait: float = 2.0,
                 retry_timeout: float = 12 * 3600,
                 metadata: MetadataSection | None = None) -> UploadRecord:
    """Make ``image_path`` an active, verified Glance image in ``cloud``; idempotent.

    ``connection`` is the cloud's one ``Connection`` (made from its
    clouds.yaml entry if not given); ``metadata`` is pipeline.yaml's
    ``image.metadata``, under the vendor profile's.  Raises a ``PipelineError`` naming the
    cloud; nothing of the failed upload is left behind.
    """
    path = Path(image_path)
    if not path.is_file():
        raise errors.UploadError(f"{path}: no such image file", where=cloud.name)
    check_converted(path, cloud.disk_format, where=cloud.name, step="check before upload")
    gzip = (compressed_payload(path, where=cloud.name, step="check before upload")
            if cloud.disk_format == "raw" else None)
    upload = _Upload(cloud, path, build, connection or Connection(cloud), progress,
                     poll_interval, metadata, gzip=gzip)
    return upload.run(max_attempts, retry_wait, retry_timeout)
