"""Sessions from clouds.yaml entries; secrets never reach the log; auth failures are one line."""

from __future__ import annotations

import contextlib
import logging
import socket
import time

import pytest

from pipeline.cloud import session as session_module
from pipeline.cloud.session import (
    adapter,
    cloud_errors,
    make_session,
    request_timeouts,
    verify_option,
)
from pipeline.core import errors
from pipeline.settings.clouds import cloud_from_entry
from tests.unit.fake_openstack import APP_SECRET, PASSWORD, TOKEN, serve

IMAGES = {"GET /image/v2/images": (200, {"images": []})}


@pytest.fixture
def fake():
    with serve({"image": "/image/v2"}, IMAGES) as served:
        yield served


def cloud(entry):
    return cloud_from_entry("testcloud", entry)


ENTRIES = {
    "v3 password": lambda url: {"auth_type": "v3password", "auth": {
        "auth_url": f"{url}/v3", "username": "demo", "password": PASSWORD,
        "project_name": "demo", "user_domain_name": "Default",
        "project_domain_name": "Default"}},
    "v2.0 password via identity_api_version": lambda url: {
        "identity_api_version": "2.0", "auth": {
            "auth_url": f"{url}/v2.0", "username": "demo", "password": PASSWORD,
            "project_name": "demo"}},
    "v3 password, one domain_id for user and project (openstacksdk copies it)": lambda url: {
        "identity_api_version": 3, "auth": {
            "auth_url": f"{url}/v3", "username": "demo", "password": PASSWORD,
            "project_name": "demo", "domain_id": "default"}},
    "v3 application credential": lambda url: {"auth_type": "v3applicationcredential", "auth": {
        "auth_url": f"{url}/v3", "application_credential_id": "ac1",
        "application_credential_secret": APP_SECRET}},
}


@pytest.mark.parametrize("kind", sorted(ENTRIES))
def test_auth_works_and_secrets_stay_out_of_the_log(fake, kind, caplog):
    entry = {"region_name": "RegionOne", **ENTRIES[kind](fake.url)}
    with caplog.at_level(logging.DEBUG):
        session = make_session(cloud(entry))
        resp = adapter(session, cloud(entry), "image").get("images")
        assert resp.json() == {"images": []}
    text = caplog.text + repr(cloud(entry))
    assert "REQ: curl" in text                     # logging was really on
    assert PASSWORD not in text
    assert APP_SECRET not in text
    assert TOKEN not in text                       # keystoneauth logs a SHA256 of it


@pytest.mark.parametrize("kind", ["v3 password", "v2.0 password via identity_api_version"])
def test_bad_credentials_one_line_no_retry(fake, kind, caplog):
    entry = {"region_name": "RegionOne", **ENTRIES[kind](fake.url)}
    entry["auth"]["password"] = "wrong"
    session = make_session(cloud(entry))
    with caplog.at_level(logging.DEBUG), pytest.raises(errors.Unauthorized) as info:
        with cloud_errors("testcloud", "upload"):
            adapter(session, cloud(entry), "image").get("images")
    assert str(info.value) == "testcloud: auth: Keystone rejected the credentials (401)"
    assert "\n" not in str(info.value)
    tokens = [r for r in fake.requests if r.startswith("POST") and "token" in r]
    assert len(tokens) == 1
    assert "wrong" not in caplog.text


def test_missing_options_is_a_config_error():
    with pytest.raises(errors.ConfigError, match="auth_url"):
        make_session(cloud({"auth_type": "v3password",
                            "auth": {"username": "u", "user_domain_id": "default"}}))


@pytest.mark.parametrize("entry, expected", [
    ({}, True), ({"verify": False}, False),
    ({"cacert": "/etc/ca.pem"}, "/etc/ca.pem"), ({"verify": True, "cacert": "/c"}, "/c"),
    ({"verify": False, "cacert": "/c"}, False),
])
def test_verify_option(entry, expected):
    assert verify_option(cloud(entry)) == expected


@pytest.mark.parametrize("entry, message", [
    ({"auth": {"auth_url": "http://k/v3", "username": "u", "project_name": "p"},
      "identity_api_version": 3}, "missing password for auth_type password"),
    ({"auth": {"auth_url": "http://k/v2.0", "username": "u", "project_name": "p"},
      "identity_api_version": 2}, "missing password for auth_type password"),
    ({"auth": {"auth_url": "http://k/v3", "username": "u", "password": ""}},
     "missing password for auth_type password"),
    ({"auth_type": "v3applicationcredential",
      "auth": {"auth_url": "http://k/v3", "application_credential_id": "a"}},
     "missing application_credential_secret"),
    ({"auth_type": "v3password", "auth": {"username": "u", "user_domain_id": "default"}},
     "missing auth_url, password for auth_type v3password"),
])
def test_missing_secret_is_a_config_error_naming_it(entry, message):
    with pytest.raises(errors.ConfigError, match=message) as caught:
        make_session(cloud(entry))
    assert "clouds." in str(caught.value) and "TypeError" not in str(caught.value)


@contextlib.contextmanager
def silent_server():
    """A socket that accepts connections and never answers: a stalled service."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.mark.timeout(30)          # without timeouts the call would hang forever
@pytest.mark.parametrize("extra", [{"api_timeout": 0.5}, {}])
def test_a_stalled_call_ends_in_a_retriable_one_line_error(fake, extra, monkeypatch):
    """clouds.yaml's api_timeout, else the default, bounds every call (here: a read)."""
    monkeypatch.setattr(session_module, "READ_TIMEOUT", 1.0)     # the default, made short
    with silent_server() as url:
        entry = {"region_name": "RegionOne", "image_endpoint_override": url, **extra,
                 **ENTRIES["v3 password"](fake.url)}
        session = make_session(cloud(entry))
        began = time.monotonic()
        with pytest.raises(errors.TimedOut) as info:
            with cloud_errors("testcloud", "upload"):
                adapter(session, cloud(entry), "image").get("images")
    assert time.monotonic() - began < 5
    assert errors.is_retriable(info.value)
    assert str(info.value).startswith("testcloud: upload: no progress within the timeout")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("extra, expected", [
    ({}, (session_module.CONNECT_TIMEOUT, session_module.READ_TIMEOUT)),
    ({"api_timeout": 30}, (30.0, 30.0)), ({"api_timeout": "7.5"}, (7.5, 7.5)),
])
def test_request_timeouts(extra, expected):
    assert request_timeouts(cloud(extra)) == expected


@pytest.mark.parametrize("value", [0, -1, "soon", True])
def test_a_bad_api_timeout_is_a_config_error(value):
    with pytest.raises(errors.ConfigError, match="clouds.testcloud.api_timeout"):
        request_timeouts(cloud({"api_timeout": value}))
