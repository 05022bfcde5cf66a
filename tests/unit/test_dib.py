"""pipeline.image.dib: digest, apt mirrors, command line, errors, device-mapper shims.

build_image with a fake disk-image-create: test_dib_build_image.py; releasing what a
build leaves behind: test_dib_buildcleanup.py.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.core.errors import ConfigError
from pipeline.image import dib

MIRRORED = dict(mirror="http://mirror.example/debian",
                security_mirror="http://mirror.example/debian-security")


def make_element(root: Path, name: str, files: dict[str, str]) -> Path:
    element = root / name
    for rel, text in files.items():
        (element / rel).parent.mkdir(parents=True, exist_ok=True)
        (element / rel).write_text(text)
    return element


@pytest.fixture
def elements(tmp_path):
    root = tmp_path / "elements"
    make_element(root, "ours", {"element-deps": "helper\npackage-installs\n",
                                "install.d/50-ours": "#!/bin/bash\necho ours\n"})
    make_element(root, "helper", {"environment.d/10-helper.bash": "export A=1\n"})
    make_element(root, "unused", {"README.rst": "not in the build\n"})
    return root


def spec_with(**changes) -> dib.DibSpec:
    base = dib.DibSpec(elements=("debian-minimal", "ours"), **MIRRORED)
    return dataclasses.replace(base, **changes)


# --- digest ------------------------------------------------------------------

def test_digest_is_stable_for_the_same_inputs(elements):
    assert dib.build_digest(spec_with(), [elements], "3.43.0") == \
        dib.build_digest(spec_with(), [elements], "3.43.0")


@pytest.mark.parametrize("change", [
    lambda e: (e / "ours/install.d/50-ours").write_text("#!/bin/bash\necho changed\n"),
    lambda e: (e / "helper/environment.d/10-helper.bash").write_text("export A=2\n"),
    lambda e: (e / "ours/install.d/50-ours").chmod(0o755),
    lambda e: (e / "helper/new-file").write_text("x"),
], ids=["element-file", "dependency-file", "mode", "new-file"])
def test_digest_follows_files_of_elements_in_use(elements, change):
    before = dib.build_digest(spec_with(), [elements], "3.43.0")
    change(elements)
    assert dib.build_digest(spec_with(), [elements], "3.43.0") != before


def test_digest_ignores_elements_not_in_use(elements):
    before = dib.build_digest(spec_with(), [elements], "3.43.0")
    (elements / "unused/README.rst").write_text("edited\n")
    assert dib.build_digest(spec_with(), [elements], "3.43.0") == before


@pytest.mark.parametrize("changes", [
    {"release": "trixie"},
    {"environment": {"DIB_DEBUG_TRACE": "1"}},
    {"mirror": "http://other.example/debian"},
    {"size": "3"},
    {"build_id": "abc"},
    {"elements": ("debian-minimal", "ours", "vm")},
], ids=lambda c: next(iter(c)))
def test_digest_follows_spec_fields(elements, changes):
    assert dib.build_digest(spec_with(**changes), [elements], "3.43.0") != \
        dib.build_digest(spec_with(), [elements], "3.43.0")


def test_digest_follows_dib_version(elements):
    assert dib.build_digest(spec_with(), [elements], "3.43.0") != \
        dib.build_digest(spec_with(), [elements], "3.44.0")


def test_environment_order_does_not_change_digest(elements):
    one = spec_with(environment={"A": "1", "B": "2"})
    two = spec_with(environment={"B": "2", "A": "1"})
    assert dib.build_digest(one, [elements], "v") == dib.build_digest(two, [elements], "v")


# --- apt sources -----------------------------------------------------------------

DEB822_DEBIAN = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

DEB822_SRC_AND_DISABLED = """\
Types: deb-src
URIs: http://src.example/debian
Suites: bookworm
Components: main

Types: deb
Enabled: no
URIs: http://disabled.example/debian
Suites: bookworm
Components: main

