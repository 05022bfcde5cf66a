"""Clouds from ``clouds.yaml``, ``secure.yaml`` and ``OS_*``, read by openstacksdk's loader.

openstacksdk (``openstack.config.loader.OpenStackConfig``) finds the files
(``$OS_CLIENT_CONFIG_FILE``, ``./``, ``~/.config/openstack/``,
``/etc/openstack/``), merges ``secure.yaml``, makes the ``envvars`` cloud from
``OS_*``, expands its vendor profiles (``profile: rackspace``), lists each
cloud's regions and copies ``domain_id``/``domain_name`` into the user and
project domains.  We keep what it returns, one ``CloudConfig`` per (cloud,
region); imagefleet's own settings sit under the entry's ``imagefleet:`` key,
so the same file serves the ``openstack`` CLI (docs/configuration.md).
Secrets stay inside ``CloudConfig`` and never reach its repr.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keystoneauth1 import exceptions as ksa_exc
from openstack import exceptions as sdk_exc
from openstack.config import defaults as sdk_defaults
from openstack.config import loader as sdk_loader
from openstack.config import vendors as sdk_vendors

from pipeline.core.errors import ConfigError
from pipeline.settings.config import PipelineConfig, Profile, load_schema, read_yaml, validate
from pipeline.settings.derive import Resolved, resolve_profile

KEY = "imagefleet"                          # imagefleet's own key in a cloud entry
OLD_OVERRIDES_KEY = "imagefleet_profile_overrides"
SECRET_KEYS = frozenset({"password", "application_credential_secret", "token", "secret",
                         "api_key", "client_secret", "passcode"})


@dataclass
class CloudConfig:
    """One (cloud, region) as openstacksdk resolved it; ``config`` holds secrets."""

    name: str                   # the clouds.yaml entry
    region: str                 # '' when the entry names none
    path: str                   # the file it came from (or "environment (OS_*)")
    config: dict[str, Any] = field(repr=False)      # openstacksdk's resolved dict
    entry: dict[str, Any] = field(repr=False)       # the entry as written (+ secure.yaml)
    vendor: str | None = None                        # openstacksdk's ``profile:``
    multi_region: bool = False
    sdk: Any = field(default=None, repr=False, compare=False)   # the OpenStackConfig
    _region: Any = field(default=None, repr=False, compare=False)

    @property
    def key(self) -> str:
        """The publish target's name: ``cloud``, or ``cloud/region`` when it has several."""
        return f"{self.name}/{self.region}" if self.multi_region else self.name

    @property
    def settings(self) -> dict[str, Any]:
        """The ``imagefleet:`` section (``profile``, ``overrides``, ``image_format``), as
        written: openstacksdk's resolved dict turns every int and float into a string
        (``openstack/config/_util.py`` ``normalize_keys``)."""
        return copy.deepcopy(dict(self.entry.get(KEY) or {}))

    @property
    def profile_name(self) -> str | None:
        return self.settings.get("profile")

    @property
    def auth(self) -> dict[str, Any]:
        return dict(self.config.get("auth") or {})

    @property
    def auth_url(self) -> str | None:
        """Not a secret; top level before openstacksdk's auth validation moves it (OS_AUTH_URL)."""
        return self.auth.get("auth_url") or self.config.get("auth_url")

    @property
    def region_name(self) -> str | None:
        return self.region or None

    @property
    def interface(self) -> str:
        return self.config.get("interface") or "public"

    @property
    def api_timeout(self) -> float | None:
        """openstacksdk's ``api_timeout``: seconds a call may wait on the cloud."""
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

    @property
    def source(self) -> str:
        """Who wrote the entry: "clouds.yaml" or the environment."""
        return self.path if self.path.startswith("environment") else "clouds.yaml"

    def cloud_region(self, validate: bool = False):
        """openstacksdk's ``CloudRegion`` for this target (``validate``: with its auth
        plugin loaded, which is offline)."""
        with warnings.catch_warnings():     # sdk's own deprecations are not the operator's
            warnings.simplefilter("ignore")
            if validate:   # ``auth`` as resolved here (a caller may have adjusted it)
                return self.sdk.get_one(self.name, region_name=self.region, validate=True,
                                        auth=copy.deepcopy(self.auth))
            if self._region is None:
                self._region = self.sdk.get_one(self.name, region_name=self.region,
                                                validate=False)
            return self._region

    def redacted(self) -> dict[str, Any]:
        return redact(self.config)


