"""How an image gets into a cloud: a pure decision over profile and discovery."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from enum import StrEnum

from pipeline.core.errors import UploadError
from pipeline.settings.profile import DEFAULT_UPLOAD


class Mechanism(StrEnum):
    """An upload mechanism; the value is what the upload record says."""

    PUT_V1 = "glance-v1-put"            # POST /v1/images with x-image-meta-* and the data
    PUT_V2 = "glance-v2-put"            # POST /v2/images, then PUT .../file
    TASK = "swift-task-import"          # Swift object, then POST /v2/tasks type import
    GLANCE_DIRECT = "glance-direct"     # v2 interoperable import: stage, then import
    WEB_DOWNLOAD = "web-download"       # v2 interoperable import from a URL (Swift temp URL)

    @property
    def stages_in_swift(self) -> bool:
        return self in (Mechanism.TASK, Mechanism.WEB_DOWNLOAD)



def _why_not(kind: str, api_version: str, import_methods: Collection[str],
             has_object_store: bool) -> str | None:
    """None if ``kind`` can work here, else the reason it cannot."""
    if kind == "put":
        return None
    if api_version != "2":
        return f"needs Glance v2 (cloud speaks v{api_version})"
    if kind == "task":
        return None if has_object_store else "needs an object-store in the catalog"
    if kind not in import_methods:
        offered = ", ".join(import_methods) or "none"
        return f"not among the cloud's import methods ({offered})"
    if kind == "web-download" and not has_object_store:
        return "needs an object-store to serve the image from"
    return None


def choose_upload_mechanism(profile_upload_list: Sequence[str] | None, api_version: str,
                            import_methods: Collection[str],
                            has_object_store: bool) -> Mechanism:
    """The first mechanism in the profile's list this cloud can do.

    ``profile_upload_list`` is the profile's ``image.upload`` (``put``, ``task``,
    ``glance-direct``, ``web-download``; default ``[put]``); ``api_version`` the
    Glance major version chosen by discovery; ``import_methods`` what
    ``/v2/info/import`` lists; ``has_object_store`` whether the catalog has Swift.
    """
    api_version = str(api_version)
    reasons = []
    for kind in profile_upload_list or DEFAULT_UPLOAD:
        why = _why_not(kind, api_version, import_methods, has_object_store)
        if why is None:
            if kind == "put":
                return Mechanism.PUT_V1 if api_version == "1" else Mechanism.PUT_V2
            if kind == "task":
                return Mechanism.TASK
            return Mechanism(kind)
        reasons.append(f"{kind}: {why}")
    raise UploadError("no upload mechanism fits this cloud (" + "; ".join(reasons) + ")")


def sends_gzip(disk_format: str, mechanism: Mechanism,
               inflating_imports: Collection[str]) -> bool:
    """Whether the upload sends the gzip of the raw image instead of the raw file.

    Only a raw image, and only by an interoperable import through which the cloud's
    Glance inflates a gzip (its ``image_decompression`` plugin; the profile's
    ``image.raw_compressed_imports``): a PUT or an import task stores what it is sent.
    """
    return disk_format == "raw" and mechanism.value in inflating_imports


# Relative time an upload kind keeps a cloud's chain busy before the image is
# active: the passes over the image's bytes it makes (a PUT streams them once;
# glance-direct stages them, then Glance copies them into the store;
# web-download and a task import copy them into Swift, then Glance reads them
# back), and one more for a task's polling, which advances in minutes on real
# clouds.
_UPLOAD_COST = {"put": 1, "glance-direct": 2, "web-download": 2, "task": 3}


def upload_priority(profile_upload_list: Sequence[str] | None) -> int:
    """The Luigi priority of a cloud's upload and test boot: longest first.

    The scheduler raises a task's dependencies to its priority, so the local
    boot of the format whose upload takes longest runs first when boots queue
    for a slot, and its slow upload overlaps the other formats' boots.  Judged
    from the profile's first choice (discovery has not run when Luigi plans).
    """
    first = (profile_upload_list or DEFAULT_UPLOAD)[0]
    return _UPLOAD_COST.get(first, 1)
