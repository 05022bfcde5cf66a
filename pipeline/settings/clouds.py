"""Clouds from the standard ``clouds.yaml``, each paired with its vendor profile.

The search order is os-client-config's: ``$OS_CLIENT_CONFIG_FILE``, then
``./clouds.yaml``, ``~/.config/openstack/clouds.yaml``,
``/etc/openstack/clouds.yaml``; a ``secure.yaml`` beside it is merged in (so
passwords can live in a file of their own).  A cloud names its vendor with
``profile:``.  Secrets stay inside ``CloudConfig`` and never reach its repr.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.core.errors import ConfigError
from pipeline.core.formats import choose_disk_format
from pipeline.settings.config import PipelineConfig, Profile, load_schema, read_yaml, validate

OVERRIDES_KEY = "imagefleet_profile_overrides"
SECRET_KEYS = frozenset({"password", "application_credential_secret", "token", "secret",
                         "api_key", "client_secret"})


def search_path(env: Mapping[str, str] | None = None) -> list[Path]:
    env = os.environ if env is None else env
    if env.get("OS_CLIENT_CONFIG_FILE"):
        return [Path(env["OS_CLIENT_CONFIG_FILE"])]
    dirs = [Path.cwd(), Path.home() / ".config" / "openstack", Path("/etc/openstack")]
    return [d / f"clouds.{ext}" for d in dirs for ext in ("yaml", "yml")]


def find_clouds_yaml(env: Mapping[str, str] | None = None) -> Path:
    paths = search_path(env)
    for path in paths:
        if path.is_file():
            return path
    raise ConfigError("no clouds.yaml found (searched: "
                      + ", ".join(str(p) for p in paths) + ")", file="clouds.yaml")


@dataclass
class CloudConfig:
    """One ``clouds.yaml`` entry; ``config`` holds secrets and is never printed."""

    name: str
    path: str
    config: dict[str, Any] = field(repr=False)

    @property
    def profile_name(self) -> str | None:
        return self.config.get("profile")

    @property
    def auth(self) -> dict[str, Any]:
        return dict(self.config.get("auth") or {})

    @property
    def region_name(self) -> str | None:
        return self.config.get("region_name")

    @property
    def interface(self) -> str:
        return self.config.get("interface", "public")

    @property
    def api_timeout(self) -> float | None:
        """os-client-config's ``api_timeout``: seconds a call may wait on the cloud."""
        value = self.config.get("api_timeout")
        if value in (None, ""):
            return None
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = 0.0
        if seconds <= 0 or isinstance(value, bool):
            raise ConfigError(f"expected a positive number of seconds, not {value!r}",
                              file=self.path, key=f"clouds.{self.name}.api_timeout")
        return seconds

    def redacted(self) -> dict[str, Any]:
        return redact(self.config)


@dataclass
class Cloud:
    """A cloud to publish to: its clouds.yaml entry, its profile and its format."""

    config: CloudConfig
    profile: Profile
    disk_format: str

    @property
    def name(self) -> str:
        return self.config.name


def redact(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: ("***" if k in SECRET_KEYS and v else redact(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [redact(v) for v in data]
    return data


def _merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_clouds(path: str | os.PathLike | None = None,
                env: Mapping[str, str] | None = None) -> dict[str, CloudConfig]:
    path = Path(path) if path else find_clouds_yaml(env)
    data = read_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("clouds"), dict):
        raise ConfigError("expected a mapping 'clouds:' of cloud entries",
                          file=str(path), key="clouds")
    secure_path = path.with_name("secure.yaml")
    secure = read_yaml(secure_path) if secure_path.is_file() else None
    secure_clouds = (secure or {}).get("clouds") or {}
    clouds = {}
    for name, entry in data["clouds"].items():
        if not isinstance(entry, dict):
            raise ConfigError("expected a mapping", file=str(path), key=f"clouds.{name}")
        merged = _merge(entry, secure_clouds.get(name) or {})
        auth = merged.get("auth")
        if auth is not None and not isinstance(auth, dict):
            raise ConfigError("expected a mapping", file=str(path), key=f"clouds.{name}.auth")
        clouds[str(name)] = CloudConfig(name=str(name), path=str(path), config=merged)
    return clouds


def apply_overrides(profile: Profile, cloud: CloudConfig) -> Profile:
    """A cloud may adjust its profile (``imagefleet_profile_overrides:``), e.g. which
    address ranges count as routable there; the result is validated like a profile."""
    overrides = cloud.config.get(OVERRIDES_KEY)
    if not overrides:
        return profile
    if not isinstance(overrides, dict):
        raise ConfigError("expected a mapping", file=cloud.path,
                          key=f"clouds.{cloud.name}.{OVERRIDES_KEY}")
    merged = _merge(profile.data, overrides)
    validate(merged, load_schema("vendor"), cloud.path,
             prefix=f"clouds.{cloud.name}.{OVERRIDES_KEY}")
    return Profile(name=profile.name, data=merged, path=profile.path)


def select_clouds(config: PipelineConfig, profiles: Mapping[str, Profile],
                  clouds: Mapping[str, CloudConfig], only: list[str] | None = None,
                  env: Mapping[str, str] | None = None) -> list[Cloud]:
    """The clouds this run publishes to, each with its profile and disk format.

    ``only`` (``--cloud``) wins, then ``pipeline.yaml``'s ``clouds:``, then
    ``$OS_CLOUD``; otherwise every cloud whose entry names a profile.
    """
    env = os.environ if env is None else env
    path = next(iter(clouds.values())).path if clouds else "clouds.yaml"
    names = list(only or config.clouds or ([env["OS_CLOUD"]] if env.get("OS_CLOUD") else []))
    if not names:
        names = [n for n, c in clouds.items() if c.profile_name]
        if not names:
            raise ConfigError("no cloud names a vendor profile ('profile:')", file=path,
                              key="clouds")
    selected = []
    for name in names:
        if name not in clouds:
            raise ConfigError(f"cloud {name!r} is not defined (defined: "
                              f"{', '.join(sorted(clouds)) or 'none'})", file=path,
                              key=f"clouds.{name}")
        cloud = clouds[name]
        key = f"clouds.{name}.profile"
        if not cloud.profile_name:
            raise ConfigError("no vendor profile named", file=cloud.path, key=key)
        profile = profiles.get(cloud.profile_name)
        if profile is None:
            raise ConfigError(f"unknown vendor profile {cloud.profile_name!r} (known: "
                              f"{', '.join(sorted(profiles))})", file=cloud.path, key=key)
        profile = apply_overrides(profile, cloud)
        override = cloud.config.get("image_format")
        try:
            disk_format = choose_disk_format(profile.disk_formats, override)
        except ValueError as e:
            raise ConfigError(str(e), file=cloud.path, key=f"clouds.{name}.image_format") from e
        selected.append(Cloud(config=cloud, profile=profile, disk_format=disk_format))
    return selected
