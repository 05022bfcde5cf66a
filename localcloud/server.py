"""Start and stop the local cloud: one asyncio process, one port per cloud, one admin port.

``main(argv)`` is the ``imagefleet localcloud`` entry point. Ports are free
ones (the same as last time when still free, so a restart keeps the written
clouds.yaml valid) or ``--base-port N`` (admin on N, clouds on N+1...). Only
127.0.0.1 is ever bound or written into a URL.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import logging
import os
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

import yaml
from aiohttp import web

from localcloud import admin, compute, identity, image, netmodel, network, object, volume
from localcloud.cloud import HOST, Cloud, load_credentials
from localcloud.faults import FaultError, FaultRegistry
from localcloud.forwarding import Forwarder
from localcloud.guests import Hypervisor
from localcloud.http import add_request_id, cloud_middleware
from localcloud.personality import Personality, PersonalityError, available, load
from localcloud.store import Store
from qemuhost import accel, console

# One lock file per address slice (127.(100+n), 127.(200+n)): concurrent local clouds
# on one host never hand out the same addresses.
SLOT_DIR = Path(tempfile.gettempdir()) / "localcloud-address-slots"


def _claimed_at(slot: int) -> float:
    """When the slot was last claimed (its lock file's mtime; 0 if never)."""
    try:
        return (SLOT_DIR / f"{slot}.lock").stat().st_mtime
    except OSError:
        return 0.0
SERVICES = {m.SERVICE.type: m.SERVICE for m in (identity, image, object, compute, network,
                                                 volume)}
DEFAULT_TOKEN_TTL = 3600
SWEEP_EVERY = 1.0
SHUTDOWN_GRACE = 2.0        # seconds in-flight requests get when the local cloud stops
LOG = logging.getLogger("localcloud")


def bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    sock.listen(128)
    return sock


def bind_preferred(port: int | None) -> socket.socket:
    """The remembered port if it is still free, otherwise any free one."""
    if port:
        try:
            return bind(port)
        except OSError:
            pass
    return bind(0)


def clouds_yaml_entry(cloud: Cloud) -> dict:
    """The personality's entry: openstacksdk's keys, and imagefleet's under ``imagefleet:``;
    ``regions:`` lists every region when each has services of its own."""
    p, c = cloud.personality, cloud.credentials
    v3 = p.identity[0] == "v3"
    if p.auth_type == "application_credential":
        auth_type = "v3applicationcredential"
        auth = {"auth_url": cloud.auth_url,
                "application_credential_id": c["application_credential_id"],
                "application_credential_secret": c["application_credential_secret"]}
    else:
        auth_type = "password"
        auth = {"auth_url": cloud.auth_url, "username": c["username"],
                "password": c["password"], "project_name": c["project_name"]}
        if v3:
            auth.update(user_domain_name=c["domain_name"], project_domain_name=c["domain_name"])
    served = p.served_regions
    where = {"regions": list(served)} if len(served) > 1 else {"region_name": p.region}
    entry = {"auth_type": auth_type, "auth": auth, **where, "interface": "public",
             **p.clouds_yaml_hints()}
    # imagefleet's own key (the openstack CLI ignores it): the vendor profile of the same
    # name, and which addresses reach a server here
    entry["imagefleet"] = {"profile": p.name}
    if "compute" in p.services:
        regions = [cloud.siblings.get(r, cloud) for r in served]
        entry["imagefleet"]["overrides"] = {
            "network": {"routable_cidrs": [str(netmodel.routable_cidr(r)) for r in regions]}}
    return entry


def build_app(cloud: Cloud) -> web.Application:
    app = web.Application(middlewares=[cloud_middleware])
    app.on_response_prepare.append(add_request_id)
    app["cloud"] = cloud
    app["service_prefixes"] = [(SERVICES[s].prefix, s) for s in cloud.personality.services]
    for stype in cloud.personality.services:
        SERVICES[stype].add_routes(app)
    return app


class LocalCloud:
    """The running process: clouds, their HTTP sites, the admin site, the sweeper."""

    def __init__(self, personalities: list[Personality], data_dir: Path,
                 base_port: int | None = None, token_ttl: int = DEFAULT_TOKEN_TTL,
                 faults: list[dict] | None = None, clouds_yaml: Path | None = None,
                 max_boots: int = 2, accel: str = "auto", ssh_port: int = 22,
                 stall_timeout: float = console.STALL_SECONDS):
        names = [p.name for p in personalities]
        if len(set(names)) != len(names):
            raise PersonalityError(f"a personality is named twice: {names}")
        if sum(len(p.served_regions) for p in personalities) > netmodel.MAX_CLOUDS:
            raise PersonalityError(f"at most {netmodel.MAX_CLOUDS} clouds fit the address plan")
        self.max_boots, self.accel, self.ssh_port = max_boots, accel, ssh_port
        self.stall_timeout = stall_timeout
        self.personalities = personalities
        self.data_dir = Path(data_dir).resolve()
        self.base_port = base_port
        self.token_ttl = token_ttl
        self.fault_specs = faults or []
        self.clouds_yaml = Path(clouds_yaml or self.data_dir / "clouds.yaml").resolve()
        self.clouds: dict[str, Cloud] = {}
        self.runners: list[web.AppRunner] = []
        self.admin_url = ""
        self._sweeper: asyncio.Task | None = None

    def _socket(self, key: str, offset: int) -> socket.socket:
        if self.base_port is not None:
            sock = bind(self.base_port + offset)
        else:
            sock = bind_preferred(self.store.get_meta(f"port:{key}"))
        self.store.set_meta(f"port:{key}", sock.getsockname()[1])
        return sock

    async def _serve(self, app: web.Application, sock: socket.socket) -> None:
        runner = web.AppRunner(app, access_log=LOG if LOG.isEnabledFor(logging.INFO) else None,
                               shutdown_timeout=SHUTDOWN_GRACE)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self.runners.append(runner)

    def _claim_addresses(self) -> int:
        """The first cloud's address slice: the one used before, or the first free run.

        Each slot's lock file names the data dir that last held it. A fresh cloud
        prefers slots no other existing data dir has used, so a cloud that is down
        for a moment (killed, restarting on the same data) finds its slice still
        free; when every slice has such a record, any unlocked one will do.
        """
        count = sum(len(p.served_regions) for p in self.personalities)
        remembered = self.store.get_meta("address_base")
        SLOT_DIR.mkdir(exist_ok=True)
        if remembered is not None:
            bases = [remembered]
        else:
            every = range(netmodel.MAX_CLOUDS - count + 1)
            unclaimed = [b for b in every
                         if not any(self._claimed_by_other(s) for s in range(b, b + count))]
            # then the slices claimed longest ago: a cloud killed a moment ago comes last
            bases = unclaimed + sorted((b for b in every if b not in unclaimed),
                                       key=lambda b: max(_claimed_at(s) for s in range(b, b + count)))
        for base in bases:
            held = []
            for slot in range(base, base + count):
                lock = open(SLOT_DIR / f"{slot}.lock", "a+")      # no truncation before the lock
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    lock.close()
                    break
                held.append(lock)
            if len(held) == count:
                for lock in held:
                    lock.seek(0)
                    lock.truncate()
                    lock.write(str(self.data_dir))
                    lock.flush()
                self._slot_locks = held
                self.store.set_meta("address_base", base)
                return base
            for lock in held:
                lock.close()
        raise OSError("no free address slice in 127.100-154/127.200-254 (another local cloud "
                      "holds it)" if remembered is None else
                      f"addresses 127.{100 + remembered}.x.x are held by another local cloud")

    def _claimed_by_other(self, slot: int) -> bool:
        """Whether the slot was last held by another data dir that still exists."""
        try:
            owner = (SLOT_DIR / f"{slot}.lock").read_text().strip()
        except OSError:
            return False
        return bool(owner) and owner != str(self.data_dir) and Path(owner).is_dir()

    def _lock_data_dir(self) -> None:
        """One local cloud per data dir: a second one would corrupt the first one's state."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.data_dir / "localcloud.lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            self._lock.close()
            raise OSError(f"{self.data_dir} is in use by another local cloud") from e

    async def start(self) -> None:
        self._lock_data_dir()
        self.store = Store(self.data_dir)
        self.faults = FaultRegistry()
        self.hypervisor = Hypervisor(self.data_dir / "guests", self.max_boots, self.accel,
                                     self.stall_timeout)
        self.hypervisor.start()
        self.forwarder = Forwarder(self.ssh_port)
        base = self._claim_addresses()
        offset = 0
        for p in self.personalities:
            siblings: dict[str, Cloud] = {}
            for region in p.served_regions:
                offset += 1
                # the first region is the personality's name; another is NAME@REGION
                name = p.name if region == p.region else f"{p.name}@{region}"
                sock = self._socket(f"cloud:{name}", offset)
                cloud = Cloud(name=name, personality=p, store=self.store, faults=self.faults,
                              port=sock.getsockname()[1],
                              token_ttl=p.token_ttl or self.token_ttl,
                              credentials=load_credentials(self.store, p.name),
                              services=SERVICES, index=base + offset - 1,
                              hypervisor=self.hypervisor, forwarder=self.forwarder,
                              region=region if len(p.served_regions) > 1 else "",
                              siblings=siblings)
                if len(p.served_regions) > 1:
                    siblings[region] = cloud
                self.clouds[name] = cloud
                for spec in p.faults:
                    self.faults.add(spec, cloud=name)
                await self._serve(build_app(cloud), sock)
        for spec in self.fault_specs:
            self.faults.add(spec)
        sock = self._socket("admin", 0)
        self.admin_url = f"http://{HOST}:{sock.getsockname()[1]}"
        await self._serve(admin.build_app(self.clouds, self.faults, self.admin_url,
                                          self.hypervisor, self.forwarder), sock)
        for cloud in self.clouds.values():
            for stype in cloud.personality.services:
                if SERVICES[stype].resume:
                    SERVICES[stype].resume(cloud)
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        self._write_files()

    def _write_files(self) -> None:
        entries = {c.personality.name: clouds_yaml_entry(c) for c in self.clouds.values()
                   if c.name == c.personality.name}
        self.clouds_yaml.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.clouds_yaml.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump({"clouds": entries}, sort_keys=False))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.clouds_yaml)
        state = {"pid": os.getpid(), "admin_url": self.admin_url,
                 "clouds_yaml": str(self.clouds_yaml),
                 "clouds": {n: admin.cloud_info(c, self.admin_url)
                            for n, c in self.clouds.items()}}
        (self.data_dir / "localcloud.json").write_text(json.dumps(state, indent=2))

    async def _sweep(self) -> None:
        """Delete objects whose X-Delete-At has passed; forget long-dead tokens."""
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            now = time.time()
            for obj in self.store.expired_objects(now):
                self.store.delete_object(obj)
            self.store.purge_tokens(now - 3600)

    async def stop(self) -> None:
        if self._sweeper:
            self._sweeper.cancel()
        await self.forwarder.close()
        await self.hypervisor.stop_all()
        for cloud in self.clouds.values():
            for job in list(cloud.jobs):
                job.cancel()
            await asyncio.gather(*cloud.jobs, return_exceptions=True)
        for runner in reversed(self.runners):
            await runner.cleanup()
        self.store.close()
        self._lock.close()
        for lock in getattr(self, "_slot_locks", []):
            lock.close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="imagefleet localcloud",
        description="Serve OpenStack identity, image and object storage on 127.0.0.1, one "
                    "cloud per personality, and write a clouds.yaml for them.")
    parser.add_argument("--personality", action="append", metavar="NAME|FILE.yaml",
                        help=f"a vendor shape to serve (repeat; default: all of "
                             f"{', '.join(available())})")
    parser.add_argument("--data-dir", type=Path, default=Path("work/localcloud"),
                        help="state (SQLite) and image/object bytes (default: %(default)s)")
    parser.add_argument("--clouds-yaml", type=Path,
                        help="where to write clouds.yaml (default: DATA_DIR/clouds.yaml)")
    parser.add_argument("--base-port", type=int,
                        help="fixed ports: admin on N, clouds on N+1, N+2... (default: free "
                             "ports, the same as last run when possible)")
    parser.add_argument("--faults", type=Path, metavar="FILE.yaml",
                        help="faults to start with: a YAML list of fault objects")
    parser.add_argument("--token-ttl", type=int, default=DEFAULT_TOKEN_TTL,
                        help="token lifetime in seconds (default: %(default)s)")
    parser.add_argument("--ready-file", type=Path,
                        help="write the state JSON here once every port answers")
    parser.add_argument("--max-boots", type=int, default=2,
                        help="guests booting at once, over all clouds (default: %(default)s)")
    parser.add_argument("--accel", choices=accel.SETTINGS,
                        help="qemu accelerator; auto uses KVM only where the probe shows it "
                             f"faster than TCG (default: ${accel.ENV}, else auto)")
    parser.add_argument("--stall-timeout", type=float, default=console.STALL_SECONDS,
                        help="seconds a KVM guest may show nothing past its boot loader "
                             "before it is started again under TCG (default: %(default)s)")
    parser.add_argument("--ssh-port", type=int, default=22,
                        help="the port reachable addresses forward to guests' port 22 "
                             "(default: %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log every request (to DATA_DIR/localcloud.log)")
    return parser.parse_args(argv)


def _accel_from_env() -> str:
    try:
        return accel.resolve_setting()
    except ValueError as e:
        raise SystemExit(f"localcloud: {e}") from None


async def serve(args: argparse.Namespace) -> None:
    personalities = [load(p) for p in (args.personality or available())]
    faults = yaml.safe_load(args.faults.read_text()) if args.faults else []
    if not isinstance(faults, list):
        raise FaultError(f"{args.faults}: expected a list of faults")
    local = LocalCloud(personalities, args.data_dir, args.base_port, args.token_ttl, faults,
                       args.clouds_yaml, args.max_boots,
                       args.accel or _accel_from_env(), args.ssh_port, args.stall_timeout)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await local.start()
    try:
        if args.ready_file:
            tmp = args.ready_file.with_suffix(".tmp")
            tmp.write_text((local.data_dir / "localcloud.json").read_text())
            os.replace(tmp, args.ready_file)
        print(f"localcloud ready: admin {local.admin_url} clouds.yaml {local.clouds_yaml}",
              flush=True)
        await stopping.wait()
    finally:
        await local.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(filename=args.data_dir / "localcloud.log",
                        level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        asyncio.run(serve(args))
    except (PersonalityError, FaultError, OSError, yaml.YAMLError) as e:
        print(f"imagefleet: localcloud: {e}", file=sys.stderr)
        return 2
    return 0
