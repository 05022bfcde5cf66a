"""choose_image_api over the talks' cloud shapes: pin, discovery, URL suffix, probe;
then discover_image_api (real keystoneauth1) against a fake for the shapes the local
cloud does not have."""

from __future__ import annotations

import pytest

from pipeline.cloud.discovery import (
    choose_image_api,
    discover_image_api,
    guess_versioned_url,
    newest_minor,
    version_from_url,
)
from pipeline.cloud.session import make_session
from pipeline.core.errors import EndpointNotFound
from pipeline.settings.clouds import cloud_from_entry
from tests.unit.fake_openstack import serve, v3_entry


def vd(version, status="CURRENT"):
    """A keystoneauth VersionData-like entry (a dict with version and status)."""
    return {"version": version, "status": status, "url": "http://glance/"}


GLANCE_ROOT_V1_V2 = [vd("2.9"), vd("2.8", "SUPPORTED"), vd("2.0", "SUPPORTED"),
                     vd("1.1", "DEPRECATED"), vd("1.0", "DEPRECATED")]

# shape: (pin, discovered versions, catalog URL, expected order to try)
SHAPES = {
    "rackspace-like: versioned catalog .../v2, root lists nothing, pinned 2":
        ("2", [vd(None)], "https://dfw.images.example/v2", ["2"]),
    "rackspace-like without the pin: the version at the end of the endpoint":
        (None, [vd("2.0")], "https://dfw.images.example/v2", ["2"]),
    "hp-like: versioned catalog .../v1, v1 pinned":
        ("1", [vd("1.1"), vd("1.0")], "https://region-b.geo-1.image.example/v1", ["1"]),
    "hp-like without the pin: discovery lists only v1":
        (None, [vd("1.1", "SUPPORTED"), vd("1.0", "SUPPORTED")],
         "https://region-b.geo-1.image.example/v1", ["1"]),
    "hp-like, discovery failed: the URL suffix":
        (None, [], "https://region-b.geo-1.image.example/v1/", ["1"]),
    "dreamhost-like: unversioned endpoint whose root lists v2 (and deprecated v1)":
        (None, GLANCE_ROOT_V1_V2, "https://images.dream.example:9292", ["2", "1"]),
    "vexxhost-like: unversioned endpoint, v2 only":
        (None, [vd("2.9"), vd("2.0", "SUPPORTED")], "https://image.vexx.example", ["2"]),
    "vexxhost-like pinned to 2":
        ("2", GLANCE_ROOT_V1_V2, "https://image.vexx.example", ["2"]),
    "ovh-like: versions as plain strings":
        (None, ["v2.6", "v2.0"], "https://image.gra7.ovh.example/", ["2"]),
    "auro-like: v1 and v2 both current, v2 first":
        (None, [vd("1.0"), vd("2.0")], "http://auro.example:9292/", ["2", "1"]),
    "auro-like pinned to v1 although v2 is listed":
        ("1", [vd("1.0"), vd("2.0")], "http://auro.example:9292/", ["1"]),
    "nothing discovered, unversioned URL: try v2, then v1":
        (None, [vd(None)], "http://glance.example:9292", ["2", "1"]),
    "only an unknown future major: fall back on the URL":
        (None, [vd("3.0")], "http://glance.example:9292/v2", ["2"]),
    "tuple versions (keystoneauth's parsed form)":
        (None, [{"version": (1, 0)}, {"version": (2, 5)}], None, ["2", "1"]),
    "pin given as v2 / 2.0":
        ("v2.0", [], None, ["2"]),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_shapes(shape):
    pin, discovered, url, expected = SHAPES[shape]
    assert choose_image_api(pin, discovered, url) == expected


def test_unsupported_pin_fails_clearly():
    with pytest.raises(EndpointNotFound, match="version 3 is not supported"):
        choose_image_api("3", [vd("2.0")], None)


@pytest.mark.parametrize("url, expected", [
    ("http://h:9292/v2", "2"), ("http://h:9292/v1/", "1"), ("http://h/image/v2.0", "2"),
    ("http://h:9292", None), ("http://h/v2/images", None), (None, None),
])
def test_version_from_url(url, expected):
    assert version_from_url(url) == expected


@pytest.mark.parametrize("url, major, expected", [
    ("http://h:9292", "2", "http://h:9292/v2"),
    ("http://h:9292/", "1", "http://h:9292/v1"),
    ("http://h:9292/v1/", "1", "http://h:9292/v1"),
    ("http://h:9292/v1", "2", None),
])
def test_guess_versioned_url(url, major, expected):
    assert guess_versioned_url(url, major) == expected


# --- discover_image_api against a fake cloud: the shapes the local cloud lacks ------

def _versions(base, *majors):
    return {"versions": [{"id": f"v{m}.0", "status": "CURRENT",
                          "links": [{"rel": "self", "href": f"{base}/v{m}/"}]} for m in majors]}


LIST = (200, {"images": []})

# shape: (catalog path, routes given the base URL, pin, expected version, endpoint suffix)
FAKE_SHAPES = {
    "unversioned catalog, root answers 404: try v2 first":
        ("/image", lambda b: {"GET /image/v2/images": LIST}, None, "2", "/image/v2"),
    "unversioned catalog, root answers 404, only v1 behind it: then v1":
        ("/image", lambda b: {"GET /image/v1/images": LIST}, None, "1", "/image/v1"),
    "versioned catalog .../v1, no version document anywhere":
        ("/glance/v1", lambda b: {"GET /glance/v1/images": LIST}, None, "1", "/glance/v1"),
    "unversioned root lists v2 and v1 (300): v2":
        ("/image", lambda b: {"GET /image": (300, _versions(b + "/image", 2, 1), True),
                              "GET /image/": (300, _versions(b + "/image", 2, 1), True),
                              "GET /image/v2/images": LIST, "GET /image/v1/images": LIST},
         None, "2", "/image/v2/"),
    "same root, profile pins v1":
        ("/image", lambda b: {"GET /image": (300, _versions(b + "/image", 2, 1), True),
                              "GET /image/": (300, _versions(b + "/image", 2, 1), True),
                              "GET /image/v2/images": LIST, "GET /image/v1/images": LIST},
         "1", "1", "/image/v1/"),
}


@pytest.mark.parametrize("shape", sorted(FAKE_SHAPES))
def test_discover_image_api(shape):
    path, routes, pin, version, suffix = FAKE_SHAPES[shape]
    holder: dict = {}                  # filled once the fake's URL is known
    with serve({"image": path}, holder) as fake:
        holder.update(routes(fake.url))
        cloud = cloud_from_entry("fake", v3_entry(fake.url))
        api = discover_image_api(make_session(cloud), cloud, pin)
    assert api.version == version
    assert api.endpoint == fake.url + suffix


def test_discover_image_api_nothing_usable():
    with serve({"image": "/image"}, {}) as fake:
        cloud = cloud_from_entry("fake", v3_entry(fake.url))
        with pytest.raises(EndpointNotFound, match="no usable image API .v2: 404"):
            discover_image_api(make_session(cloud), cloud, None)


@pytest.mark.parametrize("found, major, expected", [
    ([{"version": (2, 9), "status": "CURRENT"}, {"version": (2, 5)}, {"version": (1, 1)}],
     "2", 9),                                                    # vexxhost-like: os_hidden
    (["v2.5", "v2.0", "v1.1"], "2", 5),                          # dreamhost-like: no os_hidden
    (["v1.1", "v1.0"], "1", 1),                                  # hp-like
    ([], "2", None),                                             # nothing discovered
])
def test_newest_minor(found, major, expected):
    assert newest_minor(found, major) == expected
