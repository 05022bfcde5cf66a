"""A vendor profile as typed sections: every default of a vendor fact lives here.

The YAML file (``config/vendors/<name>.yaml``, checked against
``schemas/vendor.schema.json``) says what differs; a key it leaves out takes
the default below, so no caller writes ``or DEFAULT`` of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_UPLOAD = ("put",)     # the mechanisms a cloud is assumed to allow


@dataclass(frozen=True)
class ImageSection:
    """``image:``: what Glance takes and how the upload goes."""

    disk_formats: list[str]
    container_format: str = "bare"
    api_version: str | None = None          # None: discovery decides
    upload: list[str] = field(default_factory=lambda: list(DEFAULT_UPLOAD))
    staging_container: str = "imagefleet-staging"
    staging_delete_after: int = 24 * 3600
    active_timeout: int = 1800
    visibility: str = "private"
    properties: dict[str, Any] = field(default_factory=dict)
    task_import_from: str = "object-path"
    task_image_properties: str = "all"      # "name": the rest is PATCHed once active


@dataclass(frozen=True)
class ComputeSection:
    """``compute:``: how a test boot is made."""

    api: str = "nova"
    flavor: str | None = None               # None: the smallest that fits
    min_ram_mb: int = 512
    min_disk_gb: int = 0
    # The image takes keys (and static networking) only from a config drive: its
    # cloud-init has the ConfigDrive and NoCloud datasources, no metadata service.
    config_drive: bool = True
    boot_timeout: int = 900


@dataclass(frozen=True)
class NetworkSection:
    """``network:``: how a test boot's server is reached from here."""

    api: str
    external: str
    floating_ip: str = "auto"
    network: str | None = None
    floating_network: str | None = None
    routable_cidrs: list[str] = field(default_factory=list)
    check_port: int = 22
    check_cidr: str | None = None           # None: the checker's own address
    security_groups: bool = False


@dataclass(frozen=True)
class RetentionSection:
    """``retention:``: ``keep`` overrides pipeline.yaml's for this vendor."""

    keep: int | None = None


@dataclass(frozen=True)
class Profile:
    """A vendor profile: the facts about a cloud that cannot be discovered.

    ``data`` is the validated YAML (overrides merge into it); the sections are
    built from it once, here.
    """

    name: str
    data: dict[str, Any]
    path: str
    image: ImageSection = field(init=False, repr=False)
    compute: ComputeSection = field(init=False, repr=False)
    network: NetworkSection = field(init=False, repr=False)
    retention: RetentionSection = field(init=False, repr=False)

    def __post_init__(self) -> None:
        data = self.data
        object.__setattr__(self, "image", ImageSection(**data["image"]))
        object.__setattr__(self, "compute", ComputeSection(**(data.get("compute") or {})))
        object.__setattr__(self, "network", NetworkSection(**data["network"]))
        object.__setattr__(self, "retention",
                           RetentionSection(**(data.get("retention") or {})))

    @property
    def disk_formats(self) -> list[str]:
        return list(self.image.disk_formats)
