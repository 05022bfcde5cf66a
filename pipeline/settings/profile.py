"""A vendor profile as typed sections: every default of a vendor fact lives here.

The YAML file (``config/vendors/<name>.yaml``, checked against
``schemas/vendor.schema.json``) says what differs; a key it leaves out takes
the default below, so no caller writes ``or DEFAULT`` of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_UPLOAD = ("put",)     # the mechanisms a cloud is assumed to allow


CLOUD_KERNEL = "linux-image-cloud-amd64"
KERNEL_VARIABLE = "DIB_IMAGEFLEET_KERNEL"     # elements/imagefleet-base reads it

TYPED = ("min_disk", "min_ram", "protected", "tags")     # Glance attributes with JSON types


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _flag(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).lower() in ("true", "1", "yes", "on")


@dataclass(frozen=True)
class MetadataSection:
    """``image.metadata``: what users filter and schedule on, kept with Glance's types.

    ``None`` (and no tags, no properties) sends nothing: today's images are unchanged.
    ``properties`` are the string ones (``os_distro``, ``os_version``, ``hw_*``).
    """

    min_disk: int | None = None
    min_ram: int | None = None
    protected: bool | None = None
    tags: tuple[str, ...] = ()
    properties: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> MetadataSection:
        data = dict(data or {})
        return cls(
            min_disk=int(data["min_disk"]) if "min_disk" in data else None,
            min_ram=int(data["min_ram"]) if "min_ram" in data else None,
            protected=_flag(data["protected"]) if "protected" in data else None,
            tags=tuple(data.get("tags") or ()),
            properties={k: _text(v) for k, v in data.items() if k not in TYPED})

    def over(self, base: MetadataSection) -> MetadataSection:
        """This section's keys over ``base``'s (a vendor profile over pipeline.yaml)."""
        def pick(mine, theirs):
            return theirs if mine is None else mine
        return MetadataSection(
            min_disk=pick(self.min_disk, base.min_disk), min_ram=pick(self.min_ram, base.min_ram),
            protected=pick(self.protected, base.protected), tags=self.tags or base.tags,
            properties={**base.properties, **self.properties})


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
    metadata: dict[str, Any] = field(default_factory=dict)
    # A qcow2 with compressed clusters is a third of the bytes; qemu (so Nova's
    # libvirt driver) reads it.  False for a cloud whose tooling cannot.
    qcow2_compressed: bool = True
    # The interoperable import methods through which this cloud's Glance inflates a
    # gzip with its image_decompression plugin: a raw cloud whose upload goes by one
    # of them is sent the gzip of the raw image.  Empty: the raw file itself.
    raw_compressed_imports: list[str] = field(default_factory=list)
    rename: bool = True      # False: the stable name is a property, names never change

    def image_metadata(self, base: MetadataSection | None = None) -> MetadataSection:
        """This vendor's metadata over pipeline.yaml's ``base``.

        A typed key written under ``properties`` (``min_disk: 2``) counts as metadata:
        sent as a string it would get Glance v2's 400.
        """
        typed = {k: v for k, v in self.properties.items() if k in TYPED}
        mine = MetadataSection.from_dict({**typed, **self.metadata})
        return mine.over(base or MetadataSection())

    @property
    def string_properties(self) -> dict[str, Any]:
        """``properties`` without the typed keys ``image_metadata`` takes."""
        return {k: v for k, v in self.properties.items() if k not in TYPED}


@dataclass(frozen=True)
class ComputeSection:
    """``compute:``: how a test boot is made."""

    api: str = "nova"
    flavor: str | None = None               # None: the smallest that fits
    min_ram_mb: int = 512
    min_disk_gb: int = 0
    # Ask for a config drive on test boots: only where the cloud needs one (no
    # metadata service, or static networking from it). Elsewhere the image's
    # cloud-init reads the metadata service, as an ordinary boot there would.
    config_drive: bool = False
    boot_timeout: int = 900
    # The hypervisor's devices (virtio, Xen PV, vmxnet3, ENA, Hyper-V) are ones
    # Debian's cloud kernel drives; false for a cloud of emulated e1000/rtl8139 NICs.
    cloud_kernel: bool = True
    # The test boot's key: ed25519; auto falls back to RSA where Nova refuses it
    # ("Keypair data is invalid": older releases); rsa offers only RSA.
    key_type: str = "auto"
    # Boot the test server from a volume made from the image (Cinder): "auto" when
    # every usable flavor has a zero root disk (Nova boots no image-backed server
    # then), "always", or "never" (pipeline/cloud/volumes.py needs_volume).
    boot_from_volume: str = "auto"


@dataclass(frozen=True)
class NetworkSection:
    """``network:``: how a test boot's server is reached from here."""

    api: str
    external: str
    floating_ip: str = "auto"
    network: str | None = None              # the network to boot on (neutron, nova-network)
    floating_network: str | None = None     # external network (neutron) / pool (nova-network)
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


def kernel_refusal(environment: dict[str, str], profile: Profile) -> str | None:
    """Why this profile's clouds cannot boot the image's kernel, or None (pure).

    The kernel is chosen once for the one image (``image.environment`` in
    pipeline.yaml); a profile whose hypervisor the cloud kernel does not drive
    refuses it here, before anything is built.
    """
    if environment.get(KERNEL_VARIABLE) == CLOUD_KERNEL and not profile.compute.cloud_kernel:
        return (f"profile {profile.name} says compute.cloud_kernel: false, but "
                f"{KERNEL_VARIABLE} is {CLOUD_KERNEL}; set it to linux-image-amd64")
    return None
