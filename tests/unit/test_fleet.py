"""Stable names: who takes the name, who goes back to its build-id name; retention never
deletes the holder; publishing finds unchanged content."""

from __future__ import annotations

import pytest

from pipeline.cloud.fleet import promotion
from pipeline.cloud.images import Image
from pipeline.cloud.marks import BUILD, CONTENT, MANAGED, STABLE, VERIFIED, BuildInfo
from pipeline.cloud.publishing import previous_image, standing_verify_record, unchanged_image
from pipeline.cloud.retention import images_to_delete


def img(id_, build, *, name=None, stable="", verified="true", content="c-" + "x",
        created="2026-11-01", managed="true"):
    props = {MANAGED: managed, BUILD: build, VERIFIED: verified, CONTENT: content}
    if stable:
        props[STABLE] = stable
    return Image(id=id_, name=name or f"deb-{build}", status="active", properties=props,
                 created_at=created, disk_format="qcow2")


def changes(images, target, rename=True):
    return [(c.image.id, c.name, c.stable) for c in promotion(
        images, target, stable_name="Debian 12", image_name="deb", rename=rename)]


@pytest.mark.parametrize("rename, expected", [
    (True, [("old", "deb-b1", ""), ("new", "Debian 12", "Debian 12")]),
    (False, [("old", None, ""), ("new", None, "Debian 12")]),     # names never change
])
def test_the_new_image_takes_the_name_the_old_goes_back(rename, expected):
    old = img("old", "b1", name="Debian 12" if rename else None, stable="Debian 12")
    new = img("new", "b2")
    assert changes([old, new], new, rename) == expected


def test_promoting_the_holder_again_changes_nothing():
    holder = img("h", "b1", name="Debian 12", stable="Debian 12")
    assert changes([holder, img("x", "b2")], holder) == []


def test_rollback_gives_the_name_back_to_an_earlier_build():
    earlier, holder = img("e", "b1"), img("h", "b2", name="Debian 12", stable="Debian 12")
    assert changes([earlier, holder], earlier) == [("h", "deb-b2", ""),
                                                   ("e", "Debian 12", "Debian 12")]


def test_retention_never_deletes_the_stable_holder():
    holder = img("h", "b0", name="Debian 12", stable="Debian 12", created="2026-10-01")
    others = [img(f"i{n}", f"b{n}", created=f"2026-11-0{n}") for n in range(1, 5)]
    doomed = {i.id for i in images_to_delete([holder, *others], keep=2, image_name="deb",
                                             current_id="i4")}
    assert doomed == {"i1", "i2"}
    failed_holder = img("h", "b0", name="Debian 12", stable="Debian 12", verified="false")
    assert images_to_delete([failed_holder, others[3]], keep=1, image_name="deb",
                            current_id="i4") == []


BUILD_INFO = BuildInfo(build_id="b9", digest="d", image_name="deb", content="c-2")


@pytest.mark.parametrize("images, unchanged, previous", [
    ([], None, None),
    ([img("a", "b1", content="c-2")], "a", "a"),                       # same content
    ([img("a", "b1", content="c-1")], None, "a"),                      # changed
    ([img("a", "b1", content="c-2", verified="false")], None, None),   # never passed
    ([img("a", "b1", content="c-2", managed="false")], None, None),    # not ours
    ([img("a", "b1", content="c-1", created="2026-11-02"),
      img("b", "b2", content="c-2", created="2026-11-01")], "b", "a"),
])
def test_unchanged_and_previous(images, unchanged, previous):
    assert getattr(unchanged_image(images, BUILD_INFO, "qcow2"), "id", None) == unchanged
    assert getattr(previous_image(images, BUILD_INFO), "id", None) == previous


def test_content_converted_by_the_cloud_on_import_is_still_unchanged():
    converted = img("a", "b1", content="c-2")
    converted.disk_format = "raw"
    converted.properties["imagefleet_converted_from"] = "qcow2"
    assert unchanged_image([converted], BUILD_INFO, "qcow2") is converted
    assert unchanged_image([converted], BUILD_INFO, "vhd") is None


def test_an_unchanged_upload_is_not_booted_again():
    assert standing_verify_record({"image_id": "a"}) is None
    record = standing_verify_record({"image_id": "a", "unchanged_since": "b1", "cloud": "c"})
    assert record["verified"] and record["unchanged_since"] == "b1"
