"""One image shape whichever Glance API answered (``Image``), and the v1 header names
it is read from and written to (``pipeline.cloud.glance``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

V2_CORE = frozenset({
    "id", "name", "status", "visibility", "protected", "checksum", "os_hash_algo",
    "os_hash_value", "owner", "size", "virtual_size", "min_ram", "min_disk", "disk_format",
    "container_format", "created_at", "updated_at", "tags", "self", "file", "schema",
    "direct_url", "locations", "os_hidden", "stores", "is_public", "deleted", "deleted_at",
})
V1_META = "x-image-meta-"
V1_PROP = "x-image-meta-property-"


@dataclass
class Image:
    """A Glance image as either API reports it."""

    id: str
    name: str | None
    status: str
    disk_format: str | None = None
    container_format: str | None = None
    size: int | None = None
    checksum: str | None = None
    os_hash_algo: str | None = None
    os_hash_value: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    created_at: str | None = None
    visibility: str | None = None
    hidden: bool = False          # os_hidden (v2.7+): left out of default listings

    @classmethod
    def from_v2(cls, body: Mapping[str, Any]) -> Image:
        props = {k: str(v) for k, v in body.items() if k not in V2_CORE and v is not None}
        return cls(id=body["id"], name=body.get("name"), status=body.get("status", ""),
                   disk_format=body.get("disk_format"),
                   container_format=body.get("container_format"), size=body.get("size"),
                   checksum=body.get("checksum"), os_hash_algo=body.get("os_hash_algo"),
                   os_hash_value=body.get("os_hash_value"), properties=props,
                   created_at=body.get("created_at"), visibility=body.get("visibility"),
                   hidden=body.get("os_hidden") is True)

    @classmethod
    def from_v1(cls, body: Mapping[str, Any]) -> Image:
        props = {k: str(v) for k, v in (body.get("properties") or {}).items()}
        return cls(id=body["id"], name=body.get("name"), status=body.get("status", ""),
                   disk_format=body.get("disk_format"),
                   container_format=body.get("container_format"), size=body.get("size"),
                   checksum=body.get("checksum"), properties=props,
                   created_at=body.get("created_at"))

    @classmethod
    def from_v1_headers(cls, headers: Mapping[str, str]) -> Image:
        # Glance writes x-image-meta-disk_format; some servers write disk-format.
        meta = {k.lower()[len(V1_META):].replace("-", "_"): v for k, v in headers.items()
                if k.lower().startswith(V1_META) and not k.lower().startswith(V1_PROP)}
        props = {k.lower()[len(V1_PROP):]: v for k, v in headers.items()
                 if k.lower().startswith(V1_PROP)}
        size = meta.get("size")
        return cls(id=meta["id"], name=meta.get("name"), status=meta.get("status", ""),
                   disk_format=meta.get("disk_format"),
                   container_format=meta.get("container_format"),
                   size=int(size) if size and size.isdigit() else None,
                   checksum=meta.get("checksum"), properties=props)
