"""What upstream Nova, Placement and Neutron need in Keystone, and what a server
create needs once they run: flavors, an image, the external and tenant networks.

All through the services' public APIs with keystoneauth1 sessions (admin for
the catalog, flavors, the image and the external network; demo for its own
network and router, as a tenant would make them). ``register`` returns the ids
it made, so ``unregister`` can take them back when the compute services stop
and the main services keep running.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from keystoneauth1 import adapter
from keystoneauth1 import session as ksa_session
from keystoneauth1.identity import v3

from upstream.bootstrap import REGION, KeystoneAdmin

# (name, id, ram MiB, vcpus, disk GiB); the zero-disk one is a volume-backed
# flavor (creating a server from it needs admin under the 2025.1 policies).
FLAVORS = (
    ("m1.nano", "42", 64, 1, 1),
    ("m1.micro", "84", 128, 1, 1),
    ("m1.small", "2", 2048, 1, 20),
    ("m1.zero-disk", "0", 64, 1, 0),
)
IMAGE_NAME = "cirros-fake"        # bytes nothing boots: the fake driver reads no image
PUBLIC_NET = "public"
PUBLIC_CIDR = "172.24.4.0/24"
TENANT_NET = "demo-net"
TENANT_CIDR = "10.0.0.0/24"
ROUTER = "demo-router"
# service type -> (service name, user, path of the endpoint)
SERVICES = {
    "placement": ("placement", "placement", ""),
    "compute": ("nova", "nova", "/v2.1"),
    "network": ("neutron", "neutron", ""),
}


def register(state: dict[str, Any], ports: dict[str, int],
             passwords: dict[str, str]) -> dict[str, list[str]]:
    """Service users (admin and service roles in project ``service``), services and
    endpoints; returns the user and service ids."""
    ks = KeystoneAdmin(state["auth_url"], state["admin"]["password"])
    project = ks.get("/projects?name=service", "projects")[0]["id"]
    roles = [ks.role_id("admin"), ks.role_id("service")]
    made: dict[str, list[str]] = {"users": [], "services": []}
    port_of = {"placement": "placement", "compute": "nova", "network": "neutron"}
    for stype, (name, user, path) in SERVICES.items():
        # Left over by a start that was killed before it could clean up.
        for old in ks.get(f"/services?type={stype}", "services"):
            ks.session.delete(f"{ks.url}/services/{old['id']}")
        for old in ks.get(f"/users?name={user}", "users"):
            ks.session.delete(f"{ks.url}/users/{old['id']}")
        uid = ks.post("/users", "user", {"name": user, "password": passwords[user],
                                         "domain_id": "default",
                                         "default_project_id": project})["id"]
        made["users"].append(uid)
        for role in roles:
            ks.session.put(f"{ks.url}/projects/{project}/users/{uid}/roles/{role}")
        sid = ks.post("/services", "service", {"type": stype, "name": name})["id"]
        made["services"].append(sid)
        url = f"http://127.0.0.1:{ports[port_of[stype]]}{path}"
        for interface in ("public", "internal"):
            ks.post("/endpoints", "endpoint", {"service_id": sid, "interface": interface,
                                               "region_id": REGION, "url": url})
    # A user's first password login of the day writes its last_active_at
    # (keystone/identity/core.py authenticate). Nova's conductor and scheduler
    # log in as nova at the same moment; two such writes at once fail on
    # SQLite ("database is locked", a 500 that nova-conductor does not
    # survive). So each new user logs in once here, alone.
    for _, user, _ in SERVICES.values():
        session_for({**state, user: {"username": user, "password": passwords[user],
                                     "project_name": "service"}}, user).get_token()
    return made


def unregister(state: dict[str, Any], made: dict[str, list[str]],
               image_id: str | None = None) -> None:
    """Delete the image from the main Glance, the services (their endpoints go
    with them) and the users."""
    ks = KeystoneAdmin(state["auth_url"], state["admin"]["password"])
    if image_id:
        api(ks.session, "image").delete(f"/v2/images/{image_id}", raise_exc=False)
    for sid in made.get("services", []):
        ks.session.delete(f"{ks.url}/services/{sid}", raise_exc=False)
    for uid in made.get("users", []):
        ks.session.delete(f"{ks.url}/users/{uid}", raise_exc=False)


def session_for(state: dict[str, Any], who: str) -> ksa_session.Session:
    user = state[who]
    return ksa_session.Session(auth=v3.Password(
        auth_url=state["auth_url"], username=user["username"], password=user["password"],
        project_name=user["project_name"], user_domain_id="default",
        project_domain_id="default"))


def api(sess: ksa_session.Session, service_type: str, **kwargs: Any) -> adapter.Adapter:
    return adapter.Adapter(sess, service_type=service_type, interface="public",
                           region_name=REGION, **kwargs)


def _flavors(state: dict[str, Any]) -> dict[str, str]:
    compute = api(session_for(state, "admin"), "compute")
    for name, flavor_id, ram, vcpus, disk in FLAVORS:
        compute.post("/flavors", json={"flavor": {
            "name": name, "id": flavor_id, "ram": ram, "vcpus": vcpus, "disk": disk}})
    return {name: flavor_id for name, flavor_id, *_ in FLAVORS}


def _image(state: dict[str, Any]) -> str:
    image = api(session_for(state, "admin"), "image")
    for old in image.get(f"/v2/images?name={IMAGE_NAME}").json()["images"]:
        image.delete(f"/v2/images/{old['id']}")     # left by a start killed mid-way
    img = image.post("/v2/images", json={
        "name": IMAGE_NAME, "disk_format": "raw", "container_format": "bare",
        "visibility": "public"}).json()
    image.put(f"/v2/images/{img['id']}/file", data=b"\0" * 1024,
              headers={"Content-Type": "application/octet-stream"})
    return img["id"]


def _public_network(state: dict[str, Any]) -> str:
    net = api(session_for(state, "admin"), "network")
    public = net.post("/v2.0/networks", json={"network": {
        "name": PUBLIC_NET, "router:external": True, "provider:network_type": "flat",
        "provider:physical_network": PUBLIC_NET}}).json()["network"]
    net.post("/v2.0/subnets", json={"subnet": {
        "network_id": public["id"], "name": f"{PUBLIC_NET}-subnet", "ip_version": 4,
        "cidr": PUBLIC_CIDR, "enable_dhcp": False}})
    return public["id"]


def _tenant_network(state: dict[str, Any]) -> tuple[str, str]:
    net = api(session_for(state, "demo"), "network")
    tenant = net.post("/v2.0/networks", json={"network": {
        "name": TENANT_NET}}).json()["network"]
    subnet = net.post("/v2.0/subnets", json={"subnet": {
        "network_id": tenant["id"], "name": f"{TENANT_NET}-subnet", "ip_version": 4,
        "cidr": TENANT_CIDR}}).json()["subnet"]
    return tenant["id"], subnet["id"]


def resources(state: dict[str, Any]) -> dict[str, Any]:
    """Flavors, the image, ``public`` (external, flat) with a subnet, and the demo
    project's network, subnet and router (gateway on ``public``); returns their ids.
    The independent parts are made at once, each with its own session."""
    with ThreadPoolExecutor(4) as pool:
        flavors, image = pool.submit(_flavors, state), pool.submit(_image, state)
        public, tenant = pool.submit(_public_network, state), pool.submit(_tenant_network, state)
        (tenant_id, subnet_id), public_id = tenant.result(), public.result()
        net = api(session_for(state, "demo"), "network")
        router = net.post("/v2.0/routers", json={"router": {
            "name": ROUTER, "external_gateway_info": {"network_id": public_id}}}
        ).json()["router"]
        net.put(f"/v2.0/routers/{router['id']}/add_router_interface",
                json={"subnet_id": subnet_id})
        return {"flavors": flavors.result(), "image": image.result(),
                "public_network": public_id, "tenant_network": tenant_id,
                "router": router["id"]}
