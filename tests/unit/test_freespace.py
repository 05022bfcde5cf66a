"""The pure decisions of a smaller image: which partition is root, what du says,
whether a qcow2 is compressed (and a raw gzipped) for the clouds sharing it, which
kernel a profile takes."""

from __future__ import annotations

import pytest

from pipeline.core.errors import BuildError
from pipeline.image.convert import compress_qcow2, compressed_formats
from pipeline.image.freespace import Partition, blocks_in_use, parse_du, root_partition
from pipeline.settings.profile import ImageSection, Profile, kernel_refusal

MBR_ONE = {"partitiontable": {"label": "dos", "sectorsize": 512, "partitions": [
    {"node": "base.raw1", "start": 2048, "size": 4192256, "type": "83", "bootable": True}]}}
GPT_WITH_BIOS_BOOT = {"partitiontable": {"label": "gpt", "sectorsize": 512, "partitions": [
    {"node": "d1", "start": 2048, "size": 2048, "type": "21686148-6449-6E6F-744E-656564454649"},
    {"node": "d2", "start": 4096, "size": 16384, "type": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"},
    {"node": "d3", "start": 20480, "size": 4171776,
     "type": "0FC63DAF-8483-4772-8E79-3D69D8477DE4"}]}}
MBR_TWO_LINUX = {"partitiontable": {"sectorsize": 4096, "partitions": [
    {"start": 256, "size": 1000, "type": "83"}, {"start": 1256, "size": 5000, "type": "83"}]}}


@pytest.mark.parametrize("table, expected", [
    (MBR_ONE, Partition(start=2048 * 512, size=4192256 * 512)),           # DIB block-device-mbr
    (GPT_WITH_BIOS_BOOT, Partition(start=20480 * 512, size=4171776 * 512)),  # BIOS boot + ESP
    (MBR_TWO_LINUX, Partition(start=1256 * 4096, size=5000 * 4096)),      # the largest wins
])
def test_root_partition(table, expected):
    assert root_partition(table) == expected


@pytest.mark.parametrize("table", [{}, {"partitiontable": {"partitions": [
    {"start": 2048, "size": 100, "type": "ef"}]}}])
def test_no_linux_partition_is_a_build_error(table):
    with pytest.raises(BuildError, match="no Linux partition"):
        root_partition(table)


def test_parse_du_largest_first_in_bytes():
    text = "4\t/m/etc\n409600\t/m/usr/lib\nnoise\n819200\t/m\n12\t/m/root\n"
    assert parse_du(text, top=3) == [(819200 * 1024, "/m"), (409600 * 1024, "/m/usr/lib"),
                                     (12 * 1024, "/m/root")]


@pytest.mark.parametrize("allows, expected", [
    ([], True),                 # imagefleet build --format qcow2: no clouds, the default
    ([True, True], True),       # hp-like and auro-like
    ([True, False], False),     # one qcow2 cloud cannot read compressed clusters
])
def test_compress_qcow2(allows, expected):
    assert compress_qcow2(allows) is expected


def _image(formats: list[str], **keys) -> ImageSection:
    return ImageSection(disk_formats=formats, **keys)


@pytest.mark.parametrize("clouds, expected", [
    ([], ("qcow2",)),                                        # imagefleet build --format
    ([("qcow2", _image(["qcow2"])), ("vhd", _image(["vhd"]))], ("qcow2",)),
    ([("qcow2", _image(["qcow2"], qcow2_compressed=False))], ()),
    ([("raw", _image(["raw"]))], ("qcow2",)),                # raw without the plugin: no gzip
    ([("raw", _image(["raw"], raw_compressed_imports=["web-download"])),
      ("raw", _image(["raw"]))], ("qcow2", "raw")),          # one raw cloud inflates: a gzip
    ([("qcow2", _image(["qcow2", "raw"], raw_compressed_imports=["web-download"]))],
     ("qcow2",)),                                            # that cloud gets qcow2, not raw
])
def test_compressed_formats(clouds, expected):
    assert compressed_formats(clouds) == expected


def _profile(**compute):
    return Profile(name="p-like", path="p-like.yaml", data={
        "image": {"disk_formats": ["qcow2"]}, "compute": compute,
        "network": {"api": "neutron", "external": "floating"}})


@pytest.mark.parametrize("kernel, compute, refused", [
    ("linux-image-cloud-amd64", {}, False),                        # virtio/Xen clouds
    ("linux-image-cloud-amd64", {"cloud_kernel": False}, True),    # e1000-only hypervisor
    ("", {"cloud_kernel": False}, False),                          # generic kernel fits all
    ("linux-image-amd64", {"cloud_kernel": False}, False),
])
def test_kernel_refusal(kernel, compute, refused):
    reason = kernel_refusal({"DIB_IMAGEFLEET_KERNEL": kernel}, _profile(**compute))
    assert (reason is not None) is refused
    if refused:
        assert "p-like" in reason and "linux-image-amd64" in reason


TUNE2FS = """tune2fs 1.47.0 (5-Feb-2023)
Filesystem volume name:   cloudimg-rootfs
Block count:              523776
Reserved block count:     26188
Free blocks:              296001
Block size:               4096
"""


def test_blocks_in_use_counts_journal_and_metadata():
    assert blocks_in_use(TUNE2FS) == (523776 - 296001) * 4096
    with pytest.raises(BuildError, match="no block count"):
        blocks_in_use("Filesystem volume name: x\n")
