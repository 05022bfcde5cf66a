"""Nova: the compute router, its version documents, flavors, keypairs, quotas and limits.

The API is v2.1 with the microversions up to the personality's
``compute.max_microversion`` (``compute_version``: 2.1, none later, for the
shapes of the talks). Servers live in ``compute_servers``; the nova-network proxies
(os-floating-ips, os-floating-ip-pools, os-security-groups) in
``compute_novanet``, routed where the personality's ``network.api`` is
``nova-network`` or ``neutron``; the paths, links and flavors they share in ``compute_base``.
Errors are Nova's: ``{"itemNotFound": {"message", "code"}}``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from aiohttp import web
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from localcloud import compute_novanet, compute_servers, compute_version, netmodel, quotas
from localcloud.cloud import Cloud, Service
from localcloud.compute_base import API, FLAVORS, PREFIX, endpoint, flavor, link
from localcloud.http import ERROR_BODIES, HTTPFault, json_response, public, read_json

ERROR_NAMES = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
               405: "badMethod", 409: "conflictingRequest", 413: "overLimit",
               415: "badMediaType", 429: "overLimit", 501: "notImplemented",
               503: "serviceUnavailable"}


def nova_error(status: int, message: str, kind: str | None) -> dict:
    return {kind or ERROR_NAMES.get(status, "computeFault"): {"message": message,
                                                               "code": status}}


ERROR_BODIES["compute"] = nova_error


# --- versions -------------------------------------------------------------------------
def version_doc(cloud: Cloud, vid: str) -> dict:
    current = vid == "v2.1"
    newest = compute_version.text(compute_version.served(cloud))
    return {"id": vid, "status": "CURRENT" if current else "SUPPORTED",
            "version": newest if current else "",
            "min_version": compute_version.text(compute_version.MIN) if current else "",
            "updated": "2013-07-23T11:33:21Z" if current else "2011-01-21T11:33:21Z",
            "links": [{"rel": "self", "href": f"{cloud.base_url}{PREFIX}/{vid}/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.compute+json;version=2.1"}]}


@public
async def versions(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    return json_response({"versions": [version_doc(cloud, v) for v in ("v2.0", "v2.1")]})


@public
async def version(request: web.Request) -> web.Response:
    return json_response({"version": version_doc(request.app["cloud"], "v2.1")})


# --- flavors --------------------------------------------------------------------------
def flavor_view(request: web.Request, f: dict, detail: bool = True) -> dict:
    view = {"id": f["id"], "name": f["name"], "links": link(request, f"flavors/{f['id']}")}
    if detail:
        view.update(ram=f["ram"], vcpus=f["vcpus"], disk=f["disk"], swap="",
                    rxtx_factor=1.0, **{"OS-FLV-EXT-DATA:ephemeral": 0,
                                        "OS-FLV-DISABLED:disabled": False,
                                        "os-flavor-access:is_public": True})
    return view


def zero_disk(request: web.Request) -> bool:
    return request.app["cloud"].personality.compute["zero_disk_flavors"]


async def flavors_list(request: web.Request) -> web.Response:
    detail = request.path.endswith("/detail")
    return json_response({"flavors": [flavor_view(request, flavor(row[0], zero_disk(request)),
                                                  detail) for row in FLAVORS]})


async def flavor_show(request: web.Request) -> web.Response:
    f = flavor(request.match_info["flavor_id"], zero_disk(request))
    if f is None:
        raise HTTPFault(404, f"Flavor {request.match_info['flavor_id']} could not be found.")
    return json_response({"flavor": flavor_view(request, f)})


# --- keypairs -------------------------------------------------------------------------
def fingerprint(cloud: Cloud, public_key: str) -> str:
    """Nova's check (``nova/crypto.py`` ``generate_fingerprint``): a key it cannot load
    is "Keypair data is invalid", ed25519 too where the cloud's Nova does not know it."""
    if public_key.split()[:1] == ["ssh-ed25519"] and \
            not cloud.personality.compute["ed25519_keys"]:
        raise HTTPFault(400, "Keypair data is invalid: failed to generate fingerprint")
    try:
        serialization.load_ssh_public_key(public_key.strip().encode())
        blob = base64.b64decode(public_key.split()[1], validate=True)
    except (IndexError, binascii.Error, ValueError, UnsupportedAlgorithm) as e:
        raise HTTPFault(400, "Keypair data is invalid: failed to generate fingerprint") from e
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, 32, 2))


