"""Which format each vendor shape gets: a table over the talks' clouds."""

import pytest

from pipeline.core.formats import choose_disk_format, distinct_formats


@pytest.mark.parametrize("shape, accepted, override, expected", [
    ("rackspace-like", ["vhd"], None, "vhd"),
    ("hp-like", ["qcow2"], None, "qcow2"),
    ("dreamhost-like", ["raw"], None, "raw"),
    ("vexxhost-like", ["qcow2", "raw"], None, "qcow2"),
    ("vexxhost-like, clouds.yaml image_format", ["qcow2", "raw"], "raw", "raw"),
    ("ovh-like", ["qcow2", "raw"], None, "qcow2"),
    ("auro-like", ["qcow2"], None, "qcow2"),
])
def test_choose_disk_format(shape, accepted, override, expected):
    assert choose_disk_format(accepted, override) == expected


@pytest.mark.parametrize("accepted, override, words", [
    (["vhd"], "vmdk", "unknown format"),
    (["vhd"], "qcow2", "not accepted"),
    (["vmdk"], None, "none of vmdk"),
])
def test_choose_disk_format_refuses(accepted, override, words):
    with pytest.raises(ValueError, match=words):
        choose_disk_format(accepted, override)


def test_distinct_formats_one_per_format():
    assert distinct_formats(["qcow2", "vhd", "qcow2", "raw", "raw"]) == ["qcow2", "raw", "vhd"]
