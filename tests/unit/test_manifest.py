"""Content manifests: dpkg-query's answer, Debian version order, the changelog."""

from __future__ import annotations

import itertools
import subprocess

import pytest

from pipeline.image.manifest import (
    Manifest,
    bzimage_version,
    changelog,
    changelog_lines,
    compare_versions,
    parse_dpkg_query,
)


def test_only_installed_packages_count():
    text = "ii \tapt\t2.6.1\nrc \told\t1.0\niU \thalf\t2\nii \tlinux-image-6.1.0-9-amd64\t6.1.1-1\n"
    assert parse_dpkg_query(text) == {"apt": "2.6.1", "linux-image-6.1.0-9-amd64": "6.1.1-1"}


VERSIONS = ["1.0", "1.0-1", "1.0-2", "1.0~rc1", "1.0~rc1-1", "1:0.9", "1.0a", "1.0+b1",
            "1.00", "1.0.1", "2.36-9+deb12u14", "2.36-9+deb12u9", "6.1.192-3~bpo", "1.0-1.1"]


def test_version_order_agrees_with_dpkg():
    for a, b in itertools.product(VERSIONS, VERSIONS):
        mine = compare_versions(a, b)
        op = "lt" if mine < 0 else "eq" if mine == 0 else "gt"
        assert subprocess.run(["dpkg", "--compare-versions", a, op, b]).returncode == 0, \
            (a, op, b)


def test_changelog_names_each_change_with_both_versions():
    old = Manifest({"a": "1.0", "b": "2.0-1", "c": "3", "gone": "1"}, ["6.1.0-9"])
    new = Manifest({"a": "1.0", "b": "2.0-2", "c": "2", "new": "5"}, ["6.1.0-10"])
    log = changelog(old, new)
    assert log["upgraded"] == [["b", "2.0-1", "2.0-2"]]
    assert log["downgraded"] == [["c", "3", "2"]]
    assert log["added"] == [["new", "5"]] and log["removed"] == [["gone", "1"]]
    assert changelog_lines(log) == ["+ new 5", "- gone 1", "↑ b 2.0-1 → 2.0-2",
                                    "↓ c 3 → 2", "kernel 6.1.0-9 → 6.1.0-10"]
    assert changelog_lines(changelog(old, old)) == []


def test_content_digest_is_the_packages_or_else_the_inputs():
    a = Manifest({"a": "1"}, ["k"])
    assert a.content_digest("d1") == Manifest({"a": "1"}, ["k"]).content_digest("d2")
    assert a.content_digest("d1") != Manifest({"a": "2"}, ["k"]).content_digest("d1")
    none = Manifest(None, ["k"])
    assert none.content_digest("d1") != none.content_digest("d2")


@pytest.mark.parametrize("data, version", [
    (b"", None), (b"\0" * 0x300, None),
    (b"\0" * 0x202 + b"HdrS" + b"\0" * 8 + (0x110).to_bytes(2, "little") + b"\0" * 0x100
     + b"6.1.0-9-amd64 (debian-kernel@lists.debian.org) #1\0", "6.1.0-9-amd64"),
])
def test_bzimage_version(data, version):
    assert bzimage_version(data) == version