def generate_keypair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return private, public + " Generated-by-Nova"


def keypair_view(request: web.Request, doc: dict) -> dict:
    view = {"name": doc["name"], "public_key": doc["public_key"],
            "fingerprint": doc["fingerprint"]}
    if compute_version.of(request) >= compute_version.KEYPAIR_TYPE:
        view["type"] = "ssh"
    return view


def get_keypair(cloud: Cloud, name: str) -> dict:
    doc = netmodel.get(cloud, "keypair", name)
    if doc is None:
        raise HTTPFault(404, f"Keypair {name} not found for user "
                             f"{cloud.credentials['user_id']}")
    return doc


async def keypairs_list(request: web.Request) -> web.Response:
    docs = netmodel.all_of(request.app["cloud"], "keypair")
    return json_response({"keypairs": [{"keypair": keypair_view(request, d)} for d in docs]})


async def keypair_show(request: web.Request) -> web.Response:
    doc = get_keypair(request.app["cloud"], request.match_info["name"])
    view = dict(keypair_view(request, doc), id=doc["_number"], user_id=doc["user_id"], deleted=False,
                created_at=doc["created_at"], updated_at=None, deleted_at=None)
    return json_response({"keypair": view})


async def keypair_create(request: web.Request) -> web.Response:
    cloud: Cloud = request.app["cloud"]
    body = (await read_json(request) or {}).get("keypair")
    if not isinstance(body, dict) or not isinstance(body.get("name"), str) or \
            not body["name"].strip():
        raise HTTPFault(400, "Invalid input for field/attribute keypair.")
    name = body["name"]
    if netmodel.get(cloud, "keypair", name):
        raise HTTPFault(409, f"Key pair '{name}' already exists.")
    if quotas.exceeded(request, "key_pairs"):
        raise HTTPFault(403, "Quota exceeded, too many key pairs.")
    private = None
    public_key = body.get("public_key")
    if public_key is None:
        private, public_key = generate_keypair()
    doc = {"id": name, "name": name, "public_key": public_key.strip(),
           "fingerprint": fingerprint(cloud, public_key), "user_id": cloud.credentials["user_id"],
           "_number": len(netmodel.all_of(cloud, "keypair")) + 1}
    netmodel.save(cloud, "keypair", doc)
    view = dict(keypair_view(request, doc), user_id=doc["user_id"])
    if private:
        view["private_key"] = private
    typed = compute_version.of(request) >= compute_version.KEYPAIR_TYPE
    return json_response({"keypair": view}, status=201 if typed else 200)


