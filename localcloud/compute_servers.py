"""Nova servers: create (BUILD -> ACTIVE, or ERROR with a fault), show, list, delete, actions.

Creating a server allocates its ports (the personality's default networks, or
the ``networks`` asked for), then a background build waits for a boot slot and
starts a real qemu guest on the image's bytes (or on its root volume's:
``compute_volumes``); ACTIVE means qemu runs, as in Nova. The faults ``slow_build``, ``server_error`` and ``no_answer`` are taken
by the create request; the guest's death makes the server SHUTOFF (clean
power-off) or ERROR.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
import uuid

from aiohttp import web

from localcloud import (
    compute_novanet,
    compute_ports,
    compute_version,
    compute_volumes,
    configdrive,
    metadata,
    netmodel,
    quotas,
)
from localcloud import volume as volumes
from localcloud.cloud import Cloud
from localcloud.compute_base import flavor, link
from localcloud.guests import BootError, BootSpec, Guest
from localcloud.http import HTTPFault, iso, json_response, read_json, take_fault

NO_VALID_HOST = "No valid host was found. There are not enough hosts available."
POWER = {"ACTIVE": 1, "SHUTOFF": 4, "ERROR": 0, "BUILD": 0}


# --- views ----------------------------------------------------------------------------
def server_view(request: web.Request, doc: dict, detail: bool = True) -> dict:
    cloud: Cloud = request.app["cloud"]
    view = {"id": doc["id"], "name": doc["name"], "links": link(request, f"servers/{doc['id']}")}
    if not detail:
        return view
    groups = sorted({g["name"] for g in security_groups_of(cloud, doc["id"])})
    view.update({
        "status": doc["status"], "tenant_id": doc["tenant_id"], "user_id": doc["user_id"],
        "metadata": doc["metadata"], "hostId": doc["hostId"] if doc["status"] != "BUILD"
        else "", "image": "" if not doc["image_id"] else {   # "": booted from a volume
            "id": doc["image_id"], "links": link(request, f"images/{doc['image_id']}")},
        "flavor": {"id": doc["flavor_id"], "links": link(request,
                                                         f"flavors/{doc['flavor_id']}")},
        "created": iso(doc["_created"]), "updated": iso(doc["_updated"]),
        "addresses": netmodel.server_addresses(cloud, doc["id"]),
        "accessIPv4": "", "accessIPv6": "", "progress": 100 if doc["status"] == "ACTIVE"
        else 0, "key_name": doc["key_name"], "config_drive": "True" if doc["config_drive"]
        else "", "OS-DCF:diskConfig": "MANUAL", "OS-EXT-AZ:availability_zone": "nova",
        "OS-EXT-STS:vm_state": doc["vm_state"], "OS-EXT-STS:task_state": doc["task_state"],
        "OS-EXT-STS:power_state": POWER.get(doc["status"], 0),
        "OS-SRV-USG:launched_at": iso(doc["_launched"], micro=True, zulu=False),
        "OS-SRV-USG:terminated_at": None,
        "os-extended-volumes:volumes_attached": compute_volumes.attached(doc),
        "security_groups": [{"name": g} for g in groups]})
    for since, key, value in (((2, 9), "locked", False),
                              ((2, 19), "description", doc.get("description")),
                              ((2, 26), "tags", [])):
        if compute_version.of(request) >= since:
            view[key] = value
    if doc.get("fault"):
        # the details of a 500 fault are for admins, and the local cloud's user is none
        # (nova/api/openstack/compute/views/servers.py _get_fault)
        view["fault"] = {k: v for k, v in doc["fault"].items()
                         if k != "details" or doc["fault"]["code"] != 500}
    return view


def security_groups_of(cloud: Cloud, server_id: str) -> list[dict]:
    ids = {g for p in netmodel.ports_of(cloud, server_id) for g in p["security_groups"]}
    return [g for g in (netmodel.get(cloud, "secgroup", i) for i in sorted(ids)) if g]


def get_server(cloud: Cloud, server_id: str) -> dict:
    doc = netmodel.get(cloud, "server", server_id)
    if doc is None:
        raise HTTPFault(404, f"Instance {server_id} could not be found.")
    return doc


def save(cloud: Cloud, doc: dict) -> None:
    doc["_updated"] = time.time()
    cloud.store.put_record(cloud.name, "server", doc, doc["_created"])


async def servers_list(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    docs = netmodel.all_of(cloud, "server")
    for key in ("name", "status"):
        if key in request.query:
            docs = [d for d in docs if d[key] == request.query[key]]
    detail = request.path.endswith("/detail")
    return json_response({"servers": [server_view(request, d, detail) for d in docs]})


async def server_show(request: web.Request) -> web.Response:
    doc = get_server(request.app["cloud"], request.match_info["server_id"])
    return json_response({"server": server_view(request, doc)})


async def server_ips(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    doc = get_server(cloud, request.match_info["server_id"])
    return json_response({"addresses": netmodel.server_addresses(cloud, doc["id"])})


async def server_groups(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    doc = get_server(cloud, request.match_info["server_id"])
    groups = security_groups_of(cloud, doc["id"])
    return json_response({"security_groups": [compute_novanet.group_view(cloud, g)
                                              for g in groups]})


# --- create -----------------------------------------------------------------------------
def _image(cloud: Cloud, ref: object) -> dict:
    image_id = str(ref).rstrip("/").rsplit("/", 1)[-1] if ref else ""
    doc = cloud.store.get_record(cloud.name, "image", image_id) if image_id else None
    if doc is None:
        raise HTTPFault(400, f"Image {image_id} could not be found.")
    if doc["status"] != "active":
        raise HTTPFault(400, f"Image {image_id} is not active.")
    return doc


def _user_data(value: object) -> str | None:
    if value is None:
        return None
    try:
        base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError) as e:
        raise HTTPFault(400, "Invalid input for field/attribute user_data. Value: "
                             "not valid base64") from e
    return str(value)


async def server_create(request: web.Request) -> web.Response:
    cloud: Cloud = request.app["cloud"]
    body = (await read_json(request) or {}).get("server")
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        raise HTTPFault(400, "Invalid input for field/attribute server.")
    compute_version.check_networks(body.get("networks"), compute_version.of(request))
    flavor_id = str(body.get("flavorRef") or "").rstrip("/").rsplit("/", 1)[-1]
    f = flavor(flavor_id, cloud.personality.compute["zero_disk_flavors"])
    if f is None:
        raise HTTPFault(400, "Invalid flavorRef provided.")
    root = compute_volumes.root_volume(cloud, body, f)
    image = None if root else _image(cloud, body.get("imageRef"))
    key_name = body.get("key_name")
    if key_name is not None and netmodel.get(cloud, "keypair", key_name) is None:
        raise HTTPFault(400, "Invalid key_name provided.")
    user_data = _user_data(body.get("user_data"))
    config_drive = str(body.get("config_drive", "")).lower() in ("true", "1", "yes")
    for resource, amount in (("instances", 1), ("cores", f["vcpus"]), ("ram", f["ram"])):
        over = quotas.exceeded(request, resource, amount)
        if over:
            raise HTTPFault(403, f"Quota exceeded for {resource}: Requested {amount}, but "
                                 f"already used {over[0]} of {over[1]} {resource}")
    groups = compute_ports.groups(cloud, body.get("security_groups"))
    now = time.time()
    doc = {"id": str(uuid.uuid4()), "name": body["name"], "status": "BUILD",
           "vm_state": "building", "task_state": "scheduling", "_volume": root,
           "image_id": image["id"] if image else "",
           "flavor_id": f["id"], "key_name": key_name, "metadata": body.get("metadata") or {},
           "config_drive": config_drive or cloud.personality.compute["config_drive"],
           "tenant_id": cloud.credentials["project_id"],
           "user_id": cloud.credentials["user_id"], "hostId": uuid.uuid4().hex[:24] * 2,
           "fault": None, "description": body.get("description"), "_created": now,
           "_updated": now, "_launched": None,
           "_vcpus": f["vcpus"], "_ram": f["ram"], "_user_data": user_data, "_silent": False}
    ports = compute_ports.networks(cloud, body.get("networks"), groups)
    for port in ports:
        port.update(device_id=doc["id"], device_owner="compute:nova", status="ACTIVE")
        netmodel.save(cloud, "port", port)
    plan = {"delay": take_fault(request, "slow_build"),
            "error": take_fault(request, "server_error"),
            "silent": take_fault(request, "no_answer")}
    save(cloud, doc)
    if root:
        volumes.attach(cloud, root["id"], doc["id"])
    cloud.spawn(build(cloud, doc["id"], plan))
    view = {"id": doc["id"], "links": server_view(request, doc, detail=False)["links"],
            "OS-DCF:diskConfig": "MANUAL", "adminPass": uuid.uuid4().hex[:12],
            "security_groups": [{"name": g["name"]}
                                for g in security_groups_of(cloud, doc["id"])]}
    return json_response({"server": view}, status=202,
                         headers={"Location": view["links"][0]["href"]})


# --- the build ---------------------------------------------------------------------------
def _fail(cloud: Cloud, doc: dict, message: str, details: str = "") -> None:
    doc.update(status="ERROR", vm_state="error", task_state=None,
               fault={"code": 500, "created": iso(time.time()), "message": message,
                      "details": details})
    save(cloud, doc)


def boot_spec(cloud: Cloud, doc: dict, ports: list[dict]) -> BootSpec:
    if doc.get("_volume"):        # the guest runs on the volume's raw file itself
        image = {"_blob": "", "disk_format": "raw", "properties": {}}
        disk = volumes.volume_file(cloud, doc["_volume"]["id"])
    else:
        image = cloud.store.get_record(cloud.name, "image", doc["image_id"])
        if image is None or not image.get("_blob"):
            raise BootError(f"Image {doc['image_id']} has no data to boot from.")
        disk = cloud.store.blob_path(image["_blob"])
    blob = cloud.store.blob_path

    def part(key: str):
        ref = image["properties"].get(key)
        sub = cloud.store.get_record(cloud.name, "image", ref) if ref else None
        return blob(sub["_blob"]) if sub and sub.get("_blob") else None
    kernel = part("kernel_id") if image["disk_format"] == "ami" else None
    directory = cloud.hypervisor.directory(doc["id"])
    directory.mkdir(parents=True, exist_ok=True)
    nic = next((p for p in ports if (netmodel.get(cloud, "network", p["network_id"]) or {})
                .get("_routable")), ports[0] if ports else None)
    keys = {}
    if doc["key_name"]:
        pair = netmodel.get(cloud, "keypair", doc["key_name"])
        keys = {pair["name"]: pair["public_key"]} if pair else {}
    user_data = base64.b64decode(doc["_user_data"]) if doc["_user_data"] else None
    mac = nic["mac_address"] if nic else "52:54:00:12:34:56"
    net = configdrive.network_data(mac, (nic["id"] if nic else "") or str(uuid.uuid4()),
                                   nic["network_id"] if nic else "",
                                   cloud.personality.compute["config_drive"])
    files = configdrive.files(doc, keys, net, user_data)
    drive = configdrive.write(directory / "disk.config", files) if doc["config_drive"] else None
    served = (metadata.documents(files, user_data)
              if cloud.personality.compute["metadata_service"] else None)
    return BootSpec(image=disk, disk_format=image["disk_format"],
                    volume=bool(doc.get("_volume")),
                    memory_mb=doc["_ram"], cpus=doc["_vcpus"], mac=mac,
                    config_drive=drive, metadata=served, kernel=kernel,
                    ramdisk=part("ramdisk_id") if kernel else None)


async def build(cloud: Cloud, server_id: str, plan: dict) -> None:
    if plan["delay"]:
        await asyncio.sleep(plan["delay"].params["seconds"])
    doc = netmodel.get(cloud, "server", server_id)
    if doc is None:
        return
    if plan["error"]:
        _fail(cloud, doc, plan["error"].params.get("message") or NO_VALID_HOST,
              "injected by the local cloud's server_error fault")
        return
    doc["task_state"] = "spawning"
    save(cloud, doc)
    if plan["silent"]:
        doc.update(_silent=True)
    else:
        try:
            spec = await asyncio.to_thread(boot_spec, cloud, doc,
                                           netmodel.ports_of(cloud, server_id))
            await cloud.hypervisor.boot(server_id, spec, lambda g, c: _exited(cloud, g, c))
        except (BootError, OSError, RuntimeError) as e:
            doc = netmodel.get(cloud, "server", server_id)
            if doc is not None:
                _fail(cloud, doc, f"Build of instance {server_id} aborted: {e}", str(e))
            return
    doc = netmodel.get(cloud, "server", server_id)
    if doc is None:                     # deleted while building
        await cloud.hypervisor.stop(server_id)
        return
    doc.update(status="ACTIVE", vm_state="active", task_state=None, _launched=time.time(),
               _silent=bool(plan["silent"]))
    save(cloud, doc)
    await netmodel.refresh(cloud)


def _exited(cloud: Cloud, guest: Guest, code: int) -> None:
    doc = netmodel.get(cloud, "server", guest.server_id)
    if doc is None:
        return
    if code == 0:
        doc.update(status="SHUTOFF", vm_state="stopped", task_state=None)
        save(cloud, doc)
    else:
        _fail(cloud, doc, f"The guest's hypervisor process exited {code}",
              cloud.hypervisor.console(guest.server_id, 5))
    cloud.spawn(netmodel.refresh(cloud))


# --- delete and actions --------------------------------------------------------------------
async def server_delete(request: web.Request) -> web.Response:
    cloud: Cloud = request.app["cloud"]
    doc = get_server(cloud, request.match_info["server_id"])
    doc["task_state"] = "deleting"
    save(cloud, doc)
    cloud.spawn(_delete(cloud, doc["id"]))
    return web.Response(status=204)


async def _delete(cloud: Cloud, server_id: str) -> None:
    await cloud.hypervisor.stop(server_id)
    doc = netmodel.get(cloud, "server", server_id)
    if doc is not None:
        compute_volumes.release(cloud, doc)
    netmodel.release_server(cloud, server_id)
    await netmodel.refresh(cloud)
    await asyncio.to_thread(cloud.hypervisor.forget, server_id)
    netmodel.delete(cloud, "server", server_id)


async def server_action(request: web.Request) -> web.Response:
    cloud: Cloud = request.app["cloud"]
    doc = get_server(cloud, request.match_info["server_id"])
    body = await read_json(request)
    if not isinstance(body, dict) or len(body) != 1:
        raise HTTPFault(400, "Malformed request body")
    (action, args), = body.items()
    args = args if isinstance(args, dict) else {}
    if action == "os-getConsoleOutput":
        length = args.get("length")
        length = int(length) if length not in (None, -1, "-1") else None
        return json_response({"output": cloud.hypervisor.console(doc["id"], length)})
    if action in compute_novanet.ACTIONS and cloud.personality.network["api"] != "none":
        return await compute_novanet.ACTIONS[action](request, doc, args)
    raise HTTPFault(400, f"There is no such action: {action}")


def resume(cloud: Cloud) -> None:
    """The guests died with the previous process: their servers are SHUTOFF (or ERROR)."""
    for doc in netmodel.all_of(cloud, "server"):
        if doc["status"] == "BUILD":
            _fail(cloud, doc, "The local cloud stopped while this server was building")
        elif doc["status"] == "ACTIVE":
            doc.update(status="SHUTOFF", vm_state="stopped", task_state=None)
            save(cloud, doc)


def add_routes(app: web.Application, api: str) -> None:
    r = app.router
    r.add_get(f"{api}/servers", servers_list)
    r.add_get(f"{api}/servers/detail", servers_list)
    r.add_post(f"{api}/servers", server_create)
    r.add_get(f"{api}/servers/{{server_id}}", server_show)
    r.add_delete(f"{api}/servers/{{server_id}}", server_delete)
    r.add_post(f"{api}/servers/{{server_id}}/action", server_action)
    r.add_get(f"{api}/servers/{{server_id}}/ips", server_ips)
    r.add_get(f"{api}/servers/{{server_id}}/os-security-groups", server_groups)