Types: deb deb-src
URIs: https://mirror.example/debian/
Suites: bookworm
Components: main contrib
"""

ONE_LINE = """\
# deb http://commented.example/debian bookworm main
deb-src http://src.example/debian bookworm main
deb [arch=amd64 signed-by=/k.gpg] http://ftp.example/debian bookworm main non-free
deb http://security.example/debian-security bookworm-security main
"""


@pytest.mark.parametrize("parser, text, release, expected", [
    (dib.parse_deb822_sources, DEB822_DEBIAN, "bookworm",
     ("http://deb.debian.org/debian", "http://deb.debian.org/debian-security")),
    (dib.parse_deb822_sources, DEB822_SRC_AND_DISABLED, "bookworm",
     ("https://mirror.example/debian", None)),
    (dib.parse_one_line_sources, ONE_LINE, "bookworm",
     ("http://ftp.example/debian", "http://security.example/debian-security")),
    # another release: fall back to a source laid out like the Debian archive
    (dib.parse_deb822_sources, DEB822_DEBIAN, "trixie",
     ("http://deb.debian.org/debian", "http://deb.debian.org/debian-security")),
    (dib.parse_one_line_sources, "deb http://archive.ubuntu.com/ubuntu jammy main\n",
     "bookworm", (None, None)),
    (dib.parse_one_line_sources, "", "bookworm", (None, None)),
], ids=["deb822-debian", "deb822-skips-src-and-disabled", "one-line", "deb822-other-release",
        "ubuntu-host", "empty"])
def test_choose_mirrors(parser, text, release, expected):
    assert dib.choose_mirrors(parser(text), release) == expected


def test_host_apt_sources_reads_both_formats(tmp_path):
    apt = tmp_path / "etc/apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list").write_text("deb http://a.example/debian bookworm main\n")
    (apt / "sources.list.d/debian.sources").write_text(DEB822_DEBIAN)
    uris = [s.uri for s in dib.host_apt_sources(tmp_path)]
    assert uris == ["http://a.example/debian", "http://deb.debian.org/debian",
                    "http://deb.debian.org/debian-security"]


def test_resolve_spec_keeps_explicit_mirrors():
    spec = spec_with()
    assert dib.resolve_spec(spec, dib.parse_deb822_sources(DEB822_DEBIAN)) == spec
    filled = dib.resolve_spec(spec_with(mirror=None, security_mirror=None),
                              dib.parse_deb822_sources(DEB822_DEBIAN))
    assert filled.mirror == "http://deb.debian.org/debian"
    assert filled.security_mirror == "http://deb.debian.org/debian-security"


# --- command line ------------------------------------------------------------------

def test_argv(tmp_path, monkeypatch):
    monkeypatch.setattr(dib, "DISK_IMAGE_CREATE", "/opt/dib/disk-image-create")
    assert dib.dib_argv(spec_with(), tmp_path) == [
        "/opt/dib/disk-image-create", "-t", "raw", "-o", str(tmp_path / "imagefleet-base"),
        "debian-minimal", "ours"]
    # build.command in pipeline.yaml wins
    assert dib.dib_argv(spec_with(), tmp_path, "/srv/dib/bin/disk-image-create")[0] == \
        "/srv/dib/bin/disk-image-create"


@pytest.mark.parametrize("shims", [None, Path("/w/shims")], ids=["dm", "no-dm"])
def test_environment(tmp_path, monkeypatch, shims):
    monkeypatch.setattr(dib, "DISK_IMAGE_CREATE", "/opt/dib/disk-image-create")
    spec = spec_with(environment={"DIB_DEBUG_TRACE": "1", "DIB_RELEASE": "trixie"})
    env = dib.dib_environment(spec, build_id="b1", cache_dir=Path("/w/cache"),
                              tmp_dir=Path("/w/tmp/x"), elements_dirs=[Path("/repo/elements")],
                              shims_dir=shims, path="/usr/bin:/bin")
    assert env["ELEMENTS_PATH"] == "/repo/elements"
    assert env["DIB_IMAGE_CACHE"] == "/w/cache"
    assert env["TMPDIR"] == "/w/tmp/x"
    assert env["DIB_DISTRIBUTION_MIRROR"] == "http://mirror.example/debian"
    assert env["DIB_DEBIAN_SECURITY_MIRROR"] == "http://mirror.example/debian-security"
    assert env["DIB_DEBIAN_COMPONENTS"] == "main"
    assert env["DIB_IMAGE_SIZE"] == "2"
    assert env["DIB_IMAGEFLEET_BUILD_ID"] == "b1"
    assert env["DIB_DEBUG_TRACE"] == "1"
    assert env["DIB_RELEASE"] == "trixie"  # the spec's environment has the last word
    expected = ([] if shims is None else ["/w/shims"]) + ["/opt/dib", "/usr/bin:/bin"]
    assert env["PATH"] == os.pathsep.join(expected)


# --- device-mapper detection ----------------------------------------------------------

@pytest.mark.parametrize("control, misc, expected", [
    (True, " 236 device-mapper\n 237 loop-control\n", True),
    (False, " 236 device-mapper\n", False),  # no node: dmsetup cannot talk to it
    (True, " 237 loop-control\n", False),  # stale node, no driver in the kernel
    (True, None, False),
], ids=["present", "no-control-node", "no-driver", "no-proc-misc"])
def test_device_mapper_available(tmp_path, control, misc, expected):
    control_path = tmp_path / "control"
    if control:
        control_path.touch()
    misc_path = tmp_path / "misc"
    if misc is not None:
        misc_path.write_text(misc)
    assert dib.device_mapper_available(control_path, misc_path) is expected


# --- elements --------------------------------------------------------------------------

def test_missing_element_is_a_config_error(elements):
    with pytest.raises(ConfigError, match="'nosuch'"):
        dib.check_elements(["ours", "nosuch"], [elements, dib.dib_elements_dir()], [elements])


def test_missing_dependency_of_our_element_is_a_config_error(elements):
    (elements / "helper/element-deps").write_text("nosuch-dep\n")
    with pytest.raises(ConfigError, match="'nosuch-dep'.*helper"):
        dib.check_elements(["ours"], [elements, dib.dib_elements_dir()], [elements])


def test_virtual_dependency_is_accepted(elements):
    (elements / "helper/element-deps").write_text("operating-system\n")
    dib.check_elements(["debian-minimal", "ours"], [elements, dib.dib_elements_dir()],
                       [elements])


def test_shipped_element_set_resolves():
    spec = dib.DibSpec()
    dib.check_elements(spec.elements, [dib.ELEMENTS_DIR, dib.dib_elements_dir()],
                       [dib.ELEMENTS_DIR])
    assert set(dib.local_elements(spec.elements, [dib.ELEMENTS_DIR])) == {"imagefleet-base"}


# --- log reading -------------------------------------------------------------------------

def test_last_error_line_skips_cleanup_noise():
    lines = [
        "2026-11-23 18:34:21.837 | Setting up ca-certificates ...",
        "2026-11-23 18:34:23.292 | E: Sub-process /usr/bin/dpkg returned an error code (1)",
        "2026-11-23 18:34:23.483 | Unmount /tmp/w/dib_build.x/mnt/var/cache/apt/archives",
        "2026-11-23 18:34:23.714 | INFO diskimage_builder.block_device.blockdevice [-] "
        "State already cleaned - no way to do anything here",
        "+ exit 1",
    ]
    assert dib.last_error_line(lines) == \
        "E: Sub-process /usr/bin/dpkg returned an error code (1)"
    assert dib.last_error_line(["2026-11-23 18:34:23.292 | just stopped"]) == "just stopped"
    assert dib.last_error_line([]) == ""


def test_progress_reports_phases_and_hooks():
    seen: list[str] = []
    tracker = dib.ProgressTracker(seen.append)
    for line in ["2026-01-01 00:00:00.000 | Running hooks from /tmp/x/hooks/root.d",
                 "2026-01-01 00:00:01.000 | dib-run-parts Running /tmp/x/hooks/root.d/08-a",
                 "2026-01-01 00:00:01.500 | dib-run-parts Target: root.d",
                 "2026-01-01 00:00:03.000 | dib-run-parts Running "
                 "/tmp/in_target.d/install.d/50-ours",
                 "2026-01-01 00:00:04.000 | dib-run-parts 50-ours completed",
                 "2026-01-01 00:00:05.000 | dib-run-parts Running "
                 "/tmp/in_target.d/install.d/60-more"]:
        tracker.feed(line)
    assert seen == ["build: root.d", "build: root.d: 08-a", "build: install.d",
                    "build: install.d: 50-ours", "build: install.d: 60-more"]


# --- the sudo shim ------------------------------------------------------------------------

@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("bash"), reason="needs root")
def test_sudo_shim_resets_environment_but_keeps_path():
    shim = str(dib.SHIMS_DIR / "sudo")
    env = {"PATH": "/shims:/usr/bin:/bin", "TMPDIR": "/build/tmp"}
    reset = subprocess.run(["bash", shim, "env"], env=env, capture_output=True, text=True,
                           check=True).stdout.splitlines()
    kept = subprocess.run(["bash", shim, "-E", "env"], env=env, capture_output=True,
                          text=True, check=True).stdout.splitlines()
    assert "PATH=/shims:/usr/bin:/bin" in reset and "TMPDIR=/build/tmp" not in reset
    assert "TMPDIR=/build/tmp" in kept