async def keypair_delete(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    doc = get_keypair(cloud, request.match_info["name"])
    netmodel.delete(cloud, "keypair", doc["id"])
    typed = compute_version.of(request) >= compute_version.KEYPAIR_TYPE
    return web.Response(status=204 if typed else 202)


# --- quotas and limits ------------------------------------------------------------------
NOVA_QUOTAS = ("instances", "cores", "ram", "key_pairs", "floating_ips", "security_groups",
               "security_group_rules")
FIXED_QUOTAS = {"fixed_ips": -1, "metadata_items": 128, "injected_files": 5,
                "injected_file_content_bytes": 10240, "injected_file_path_bytes": 255,
                "server_groups": 10, "server_group_members": 10}


async def quota_show(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    limit, used = quotas.limits(cloud), quotas.usage(cloud)
    detail = request.path.endswith("/detail")
    quota_set: dict = {"id": request.match_info["tenant_id"]}
    for name in NOVA_QUOTAS:
        quota_set[name] = ({"limit": limit[name], "in_use": used[name], "reserved": 0}
                           if detail else limit[name])
    for name, value in FIXED_QUOTAS.items():
        quota_set[name] = {"limit": value, "in_use": 0, "reserved": 0} if detail else value
    return json_response({"quota_set": quota_set})


async def limits_show(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    limit, used = quotas.limits(cloud), quotas.usage(cloud)
    absolute = {"maxTotalInstances": limit["instances"], "totalInstancesUsed": used["instances"],
                "maxTotalCores": limit["cores"], "totalCoresUsed": used["cores"],
                "maxTotalRAMSize": limit["ram"], "totalRAMUsed": used["ram"],
                "maxTotalKeypairs": limit["key_pairs"],
                "maxTotalFloatingIps": limit["floating_ips"],
                "totalFloatingIpsUsed": used["floating_ips"],
                "maxSecurityGroups": limit["security_groups"],
                "totalSecurityGroupsUsed": used["security_groups"],
                "maxSecurityGroupRules": limit["security_group_rules"],
                "maxServerMeta": 128, "maxImageMeta": 128, "maxPersonality": 5,
                "maxPersonalitySize": 10240, "maxServerGroups": 10,
                "maxServerGroupMembers": 10, "totalServerGroupsUsed": 0}
    return json_response({"limits": {"rate": [], "absolute": absolute}})


async def extensions(request: web.Request) -> web.Response:
    names = ["os-keypairs", "os-config-drive", "os-console-output", "os-extended-ips",
             "os-extended-ips-mac", "os-extended-status", "os-quota-sets", "os-user-data"]
    api = request.app["cloud"].personality.network["api"]
    if api != "none":
        names += ["os-floating-ips", "os-floating-ip-pools", "os-security-groups"]
    if api == "nova-network":
        names += ["os-tenant-networks"]
    return json_response({"extensions": [
        {"alias": n, "name": n, "namespace": "http://docs.openstack.org/compute/ext/fake_xml",
         "description": n, "links": [], "updated": "2014-12-03T00:00:00Z"} for n in names]})


# --- plumbing -------------------------------------------------------------------------
def resume(cloud: Cloud) -> None:
    netmodel.seed(cloud)
    compute_servers.resume(cloud)


def resources(cloud: Cloud) -> dict[str, list]:
    servers = [{"id": s["id"], "name": s["name"], "status": s["status"]}
               for s in netmodel.all_of(cloud, "server")]
    mine = {s["id"] for s in servers}
    processes = [p for p in (cloud.hypervisor.processes() if cloud.hypervisor else [])
                 if p["server_id"] in mine]
    keypairs = [{"name": k["name"], "fingerprint": k["fingerprint"]}
                for k in netmodel.all_of(cloud, "keypair")]
    found = {"servers": servers, "qemu_processes": processes, "keypairs": keypairs}
    if "network" not in cloud.personality.services:      # nova-network or none: list here
        found.update(netmodel.user_resources(cloud))
    return found


def add_routes(app: web.Application) -> None:
    app.on_response_prepare.append(compute_version.version_headers)
    r = app.router
    for path in (PREFIX, PREFIX + "/"):
        r.add_get(path, versions)
    for path in (f"{PREFIX}/v2.1", f"{PREFIX}/v2.1/"):
        r.add_get(path, version)
    r.add_get(f"{API}/flavors", flavors_list)
    r.add_get(f"{API}/flavors/detail", flavors_list)
    r.add_get(f"{API}/flavors/{{flavor_id}}", flavor_show)
    r.add_get(f"{API}/os-keypairs", keypairs_list)
    r.add_post(f"{API}/os-keypairs", keypair_create)
    r.add_get(f"{API}/os-keypairs/{{name}}", keypair_show)
    r.add_delete(f"{API}/os-keypairs/{{name}}", keypair_delete)
    r.add_get(f"{API}/os-quota-sets/{{tenant_id}}", quota_show)
    r.add_get(f"{API}/os-quota-sets/{{tenant_id}}/detail", quota_show)
    r.add_get(f"{API}/limits", limits_show)
    r.add_get(f"{API}/extensions", extensions)
    compute_servers.add_routes(app, API)
    if app["cloud"].personality.network["api"] != "none":       # nova-network, or Neutron
        compute_novanet.add_routes(app, API)


SERVICE = Service(type="compute", name="nova", prefix=PREFIX, endpoint=endpoint,
                  add_routes=add_routes, resume=resume, resources=resources)
