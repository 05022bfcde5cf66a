"""Version discovery as keystoneauth1 does it, for versioned and unversioned catalogs."""

from __future__ import annotations

import pytest
import requests

from tests.localcloud.conftest import image_adapter

# cloud, catalog URL tail, image API majors that discovery must find
SHAPES = [
    ("rackspace-like", "/image/v2", {2}),
    ("hp-like", "/image/v1", {1}),
    ("dreamhost-like", "/image", {2}),
    ("vexxhost-like", "/image", {2}),
    ("ovh-like", "/image", {2}),
    ("auro-like", "/image", {1, 2}),
]


@pytest.mark.parametrize("cloud, tail, majors", SHAPES)
def test_catalog_shape(lc, sessions, cloud, tail, majors):
    url = sessions[cloud].get_endpoint(service_type="image", interface="public")
    assert url == lc.clouds[cloud]["url"] + tail


@pytest.mark.parametrize("cloud, tail, majors", SHAPES)
def test_adapter_finds_exactly_the_served_versions(lc, sessions, cloud, tail, majors):
    for major in (1, 2):
        adapter = image_adapter(sessions[cloud], lc, cloud, major)
        endpoint = adapter.get_endpoint()
        if major in majors:
            assert adapter.get_api_major_version()[0] == major
            images = adapter.get("/images", raise_exc=False)
            assert images.status_code == 200, endpoint
        else:
            assert endpoint is None


@pytest.mark.parametrize("cloud, tail, majors", SHAPES)
def test_unversioned_root_answers_300(lc, cloud, tail, majors):
    root = requests.get(lc.clouds[cloud]["url"] + "/image/")
    assert root.status_code == 300
    ids = [v["id"] for v in root.json()["versions"]]
    assert {int(i[1]) for i in ids} == majors
    assert sum(v["status"] == "CURRENT" for v in root.json()["versions"]) == 1


def test_import_capable_clouds_advertise_v2_6_and_up(lc):
    def newest(cloud):
        return requests.get(lc.clouds[cloud]["url"] + "/image/").json()["versions"][0]["id"]

    assert newest("vexxhost-like") == "v2.9"
    assert newest("dreamhost-like") == "v2.5"


def test_a_v1_only_cloud_has_no_v2(lc, sessions):
    token = sessions["hp-like"].get_token()
    url = lc.clouds["hp-like"]["url"] + "/image/v2/images"
    assert requests.get(url, headers={"X-Auth-Token": token}).status_code == 404


def test_identity_version_documents(lc):
    url = lc.clouds["hp-like"]["url"] + "/identity"
    root = requests.get(url)
    assert root.status_code == 300
    assert [v["id"] for v in root.json()["versions"]["values"]] == ["v3.14", "v2.0"]
    v3 = requests.get(url + "/v3").json()["version"]
    assert v3["status"] == "stable"
    assert v3["links"][0]["href"] == url + "/v3/"
