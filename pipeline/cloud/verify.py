"""Prove an upload: boot it on its cloud, reach it the way that cloud allows, read our build id.

``verify_image`` is the single call ``VerifyImage`` makes: flavor and network
(pure choices in ``addresses``), a temporary keypair (ed25519, or RSA where Nova
refuses it: ``keys.register_keypair``), our own security group,
the server (config drive on), ACTIVE within the boot timeout, the external
address (``addresses.external_ipv4``, or a floating IP we make), a rule for
the check port opened narrowly for the check only, then SSH: banner, login
with the key, ``cat /etc/imagefleet-build``.  Whatever happens, the ``finally``
removes the rule, the server, the floating IPs and group we made and the
keypair.  ``local_boot`` runs the same check on a converted file in qemu
here, so a broken image never reaches a cloud.

Where every flavor has a zero root disk (``volumes.needs_volume``) the server
boots from a volume made from the image, deleted after the server.  The check
``cloud-only`` asks the cloud for everything a test boot needs (keypair,
security group and rule, the address by the profile's path where it has one)
and stops at what the cloud itself shows, ACTIVE and the console: nothing is
reached from here (a private cloud behind a firewall; Nova's fake driver).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipeline.cloud import addresses, reach, volumes
from pipeline.cloud.cleanup import Journal, resource_name, server_metadata
from pipeline.cloud.compute import console_tail, elapsed
from pipeline.cloud.connection import Connection
from pipeline.cloud.keys import key_directory, register_keypair
from pipeline.cloud.marks import BuildInfo
from pipeline.cloud.netaccess import NetworkAccess, checker_address
from pipeline.cloud.retention import record_failed_verify
from pipeline.cloud.versions import server_networks
from pipeline.core.errors import PipelineError, ReachabilityError, VerifyError, WaitTimeout
from pipeline.core.waiting import iterate_timeout
from pipeline.image import vm
from pipeline.settings.clouds import Cloud
from pipeline.settings.profile import ComputeSection

LOG = logging.getLogger(__name__)

LOGIN_USER = "debian"              # elements/imagefleet-base/README.rst
CHECKS = ("build-id", "ssh-banner", "cloud-only")   # pipeline.yaml verify.check
CONSOLE_WAIT = 30.0                # seconds cloud-only waits for console output
DEFAULT_BOOT_TIMEOUT = ComputeSection.boot_timeout     # a local boot gets a cloud's default


@dataclass
class VerifyRecord:
    """The output of ``VerifyImage``: which server answered where, how, and how fast."""

    cloud: str
    image_id: str
    verified: bool
    reason: str | None = None
    server_id: str | None = None
    server_name: str | None = None
    flavor: str | None = None
    network: str | None = None
    address: str | None = None
    address_source: str | None = None
    check_port: int | None = None
    check_cidr: str | None = None
    seconds_to_active: float | None = None
    seconds_to_reachable: float | None = None
    build_id: str | None = None
    banner: str | None = None
    host_key: str | None = None
    check: str | None = None            # which of CHECKS ran
    console: list[str] | None = None    # cloud-only: the console's last lines ([]: none)
    boot_volume: str | None = None      # the volume the server booted from
    volume_gb: int | None = None
    seconds_to_volume: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_guest(host: str, port: int, *, timeout: float, key_path: Path, username: str,
           login: bool, where: str | None, vm_: vm.Vm | None = None) -> reach.ReachResult:
    if not login:
        return reach.wait_for_banner(host, port, timeout=timeout, vm=vm_, where=where)
    return reach.wait_for_ssh(host, port, timeout=timeout, key_path=key_path,
                              username=username, vm=vm_, where=where)


def check_build_id(result: reach.ReachResult, expected: str, where: str | None) -> None:
    if result.output.strip() != expected:
        raise VerifyError(f"the server answered but /etc/imagefleet-build reads "
                          f"{result.output.strip()[:80]!r}, not {expected!r}: not our build",
                          where=where)


class _Verify:
    """One test boot; ``run`` is ``verify_image``."""

    def __init__(self, cloud: Cloud, conn: Connection, image_id: str,
                 build: BuildInfo, work_dir: Path, *, boot_timeout: float | None, poll: float,
                 check: str, username: str, min_disk_gb: int | None, journal_dir: Path,
                 console_wait: float):
        self.cloud, self.where = cloud, cloud.name
        self.compute, self.network = cloud.profile.compute, cloud.profile.network
        self.image_id, self.build, self.work_dir = image_id, build, work_dir
        self.poll, self.check, self.username = poll, check, username
        self.login, self.cloud_only = check == "build-id", check == "cloud-only"
        self.console_wait = console_wait
        self.timeout = float(boot_timeout or self.compute.boot_timeout)
        self.min_disk = max(self.compute.min_disk_gb, int(min_disk_gb or 0))
        self.conn, self.c = conn, conn.clients
        self.name = resource_name(build.build_id)
        self.journal = Journal(journal_dir, cloud.name, self.name)
        self.access = NetworkAccess(cloud, self.c, self.journal.add)
        self.server_id: str | None = None
        self.keypair: str | None = None
        self.volume_id: str | None = None
        self.record = VerifyRecord(cloud=cloud.name, image_id=image_id, verified=False,
                                   server_name=self.name, check=check)

    def run(self) -> VerifyRecord:
        with key_directory(self.work_dir) as keys:
            failure: BaseException | None = None
            try:
                self._boot_and_check(keys)
            except PipelineError as e:
                failure = e.at(self.where)
                raise
            except BaseException as e:
                failure = e
                raise
            finally:
                self._cleanup(failure)
        return self.record

    def _boot_networks(self) -> list[dict] | None:
        """The networks to choose from: Neutron's; nova-network's only when one is named
        (unnamed, nova-network puts the server on the project's networks itself)."""
        if self.c.neutron is not None:
            return self.c.neutron.networks()
        if self.c.nova_network is not None and self.network.network:
            return self.c.nova_network.networks()
        return None

    def _boot_and_check(self, keys: Path) -> None:
        nova, rec = self.c.nova, self.record
        flavors = nova.flavors()
        from_volume = volumes.needs_volume(self.compute.boot_from_volume, flavors,
                                           self.compute.min_ram_mb, self.compute.flavor)
        flavor = addresses.choose_flavor(flavors, self.compute.min_ram_mb,
                                         0 if from_volume else self.min_disk,
                                         self.compute.flavor, volume_backed=from_volume)
        network = addresses.choose_network(self._boot_networks(), self.network.network,
                                           self.network.external)
        rec.flavor, rec.network = flavor["name"], network
        body: dict[str, Any] = {
            "name": self.name, "imageRef": self.image_id, "flavorRef": flavor["id"],
            "config_drive": self.compute.config_drive,
            "metadata": server_metadata(self.build.build_id)}
        key = register_keypair(nova.create_keypair, keys, self.name, self.compute.key_type)
        self.keypair = self.name
        self.journal.add("keypairs", "os-keypairs", self.name)
        body["key_name"] = self.name
        networks = server_networks(network, nova.version)
        if networks is not None:
            body["networks"] = networks
        if from_volume:
            body.update(imageRef="", block_device_mapping_v2=volumes.root_mapping(
                self._boot_volume()))
        if self.network.security_groups:
            group = self.access.create_group(self.name, f"imagefleet verify of {self.image_id}")
            body["security_groups"] = [{"name": group}]
        started = time.monotonic()
        deadline = started + self.timeout
        self.server_id = nova.create_server(body)["id"]
        rec.server_id = self.server_id
        self.journal.add("servers", "servers", self.server_id)
        LOG.info("%s: server %s (%s, flavor %s) booting image %s", self.where, self.server_id,
                 self.name, flavor["name"], self.image_id)
        server = nova.wait_active(self.server_id, self.timeout, self.poll)
        rec.seconds_to_active = elapsed(started)
        try:
            address, how = self._external_address(server)
        except ReachabilityError:
            if not self.cloud_only:
                raise
            address = None      # a private cloud: nothing to reach from here, by design
        if address is not None:
            rec.address, rec.address_source = address, how
            port = rec.check_port = self.network.check_port
            if self.network.security_groups:
                rec.check_cidr = addresses.rule_cidr(checker_address(address, port), address,
                                                     self.network.check_cidr)
                self.access.open_port(port, rec.check_cidr, self.name)
        if self.cloud_only:
            self._console_only(deadline)
            return
        LOG.info("%s: ACTIVE after %.1f s; checking %s:%d (%s)", self.where,
                 rec.seconds_to_active, address, port, how)
        try:
            result = check_guest(address, port,
                            timeout=round(max(1.0, deadline - time.monotonic()), 1),
                            key_path=key.private_key_path, username=self.username,
                            login=self.login, where=self.where)
        except ReachabilityError as e:
            tail = console_tail(nova.console(self.server_id, 30), 3)
            e.cause += "; console: " + (" | ".join(tail) if tail else "(empty)")
            raise
        rec.seconds_to_reachable = elapsed(started)
        rec.banner, rec.host_key = result.banner, result.host_key or None
        if self.login:
            check_build_id(result, self.build.build_id, self.where)
            rec.build_id = result.output.strip()
        rec.verified = True
        LOG.info("%s: verified: %s answered after %.1f s (build %s)", self.where, address,
                 rec.seconds_to_reachable, rec.build_id or "not read")

    def _boot_volume(self) -> str:
        """A volume made from the image, ``available``: the server's root disk."""
        cinder, rec = self.conn.cinder, self.record
        if cinder is None:
            raise VerifyError(f"the test boot needs a volume (compute.boot_from_volume: "
                              f"{self.compute.boot_from_volume}) but the catalog lists no "
                              "block-storage service", where=self.where, step="volume")
        virtual, stored, min_disk = volumes.image_sizes(self.conn.glance,
                                                        self.conn.glance.version,
                                                        self.image_id)
        rec.volume_gb = volumes.volume_size_gb(virtual, stored,
                                               max(self.min_disk, min_disk or 0))
        started = time.monotonic()
        self.volume_id = cinder.create_volume(self.name, rec.volume_gb, self.image_id,
                                              server_metadata(self.build.build_id))["id"]
        rec.boot_volume = self.volume_id
        self.journal.add("volumes", "volumes", self.volume_id)
        LOG.info("%s: volume %s (%d GiB) from image %s", self.where, self.volume_id,
                 rec.volume_gb, self.image_id)
        cinder.wait_available(self.volume_id, self.image_id, self.timeout, self.poll)
        rec.seconds_to_volume = elapsed(started)
        return self.volume_id

    def _console_only(self, deadline: float) -> None:
        """cloud-only: ACTIVE is the proof; the console's lines are recorded when it has any."""
        rec, nova = self.record, self.c.nova
        lines: list[str] = []
        wait = min(self.console_wait, max(0.0, deadline - time.monotonic()))
        try:
            for _ in iterate_timeout(wait, "no console output", wait=self.poll,
                                     max_wait=max(self.poll, 5.0)):
                lines = console_tail(nova.console(self.server_id, 30), 5)
                if lines:
                    break
        except WaitTimeout:
            pass
        rec.console, rec.verified = lines, True
        LOG.info("%s: verified (cloud-only): ACTIVE after %.1f s; console: %s", self.where,
                 rec.seconds_to_active, " | ".join(lines) or "(none)")

    def _external_address(self, server: dict) -> tuple[str, str]:
        neutron = self.c.neutron
        ports = neutron.ports(server["id"]) if neutron is not None else None
        networks = neutron.networks() if neutron is not None else None
        found = addresses.external_ipv4(server, ports, networks,
                                        self.network.routable_cidrs)
        floating_available = self.c.nova_network is not None or (
            neutron is not None and any(n.get("router:external") for n in networks or []))
        if addresses.needs_floating_ip(self.network.floating_ip, found,
                                       server, floating_available):
            found = self.access.floating_ip(server, ports, networks,
                                            self.network.floating_network,
                                            self.name)
        if found is None:
            listed = ", ".join(f"{net}: {e.get('addr')}" for net, entries in
                               (server.get("addresses") or {}).items() for e in entries)
            raise ReachabilityError(f"server {server['id']} has no external IPv4 address "
                                    f"({listed or 'no addresses'}) and the profile allows no "
                                    "floating IP", where=self.where)
        return found

    def _cleanup(self, failure: BaseException | None) -> None:
        """Remove everything this run made; a leak is an error unless one is already raised."""
        problems: list[str] = []

        def attempt(what: str, step) -> None:
            try:
                step()
            except PipelineError as e:
                LOG.warning("%s: cleanup: %s: %s", self.where, what, e)
                problems.append(f"{what}: {e.cause}")

        nova, settle = self.c.nova, max(120.0, self.timeout / 4)
        attempt("rule", self.access.close_ports)
        before = len(problems)
        if self.server_id:
            attempt(f"server {self.server_id}", lambda: (
                nova.delete_server(self.server_id),
                nova.wait_gone(self.server_id, settle, self.poll)))
        if self.volume_id and len(problems) == before:   # a server left keeps it attached
            attempt(f"volume {self.volume_id}", lambda: self.conn.cinder.delete_when_detached(
                self.volume_id, settle, self.poll))
        elif self.volume_id:
            problems.append(f"volume {self.volume_id}: attached to the server left behind")
        problems += self.access.release(poll=self.poll)
        if self.keypair:
            attempt(f"keypair {self.keypair}", lambda: nova.delete_keypair(self.keypair))
        if not problems:
            self.journal.remove()
            return
        message = "left behind: " + "; ".join(problems) + " (run 'imagefleet cleanup')"
        if failure is None:
            raise VerifyError(message, where=self.where, step="cleanup")
        LOG.error("%s: %s", self.where, message)


def verify_image(cloud: Cloud, image_id: str, build: BuildInfo, *,
                 work_dir: str | os.PathLike, connection: Connection | None = None,
                 boot_timeout: float | None = None, poll: float = 2.0, login: bool = True,
                 check: str | None = None, username: str = LOGIN_USER,
                 min_disk_gb: int | None = None, journal_dir: str | os.PathLike | None = None,
                 console_wait: float = CONSOLE_WAIT) -> VerifyRecord:
    """Boot ``image_id`` on ``cloud`` and prove it is our build, reachable from here.

    ``boot_timeout`` (default: the profile's) bounds creation to login;
    ``check`` is one of ``CHECKS`` (pipeline.yaml ``verify.check``); without it
    ``login=False`` means ``ssh-banner`` (test images without a login).
    ``cloud-only`` stops at ACTIVE and waits up to ``console_wait`` s for console lines.
    Clouds without compute get ``verified: false, reason: "no compute"``.
    ``journal_dir`` (default ``<work_dir>/journal``) is where ``cleanup.sweep``
    looks for what a killed run made.
    Raises ``BootError``, ``ReachabilityError``, ``QuotaExceeded``... naming
    the cloud; nothing the attempt made is left behind.
    """
    if cloud.profile.compute.api == "none":
        return VerifyRecord(cloud=cloud.name, image_id=image_id, verified=False,
                            reason="no compute")
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    check = check or ("build-id" if login else "ssh-banner")
    if check not in CHECKS:
        raise ValueError(f"verify check {check!r} is not one of {', '.join(CHECKS)}")
    conn = connection or Connection(cloud)
    try:
        return _Verify(cloud, conn, image_id, build, work_dir, boot_timeout=boot_timeout,
                       poll=poll, check=check, username=username, min_disk_gb=min_disk_gb,
                       journal_dir=Path(journal_dir or work_dir / "journal"),
                       console_wait=console_wait).run()
    except VerifyError:     # booted badly or not at all: never kept as a fallback
        record_failed_verify(conn, image_id)
        raise