@dataclass
class Cloud:
    """A publish target: one cloud and region, its profile, its format, and why."""

    config: CloudConfig
    profile: Profile
    disk_format: str
    sources: dict[str, str] = field(default_factory=dict)   # fact -> where it came from

    @property
    def name(self) -> str:
        return self.config.key


def file_name(key: str) -> str:
    """A target key as a file name: ``rax/IAD`` -> ``rax@IAD`` (a region never holds ``@``
    in a path we write; the key itself keeps its ``/``)."""
    return key.replace("/", "@")


def redact(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: ("***" if k in SECRET_KEYS and v else redact(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [redact(v) for v in data]
    return data


def search_path(env: Mapping[str, str] | None = None) -> list[Path]:
    """Where openstacksdk looks for clouds.yaml, ``$OS_CLIENT_CONFIG_FILE`` first
    (``CONFIG_FILES`` in openstack/config/loader.py)."""
    env = os.environ if env is None else env
    first = [Path(env["OS_CLIENT_CONFIG_FILE"])] if env.get("OS_CLIENT_CONFIG_FILE") else []
    return first + [Path(p) for p in sdk_loader.CONFIG_FILES]


def find_clouds_yaml(env: Mapping[str, str] | None = None) -> Path:
    paths = search_path(env)
    for path in paths:
        if path.is_file():
            return path
    raise ConfigError("no clouds.yaml found (searched: "
                      + ", ".join(str(p) for p in paths) + ")", file="clouds.yaml")


def _sdk_config(path: Path | None) -> sdk_loader.OpenStackConfig:
    """openstacksdk's loader: ``path`` (and the ``secure.yaml`` beside it) or its search."""
    kwargs: dict[str, Any] = {}
    if path is not None:
        kwargs["config_files"] = [str(path)]
        kwargs["secure_files"] = [str(path.with_name("secure.yaml")),
                                  *sdk_loader.SECURE_FILES]
    try:
        return sdk_loader.OpenStackConfig(app_name="imagefleet", **kwargs)
    except sdk_exc.ConfigException as e:
        raise ConfigError(_first_line(e), file=str(path or "clouds.yaml")) from e


def _check_entry(name: str, entry: Any, path: str) -> None:
    """Refuse today's form with one line that says how to move the key."""
    if not isinstance(entry, dict):
        raise ConfigError("expected a mapping", file=path, key=f"clouds.{name}")
    if OLD_OVERRIDES_KEY in entry:
        raise ConfigError(f"'{OLD_OVERRIDES_KEY}:' has moved: write it as "
                          f"'{KEY}: {{overrides: ...}}'", file=path,
                          key=f"clouds.{name}.{OLD_OVERRIDES_KEY}")
    vendor = entry.get("profile")
    if vendor and not (vendor in sdk_vendors.profiles() or "://" in str(vendor)):
        raise ConfigError(f"{vendor!r} is not an openstacksdk vendor; an imagefleet profile "
                          f"now lives under its own key: '{KEY}: {{profile: {vendor}}}'",
                          file=path, key=f"clouds.{name}.profile")
    auth = entry.get("auth")
    if auth is not None and not isinstance(auth, dict):
        raise ConfigError("expected a mapping", file=path, key=f"clouds.{name}.auth")
    section = entry.get(KEY)
    if section is not None:
        if not isinstance(section, dict):
            raise ConfigError("expected a mapping", file=path, key=f"clouds.{name}.{KEY}")
        validate(section, load_schema("cloudsettings"), path, prefix=f"clouds.{name}.{KEY}")


def load_clouds(path: str | os.PathLike | None = None,
                env: Mapping[str, str] | None = None) -> dict[str, CloudConfig]:
    """Every (cloud, region) openstacksdk finds, keyed by ``CloudConfig.key``, in file order."""
    file = Path(path) if path else next((p for p in search_path(env) if p.is_file()), None)
    if file is not None:      # openstacksdk skips a malformed file with a warning; we refuse
        data = read_yaml(file)
        if not isinstance(data, dict) or not isinstance(data.get("clouds"), dict):
            raise ConfigError("expected a mapping 'clouds:' of cloud entries",
                              file=str(file), key="clouds")
    sdk = _sdk_config(Path(path) if path else None)
    raw = sdk.cloud_config.get("clouds") or {}
    if sdk.config_filename is None and set(raw) <= {"defaults"}:
        searched = ", ".join(sdk._config_files)
        raise ConfigError(f"no clouds.yaml found (searched: {searched}) and no OS_* "
                          "variables", file="clouds.yaml")
    return _targets(sdk, sdk.config_filename or "clouds.yaml")


def clouds_from_data(clouds: Mapping[str, Any], path: str = "clouds.yaml"
                     ) -> dict[str, CloudConfig]:
    """``load_clouds`` over an in-memory ``clouds:`` mapping (no file, no ``OS_*``)."""
    sdk = sdk_loader.OpenStackConfig(load_yaml_config=False, load_envvars=False,
                                     app_name="imagefleet")
    sdk.cloud_config = {"clouds": copy.deepcopy(dict(clouds))}
    return _targets(sdk, path)


def cloud_from_entry(name: str, entry: Mapping[str, Any], path: str = "clouds.yaml"
                     ) -> CloudConfig:
    """The one (first) region of a single in-memory entry."""
    return next(iter(clouds_from_data({name: entry}, path).values()))


def _targets(sdk: sdk_loader.OpenStackConfig, file: str) -> dict[str, CloudConfig]:
    out: dict[str, CloudConfig] = {}
    for name, entry in (sdk.cloud_config.get("clouds") or {}).items():
        where = file
        if name == sdk.envvar_key:      # only what the variables say, not sdk's defaults
            where, defaults = "environment (OS_*)", sdk_defaults.get_defaults()
            entry = {k: v for k, v in entry.items() if defaults.get(k, object()) != v}
        _check_entry(str(name), entry, where)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # the same region list get_all() walks (openstack/config/loader.py)
                regions = [r["name"] for r in sdk._get_regions(name)] or [""]
                resolved = [sdk.get_one(name, region_name=r, validate=False) for r in regions]
        except (sdk_exc.ConfigException, ksa_exc.ClientException) as e:
            raise ConfigError(_first_line(e), file=where, key=f"clouds.{name}") from e
        for region in resolved:
            cfg = CloudConfig(name=str(name), region=region.region_name or "", path=where,
                              config=dict(region.config), entry=dict(entry),
                              vendor=entry.get("profile"), multi_region=len(regions) > 1,
                              sdk=sdk)
            out[cfg.key] = cfg
    return out


def vendor_data(name: str | None) -> dict[str, Any]:
    """openstacksdk's vendor data for ``name`` (``openstack/config/vendors/*.json``)."""
    if not name or "://" in name:
        return {}
    return dict(sdk_vendors.get_profile(name) or {})


def select_targets(keys: list[str], clouds: Mapping[str, CloudConfig],
                   path: str) -> list[CloudConfig]:
    """``NAME`` selects every region of a cloud, ``NAME/REGION`` one."""
    selected: list[CloudConfig] = []
    for key in keys:
        found = [c for c in clouds.values() if key in (c.key, c.name)
                 or (c.region and key == f"{c.name}/{c.region}")]
        if not found:
            names = sorted({c.name for c in clouds.values()})
            raise ConfigError(f"cloud {key!r} is not defined (defined: "
                              f"{', '.join(names) or 'none'})", file=path, key=f"clouds.{key}")
        selected += [c for c in found if c not in selected]
    return selected


def select_clouds(config: PipelineConfig, profiles: Mapping[str, Profile],
                  clouds: Mapping[str, CloudConfig], only: list[str] | None = None,
                  env: Mapping[str, str] | None = None) -> list[Cloud]:
    """The (cloud, region) targets this run publishes to, each with profile and format.

    ``only`` (``--cloud``) wins, then ``pipeline.yaml``'s ``clouds:``, then
    ``$OS_CLOUD``; otherwise every cloud whose entry has an ``imagefleet:`` key.
    """
    env = os.environ if env is None else env
    path = next(iter(clouds.values())).path if clouds else "clouds.yaml"
    keys = list(only or config.clouds or ([env["OS_CLOUD"]] if env.get("OS_CLOUD") else []))
    if not keys:
        keys = list(dict.fromkeys(c.name for c in clouds.values() if KEY in c.entry))
        if not keys:
            raise ConfigError(f"no cloud has an '{KEY}:' key, and none is named (--cloud, "
                              "pipeline.yaml clouds:, OS_CLOUD)", file=path, key="clouds")
    return [resolve(c, profiles) for c in select_targets(keys, clouds, path)]


def resolve(cloud: CloudConfig, profiles: Mapping[str, Profile]) -> Cloud:
    """``cloud`` with its imagefleet profile (named, or derived from vendor data)."""
    result: Resolved = resolve_profile(
        cloud.name, cloud.path, cloud.settings, profiles, entry=cloud.entry,
        vendor=cloud.vendor, vendor_config=vendor_data(cloud.vendor), entry_label=cloud.source)
    return Cloud(config=cloud, profile=result.profile, disk_format=result.disk_format,
                 sources=result.sources)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
