"""Pipeline configuration and vendor profiles: YAML files checked against schemas.

A problem is reported as one ``ConfigError`` naming the file, the key and what
is wrong; nothing else in the pipeline needs to re-check what is loaded here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from pipeline.core.errors import ConfigError
from pipeline.settings.profile import MetadataSection, Profile
from qemuhost import accel, console

DEFAULT_CONFIG = Path("config/pipeline.yaml")
DEFAULT_ELEMENTS = ["debian-minimal", "vm", "block-device-mbr", "imagefleet-base"]
DEFAULT_REBUILD_AGE = 24.0       # hours (nodepool-builder's rebuild-age)
DEFAULT_BUILD_TIMEOUT = 3600.0   # seconds disk-image-create may run
DEFAULT_KEEP_LOCAL = 3           # builds kept in the work directory
SOURCE_FORMATS = {".raw": "raw", ".img": "raw", ".qcow2": "qcow2", ".vhd": "vhd"}


@dataclass
class PipelineConfig:
    path: str
    image_name: str
    release: str
    elements: list[str]
    environment: dict[str, str]
    mirror: str | None
    size: str
    clouds: list[str]
    vendors_dir: Path
    keep: int
    source: Path | None = None          # a prebuilt image imported instead of a DIB build
    source_format: str | None = None
    # build-id (log in, read the build id), ssh-banner, or cloud-only (the cloud's part
    # of a test boot, then ACTIVE and the console: nothing reached from here); verify.CHECKS
    verify_check: str = "build-id"
    accel: str = "auto"                 # after $IMAGEFLEET_ACCEL: auto, kvm or tcg
    accel_stall_timeout: float = console.STALL_SECONDS
    metadata: MetadataSection = field(default_factory=MetadataSection)   # image.metadata
    rebuild_age: float = DEFAULT_REBUILD_AGE    # hours before the same inputs are built again
    stable_name: str | None = None      # the name users boot by; moves after a passing test boot
    paused: list[str] = field(default_factory=list)   # clouds kept in config, skipped by runs
    build_timeout: float = DEFAULT_BUILD_TIMEOUT      # build.timeout: seconds disk-image-create may take
    build_command: str | None = None    # build.command: the disk-image-create to run
    keep_local: int = DEFAULT_KEEP_LOCAL              # work.keep: builds, images and logs kept locally
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def local_login(self) -> bool:
        """Whether the local boot logs in to read the build id: every check but
        ssh-banner does, when the image is our build (a prebuilt one has no build id)."""
        return self.verify_check != "ssh-banner" and self.source is None


def read_yaml(path: str | os.PathLike) -> Any:
    """Parse a YAML file; syntax errors become one line with line and column."""
    path = str(path)
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except FileNotFoundError as e:
        raise ConfigError("file not found", file=path) from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
        raise ConfigError(f"malformed YAML: {where}{problem}", file=path) from e
    except OSError as e:
        raise ConfigError(f"cannot read: {e.strerror}", file=path) from e


def load_schema(name: str) -> dict[str, Any]:
    text = resources.files("pipeline.settings.schemas").joinpath(f"{name}.schema.json").read_text()
    return json.loads(text)


def validate(data: Any, schema: dict[str, Any], path: str, prefix: str = "") -> None:
    """Validate ``data``; raise ``ConfigError`` for the first (most relevant) problem."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(e.absolute_path), e.message))
    if not errors:
        return
    err = errors[0]
    key = ".".join(str(p) for p in err.absolute_path)
    if err.validator == "additionalProperties":
        allowed = set(err.schema.get("properties", {}))
        extra = sorted(k for k in err.instance if k not in allowed)
        key = ".".join(filter(None, [key, extra[0] if extra else ""]))
        message = f"unknown key (allowed: {', '.join(sorted(allowed))})"
    elif err.validator == "enum":
        message = f"{err.instance!r} is not one of {', '.join(map(str, err.validator_value))}"
    elif err.validator == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        key = ".".join(filter(None, [key, missing]))
        message = "required key is missing"
    else:
        message = err.message
    key = ".".join(filter(None, [prefix, key])) or "(top level)"
    raise ConfigError(message, file=path, key=key)


