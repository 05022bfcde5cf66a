"""Upstream Nova, Placement and Neutron on demand: the compute/network target.

Beside the running Keystone, Glance and Swift of ``upstream.run``: a private
RabbitMQ node (``broker.py``), Placement and the compute API under gunicorn
(``serve.py``), nova-conductor, nova-scheduler and nova-compute with
``compute_driver = fake.FakeDriver`` (``nova/virt/fake.py``: no guest, but the
real API, scheduler, conductor and compute manager), and one neutron-server
with ML2 and neutron's test mechanism driver, which binds ports without agents
for host ``host-ovs-no_filter``, the ``host`` nova-compute runs as. All
databases are SQLite files under ``data/``; the configs are
``templates/nova.conf``, ``placement.conf`` and ``neutron.conf``.

``start`` needs the main services (it starts them if they are not running),
reuses a healthy compute target, else starts one from empty state. What can
overlap does, since most of the start is Python importing Nova and Neutron
on two cores: the broker and Placement (which migrates its own database) are
spawned first; Nova's databases (``nova_db.py``, one process) are built while
its services import Nova (they wait at gate files, ``serve.py cmd --gate``),
Neutron's (``neutron_schema.py``) before neutron-server starts, and Keystone
gets the service users and catalog, all at once; the flavors, image and networks are
made (``seed.resources``) while the scheduler maps the compute host into cell1
(its periodic ``discover_hosts``). The pids are recorded in the main state
file, so ``python -m upstream.run stop`` ends them too; ``stop`` here ends
only them and takes back the catalog entries and the image. The state keeps
the start-up seconds (``start_s``, per step in ``steps_s``) and resident
memory per service (``rss_kib``). ``python -m upstream.compute start|stop``
or ``python -m upstream.run start --compute`` by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import sqlite3
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pipeline.core import runner
from pipeline.core.waiting import iterate_timeout
from upstream import broker, run, seed
from upstream.bootstrap import REGION, use_wal
from upstream.install import render
from upstream.procs import answers, free_ports, group_members, kill_groups, rss_kib, service_env

COMPUTE_HOST = "host-ovs-no_filter"   # bound by neutron's mechanism_test.TestMechanismDriver
PHYSNET = "public"
PORT_NAMES = ("amqp", "amqp_dist", "epmd", "placement", "nova", "neutron")
# Ours in the main state's pids; the order is the order they are stopped in.
SERVICES = ("nova-compute", "nova-scheduler", "nova-conductor", "nova-api", "neutron",
            "placement", "rabbitmq", "epmd")
COMMANDS = {
    "nova-conductor": "nova.cmd.conductor:main",
    "nova-scheduler": "nova.cmd.scheduler:main",
    "nova-compute": "nova.cmd.compute:main",
    "neutron": "neutron.cmd.eventlet.server:main",
}


def _save(lay: run.Layout, state: dict[str, Any]) -> None:
    lay.state_file.write_text(json.dumps(state, indent=2) + "\n")


def _healthy(info: dict[str, Any] | None, state: dict[str, Any], lay: run.Layout) -> bool:
    if not info or "start_s" not in info:
        return False
    pids = state["pids"]
    if not all(name in pids and run._ours(pids[name], lay) for name in SERVICES):
        return False
    ports = info["ports"]
    return (answers(f"http://127.0.0.1:{ports['placement']}/") == 200
            and answers(f"http://127.0.0.1:{ports['nova']}/") == 200
            and answers(f"http://127.0.0.1:{ports['neutron']}/") == 200)


def _configs(lay: run.Layout, state: dict[str, Any], info: dict[str, Any]) -> None:
    ports, pw = info["ports"], info["passwords"]
    values = {"data": lay.data, "venv": lay.venv, "region": REGION,
              "keystone_url": state["auth_url"].removesuffix("/v3"),
              "transport_url": broker.transport_url(ports), "compute_host": COMPUTE_HOST,
              "physnet": PHYSNET, "neutron_port": ports["neutron"],
              "nova_password": pw["nova"], "placement_password": pw["placement"],
              "neutron_password": pw["neutron"]}
    for sub in ("nova", "placement", "neutron"):
        shutil.rmtree(lay.data / sub, ignore_errors=True)
        (lay.data / sub / "locks").mkdir(parents=True)
    shutil.rmtree(lay.data / "rabbitmq", ignore_errors=True)
    render("nova.conf", lay.data / "nova" / "nova.conf", values)
    # The compute API's WSGI app reads api-paste.ini beside nova.conf (wsgi_app.py).
    shutil.copy(lay.venv / "etc" / "nova" / "api-paste.ini", lay.data / "nova")
    render("placement.conf", lay.data / "placement" / "placement.conf", values)
    render("neutron.conf", lay.data / "neutron" / "neutron.conf", values)


def _manage(lay: run.Layout, log: str, *argv: Any) -> None:
    runner.run(list(argv), env=service_env(), inherit_env=False,
               log_path=lay.logs / f"{log}.log", timeout=run.START_TIMEOUT,
               where="upstream", step=log)


def _new_databases(lay: run.Layout) -> None:
    """Every SQLite file made empty in WAL mode first (readers never block the one
    writer; the mode is kept in the file), so the syncs and servers inherit it."""
    for db in ("nova/nova_api", "nova/nova_cell0", "nova/nova_cell1",
               "placement/placement", "neutron/neutron"):
        use_wal(lay.data / f"{db}.db")


def _nova_up(lay: run.Layout, record) -> None:
    """Nova's services and databases. The services are spawned first and import
    Nova (seconds of CPU each) while ``nova_db.py`` builds the databases and cell
    mappings; each waits at its gate file before it starts: the conductor and
    scheduler for the databases, nova-compute for the conductor, because its
    first call to the conductor is lost if no conductor queue exists yet (it
    then waits 10 s, ``nova/conductor/api.py`` ``wait_until_ready``)."""
    serve, env = run.HERE / "serve.py", {"OS_NOVA_CONFIG_DIR": str(lay.data / "nova")}
    db_ready, conductor_up = lay.data / "nova" / "db-ready", lay.data / "nova" / "conductor-up"
    for name, gate in (("nova-conductor", db_ready), ("nova-scheduler", db_ready),
                       ("nova-compute", conductor_up)):
        record(name, run.spawn(lay, name, [
            lay.python, serve, "cmd", "--gate", gate, COMMANDS[name], name,
            "--config-file", lay.data / "nova" / "nova.conf"], env))
    _manage(lay, "nova-manage", lay.python, run.HERE / "nova_db.py",
            lay.data / "nova" / "nova.conf", f"sqlite:///{lay.data / 'nova' / 'nova_cell0.db'}")
    record.catalog.wait(run.START_TIMEOUT)      # the services log in at once
    db_ready.touch()
    record("nova-api", run.spawn(lay, "nova-api", [lay.python, serve, "nova",
                                                   record.ports["nova"]], env))
    # The conductor has its service record just before it listens.
    for _ in iterate_timeout(run.START_TIMEOUT, "nova-conductor to start", wait=0.2):
        if _service_up(lay, "nova-conductor"):
            break
        if not run._ours(record.state["pids"]["nova-conductor"], lay):
            raise run.UpstreamError(f"upstream nova-conductor exited during start "
                                    f"(see {lay.logs / 'nova-conductor.log'})")
    conductor_up.touch()


def _neutron_up(lay: run.Layout, record) -> None:
    """Neutron's schema (``neutron_schema.py``: its migrations need ALTER on
    SQLite), then neutron-server."""
    _manage(lay, "neutron-schema", lay.python, run.HERE / "neutron_schema.py",
            lay.data / "neutron" / "neutron.conf")
    # -O: mechanism_test.TestMechanismDriver checks each call against what a
    # unit test expects with assert statements (e.g. no original port in
    # bind_port), which a real port update from Nova fails; its binding is
    # plain code, so it runs without them.
    record("neutron", run.spawn(lay, "neutron", [
        lay.python, "-O", run.HERE / "serve.py", "cmd", COMMANDS["neutron"], "neutron-server",
        "--config-file", lay.data / "neutron" / "neutron.conf"], {}))


def _query(db: Path, sql: str, *args: Any) -> int:
    """A count from one of the services' SQLite files (read-only), 0 until it can."""
    with contextlib.suppress(sqlite3.Error), contextlib.closing(sqlite3.connect(
            f"file:{db}?mode=ro", uri=True)) as conn:
        return conn.execute(sql, args).fetchone()[0]
    return 0


