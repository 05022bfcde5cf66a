"""Build once, convert once per distinct format, and do nothing on a rerun.

``disk-image-create`` is a fake script here (the e2e tier runs the real one);
qemu-img, the VHD writer, Luigi and the CLI are real.  What ran is counted
from Luigi's own success events and from the fake's invocations.
"""

from __future__ import annotations

import collections
import stat
from pathlib import Path

import luigi
import pytest

from pipeline.image import dib, qemu_img
from tasks import cli
from tests.conftest import cloud_entry, write_clouds_yaml

FAKE_DIB = """#!/bin/sh
# fake disk-image-create: -t TYPE -o OUT ELEMENTS...; writes OUT.TYPE
echo "$@" >> "{calls}"
while [ $# -gt 0 ]; do
  case "$1" in -o) out="$2"; shift;; esac; shift
done
truncate -s 16M "$out.raw"
printf 'imagefleet build %s\\n' "$DIB_IMAGEFLEET_BUILD_ID" | dd of="$out.raw" bs=1 seek=1048576 conv=notrunc status=none
"""


@pytest.fixture
def ran():
    """Count the task families that Luigi reports as having run successfully."""
    counts: collections.Counter[str] = collections.Counter()

    def on_success(task):
        counts[task.task_family] += 1

    luigi.Task.event_handler(luigi.Event.SUCCESS)(on_success)
    yield counts
    luigi.Task._event_callbacks[luigi.Task][luigi.Event.SUCCESS].discard(on_success)


@pytest.fixture
def fake_dib(tmp_path, monkeypatch):
    calls = tmp_path / "dib-calls.txt"
    script = tmp_path / "disk-image-create"
    script.write_text(FAKE_DIB.format(calls=calls))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(dib, "DISK_IMAGE_CREATE", str(script))
    return calls


def build(config_tree: Path, clouds_yaml: Path, work: Path, *extra: str) -> int:
    return cli.main(["build", "--config", str(config_tree / "pipeline.yaml"),
                     "--clouds-yaml", str(clouds_yaml), "--work-dir", str(work), *extra])


def test_three_clouds_two_formats_one_build_two_conversions(config_tree, tmp_path, fake_dib, ran,
                                                            capsys):
    clouds = write_clouds_yaml(tmp_path / "clouds.yaml", {
        "hp": cloud_entry("hp-like"), "auro": cloud_entry("auro-like"),
        "dreamhost": cloud_entry("dreamhost-like")})
    work = tmp_path / "work"

    assert build(config_tree, clouds, work) == 0
    assert ran == {"BuildBaseImage": 1, "ConvertImage": 2, "BuildImages": 1}
    assert len(fake_dib.read_text().splitlines()) == 1
    outputs = capsys.readouterr().out.split()
    assert [Path(p).name for p in outputs] == ["image.qcow2", "image.raw"]
    base = next(work.glob("builds/*/base.raw"))
    for path, fmt in zip(outputs, ["qcow2", "raw"], strict=True):
        assert qemu_img.info(path)["format"] == fmt
        assert qemu_img.compare(base, "raw", path, fmt)
    assert not list(work.rglob("*luigi-tmp*")), "no temporary files left behind"

    ran.clear()
    assert build(config_tree, clouds, work) == 0
    assert sum(ran.values()) == 0, f"second run redid work: {dict(ran)}"
    assert len(fake_dib.read_text().splitlines()) == 1


def test_vhd_cloud_gets_our_vhd(config_tree, tmp_path, fake_dib, ran, capsys):
    clouds = write_clouds_yaml(tmp_path / "clouds.yaml", {"rax": cloud_entry("rackspace-like")})
    assert build(config_tree, clouds, tmp_path / "work") == 0
    (vhd_path,) = capsys.readouterr().out.split()
    assert qemu_img.info(vhd_path)["format"] == "vpc"
    base = next((tmp_path / "work").glob("builds/*/base.raw"))
    assert qemu_img.compare(base, "raw", vhd_path, "vpc")
    assert ran["ConvertImage"] == 1


def test_failed_build_is_one_line_and_leaves_no_output(config_tree, tmp_path, monkeypatch, capsys):
    script = tmp_path / "disk-image-create"
    script.write_text("#!/bin/sh\necho 'E: Unable to locate package nosuchpkg' >&2\nexit 1\n")
    script.chmod(0o755)
    monkeypatch.setattr(dib, "DISK_IMAGE_CREATE", str(script))
    clouds = write_clouds_yaml(tmp_path / "clouds.yaml", {"hp": cloud_entry("hp-like")})
    work = tmp_path / "work"
    assert build(config_tree, clouds, work) == cli.EXIT_FAILED
    stderr = capsys.readouterr().err
    err = [line for line in stderr.splitlines() if line.startswith("imagefleet:")]
    assert len(err) == 1, stderr
    assert err[0].startswith("imagefleet: imagefleet-debian: build: E: Unable to locate package")
    assert "Traceback" not in stderr
    assert not list(work.glob("builds/*/base.raw"))
