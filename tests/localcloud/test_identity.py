"""Keystone conformance: v3 password and application credential, v2.0, tokens, catalog."""

from __future__ import annotations

import ipaddress
import time
from urllib.parse import urlparse

import pytest
import requests
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import session
from keystoneauth1.identity import generic, v2, v3

from tests.localcloud.conftest import ALL, make_session


def _creds(lc, cloud):
    return lc.clouds[cloud]["credentials"]


def test_v3_password_token_and_catalog(lc):
    c = _creds(lc, "hp-like")
    auth = v3.Password(auth_url=lc.clouds["hp-like"]["url"] + "/identity/v3",
                       username=c["username"], password=c["password"],
                       project_name=c["project_name"], user_domain_name="Default",
                       project_domain_name="Default")
    sess = session.Session(auth=auth)
    access = auth.get_access(sess)
    assert access.project_id == c["project_id"] and access.user_id == c["user_id"]
    assert access.expires is not None
    catalog = access.service_catalog
    for service in ("identity", "image", "object-store"):
        for interface in ("public", "internal"):
            url = catalog.url_for(service_type=service, interface=interface,
                                  region_name="region-b.geo-1")
            assert urlparse(url).hostname == "127.0.0.1"


def test_v2_password_on_a_v2_only_cloud(lc):
    c = _creds(lc, "rackspace-like")
    auth = v2.Password(auth_url=lc.clouds["rackspace-like"]["url"] + "/identity/v2.0",
                       username=c["username"], password=c["password"],
                       tenant_name=c["project_name"])
    sess = session.Session(auth=auth)
    access = auth.get_access(sess)
    assert access.project_id == c["project_id"]
    regions = {e["region"] for s in access.service_catalog.catalog for e in s["endpoints"]}
    assert regions == {"DFW", "ORD"}
    assert sess.get_endpoint(service_type="object-store", region_name="ORD").endswith(
        "/v1/AUTH_" + c["project_id"])


def test_hp_like_serves_v2_0_beside_v3(lc):
    c = _creds(lc, "hp-like")
    auth = v2.Password(auth_url=lc.clouds["hp-like"]["url"] + "/identity/v2.0",
                       username=c["username"], password=c["password"],
                       tenant_name=c["project_name"])
    assert session.Session(auth=auth).get_token()


def test_v3_is_absent_on_a_v2_only_cloud(lc):
    url = lc.clouds["rackspace-like"]["url"] + "/identity/v3/auth/tokens"
    assert requests.post(url, json={"auth": {}}).status_code in (401, 404)
    versions = requests.get(lc.clouds["rackspace-like"]["url"] + "/identity/")
    assert versions.status_code == 300
    assert [v["id"] for v in versions.json()["versions"]["values"]] == ["v2.0"]


def test_application_credential(lc):
    c = _creds(lc, "vexxhost-like")
    auth = v3.ApplicationCredential(
        auth_url=lc.clouds["vexxhost-like"]["url"] + "/identity/v3",
        application_credential_id=c["application_credential_id"],
        application_credential_secret=c["application_credential_secret"])
    sess = session.Session(auth=auth)
    access = auth.get_access(sess)
    assert access.project_id == c["project_id"]
    assert sess.get(sess.get_endpoint(service_type="image") + "/v2/images").status_code == 200


def test_generic_password_discovers_from_the_unversioned_root(lc):
    c = _creds(lc, "ovh-like")
    auth = generic.Password(auth_url=lc.clouds["ovh-like"]["url"] + "/identity",
                            username=c["username"], password=c["password"],
                            project_name=c["project_name"], user_domain_id="default",
                            project_domain_id="default")
    assert session.Session(auth=auth).get_token()


@pytest.mark.parametrize("cloud", ALL)
def test_clouds_yaml_credentials_work_everywhere(lc, sessions, cloud):
    sess = sessions[cloud]
    assert sess.get_token()
    assert sess.get_endpoint(service_type="image", interface="public")


def test_wrong_password_is_401(lc):
    c = _creds(lc, "dreamhost-like")
    auth = v3.Password(auth_url=lc.clouds["dreamhost-like"]["url"] + "/identity/v3",
                       username=c["username"], password="wrong", project_name="demo",
                       user_domain_name="Default", project_domain_name="Default")
    with pytest.raises(ks_exc.Unauthorized):
        session.Session(auth=auth).get_token()


@pytest.mark.parametrize("path", ["/image/v2/images", "/v1/AUTH_x", "/identity/v3/auth/catalog"])
def test_every_call_needs_a_token(lc, path):
    url = lc.clouds["dreamhost-like"]["url"] + path
    assert requests.get(url).status_code == 401
    bad = requests.get(url, headers={"X-Auth-Token": "gAAAAnot-a-token"})
    assert bad.status_code == 401
    assert "WWW-Authenticate" in bad.headers


def test_a_token_of_another_cloud_is_refused(lc, sessions):
    token = sessions["ovh-like"].get_token()
    url = lc.clouds["dreamhost-like"]["url"] + "/image/v2/images"
    assert requests.get(url, headers={"X-Auth-Token": token}).status_code == 401


def test_token_validate_and_revoke(lc):
    sess = make_session(lc, "dreamhost-like")
    token = sess.get_token()
    url = lc.clouds["dreamhost-like"]["url"] + "/identity/v3/auth/tokens"
    headers = {"X-Auth-Token": token, "X-Subject-Token": token}
    shown = requests.get(url, headers=headers)
    assert shown.status_code == 200 and shown.json()["token"]["catalog"]
    assert requests.delete(url, headers=headers).status_code == 204
    images = lc.clouds["dreamhost-like"]["url"] + "/image/v2/images"
    assert requests.get(images, headers={"X-Auth-Token": token}).status_code == 401


def test_expired_tokens_are_refused_and_keystoneauth_reauthenticates(tmp_path):
    from localcloud.testing import running_cloud

    with running_cloud(["ovh-like"], tmp_path, extra_args=["--token-ttl", "1"]) as short:
        sess = make_session(short, "ovh-like")
        first = sess.get_token()
        images = sess.get_endpoint(service_type="image") + "/v2/images"
        time.sleep(1.2)
        assert requests.get(images, headers={"X-Auth-Token": first}).status_code == 401
        # keystoneauth notices the expiry itself and fetches a new token
        assert sess.get(images).status_code == 200
        assert sess.get_token() != first


def test_catalog_hands_out_only_loopback_addresses(lc, sessions):
    for cloud in ALL:
        access = sessions[cloud].auth.get_access(sessions[cloud])
        for service in access.service_catalog.catalog:
            for endpoint in service["endpoints"]:
                for key, url in endpoint.items():
                    if key.lower().endswith("url"):
                        host = urlparse(url).hostname
                        assert ipaddress.ip_address(host).is_loopback, url
