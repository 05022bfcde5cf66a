"""Build the base disk image with diskimage-builder (DIB).

One ``disk-image-create`` run per spec, named by ``build_digest`` so an
unchanged spec and element set is not rebuilt.  Hosts without device-mapper
get shell shims for ``kpartx``/``dmsetup``/``sudo`` (``pipeline/image/shims``), and
whatever DIB leaves mounted or attached under the build's TMPDIR is released
(``pipeline.image.buildcleanup``).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core.errors import BuildError, CommandError, ConfigError
from pipeline.core.runner import run
from pipeline.image.buildcleanup import dib_tmp_prefix, release_build_resources
from pipeline.image.buildid import build_id
from pipeline.settings.config import DEFAULT_BUILD_TIMEOUT

LOG = logging.getLogger(__name__)

DISK_IMAGE_CREATE = "disk-image-create"
ELEMENTS_DIR = Path(__file__).resolve().parents[2] / "elements"
SHIMS_DIR = Path(__file__).resolve().parent / "shims"
SHIMS = ("kpartx", "dmsetup", "sudo")
BUILD_TIMEOUT = DEFAULT_BUILD_TIMEOUT


@dataclass(frozen=True)
class DibSpec:
    """What defines one image build; every field goes into the build digest."""

    name: str = "imagefleet-base"
    elements: tuple[str, ...] = ("debian-minimal", "vm", "block-device-mbr", "imagefleet-base")
    release: str = "bookworm"
    environment: Mapping[str, str] = field(default_factory=dict)
    mirror: str | None = None  # None: the host's apt sources for ``release``
    security_mirror: str | None = None  # None: the host's ``<release>-security`` source
    components: tuple[str, ...] = ("main",)
    size: str | None = "2"  # DIB_IMAGE_SIZE in GB; None lets DIB size it to the content
    image_type: str = "raw"
    build_id: str | None = None  # None: the first 12 hex digits of the digest


# --- apt sources ---------------------------------------------------------

@dataclass(frozen=True)
class AptSource:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]


def parse_deb822_sources(text: str) -> list[AptSource]:
    """Parse a ``*.sources`` file (deb822: stanzas of ``Key: value`` lines)."""
    sources = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0].isspace() and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        if ("deb" in fields.get("types", "").split()
                and fields.get("enabled", "yes").lower() != "no"):
            suites, components = (tuple(fields.get(k, "").split()) for k in ("suites", "components"))
            sources += [AptSource(u, suites, components) for u in fields.get("uris", "").split()]
    return sources


def parse_one_line_sources(text: str) -> list[AptSource]:
    """Parse ``sources.list`` lines: ``deb [options] uri suite component...``."""
    sources = []
    for line in text.splitlines():
        line = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()
        if len(line) >= 3 and line[0] == "deb":
            sources.append(AptSource(line[1], (line[2],), tuple(line[3:])))
    return sources


def host_apt_sources(root: Path = Path("/")) -> list[AptSource]:
    """All ``deb`` sources the host's apt reads, in apt's file order."""
    etc = root / "etc/apt"
    sources = []
    for path in [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))]:
        if path.is_file():
            sources += parse_one_line_sources(path.read_text(errors="replace"))
    for path in sorted((etc / "sources.list.d").glob("*.sources")):
        sources += parse_deb822_sources(path.read_text(errors="replace"))
    return sources


def choose_mirrors(sources: Iterable[AptSource], release: str) -> tuple[str | None, str | None]:
    """The (archive, security) mirrors for ``release``; None where the host has none."""
    web = [s for s in sources if s.uri.startswith(("http://", "https://"))]

    def pick(suite: str, path_tail: str) -> str | None:
        for wanted in (lambda s: suite in s.suites,
                       lambda s: s.uri.rstrip("/").endswith(path_tail)):
            for source in web:
                if wanted(source):
                    return source.uri.rstrip("/")
        return None

    return pick(release, "/debian"), pick(f"{release}-security", "/debian-security")


def resolve_spec(spec: DibSpec, sources: Iterable[AptSource] | None = None) -> DibSpec:
    """Fill the mirrors left as None from the host's apt sources."""
    if spec.mirror and spec.security_mirror:
        return spec
    mirror, security = choose_mirrors(host_apt_sources() if sources is None else sources,
                                      spec.release)
    return dataclasses.replace(spec, mirror=spec.mirror or mirror,
                               security_mirror=spec.security_mirror or security)


# --- elements and digest ---------------------------------------------------

def dib_elements_dir() -> Path:
    found = importlib.util.find_spec("diskimage_builder")
    return Path(found.origin).parent / "elements" if found and found.origin else Path("/none")


