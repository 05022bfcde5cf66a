"""Keystone: v3 password, application-credential and token auth, v2.0 password auth.

Tokens are random, kept in the store with their expiry, and checked on every
call by the middleware. The catalog lists every service of the personality in
each region, with public, internal (and for v2.0, admin) URLs.
"""

from __future__ import annotations

import hmac
import secrets
import time
import uuid

from aiohttp import web

from localcloud.cloud import DOMAIN, Cloud, Service
from localcloud.http import UNAUTHORIZED, HTTPFault, iso, json_response, public, read_json

PREFIX = "/identity"
MEDIA = "application/vnd.openstack.identity-{}+json"
INTERFACES = ("public", "internal")
ROLES = [{"id": uuid.uuid5(uuid.NAMESPACE_URL, r).hex, "name": r} for r in ("member", "reader")]


def _endpoint(cloud: Cloud, project_id: str) -> str:
    return f"{cloud.base_url}{PREFIX}"


def version_doc(cloud: Cloud, version: str) -> dict:
    only = len(cloud.personality.identity) == 1
    stable = version == "v3" or only
    return {"id": "v3.14" if version == "v3" else "v2.0",
            "status": "stable" if stable else "deprecated",
            "updated": "2020-04-07T00:00:00Z" if version == "v3" else "2016-08-04T00:00:00Z",
            "links": [{"rel": "self", "href": f"{cloud.base_url}{PREFIX}/{version}/"}],
            "media-types": [{"base": "application/json", "type": MEDIA.format(version)}]}


@public
async def versions(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    docs = [version_doc(cloud, v) for v in cloud.personality.identity]
    return json_response({"versions": {"values": docs}}, status=300,
                         headers={"Location": docs[0]["links"][0]["href"]})


def _version_handler(version: str):
    @public
    async def handler(request: web.Request) -> web.Response:
        return json_response({"version": version_doc(request.app["cloud"], version)})
    return handler


# --- issuing tokens ------------------------------------------------------------------
def issue_token(cloud: Cloud, version: str, methods: list[str], project_id: str | None,
                appcred: bool = False) -> tuple[str, dict]:
    now = time.time()
    token_id = "gAAAA" + secrets.token_urlsafe(32)
    doc = {"id": token_id, "version": version, "methods": methods,
           "user_id": cloud.credentials["user_id"], "project_id": project_id,
           "issued": now, "expires": now + cloud.token_ttl, "appcred": appcred,
           "audit_ids": [secrets.token_urlsafe(16)]}
    cloud.store.put_token(token_id, cloud.realm, doc["expires"], doc)
    return token_id, doc


def _user(cloud: Cloud) -> dict:
    c = cloud.credentials
    return {"id": c["user_id"], "name": c["username"], "domain": DOMAIN,
            "password_expires_at": None}


def _project(cloud: Cloud) -> dict:
    c = cloud.credentials
    return {"id": c["project_id"], "name": c["project_name"], "domain": DOMAIN}


def v3_token_body(cloud: Cloud, doc: dict) -> dict:
    token = {"methods": doc["methods"], "user": _user(cloud), "audit_ids": doc["audit_ids"],
             "issued_at": iso(doc["issued"], micro=True),
             "expires_at": iso(doc["expires"], micro=True)}
    if doc["project_id"]:
        token.update(project=_project(cloud), is_domain=False, roles=ROLES,
                     catalog=v3_catalog(cloud, doc["project_id"]))
    if doc["appcred"]:
        c = cloud.credentials
        token["application_credential"] = {"id": c["application_credential_id"],
                                           "name": c["application_credential_name"],
                                           "restricted": True}
    return {"token": token}


def v3_catalog(cloud: Cloud, project_id: str) -> list[dict]:
    catalog = []
    for entry in cloud.catalog(project_id):
        endpoints = [{"id": uuid.uuid5(uuid.NAMESPACE_URL, f"{entry['id']}/{r}/{i}").hex,
                      "interface": i, "region": r, "region_id": r, "url": entry["urls"][r]}
                     for r in cloud.personality.regions for i in INTERFACES]
        catalog.append({"id": entry["id"], "type": entry["type"], "name": entry["name"],
                        "endpoints": endpoints})
    return catalog


def _same(given: object, expected: str) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())