def _service_up(lay: run.Layout, binary: str) -> bool:
    return _query(lay.data / "nova" / "nova_cell1.db",
                  "SELECT count(*) FROM services WHERE binary = ?", binary) > 0


def _host_mapped(lay: run.Layout) -> bool:
    """nova-compute's node is in cell1 and mapped in the API database (by the
    scheduler's periodic discovery, ``discover_hosts_in_cells_interval``)."""
    return _query(lay.data / "nova" / "nova_api.db",
                  "SELECT count(*) FROM host_mappings WHERE host = ?", COMPUTE_HOST) > 0


class _Recorder:
    """Records a spawned pid in the state file at once, so a failed start can
    still be stopped; threads share it."""

    def __init__(self, lay: run.Layout, state: dict[str, Any], ports: dict[str, int]) -> None:
        self.lay, self.state, self.ports = lay, state, ports
        self.lock = threading.Lock()
        self.catalog = threading.Event()      # Keystone has the service users

    def __call__(self, name: str, pid: int) -> None:
        with self.lock:
            self.state["pids"][name] = pid
            _save(self.lay, self.state)


def _start_fresh(lay: run.Layout, state: dict[str, Any], info: dict[str, Any]) -> None:
    ports = info["ports"]
    record = _Recorder(lay, state, ports)
    _configs(lay, state, info)
    _new_databases(lay)
    record("epmd", run.spawn(lay, "epmd", broker.epmd_argv(ports), {}))
    record("rabbitmq", run.spawn(lay, "rabbitmq", [broker.SERVER],
                                 broker.server_env(lay, ports)))
    # Placement migrates its own database as it starts (sync_on_startup).
    record("placement", run.spawn(lay, "placement", [
        lay.python, run.HERE / "serve.py", "placement", ports["placement"]],
        {"OS_PLACEMENT_CONFIG_DIR": str(lay.data / "placement")}))
    with ThreadPoolExecutor(3) as pool:
        jobs = [pool.submit(_nova_up, lay, record), pool.submit(_neutron_up, lay, record)]
        try:
            info["catalog"] = seed.register(state, ports, info["passwords"])
        finally:
            record.catalog.set()
        for job in jobs:
            job.result()
    mark(info, "databases")
    for name, port in (("placement", ports["placement"]), ("neutron", ports["neutron"]),
                       ("nova-api", ports["nova"])):
        run.wait_for(lay, state, f"http://127.0.0.1:{port}/", 200, name)
    mark(info, "apis_answer")
    with ThreadPoolExecutor(1) as pool:
        made = pool.submit(seed.resources, state)
        for _ in iterate_timeout(run.START_TIMEOUT, "nova-compute's host to be mapped",
                                 wait=0.25):
            if _host_mapped(lay):
                break
            dead = [n for n in SERVICES if n in state["pids"]
                    and not run._ours(state["pids"][n], lay)]
            if dead:
                raise run.UpstreamError(f"upstream {', '.join(dead)} exited during start "
                                        f"(see {lay.logs})")
        mark(info, "host_mapped")
        info["resources"] = made.result()
    mark(info, "resources")


