"""Retention decisions: newest N of ours, the current image always kept, others untouched."""

import pytest

from pipeline.cloud.images import Image


def image(id_, name, created, ours=True):
    props = {"imagefleet_managed": "true"} if ours else {}
    return Image(id=id_, name=name, status="active", properties=props, created_at=created)


IMAGES = [
    image("a", "imagefleet-debian-b1", "2026-11-20T03:00:00Z"),
    image("b", "imagefleet-debian-b2", "2026-11-21T03:00:00Z"),
    image("c", "imagefleet-debian-b3", "2026-11-22T03:00:00Z"),
    image("d", "imagefleet-debian-b4", "2026-11-23T03:00:00Z"),
    image("x", "imagefleet-debian-hand-made", "2026-11-01T00:00:00Z", ours=False),
    image("y", "other-image", "2026-11-01T00:00:00Z", ours=True),
]


@pytest.mark.parametrize("keep, current, deleted", [
    (2, "d", ["b", "a"]),
    (3, "d", ["a"]),
    (1, "d", ["c", "b", "a"]),
    (2, "a", ["c", "b"]),        # the current image is kept even if it is the oldest
    (10, "d", []),
    (0, "d", ["c", "b", "a"]),   # keep is at least the current image
])
def test_images_to_delete(keep, current, deleted):
    from pipeline.cloud.retention import images_to_delete
    doomed = images_to_delete(IMAGES, keep=keep, image_name="imagefleet-debian",
                              current_id=current)
    assert [i.id for i in doomed] == deleted


def with_outcome(image_, outcome):
    return Image(id=image_.id, name=image_.name, status="active", created_at=image_.created_at,
                 properties={**image_.properties, "imagefleet_verified": outcome})


@pytest.mark.parametrize("outcomes, keep, current, deleted", [
    # b failed its test boot: it holds no place, c and d are the two kept.
    ({"b": "false"}, 2, "d", ["b", "a"]),
    ({"c": "false"}, 2, "d", ["c", "a"]),
    ({"c": "false", "b": "false"}, 3, "d", ["c", "b"]),
    # an explicit "true" changes nothing against images without the property
    ({"a": "true", "b": "true", "c": "true", "d": "true"}, 2, "d", ["b", "a"]),
    # the current image once failed (the rerun passed): it is kept, and counts
    ({"d": "false"}, 2, "d", ["b", "a"]),
    # a failed image newer than the current one may be another run's: untouched
    ({"d": "false"}, 2, "c", ["a"]),
])
def test_failed_test_boots_hold_no_place(outcomes, keep, current, deleted):
    from pipeline.cloud.retention import images_to_delete
    images = [with_outcome(i, outcomes[i.id]) if i.id in outcomes else i for i in IMAGES]
    doomed = images_to_delete(images, keep=keep, image_name="imagefleet-debian",
                              current_id=current)
    assert [i.id for i in doomed] == deleted


def hidden(image_):
    return Image(id=image_.id, name=image_.name, status="active", created_at=image_.created_at,
                 properties=image_.properties, hidden=True)


@pytest.mark.parametrize("hide, keep, current, deleted", [
    # b was hidden by a run that could not delete it: tried again, holds no place
    ({"b"}, 2, "d", ["b", "a"]),
    ({"b"}, 3, "d", ["b"]),
    ({"c"}, 10, "d", ["c"]),
    # hidden images of someone else's name stay untouched
    ({"x", "y"}, 10, "d", []),
    # the current image is never deleted, hidden or not
    ({"d"}, 10, "d", []),
])
def test_hidden_images_are_retried_every_run(hide, keep, current, deleted):
    from pipeline.cloud.retention import images_to_delete
    images = [hidden(i) if i.id in hide else i for i in IMAGES]
    doomed = images_to_delete(images, keep=keep, image_name="imagefleet-debian",
                              current_id=current)
    assert [i.id for i in doomed] == deleted