def _domain_ok(domain: object) -> bool:
    return isinstance(domain, dict) and (domain.get("id") == DOMAIN["id"]
                                         or domain.get("name") == DOMAIN["name"])


def _check_password(cloud: Cloud, user: dict) -> None:
    c = cloud.credentials
    by_id = user.get("id") == c["user_id"]
    by_name = user.get("name") == c["username"] and _domain_ok(user.get("domain"))
    if not (by_id or by_name) or not _same(user.get("password"), c["password"]):
        raise HTTPFault(401, UNAUTHORIZED)


def _check_appcred(cloud: Cloud, cred: dict) -> None:
    c = cloud.credentials
    by_id = cred.get("id") == c["application_credential_id"]
    user = cred.get("user") or {}
    by_name = cred.get("name") == c["application_credential_name"] and (
        user.get("id") == c["user_id"]
        or (user.get("name") == c["username"] and _domain_ok(user.get("domain"))))
    if not (by_id or by_name) or not _same(cred.get("secret"), c["application_credential_secret"]):
        raise HTTPFault(401, UNAUTHORIZED)


def _scope_v3(cloud: Cloud, scope: object) -> str | None:
    c = cloud.credentials
    if scope is None:
        return c["project_id"]          # the user's default project
    if scope == "unscoped":
        return None
    project = scope.get("project") if isinstance(scope, dict) else None
    if not isinstance(project, dict):
        raise HTTPFault(401, "Only project scope is supported here.")
    if project.get("id") == c["project_id"] or (
            project.get("name") == c["project_name"] and _domain_ok(project.get("domain"))):
        return c["project_id"]
    raise HTTPFault(401, "User has no access to the requested project.")


