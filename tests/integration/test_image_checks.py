"""Real qemu-img: a prebuilt source is checked on import; a converted file before upload."""

from __future__ import annotations

import json
import subprocess

import pytest

from pipeline.cloud.localboot import local_boot
from pipeline.core.errors import ImageCorruptError
from pipeline.image import qemu_img
from pipeline.image.convert import check_converted, convert_image
from pipeline.image.imagesource import import_source


@pytest.fixture
def raw(tmp_path):
    path = tmp_path / "base.raw"
    with open(path, "wb") as f:
        f.truncate(8 << 20)
        f.seek(1 << 20)
        f.write(b"imagefleet" * 1000)
    return path


def corrupt_qcow2(path):
    """Point the L1 table far beyond the end of the file: qemu-img check reports it."""
    with open(path, "r+b") as f:
        f.seek(40)                            # l1_table_offset (big-endian u64)
        f.write((1 << 40).to_bytes(8, "big"))


def test_a_qcow2_source_is_imported_as_raw(raw, tmp_path):
    source = tmp_path / "prebuilt.qcow2"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(source)], check=True)
    dest = tmp_path / "imported.raw"
    record = import_source(source, "qcow2", dest)
    assert record["virtual_size"] == 8 << 20
    assert qemu_img.compare(raw, "raw", dest, "raw")


def test_a_corrupt_source_is_refused_naming_the_file(raw, tmp_path):
    source = tmp_path / "prebuilt.qcow2"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(source)], check=True)
    corrupt_qcow2(source)
    dest = tmp_path / "imported.raw"
    with pytest.raises(ImageCorruptError) as caught:
        import_source(source, "qcow2", dest)
    assert str(source) in str(caught.value) and "import" in str(caught.value)
    assert not dest.exists()


@pytest.mark.parametrize("disk_format", ["raw", "qcow2", "vhd"])
def test_a_truncated_conversion_is_caught_before_upload(raw, tmp_path, disk_format):
    dest = tmp_path / f"image.{disk_format}"
    record = convert_image(raw, dest, disk_format)
    (tmp_path / f"image.{disk_format}.json").write_text(json.dumps(record))
    check_converted(dest, disk_format)                        # as written: fine
    with open(dest, "r+b") as f:
        f.truncate(dest.stat().st_size - 512)
    with pytest.raises(ImageCorruptError) as caught:
        check_converted(dest, disk_format)
    assert "truncated or changed" in str(caught.value)


def test_damaged_qcow2_metadata_is_caught_before_upload(raw, tmp_path):
    dest = tmp_path / "image.qcow2"
    convert_image(raw, dest, "qcow2")
    corrupt_qcow2(dest)
    with pytest.raises(ImageCorruptError):
        check_converted(dest, "qcow2")


def test_a_damaged_conversion_is_refused_before_the_local_boot(raw, tmp_path):
    dest = tmp_path / "image.qcow2"
    convert_image(raw, dest, "qcow2")
    corrupt_qcow2(dest)
    boot_dir = tmp_path / "localboot"
    with pytest.raises(ImageCorruptError) as caught:
        local_boot(dest, "qcow2", "x", work_dir=boot_dir, timeout=30, login=False)
    assert str(caught.value).startswith("local qcow2: check before local boot: image.qcow2")
    assert not boot_dir.exists()          # no qemu, no keypair, no config drive
