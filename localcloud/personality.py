"""A personality is a vendor shape as data: capability flags the services ask.

Code reads flags (``image_api``, ``upload``, ``catalog``...), never a vendor's
name; a new vendor is a new YAML file validated against ``SCHEMA``. Where a flag
names a fact the pipeline's vendor profile (``config/vendors/``) also states, it
uses the profile's word for it: ``upload: [put]``, ``compute.config_drive: true``,
``network.api``/``external``/``security_groups``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

PERSONALITY_DIR = Path(__file__).parent / "personalities"

# Upload mechanisms, in the vendor profiles' words: ``put`` is the direct upload of
# each image API served (v1 POST or PUT with the data, v2 PUT .../file); the
# others exist only in Glance v2.
UPLOADS = ("put", "task", "glance-direct")
UPLOAD_NEEDS_API = {"task": "v2", "glance-direct": "v2"}

# How a server gets the address the outside reaches it by (the talks' five shapes):
#   public            a fixed address on a network named "public" (no neutron API)
#   floating          a private fixed address; a floating IP must be associated
#   external-network  a fixed address on a router:external network; tenant networks optional
#   routable-port     a fixed address on a provider network that routes externally
EXTERNAL_SHAPES = {"public", "floating", "external-network", "routable-port"}
QUOTA_DEFAULTS = {"instances": 10, "cores": 20, "ram": 51200, "key_pairs": 100,
                  "floating_ips": 10, "ports": 50, "networks": 10, "subnets": 10,
                  "security_groups": 10, "security_group_rules": 100, "volumes": 10,
                  "gigabytes": 1000}
# max_microversion: the newest Nova microversion served ("2.1": none past the v2.1 base);
# ed25519_keys false: Nova refuses ed25519 public keys (400 "Keypair data is invalid");
# zero_disk_flavors: every flavor's root disk is 0 GiB (volume-backed servers only)
DEFAULT_COMPUTE = {"config_drive": False, "metadata_service": True, "max_microversion": "2.1",
                   "ed25519_keys": True, "zero_disk_flavors": False}
# project_networks: more networks the project sees, each one a server may boot on;
# version_document false: Neutron's version discovery answers 404 (only /v2.0/... works)
DEFAULT_NETWORK = {"api": "none", "external": "public", "security_groups": False,
                   "project_networks": [], "version_document": True}
# Glance's limit_param_default and api_limit_max: the page sizes of an image listing.
DEFAULT_IMAGE_LISTING = {"limit_default": 25, "limit_max": 1000}
# How interoperable import behaves (docs/vendor-behaviour.md "Failed interoperable import",
# "Conversion on import"): stores "multi" names a failed store in os_glance_failed_import,
# "single" only fails the image's import task; convert_to is the image_conversion plugin's
# output_format; task_list serves GET /v2/images/{id}/tasks (Image API v2.12); decompress
# is the image_decompression plugin (gzip inflated unless container_format is compressed)
# and decompress_sets_size its 2026.1 fix (without it a glance-direct import of a gzip
# fails: "Glance's decompression plugin").
DEFAULT_IMAGE_IMPORT = {"stores": "multi", "convert_to": None, "task_list": False,
                        "import_lock": False, "decompress": False,
                        "decompress_sets_size": False}
DISK_FORMATS = ["raw", "qcow2", "vhd", "vhdx", "vmdk", "vdi", "iso", "ploop", "ami", "ari",
                "aki"]

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "description", "regions", "identity", "auth_type", "services",
                 "image_api", "catalog", "disk_formats", "container_formats", "upload"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]*$"},
        "description": {"type": "string"},
        "regions": {"type": "array", "minItems": 1, "uniqueItems": True,
                    "items": {"type": "string", "pattern": "^[A-Za-z0-9._-]+$"}},
        "region_endpoints": {"enum": ["shared", "separate"]},
        "identity": {"type": "array", "minItems": 1, "uniqueItems": True,
                     "items": {"enum": ["v2.0", "v3"]}},
        "auth_type": {"enum": ["password", "application_credential"]},
        "services": {"type": "array", "uniqueItems": True, "contains": {"const": "identity"},
                     "items": {"enum": ["identity", "image", "object-store", "compute",
                                        "network", "block-storage"]}},
        "image_api": {"type": "array", "minItems": 1, "uniqueItems": True,
                      "items": {"enum": ["v1", "v2"]}},
        "catalog": {"enum": ["versioned", "unversioned"]},
        "disk_formats": {"type": "array", "minItems": 1, "uniqueItems": True,
                         "items": {"enum": DISK_FORMATS}},
        "container_formats": {"type": "array", "minItems": 1, "uniqueItems": True,
                              "items": {"enum": ["bare", "ovf", "ova", "ami", "ari", "aki",
                                                 "docker", "compressed"]}},
        "upload": {"type": "array", "minItems": 1, "uniqueItems": True,
                   "items": {"enum": list(UPLOADS)}},
        "format_check": {"type": "boolean"},
        # all: an import task takes any image property; name: only the name (the task fails)
        "task_image_properties": {"enum": ["all", "name"]},
        "token_ttl": {"type": "integer", "minimum": 1},
        "image_listing": {
            "type": "object", "additionalProperties": False,
            "properties": {"limit_default": {"type": "integer", "minimum": 1},
                           "limit_max": {"type": "integer", "minimum": 1}}},
        "image_import": {
            "type": "object", "additionalProperties": False,
            "properties": {"stores": {"enum": ["single", "multi"]},
                           "convert_to": {"enum": [*DISK_FORMATS, None]},
                           "task_list": {"type": "boolean"},
                           # the image carries os_glance_import_task until the flow ends,
                           # and the flow's last image save loses properties set meanwhile
                           "import_lock": {"type": "boolean"},
                           "decompress": {"type": "boolean"},
                           "decompress_sets_size": {"type": "boolean"}}},
        "faults": {"type": "array", "items": {"type": "object"}},
        "compute": {
            "type": "object", "additionalProperties": False, "required": ["config_drive"],
            "properties": {
                # true: every server gets one and configures its network statically
                # from it; false: only the servers whose create call asks
                "config_drive": {"type": "boolean"},
                # false: nothing answers at 169.254.169.254 (the guest still runs in
                # its own namespace); docs/vendor-behaviour.md "Metadata service"
                "metadata_service": {"type": "boolean"},
                # docs/vendor-behaviour.md "Nova microversions"
                "max_microversion": {"type": "string", "pattern": "^2\\.[0-9]+$"},
                # docs/vendor-behaviour.md "ed25519 keys refused"
                "ed25519_keys": {"type": "boolean"},
                # true: every flavor's root disk is 0 GiB, so Nova boots only
                # volume-backed servers (needs block-storage); "Boot from volume"
                "zero_disk_flavors": {"type": "boolean"},
            }},
        "network": {
            "type": "object", "additionalProperties": False,
            "required": ["api", "external", "security_groups"],
            "properties": {
                "api": {"enum": ["neutron", "nova-network", "none"]},
                "external": {"enum": sorted(EXTERNAL_SHAPES)},
                "security_groups": {"type": "boolean"},
                "external_network": {"type": "string"},     # name of the routable network
                "tenant_network": {"type": "string"},       # name of the pre-made private one
                "floating_pool": {"type": "string"},        # nova-network pool name
                # docs/vendor-behaviour.md "Several networks, named pools"
                "project_networks": {"type": "array", "uniqueItems": True,
                                     "items": {"type": "string", "minLength": 1}},
                # docs/vendor-behaviour.md "Neutron without version discovery"
                "version_document": {"type": "boolean"},
            }},
        "quotas": {"type": "object", "additionalProperties": {"type": "integer", "minimum": -1},
                   "propertyNames": {"enum": sorted(QUOTA_DEFAULTS)}},
    },
}


class PersonalityError(ValueError):
    """A personality file that is missing, malformed or self-contradictory."""


@dataclass(frozen=True)
class Personality:
    name: str
    description: str
    regions: tuple[str, ...]
    identity: tuple[str, ...]
    auth_type: str
    services: tuple[str, ...]
    image_api: tuple[str, ...]
    catalog: str
    disk_formats: tuple[str, ...]
    container_formats: tuple[str, ...]
    upload: tuple[str, ...]
    format_check: bool = False
    region_endpoints: str = "shared"        # "separate": each region its own services and data
    task_image_properties: str = "all"
    token_ttl: int | None = None
    faults: tuple[dict, ...] = ()
    compute: dict = field(default_factory=lambda: dict(DEFAULT_COMPUTE), compare=False)
    network: dict = field(default_factory=lambda: dict(DEFAULT_NETWORK), compare=False)
    quotas: dict = field(default_factory=lambda: dict(QUOTA_DEFAULTS), compare=False)
    image_listing: dict = field(default_factory=lambda: dict(DEFAULT_IMAGE_LISTING),
                                compare=False)
    image_import: dict = field(default_factory=lambda: dict(DEFAULT_IMAGE_IMPORT),
                               compare=False)
    source: str = ""
    data: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def region(self) -> str:
        return self.regions[0]

    @property
    def served_regions(self) -> tuple[str, ...]:
        """The regions with services (and data) of their own: all when ``separate``."""
        return self.regions if self.region_endpoints == "separate" else (self.region,)

    @property
    def image_versions(self) -> tuple[int, ...]:
        """Major image API versions served, e.g. (1, 2)."""
        return tuple(sorted(int(v[1:]) for v in self.image_api))

    def clouds_yaml_hints(self) -> dict[str, Any]:
        """Client settings a stock openstacksdk needs for this shape, from the flags."""
        hints: dict[str, Any] = {
            "identity_api_version": self.identity[0].lstrip("v"),
            "image_api_version": str(max(self.image_versions)),
            "image_format": self.disk_formats[0],
        }
        if "task" in self.upload and "put" not in self.upload:
            hints["image_api_use_tasks"] = True
        if "compute" in self.services:
            hints.update(self.network_hints())
        return hints

    @property
    def floating_ips(self) -> bool:
        """Whether floating IPs exist at all (the API that serves them is ``network.api``)."""
        return self.network["api"] != "none" and self.network["external"] in (
            "floating", "external-network")

    def network_hints(self) -> dict[str, Any]:
        """What openstacksdk must be told because the API alone does not show it."""
        net = self.network
        source = {"neutron": "neutron", "nova-network": "nova"}.get(net["api"])
        hints: dict[str, Any] = {"floating_ip_source": source if self.floating_ips else "None"}
        if not net["security_groups"]:
            hints["secgroup_source"] = "None"
        elif net["api"] == "nova-network":
            hints["secgroup_source"] = "nova"
        if net["api"] == "neutron" and net["external"] == "routable-port":
            hints["networks"] = [{"name": net["external_network"], "routes_externally": True,
                                  "nat_destination": False}]
        return hints


def validate(data: Any, source: str = "<data>") -> None:
    """Raise PersonalityError unless ``data`` is a coherent personality."""
    try:
        jsonschema.validate(data, SCHEMA)
    except jsonschema.ValidationError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "(top)"
        raise PersonalityError(f"{source}: {where}: {e.message}") from e
    for mechanism in data["upload"]:
        needed = UPLOAD_NEEDS_API.get(mechanism)
        if needed and needed not in data["image_api"]:
            raise PersonalityError(f"{source}: upload: {mechanism} needs image API {needed}")
    if data.get("image_import") and "glance-direct" not in data["upload"]:
        raise PersonalityError(f"{source}: image_import needs the glance-direct upload")
    if (data.get("compute") or {}).get("zero_disk_flavors") and \
            "block-storage" not in data["services"]:
        raise PersonalityError(f"{source}: compute.zero_disk_flavors needs block-storage")
    if "block-storage" in data["services"] and "compute" not in data["services"]:
        raise PersonalityError(f"{source}: services: block-storage needs compute")
    if "task" in data["upload"] and "object-store" not in data["services"]:
        raise PersonalityError(f"{source}: upload: task needs the object-store service")
    if data["auth_type"] == "application_credential" and "v3" not in data["identity"]:
        raise PersonalityError(f"{source}: auth_type: application credentials need identity v3")
    _validate_network(data, source)


def _validate_network(data: dict, source: str) -> None:
    services = data["services"]
    net = data.get("network")
    if "network" in services and (net or {}).get("api") != "neutron":
        raise PersonalityError(f"{source}: services: network needs network.api neutron")
    if "compute" not in services:
        if "network" in services or net or data.get("compute"):
            raise PersonalityError(f"{source}: compute/network settings need the compute service")
        return
    if net is None or "compute" not in data:
        raise PersonalityError(f"{source}: the compute service needs compute and network")
    if net["api"] == "neutron" and "network" not in services:
        raise PersonalityError(f"{source}: network.api neutron needs the network service")
    if net["external"] in ("external-network", "routable-port") and net["api"] != "neutron":
        raise PersonalityError(f"{source}: network.external {net['external']} needs neutron")
    if net["external"] == "floating" and net["api"] == "none":
        raise PersonalityError(f"{source}: floating IPs need a network API")
    if net["api"] == "neutron" and "external_network" not in net:
        raise PersonalityError(f"{source}: neutron needs network.external_network")


def from_dict(data: dict, source: str = "<data>") -> Personality:
    validate(data, source)
    return Personality(
        name=data["name"], description=data["description"].strip(),
        regions=tuple(data["regions"]), identity=tuple(data["identity"]),
        auth_type=data["auth_type"], services=tuple(data["services"]),
        image_api=tuple(data["image_api"]), catalog=data["catalog"],
        disk_formats=tuple(data["disk_formats"]),
        container_formats=tuple(data["container_formats"]),
        upload=tuple(data["upload"]), format_check=data.get("format_check", False),
        region_endpoints=data.get("region_endpoints", "shared"),
        task_image_properties=data.get("task_image_properties", "all"),
        token_ttl=data.get("token_ttl"),
        faults=tuple(data.get("faults", ())),
        compute=dict(DEFAULT_COMPUTE, **(data.get("compute") or {})),
        network=dict(DEFAULT_NETWORK, **(data.get("network") or {})),
        quotas=dict(QUOTA_DEFAULTS, **(data.get("quotas") or {})),
        image_listing=dict(DEFAULT_IMAGE_LISTING, **(data.get("image_listing") or {})),
        image_import=dict(DEFAULT_IMAGE_IMPORT, **(data.get("image_import") or {})),
        source=source, data=data)


def load_file(path: Path) -> Personality:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise PersonalityError(f"{path}: {e}") from e
    return from_dict(data, str(path))


def available(directory: Path = PERSONALITY_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yaml"))


def load(name_or_path: str, directory: Path = PERSONALITY_DIR) -> Personality:
    """Load a shipped personality by name, or any personality file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return load_file(path)
    candidate = directory / f"{name_or_path}.yaml"
    if not candidate.exists():
        raise PersonalityError(
            f"unknown personality {name_or_path!r} (known: {', '.join(available(directory))})")
    personality = load_file(candidate)
    if personality.name != name_or_path:
        raise PersonalityError(f"{candidate}: name {personality.name!r} differs from file name")
    return personality