@public
async def v3_issue(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    body = await read_json(request)
    try:
        auth = body["auth"]
        identity = auth["identity"]
        methods = list(identity["methods"])
    except (KeyError, TypeError) as e:
        raise HTTPFault(400, f"Expecting to find {e} in auth.") from e
    scope = auth.get("scope")
    if methods == ["password"]:
        _check_password(cloud, (identity.get("password") or {}).get("user") or {})
        project_id = _scope_v3(cloud, scope)
        token_id, doc = issue_token(cloud, "v3", methods, project_id)
    elif methods == ["application_credential"]:
        if scope:
            raise HTTPFault(401, "Application credentials cannot request a scope.")
        _check_appcred(cloud, identity.get("application_credential") or {})
        token_id, doc = issue_token(cloud, "v3", methods, cloud.credentials["project_id"],
                                    appcred=True)
    elif methods == ["token"]:
        old = _valid_token(cloud, (identity.get("token") or {}).get("id"))
        project_id = _scope_v3(cloud, scope) if scope else old["project_id"]
        token_id, doc = issue_token(cloud, "v3", old["methods"], project_id, old["appcred"])
    else:
        raise HTTPFault(401, f"Unsupported authentication methods {methods}.")
    return json_response(v3_token_body(cloud, doc), status=201,
                         headers={"X-Subject-Token": token_id})


def _valid_token(cloud: Cloud, token_id: object) -> dict:
    found = cloud.store.get_token(token_id) if isinstance(token_id, str) else None
    if found is None or found[0] != cloud.realm or found[1] <= time.time():
        raise HTTPFault(404, "Could not find token.")
    return found[2]


async def v3_validate(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    doc = _valid_token(cloud, request.headers.get("X-Subject-Token"))
    return json_response(v3_token_body(cloud, doc),
                         headers={"X-Subject-Token": doc["id"]})


async def v3_revoke(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    doc = _valid_token(cloud, request.headers.get("X-Subject-Token"))
    cloud.store.expire_token(doc["id"], time.time() - 1)
    return web.Response(status=204)


async def v3_catalog_handler(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    project_id = request["token"]["project_id"]
    if not project_id:
        raise HTTPFault(403, "An unscoped token has no catalog.")
    return json_response({"catalog": v3_catalog(cloud, project_id)})


async def v3_projects(request: web.Request) -> web.Response:
    project = dict(_project(request.app["cloud"]), domain_id=DOMAIN["id"], enabled=True,
                   is_domain=False, parent_id=DOMAIN["id"], description="")
    project.pop("domain")
    return json_response({"projects": [project]})


# --- v2.0 ---------------------------------------------------------------------------
def v2_catalog(cloud: Cloud, project_id: str) -> list[dict]:
    catalog = []
    for entry in cloud.catalog(project_id):
        suffix = "/v2.0" if entry["type"] == "identity" else ""
        endpoints = [{"id": uuid.uuid5(uuid.NAMESPACE_URL, f"{entry['id']}/{r}").hex,
                      "region": r, "publicURL": entry["urls"][r] + suffix,
                      "internalURL": entry["urls"][r] + suffix,
                      "adminURL": entry["urls"][r] + suffix}
                     for r in cloud.personality.regions]
        catalog.append({"type": entry["type"], "name": entry["name"], "endpoints": endpoints,
                        "endpoints_links": []})
    return catalog


@public
async def v2_issue(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    c = cloud.credentials
    auth = (await read_json(request) or {}).get("auth")
    if not isinstance(auth, dict):
        raise HTTPFault(400, "Expecting to find auth in request body.")
    if "passwordCredentials" in auth:
        creds = auth["passwordCredentials"] or {}
        if creds.get("username") != c["username"] or not _same(creds.get("password"),
                                                                  c["password"]):
            raise HTTPFault(401, UNAUTHORIZED)
        methods = ["password"]
    elif "token" in auth:
        methods = _valid_token(cloud, (auth["token"] or {}).get("id"))["methods"]
    else:
        raise HTTPFault(400, "Expecting to find passwordCredentials in auth.")
    wanted = [v for v in (auth.get("tenantId"), auth.get("tenantName")) if v]
    if wanted and wanted[0] not in (c["project_id"], c["project_name"]):
        raise HTTPFault(401, "User has no access to the requested tenant.")
    project_id = c["project_id"] if wanted else None
    token_id, doc = issue_token(cloud, "v2.0", methods, project_id)
    token = {"id": token_id, "issued_at": iso(doc["issued"]), "expires": iso(doc["expires"]),
             "audit_ids": doc["audit_ids"]}
    access: dict = {"token": token, "serviceCatalog": [],
                    "user": {"id": c["user_id"], "name": c["username"],
                             "username": c["username"], "roles_links": [],
                             "roles": [{"name": r["name"]} for r in ROLES]},
                    "metadata": {"is_admin": 0, "roles": [r["id"] for r in ROLES]}}
    if project_id:
        token["tenant"] = {"id": c["project_id"], "name": c["project_name"], "enabled": True,
                           "description": None}
        access["serviceCatalog"] = v2_catalog(cloud, project_id)
    return json_response({"access": access})


def add_routes(app: web.Application) -> None:
    cloud = app["cloud"]
    r = app.router
    for path in (PREFIX, PREFIX + "/"):
        r.add_get(path, versions)
    for version in cloud.personality.identity:
        for path in (f"{PREFIX}/{version}", f"{PREFIX}/{version}/"):
            r.add_get(path, _version_handler(version))
    if cloud.has("identity", "v3"):
        r.add_post(f"{PREFIX}/v3/auth/tokens", v3_issue)
        r.add_get(f"{PREFIX}/v3/auth/tokens", v3_validate)
        r.add_delete(f"{PREFIX}/v3/auth/tokens", v3_revoke)
        r.add_get(f"{PREFIX}/v3/auth/catalog", v3_catalog_handler)
        r.add_get(f"{PREFIX}/v3/auth/projects", v3_projects)
    if cloud.has("identity", "v2.0"):
        r.add_post(f"{PREFIX}/v2.0/tokens", v2_issue)


SERVICE = Service(type="identity", name="keystone", prefix=PREFIX, endpoint=_endpoint,
                  add_routes=add_routes)