def load_profile(path: str | os.PathLike) -> Profile:
    path = str(path)
    data = read_yaml(path)
    validate(data, load_schema("vendor"), path)
    stem = Path(path).stem
    if data["name"] != stem:
        raise ConfigError(f"{data['name']!r} does not match the file name {stem!r}",
                          file=path, key="name")
    return Profile(name=data["name"], data=data, path=path)


def load_profiles(vendors_dir: str | os.PathLike) -> dict[str, Profile]:
    vendors_dir = Path(vendors_dir)
    if not vendors_dir.is_dir():
        raise ConfigError("vendor profile directory not found", file=str(vendors_dir))
    profiles = {}
    for path in sorted(vendors_dir.glob("*.yaml")):
        profile = load_profile(path)
        profiles[profile.name] = profile
    return profiles


def load_pipeline(path: str | os.PathLike | None = None) -> PipelineConfig:
    """Load ``pipeline.yaml`` (``$IMAGEFLEET_CONFIG`` or ``config/pipeline.yaml``)."""
    path = str(path or os.environ.get("IMAGEFLEET_CONFIG") or DEFAULT_CONFIG)
    data = read_yaml(path)
    if data is None:
        raise ConfigError("file is empty", file=path)
    validate(data, load_schema("pipeline"), path)
    image = data["image"]
    here = Path(path).resolve().parent
    vendors_dir = Path(data.get("vendors_dir") or "vendors")
    if not vendors_dir.is_absolute():
        vendors_dir = here / vendors_dir
    source, source_format = _source(image, here, path)
    check = (data.get("verify") or {}).get("check") or ("ssh-banner" if source else "build-id")
    if source and check == "build-id":
        raise ConfigError("a prebuilt image (image.source) carries no build id to read; "
                          "use verify.check: ssh-banner or cloud-only", file=path,
                          key="verify.check")
    return PipelineConfig(
        path=path,
        image_name=image["name"],
        release=image.get("release", "bookworm"),
        elements=list(image.get("elements") or DEFAULT_ELEMENTS),
        environment={k: str(v) for k, v in (image.get("environment") or {}).items()},
        mirror=image.get("mirror"),
        size=str(image.get("size", "2")).removesuffix("G"),
        clouds=list(data.get("clouds") or []),
        vendors_dir=vendors_dir,
        keep=int((data.get("retention") or {}).get("keep", 3)),
        source=source,
        source_format=source_format,
        verify_check=check,
        accel=_accel(data, path),
        accel_stall_timeout=float(data.get("accel_stall_timeout", console.STALL_SECONDS)),
        metadata=MetadataSection.from_dict(image.get("metadata")),
        rebuild_age=float(data.get("rebuild_age", DEFAULT_REBUILD_AGE)),
        stable_name=image.get("stable_name"),
        paused=list(data.get("paused") or []),
        build_timeout=float((data.get("build") or {}).get("timeout", DEFAULT_BUILD_TIMEOUT)),
        build_command=(data.get("build") or {}).get("command"),
        keep_local=int((data.get("work") or {}).get("keep", DEFAULT_KEEP_LOCAL)),
        raw=data,
    )


def _accel(data: dict, path: str) -> str:
    try:
        return accel.resolve_setting(data.get("accel"))
    except ValueError as e:
        raise ConfigError(str(e).split(": ", 1)[1], file=path,
                          key=accel.ENV if os.environ.get(accel.ENV) else "accel") from None


def _source(image: dict, here: Path, path: str) -> tuple[Path | None, str | None]:
    """``image.source``: a prebuilt image file (relative to pipeline.yaml) and its format."""
    if not image.get("source"):
        return None, None
    source = Path(image["source"])
    source = source if source.is_absolute() else here / source
    fmt = image.get("source_format") or SOURCE_FORMATS.get(source.suffix)
    if fmt is None:
        raise ConfigError(f"cannot tell the format of {source.name}; set image.source_format",
                          file=path, key="image.source_format")
    if not source.is_file():
        raise ConfigError(f"prebuilt image not found: {source}", file=path, key="image.source")
    return source, fmt