def dib_version() -> str:
    try:
        return importlib.metadata.version("diskimage-builder")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _element_names(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    return {w for line in path.read_text().splitlines() for w in line.split("#", 1)[0].split()}


def local_elements(elements: Iterable[str], elements_dirs: Sequence[Path]) -> dict[str, Path]:
    """Our own elements in use: the requested ones and their element-deps, transitively."""
    found: dict[str, Path] = {}
    queue = collections.deque(elements)
    while queue:
        name = queue.popleft()
        if name in found:
            continue
        for directory in elements_dirs:
            if (Path(directory) / name).is_dir():
                found[name] = Path(directory) / name
                queue.extend(_element_names(found[name] / "element-deps"))
                break
    return found


def check_elements(elements: Sequence[str], search_dirs: Sequence[Path],
                   local_dirs: Sequence[Path]) -> None:
    """Raise ConfigError naming an element DIB would not find, before DIB runs."""
    dirs = [Path(d) for d in search_dirs if Path(d).is_dir()]
    present = {p.name for d in dirs for p in d.iterdir() if p.is_dir()}
    provided = {n for d in dirs for f in d.glob("*/element-provides") for n in _element_names(f)}
    for name in elements:
        if name not in present:
            raise ConfigError(f"element '{name}' not found in ELEMENTS_PATH "
                              f"({':'.join(map(str, search_dirs))})", step="build")
    for owner, path in local_elements(elements, local_dirs).items():
        for dep in sorted(_element_names(path / "element-deps")):
            if dep not in present and dep not in provided:
                raise ConfigError(f"element '{dep}' (a dependency of {owner}) not found "
                                  "in ELEMENTS_PATH", step="build")


def build_digest(spec: DibSpec, elements_dirs: Sequence[Path],
                 version: str | None = None) -> str:
    """sha256 over the spec, the DIB version and every file of our elements in use."""
    digest = hashlib.sha256()
    header = {"spec": dataclasses.asdict(spec), "dib": version or dib_version()}
    digest.update(json.dumps(header, sort_keys=True).encode())
    for name, path in sorted(local_elements(spec.elements, elements_dirs).items()):
        for file in sorted(p for p in path.rglob("*") if p.is_file() or p.is_symlink()):
            if "__pycache__" in file.parts:
                continue
            rel = f"{name}/{file.relative_to(path).as_posix()}"
            content = os.readlink(file).encode() if file.is_symlink() else file.read_bytes()
            mode = int(os.access(file, os.X_OK))
            digest.update(f"\0{rel}\0{mode}\0{len(content)}\0".encode())
            digest.update(content)
    return digest.hexdigest()


def build_id_for(spec: DibSpec, digest: str) -> str:
    return spec.build_id or build_id(digest)


# --- device-mapper ---------------------------------------------------------

def device_mapper_available(control: Path = Path("/dev/mapper/control"),
                            proc_misc: Path = Path("/proc/misc")) -> bool:
    """True if the kernel has device-mapper: kpartx and dmsetup can work."""
    try:
        misc = proc_misc.read_text()
    except OSError:
        return False
    return control.exists() and any(line.split()[-1:] == ["device-mapper"]
                                    for line in misc.splitlines())


def install_shims(target: Path, source: Path = SHIMS_DIR) -> Path:
    """Copy the shims to ``target`` as executables (package data may lose the mode)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in SHIMS:
        shutil.copyfile(source / name, target / name)
        (target / name).chmod(0o755)
    return target


# --- command line ----------------------------------------------------------

def dib_environment(spec: DibSpec, *, build_id: str, cache_dir: Path, tmp_dir: Path,
                    elements_dirs: Sequence[Path], shims_dir: Path | None = None,
                    path: str | None = None, command: str | None = None) -> dict[str, str]:
    """The variables added to the environment disk-image-create runs in."""
    env = {
        "ELEMENTS_PATH": ":".join(str(d) for d in elements_dirs),
        "DIB_IMAGE_CACHE": str(cache_dir),
        "TMPDIR": str(tmp_dir),
        "DIB_RELEASE": spec.release,
        "DIB_DEBIAN_COMPONENTS": ",".join(spec.components),
        "DIB_IMAGEFLEET_BUILD_ID": build_id,
        # Reuse the debootstrap tarball between builds; apt upgrades it anyway.
        "DIB_DEBOOTSTRAP_CACHE": "1",
        "DIB_DEBIAN_USE_DEBOOTSTRAP_CACHE": "1",
    }
    if spec.mirror:
        env["DIB_DISTRIBUTION_MIRROR"] = spec.mirror
    if spec.security_mirror:
        env["DIB_DEBIAN_SECURITY_MIRROR"] = spec.security_mirror
    if spec.size:
        env["DIB_IMAGE_SIZE"] = str(spec.size)
    env.update(spec.environment)
    base = os.environ.get("PATH", os.defpath) if path is None else path
    first = [str(shims_dir)] if shims_dir is not None else []
    command = dib_command(command)
    if os.sep in command:  # DIB's helpers live beside it, maybe not on PATH
        first.append(str(Path(command).parent))
    env["PATH"] = os.pathsep.join([*first, base])
    return env


def dib_command(configured: str | None = None) -> str:
    """``build.command`` from pipeline.yaml when set; else ``DISK_IMAGE_CREATE`` from PATH,
    else from beside this Python (an unactivated venv)."""
    if configured:
        return configured
    if os.sep in DISK_IMAGE_CREATE or shutil.which(DISK_IMAGE_CREATE):
        return DISK_IMAGE_CREATE
    beside = Path(sys.executable).parent / DISK_IMAGE_CREATE
    return str(beside) if beside.exists() else DISK_IMAGE_CREATE


def dib_argv(spec: DibSpec, out_dir: Path, command: str | None = None) -> list[str]:
    return [dib_command(command), "-t", spec.image_type, "-o", str(Path(out_dir) / spec.name),
            *spec.elements]


# --- log reading -------------------------------------------------------------

_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? \| )+")
_PHASE = re.compile(r"Running hooks from \S*/([\w-]+\.d)\s*$")
_SCRIPT = re.compile(r"dib-run-parts Running \S*/([\w-]+\.d)/([^/\s]+)\s*$")
_NOISE = re.compile(r"^(\+|\$ |# exit|INFO |DEBUG |dib-run-parts |Unmount|umount|losetup|"
                    r"\+\+|[-=]+$)")
_ERROR = re.compile(r"(^E: |ERROR|\berror\b|[Ff]ailed|FAILED|not found|No such|[Cc]annot|"
                    r"[Uu]nable|exited with|[Ee]xception)")


def strip_timestamp(line: str) -> str:
    return _TIMESTAMP.sub("", line).strip()


def last_error_line(lines: Iterable[str]) -> str:
    """The last line that explains a failure, else the last meaningful one."""
    meaningful = [s for s in (strip_timestamp(line) for line in lines)
                  if s and not _NOISE.match(s)]
    for line in reversed(meaningful):
        if _ERROR.search(line):
            return line[:200]
    return meaningful[-1][:200] if meaningful else ""


class ProgressTracker:
    """Turns DIB's output into ``build: <phase>`` and ``build: <phase>: <hook>`` lines."""

    def __init__(self, progress: Callable[[str], None] | None):
        self.progress = progress
        self.phase: str | None = None

    def feed(self, line: str) -> None:
        if self.progress is None:
            return
        text = strip_timestamp(line)
        found = _PHASE.search(text) or _SCRIPT.search(text)
        if not found:
            return
        if found.group(1) != self.phase:
            self.phase = found.group(1)
            self.progress(f"build: {self.phase}")
        if found.re is _SCRIPT:
            self.progress(f"build: {self.phase}: {found.group(2)}")


# --- the build -----------------------------------------------------------------

def build_image(spec: DibSpec, out_dir: str | os.PathLike, *, work_dir: str | os.PathLike,
                log_path: str | os.PathLike, progress: Callable[[str], None] | None = None,
                timeout: float = BUILD_TIMEOUT, command: str | None = None) -> Path:
    """Run disk-image-create once for ``spec``; returns ``out_dir/<name>.<image_type>``.
    ``command``: pipeline.yaml's ``build.command`` (None: ``dib_command``)."""
    spec = resolve_spec(spec)
    elements_dirs = [ELEMENTS_DIR]
    check_elements(spec.elements, [*elements_dirs, dib_elements_dir()], elements_dirs)
    digest = build_digest(spec, elements_dirs)
    out_dir, work_dir, log_path = (Path(p).resolve() for p in (out_dir, work_dir, log_path))
    cache_dir = work_dir / "cache" / "dib"
    for directory in (out_dir, work_dir / "tmp", cache_dir):
        directory.mkdir(parents=True, exist_ok=True)
    # One TMPDIR per run: the cleanup below must never touch a concurrent build.  Its name
    # carries our pid so that buildcleanup.release_stale_builds finds it if we are killed.
    build_id = build_id_for(spec, digest)
    tmp_dir = Path(tempfile.mkdtemp(prefix=dib_tmp_prefix(build_id, os.getpid()),
                                    dir=work_dir / "tmp"))
    shims_dir = None if device_mapper_available() else install_shims(work_dir / "shims")
    env = dib_environment(spec, build_id=build_id, cache_dir=cache_dir,
                          tmp_dir=tmp_dir, elements_dirs=elements_dirs, shims_dir=shims_dir,
                          command=command)
    tail: collections.deque[str] = collections.deque(maxlen=400)
    tracker = ProgressTracker(progress)

    def on_line(line: str) -> None:
        tail.append(line)
        tracker.feed(line)

    try:
        run(dib_argv(spec, out_dir, command), env=env, timeout=timeout, log_path=log_path,
            on_line=on_line, where=spec.name, step="build")
    except CommandError as e:
        cause = "disk-image-create timed out" if e.timed_out else (
            last_error_line(tail) or e.cause)
        raise BuildError(f"{cause}; log: {log_path}", where=spec.name) from e
    finally:
        release_build_resources(tmp_dir, log_path=log_path)
    image = out_dir / f"{spec.name}.{spec.image_type}"
    if not image.is_file():
        raise BuildError(f"disk-image-create made no {image.name}; log: {log_path}",
                         where=spec.name)
    return image
