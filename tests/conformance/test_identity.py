"""Keystone v3: token issue, validation, catalog, version document, 401 shape."""

from __future__ import annotations

import requests

SERVICES = ("identity", "image", "object-store")


def _password_body(auth: dict, password: str | None = None) -> dict:
    return {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": auth["username"], "domain": {"name": auth["user_domain_name"]},
            "password": password or auth["password"]}}},
        "scope": {"project": {"name": auth["project_name"],
                              "domain": {"name": auth["project_domain_name"]}}}}}


def test_token_issue_and_catalog(target):
    config = target.config()
    auth = config["auth"]
    resp = requests.post(auth["auth_url"].rstrip("/") + "/auth/tokens",
                         json=_password_body(auth), timeout=30)
    assert resp.status_code == 201, resp.text
    token_id = resp.headers["X-Subject-Token"]
    token = resp.json()["token"]
    assert token["methods"] == ["password"]
    assert token["project"]["name"] == auth["project_name"]
    assert token["user"]["name"] == auth["username"]
    assert token["expires_at"].endswith("Z")
    assert {r["name"] for r in token["roles"]}
    by_type = {entry["type"]: entry for entry in token["catalog"]}
    assert set(SERVICES) <= set(by_type)
    for service in SERVICES:
        endpoints = by_type[service]["endpoints"]
        interfaces = {e["interface"] for e in endpoints if e["region_id"] == config["region_name"]}
        assert {"public", "internal"} <= interfaces, (service, endpoints)
        assert all(e["url"].startswith("http://127.0.0.1:") for e in endpoints)
    swift_url = next(e["url"] for e in by_type["object-store"]["endpoints"])
    assert swift_url.endswith(f"/v1/AUTH_{token['project']['id']}")

    check = requests.get(auth["auth_url"].rstrip("/") + "/auth/tokens", timeout=30,
                         headers={"X-Auth-Token": token_id, "X-Subject-Token": token_id})
    assert check.status_code == 200, check.text
    assert check.json()["token"]["project"]["id"] == token["project"]["id"]


def test_wrong_password_is_401(target):
    auth = target.config()["auth"]
    resp = requests.post(auth["auth_url"].rstrip("/") + "/auth/tokens", timeout=30,
                         json=_password_body(auth, password="not-the-password"))
    assert resp.status_code == 401
    assert resp.headers["Content-Type"].startswith("application/json")
    error = resp.json()["error"]
    assert error["code"] == 401
    assert error["title"] == "Unauthorized"
    assert error["message"]


def test_identity_version_document(target):
    auth_url = target.config()["auth"]["auth_url"].rstrip("/")
    root = auth_url.removesuffix("/v3")
    resp = requests.get(root + "/", timeout=30)
    assert resp.status_code == 300, resp.text
    values = resp.json()["versions"]["values"]
    v3 = [v for v in values if v["id"].startswith("v3.")]
    assert len(v3) == 1 and v3[0]["status"] == "stable"
    assert any(link["rel"] == "self" and link["href"].rstrip("/").endswith("/v3")
               for link in v3[0]["links"])
    resp = requests.get(auth_url, timeout=30)
    assert resp.status_code == 200
    assert resp.json()["version"]["id"].startswith("v3.")
