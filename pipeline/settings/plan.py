"""What ``imagefleet check-config`` shows per (cloud, region): the resolved plan and
where each fact came from.  Pure: it reads a ``Cloud`` and never a secret."""

from __future__ import annotations

from typing import Any

from pipeline.settings.clouds import Cloud, vendor_data


def _said(cloud: Cloud, key: str) -> str | None:
    """Who set a top-level or ``auth`` key: clouds.yaml, the environment or the vendor."""
    cfg = cloud.config
    here = cfg.entry if key in cfg.entry else (cfg.entry.get("auth") or {})
    if key in here:
        return cfg.source
    vendor = cfg.vendor
    if vendor:
        data = vendor_data(vendor)
        if key in data or key in (data.get("auth") or {}):
            return f"openstacksdk vendor {vendor}"
    return None


def identity_version(cloud: Cloud) -> tuple[str, str]:
    """The identity API version and why: the auth URL's path, else the setting."""
    url = str(cloud.config.auth_url or "").rstrip("/")
    for suffix, version in (("/v2.0", "2.0"), ("/v3", "3")):
        if url.endswith(suffix):
            return version, "auth_url"
    said = _said(cloud, "identity_api_version")
    given = cloud.config.config.get("identity_api_version")
    if said:
        return str(given), f"identity_api_version ({said})"
    return "discovered at auth_url", "unversioned auth_url"


# compute.boot_from_volume, as check-config says it
BOOT = {"auto": "image, or a volume if every flavor has zero disk",
        "always": "from a volume made from the image", "never": "image"}


def _gzip_note(cloud: Cloud) -> str:
    """A raw cloud whose Glance inflates a gzip gets one by these import methods."""
    methods = cloud.profile.image.raw_compressed_imports
    if cloud.disk_format != "raw" or not methods:
        return ""
    return f" (its gzip by {' or '.join(methods)})"


def plan_rows(cloud: Cloud) -> list[tuple[str, str, str]]:
    """(fact, value, where it came from) for one target; no secret among them."""
    cfg, net = cloud.config, cloud.profile.network
    version, why = identity_version(cloud)
    src = cloud.sources
    floating = {"required": "floating IP required", "never": "no floating IP",
                "auto": "floating IP if needed"}[net.floating_ip]
    return [
        ("auth_url", str(cfg.auth_url or "(none)"),
         _said(cloud, "auth_url") or "unset"),
        ("identity", f"v{version} ({cfg.config.get('auth_type') or 'password'} auth)"
         if version[0].isdigit() else version, why),
        ("profile", cloud.profile.name, src.get("profile", "")),
        ("format", cloud.disk_format + _gzip_note(cloud), src.get("format", "")),
        ("upload", ", ".join(cloud.profile.image.upload), src.get("upload", "")),
        ("network", f"{net.api} api, {net.external}, {floating}", src.get("network", "")),
        ("boot", BOOT[cloud.profile.compute.boot_from_volume], src.get("boot", "")),
    ]


def render_plan(clouds: list[Cloud]) -> str:
    lines = []
    for cloud in clouds:
        region = cloud.config.region or "(no region)"
        lines.append(f"{cloud.name}: cloud {cloud.config.name}, region {region} "
                     f"({cloud.config.path})")
        for fact, value, source in plan_rows(cloud):
            lines.append(f"  {fact:<9} {value:<44} <- {source}")
    return "\n".join(lines)


def render_discovery(found: dict[str, Any]) -> str:
    """``--discover``: what each cloud said (image API, import methods, object store, the
    compute microversion negotiated)."""
    lines = []
    for name, facts in found.items():
        lines.append(f"{name}: " + "; ".join(f"{k} {v}" for k, v in facts.items()))
    return "\n".join(lines)
