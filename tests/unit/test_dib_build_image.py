"""pipeline.image.dib.build_image with a fake disk-image-create: shims, errors, leaks, TMPDIR."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pipeline.core.errors import BuildError, ConfigError
from pipeline.image import buildcleanup, dib
from pipeline.image.buildid import BUILD_ID_LEN

MIRRORED = dict(mirror="http://mirror.example/debian",
                security_mirror="http://mirror.example/debian-security")


FAKE_DIB = """\
#!/bin/bash
while [ $# -gt 0 ]; do
    case $1 in -o) out=$2; shift 2 ;; -t) shift 2 ;; *) shift ;; esac
done
echo "$PATH" > "$(dirname "$out")/path.txt"
echo "$DIB_IMAGEFLEET_BUILD_ID" > "$(dirname "$out")/build-id.txt"
echo "$TMPDIR" > "$(dirname "$out")/tmpdir.txt"
echo "2026-01-01 00:00:00.000 | Running hooks from /tmp/h/install.d"
{exit}
"""

FAILING_EXIT = """\
echo "2026-01-01 00:00:01.000 | E: Unable to locate package nosuchpkg" >&2
echo "2026-01-01 00:00:02.000 | Unmount $TMPDIR/dib_build.x/mnt/proc" >&2
echo "+ exit 100" >&2
exit 100
"""


@pytest.fixture
def fake_dib(tmp_path, monkeypatch):
    def install(exit_part: str) -> Path:
        script = tmp_path / "fake-disk-image-create"
        script.write_text(FAKE_DIB.replace("{exit}", exit_part))
        script.chmod(0o755)
        monkeypatch.setattr(dib, "DISK_IMAGE_CREATE", str(script))
        return script
    return install


def run_build(tmp_path, dm_available: bool, monkeypatch, progress=None) -> Path:
    monkeypatch.setattr(dib, "device_mapper_available", lambda: dm_available)
    spec = dib.DibSpec(elements=("debian-minimal", "imagefleet-base"), **MIRRORED)
    return dib.build_image(spec, tmp_path / "out", work_dir=tmp_path / "work",
                           log_path=tmp_path / "build.log", progress=progress)


@pytest.mark.parametrize("dm_available", [True, False], ids=["dm", "no-dm"])
def test_build_puts_shims_first_only_without_device_mapper(tmp_path, monkeypatch, fake_dib,
                                                           dm_available):
    fake_dib('touch "$out.raw"')
    seen: list[str] = []
    image = run_build(tmp_path, dm_available, monkeypatch, seen.append)
    assert image == tmp_path / "out/imagefleet-base.raw" and image.is_file()
    assert seen == ["build: install.d"]
    first = (tmp_path / "out/path.txt").read_text().split(os.pathsep)[0]
    shims = tmp_path / "work/shims"
    if dm_available:
        assert first != str(shims)
    else:
        assert first == str(shims)
        assert all(os.access(shims / name, os.X_OK) for name in dib.SHIMS)
    build_id = (tmp_path / "out/build-id.txt").read_text().strip()
    assert len(build_id) == BUILD_ID_LEN
    # DIB's TMPDIR is named so that a killed build's one is found by release_stale_builds
    tmpdir = Path((tmp_path / "out/tmpdir.txt").read_text().strip())
    assert tmpdir.parent == tmp_path / "work/tmp"
    assert buildcleanup.scratch_pid(tmpdir.name, build_id) == os.getpid()
    assert not (tmp_path / "work/tmp").exists() or not any((tmp_path / "work/tmp").iterdir())


def test_failed_build_raises_one_line_build_error(tmp_path, monkeypatch, fake_dib):
    fake_dib(FAILING_EXIT)
    with pytest.raises(BuildError) as caught:
        run_build(tmp_path, True, monkeypatch)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("imagefleet-base: build: E: Unable to locate package nosuchpkg")
    assert message.endswith(f"log: {tmp_path / 'build.log'}")
    assert "E: Unable to locate package" in (tmp_path / "build.log").read_text()


def test_build_without_an_image_is_an_error(tmp_path, monkeypatch, fake_dib):
    fake_dib("exit 0")
    with pytest.raises(BuildError, match="made no imagefleet-base.raw"):
        run_build(tmp_path, True, monkeypatch)


def test_missing_element_stops_before_dib_runs(tmp_path, monkeypatch, fake_dib):
    script = fake_dib('touch "$out.raw"')
    spec = dib.DibSpec(elements=("debian-minimal", "no-such-element"), **MIRRORED)
    with pytest.raises(ConfigError, match="no-such-element"):
        dib.build_image(spec, tmp_path / "out", work_dir=tmp_path / "work",
                        log_path=tmp_path / "build.log")
    assert script.exists() and not (tmp_path / "build.log").exists()


LEAKING_EXIT = """\
mkdir -p "$TMPDIR/dib_build.x"
mount -t tmpfs none "$TMPDIR/dib_build.x"
mkdir "$TMPDIR/dib_build.x/mnt"
truncate -s 8M "$TMPDIR/dib_build.x/image0.raw"
losetup -f "$TMPDIR/dib_build.x/image0.raw"
mount -t tmpfs none "$TMPDIR/dib_build.x/mnt"
echo "2026-01-01 00:00:01.000 | ERROR: grub-install: error: cannot find a device" >&2
exit 1
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("losetup"), reason="needs root")
def test_failed_build_leaves_no_mounts_or_loop_devices(tmp_path, monkeypatch, fake_dib):
    fake_dib(LEAKING_EXIT)
    try:
        with pytest.raises(BuildError, match="grub-install: error"):
            run_build(tmp_path, True, monkeypatch)
        assert buildcleanup.mounts_under(tmp_path) == []
        assert buildcleanup.loops_backed_under(tmp_path) == []
    finally:
        buildcleanup.release_build_resources(tmp_path / "work/tmp")