def mark(info: dict[str, Any], step: str) -> None:
    """Seconds from the start to the end of ``step``, kept in the state."""
    info.setdefault("steps_s", {})[step] = round(time.monotonic() - info["_t0"], 1)


def start(root: str | os.PathLike | None = None) -> dict[str, Any]:
    """The compute target running; returns its info (ports, host, resources,
    start_s, rss_kib, reused) with the main state under ``main``."""
    main_state = run.start(root)
    lay = run.Layout.from_env(root)
    with run.locked(lay):
        state = run.read_state(lay) or main_state
        info = state.get("compute")
        if _healthy(info, state, lay):
            return {**info, "reused": True, "main": state}
        _stop(lay, state)
        started = time.monotonic()
        info = {"ports": dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True)),
                "passwords": {n: secrets.token_hex(12)
                              for n in ("nova", "placement", "neutron")},
                "host": COMPUTE_HOST, "region": REGION, "_t0": started}
        state["compute"] = info
        _save(lay, state)
        try:
            _start_fresh(lay, state, info)
        except BaseException:
            _stop(lay, state)
            raise
        del info["_t0"]
        info["start_s"] = round(time.monotonic() - started, 1)
        info["rss_kib"] = memory(state)
        _save(lay, state)
        return {**info, "reused": False, "main": state}


def memory(state: dict[str, Any]) -> dict[str, int]:
    """Resident memory (KiB) of each compute/network service's process group."""
    pids = state.get("pids", {})
    return {name: sum(rss_kib(p) for p in group_members(pids[name]))
            for name in SERVICES if name in pids}


def _stop(lay: run.Layout, state: dict[str, Any]) -> list[str]:
    """End our services and take back the catalog entries; the state is rewritten."""
    pids = {name: state.get("pids", {}).pop(name, None) for name in SERVICES}
    stopped = [name for name, pid in pids.items()
               if pid and any(run._ours(p, lay) for p in group_members(pid))]
    kill_groups([pids[name] for name in stopped])
    info = state.pop("compute", None)
    if info and info.get("catalog"):
        with contextlib.suppress(Exception):      # Keystone may be gone already
            seed.unregister(state, info["catalog"],
                            info.get("resources", {}).get("image"))
    if lay.state_file.exists():
        _save(lay, state)
    return stopped


def stop(root: str | os.PathLike | None = None) -> list[str]:
    lay = run.Layout.from_env(root)
    with run.locked(lay):
        state = run.read_state(lay)
        return _stop(lay, state) if state else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="upstream.compute",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["start", "stop"])
    parser.add_argument("--dir", help=f"work dir (default ${run.DIR_ENV} or work/upstream)")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            info = start(args.dir)
            print(describe(info))
        else:
            print(f"upstream compute: stopped {', '.join(stop(args.dir)) or 'nothing'}")
    except run.UpstreamError as e:
        print(f"imagefleet: upstream: {e}", file=sys.stderr)
        return 1
    return 0


def describe(info: dict[str, Any]) -> str:
    how = "reused" if info["reused"] else f"started in {info['start_s']} s"
    rss = sum(info.get("rss_kib", {}).values()) / 1024
    return (f"upstream compute: {how}, {rss:.0f} MiB resident at start; "
            f"OS_CLIENT_CONFIG_FILE={info['main']['clouds_yaml']} "
            f"OS_CLOUD={info['main']['cloud']}")


if __name__ == "__main__":
    sys.exit(main())
