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
from pipeline.cloud.session import adapter, cloud_errors, has_service, make_session
from pipeline.cloud.versions import ComputeVersion, choose_compute_version, neutron_endpoint
from pipeline.cloud.volumes import Cinder
from pipeline.core import errors
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
    def compute_version(self) -> ComputeVersion:
        """The microversion negotiated with Nova's version document (``versions``), on the
        first Nova call; each call sends it in both of Nova's headers (``compute.NovaApi``)."""
        with cloud_errors(self.where, "discovery"):
            data = adapter(self.session, self.cloud.config, "compute").get_endpoint_data()
        offered = (data.min_microversion, data.max_microversion) if data else (None, None)
        return choose_compute_version(*offered, self.cloud.profile.network.api)

    @cached_property
    def compute(self) -> ksa_adapter.Adapter:
        return adapter(self.session, self.cloud.config, "compute")

    @cached_property
    def network(self) -> ksa_adapter.Adapter:
        return adapter(self.session, self.cloud.config, "network")

    @cached_property
    def network_endpoint(self) -> str | None:
        """Neutron's root without version discovery: the catalog URL plus ``/v2.0`` (older
        Neutron has no usable version document; openstacksdk skips discovery the same
        way); None when clouds.yaml overrides the endpoint (taken as it is)."""
        config = self.cloud.config
        region = config.cloud_region()
        if region.get_endpoint("network"):
            return None
        with cloud_errors(self.where, "discovery"):
            catalog = self.session.get_endpoint(
                service_type="network", interface=region.get_interface("network"),
                service_name=region.get_service_name("network"),
                region_name=config.region_name, skip_discovery=True)
        if not catalog:
            raise errors.EndpointNotFound("no network endpoint in the catalog",
                                          where=self.where, step="discovery")
        return neutron_endpoint(catalog)

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
        def version() -> ComputeVersion:
            return self.compute_version
        return Clients(
            nova=Nova(self.compute, self.where, version),
            neutron=(Neutron(self.network, self.where, lambda: self.network_endpoint)
                     if api == "neutron" else None),
            nova_network=(NovaNetwork(self.compute, self.where, version)
                          if api == "nova-network" else None))


def discover(cloud: Cloud) -> dict[str, str]:
    """What the cloud says about itself (``check-config --discover``): no secret in it."""
    conn = Connection(cloud)
    api = conn.image_api
    found = {"image API": f"v{api.version}" + (f".{api.minor}" if api.minor is not None else ""),
             "import methods": ", ".join(api.import_methods) or "none",
             "object store": "yes" if conn.has_service("object-store") else "no"}
    if cloud.profile.compute.api != "none" and conn.has_service("compute"):
        found["compute microversion"] = conn.compute_version.microversion or "none (v2.1 base)"
    return found
