"""Which imagefleet profile a (cloud, region) gets, and where each fact came from.

A pure decision over the ``imagefleet:`` section of a clouds.yaml entry, the
entry itself and openstacksdk's vendor data: a named profile wins (adjusted by
``overrides``); without one, a profile is derived from what openstacksdk's
vendor data (or the entry) says about format, import tasks, floating IPs and
networks (``image_format``, ``image_api_use_tasks``, ``floating_ip_source``,
``requires_floating_ip``, ``has_network``, ``disable_vendor_agent``).
``check-config`` prints ``Resolved.sources``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.core.errors import ConfigError
from pipeline.core.formats import choose_disk_format
from pipeline.settings.config import load_schema, validate
from pipeline.settings.profile import Profile

# The openstacksdk keys a profile can be derived from (openstack/config/vendors/*.json).
VENDOR_FACTS = ("image_format", "image_api_use_tasks", "floating_ip_source",
                "requires_floating_ip", "has_network", "disable_vendor_agent")


@dataclass(frozen=True)
class Resolved:
    profile: Profile
    disk_format: str
    sources: dict[str, str] = field(default_factory=dict)


def vendor_facts(entry: Mapping[str, Any], vendor: str | None,
                 vendor_config: Mapping[str, Any],
                 entry_label: str = "clouds.yaml") -> dict[str, tuple[Any, str]]:
    """Each fact the entry or the vendor data states, with where it was stated
    (openstacksdk's defaults state nothing: they are the same for every cloud)."""
    facts = {}
    for key in VENDOR_FACTS:
        if key in entry:
            facts[key] = (entry[key], entry_label)
        elif key in vendor_config:
            facts[key] = (vendor_config[key], f"openstacksdk vendor {vendor}")
    return facts


def _flag(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).lower() in ("true", "1", "yes")


def _none(value: Any) -> bool:
    return value is None or str(value).lower() == "none"


def derive_network(facts: Mapping[str, tuple[Any, str]]) -> tuple[dict[str, Any], str] | None:
    """The ``network:`` section the facts imply, and which facts; None if they do not say."""
    has_network = facts.get("has_network")
    source = facts.get("floating_ip_source")
    requires = facts.get("requires_floating_ip")
    if (has_network and not _flag(has_network[0])) or (source and _none(source[0])):
        said = has_network if has_network and not _flag(has_network[0]) else source
        key = "has_network" if said is has_network else "floating_ip_source"
        return ({"api": "none", "external": "public", "floating_ip": "never"},
                f"{key}: {said[0]} ({said[1]})")
    if requires and _flag(requires[0]):
        api = "nova-network" if source and str(source[0]).lower() == "nova" else "neutron"
        return ({"api": api, "external": "floating", "floating_ip": "required",
                 "security_groups": True}, f"requires_floating_ip: true ({requires[1]})")
    return None


def derive_profile(cloud: str, facts: Mapping[str, tuple[Any, str]], vendor: str | None,
                   entry_label: str = "clouds.yaml") -> tuple[dict[str, Any], dict[str, str]]:
    """A vendor profile (as YAML data) from openstacksdk facts, and each fact's source.

    Raises ``ValueError`` naming what the facts leave open.
    """
    if "image_format" not in facts:
        raise ValueError("says no image_format")
    network = derive_network(facts)
    if network is None:
        raise ValueError("says nothing about floating IPs or networks (floating_ip_source, "
                         "requires_floating_ip, has_network)")
    fmt, fmt_source = facts["image_format"]
    tasks = facts.get("image_api_use_tasks")
    use_tasks = bool(tasks and _flag(tasks[0]))
    image: dict[str, Any] = {"disk_formats": [str(fmt)], "upload": ["task" if use_tasks else "put"]}
    agent = facts.get("disable_vendor_agent")
    if agent and agent[0]:
        image["properties"] = {k: str(v) for k, v in dict(agent[0]).items()}
    name = f"derived-{vendor or cloud}".lower()
    data = {"name": name, "description": f"derived from {vendor or cloud}'s openstacksdk data",
            "image": image, "network": network[0]}
    sources = {"profile": f"derived from {'openstacksdk vendor ' + vendor if vendor else entry_label}",
               "format": f"image_format: {fmt} ({fmt_source})",
               "upload": (f"image_api_use_tasks: {tasks[0]} ({tasks[1]})" if tasks
                          else "image_api_use_tasks unset: Glance PUT"),
               "network": network[1]}
    if agent and agent[0]:
        sources["properties"] = f"disable_vendor_agent ({agent[1]})"
    return data, sources


def _merge(base: dict, extra: Mapping) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def entry_networks(entry: Mapping[str, Any]) -> dict[str, str]:
    """What a clouds.yaml ``networks:`` list names, in the profile's words: the network
    marked ``default_interface`` to boot on, the one marked ``nat_source`` to take
    floating IPs from (openstacksdk ``CloudRegion.get_default_network``,
    ``get_nat_source``)."""
    named: dict[str, str] = {}
    for net in entry.get("networks") or []:
        if not isinstance(net, Mapping) or not net.get("name"):
            continue
        if net.get("default_interface"):
            named.setdefault("network", str(net["name"]))
        if net.get("nat_source"):
            named.setdefault("floating_network", str(net["name"]))
    return named


def resolve_profile(cloud: str, path: str, settings: Mapping[str, Any],
                    profiles: Mapping[str, Profile], *, entry: Mapping[str, Any],
                    vendor: str | None, vendor_config: Mapping[str, Any],
                    entry_label: str = "clouds.yaml") -> Resolved:
    """The profile and format of one cloud (the same for each of its regions)."""
    key = f"clouds.{cloud}.imagefleet"
    name = settings.get("profile")
    if name:
        profile = profiles.get(name)
        if profile is None:
            raise ConfigError(f"unknown vendor profile {name!r} (known: "
                              f"{', '.join(sorted(profiles))})", file=path, key=f"{key}.profile")
        data, origin = profile.data, f"imagefleet profile {name}"
        sources = {"profile": f"{key}.profile", "format": origin, "upload": origin,
                   "network": origin, "boot": origin}
        profile_path = profile.path
    else:
        facts = vendor_facts(entry, vendor, vendor_config, entry_label)
        try:
            data, sources = derive_profile(cloud, facts, vendor, entry_label)
        except ValueError as e:
            said = f"openstacksdk vendor {vendor!r}" if vendor else "the clouds.yaml entry"
            raise ConfigError(f"no imagefleet profile named, and {said} {e}: add "
                              "'imagefleet: {profile: ...}'", file=path, key=f"{key}.profile"
                              ) from e
        profile_path = path
        sources.setdefault("boot", "default")
    named = entry_networks(entry)        # this account's networks: over the vendor's
    if named:
        data = _merge(data, {"network": named})
        sources["network"] = f"clouds.{cloud}.networks over {sources['network']}"
    overrides = settings.get("overrides")
    if overrides:
        data = _merge(data, overrides)
        for section, fact in (("image", "upload"), ("network", "network"), ("compute", "boot")):
            if section in overrides:
                sources[fact] = f"{key}.overrides over {sources[fact]}"
    validate(data, load_schema("vendor"), path, prefix=f"{key}.overrides" if overrides else key)
    profile = Profile(name=data["name"], data=data, path=profile_path)
    pin, pin_key = settings.get("image_format"), f"{key}.image_format"
    if pin is None and name and "image_format" in entry:     # derived: it chose the format
        pin, pin_key = entry["image_format"], f"clouds.{cloud}.image_format"
    try:
        disk_format = choose_disk_format(profile.disk_formats, pin)
    except ValueError as e:
        raise ConfigError(str(e), file=path, key=pin_key) from e
    if pin is not None:
        sources["format"] = f"{pin_key} ({entry_label})"
    return Resolved(profile=profile, disk_format=disk_format, sources=sources)
