"""One cloud's connection: its one keystoneauth1 Session and a client per service, kept.

Upload, verify, retention and cleanup each take a ``Connection`` (or make
one): the Session authenticates once, each service's Adapter is made on first
use and kept (openstacksdk's ``_raw_clients``), and Glance is discovered once
whatever asks for it.  Nothing here talks to the network until it is asked.
"""

from __future__ import annotations

from functools import cached_property

from keystoneauth1 import adapter as ksa_adapter
from keystoneauth1 import session as ksa_session

from pipeline.cloud.compute import Nova
from pipeline.cloud.discovery import ImageApi, discover_image_api
from pipeline.cloud.glance import Glance
from pipeline.cloud.netaccess import Clients, Neutron, NovaNetwork
from pipeline.cloud.session import adapter, has_service, make_session
from pipeline.cloud.volumes import Cinder
from pipeline.settings.clouds import Cloud


class Connection:
    """The clients of one cloud, each made once, on first use."""

    def __init__(self, cloud: Cloud):
        self.cloud = cloud
        self.where = cloud.name

    @cached_property
    def session(self) -> ksa_session.Session:
        return make_session(self.cloud.config)

    def has_service(self, service_type: str) -> bool:
        return has_service(self.session, self.cloud.config, service_type)

    # --- image -------------------------------------------------------------

    @cached_property
    def image_api(self) -> ImageApi:
        """The Glance API to use: only the vendor profile pins the version (clouds.yaml's
        ``image_api_version`` is an openstacksdk hint, and discovery knows better)."""
        return discover_image_api(self.session, self.cloud.config,
                                  self.cloud.profile.image.api_version)

    @cached_property
    def glance(self) -> Glance:
        return Glance(self.image_api, self.where)

    @cached_property
    def object_store(self) -> ksa_adapter.Adapter:
        return adapter(self.session, self.cloud.config, "object-store")

    # --- compute and network -------------------------------------------------

    @cached_property
    def compute(self) -> ksa_adapter.Adapter:
        return adapter(self.session, self.cloud.config, "compute")

    @cached_property
    def network(self) -> ksa_adapter.Adapter:
        return adapter(self.session, self.cloud.config, "network", min_version="2.0",
                       max_version="2.latest")

    @cached_property
    def block_storage(self) -> ksa_adapter.Adapter:
        return adapter(self.session, self.cloud.config, "block-storage")

    @cached_property
    def cinder(self) -> Cinder | None:
        """Cinder where the catalog lists block storage (any of its names), else None."""
        return Cinder(self.block_storage, self.where) \
            if self.has_service("block-storage") else None

    @cached_property
    def clients(self) -> Clients:
        """Nova always; Neutron or nova-network as the profile's ``network.api`` says."""
        api = self.cloud.profile.network.api
        return Clients(
            nova=Nova(self.compute, self.where),
            neutron=Neutron(self.network, self.where) if api == "neutron" else None,
            nova_network=NovaNetwork(self.compute, self.where) if api == "nova-network" else None)


def discover(cloud: Cloud) -> dict[str, str]:
    """What the cloud says about itself (``check-config --discover``): no secret in it."""
    conn = Connection(cloud)
    api = conn.image_api
    return {"image API": f"v{api.version}" + (f".{api.minor}" if api.minor is not None else ""),
            "import methods": ", ".join(api.import_methods) or "none",
            "object store": "yes" if conn.has_service("object-store") else "no"}
