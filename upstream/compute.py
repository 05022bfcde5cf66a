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
reuses a healthy compute target, else starts one from empty state: the
database syncs, Keystone's users and catalog and the broker start run at once,
then every service, then the host is mapped (``nova-manage cell_v2
discover_hosts``) and ``seed.resources`` makes flavors, an image and the
networks. The pids are recorded in the main state file, so ``python -m
upstream.run stop`` ends them too; ``stop`` here ends only them and takes the
catalog entries back. Start-up seconds and resident memory are in the state.
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
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pipeline.core import runner
from pipeline.core.waiting import iterate_timeout
from upstream import broker, run, seed
from upstream.bootstrap import REGION, use_wal
from upstream.install import render
from upstream.procs import answers, free_ports, group_members, kill_group, rss_kib, service_env

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


def _sync_nova(lay: run.Layout) -> None:
    """API database, cell0 and cell1 (Nova's own migrations run on SQLite)."""
    conf = ["--config-file", lay.data / "nova" / "nova.conf"]
    nova_manage = lay.bin("nova-manage")
    _manage(lay, "nova-manage", nova_manage, *conf, "api_db", "sync")
    _manage(lay, "nova-manage", nova_manage, *conf, "cell_v2", "map_cell0",
            "--database_connection", f"sqlite:///{lay.data / 'nova' / 'nova_cell0.db'}")
    _manage(lay, "nova-manage", nova_manage, *conf, "cell_v2", "create_cell",
            "--name", "cell1")
    _manage(lay, "nova-manage", nova_manage, *conf, "db", "sync")
    for db in ("nova_api", "nova_cell0", "nova_cell1"):
        use_wal(lay.data / "nova" / f"{db}.db")


def _sync_placement(lay: run.Layout) -> None:
    _manage(lay, "placement-manage", lay.bin("placement-manage"), "--config-file",
            lay.data / "placement" / "placement.conf", "db", "sync")
    use_wal(lay.data / "placement" / "placement.db")


def _sync_neutron(lay: run.Layout) -> None:
    _manage(lay, "neutron-schema", lay.python, run.HERE / "neutron_schema.py",
            lay.data / "neutron" / "neutron.conf")
    use_wal(lay.data / "neutron" / "neutron.db")


def _spawn_services(lay: run.Layout, info: dict[str, Any], record) -> None:
    ports, serve = info["ports"], run.HERE / "serve.py"
    nova_env = {"OS_NOVA_CONFIG_DIR": str(lay.data / "nova")}
    record("placement", run.spawn(lay, "placement", [lay.python, serve, "placement",
                                                     ports["placement"]],
                                  {"OS_PLACEMENT_CONFIG_DIR": str(lay.data / "placement")}))
    # -O: mechanism_test.TestMechanismDriver checks each call against what a
    # unit test expects with assert statements (e.g. no original port in
    # bind_port), which a real port update from Nova fails; its binding is
    # plain code, so it runs without them.
    record("neutron", run.spawn(lay, "neutron", [
        lay.python, "-O", serve, "cmd", COMMANDS["neutron"], "neutron-server",
        "--config-file", lay.data / "neutron" / "neutron.conf"], {}))
    record("nova-api", run.spawn(lay, "nova-api", [lay.python, serve, "nova", ports["nova"]],
                                 nova_env))
    for name in ("nova-conductor", "nova-scheduler", "nova-compute"):
        record(name, run.spawn(lay, name, [lay.python, serve, "cmd", COMMANDS[name], name,
                                           "--config-file", lay.data / "nova" / "nova.conf"],
                               nova_env))


def _compute_node_up(lay: run.Layout) -> bool:
    """nova-compute has written its compute node into cell1."""
    with contextlib.suppress(sqlite3.Error), contextlib.closing(sqlite3.connect(
            f"file:{lay.data / 'nova' / 'nova_cell1.db'}?mode=ro", uri=True)) as conn:
        return conn.execute("SELECT count(*) FROM compute_nodes WHERE deleted = 0"
                            ).fetchone()[0] > 0
    return False


def _start_fresh(lay: run.Layout, state: dict[str, Any], info: dict[str, Any]) -> None:
    ports = info["ports"]

    def record(name: str, pid: int) -> None:
        state["pids"][name] = pid
        _save(lay, state)

    _configs(lay, state, info)
    record("epmd", run.spawn(lay, "epmd", broker.epmd_argv(ports), {}))
    record("rabbitmq", run.spawn(lay, "rabbitmq", [broker.SERVER],
                                 broker.server_env(lay, ports)))
    with ThreadPoolExecutor(4) as pool:
        jobs = [pool.submit(f, lay) for f in (_sync_nova, _sync_placement, _sync_neutron)]
        info["catalog"] = seed.register(state, ports, info["passwords"])
        _save(lay, state)
        for job in jobs:
            job.result()
    mark(info, "db_sync")
    _spawn_services(lay, info, record)
    for name, port, status in (("placement", ports["placement"], 200),
                               ("nova-api", ports["nova"], 200),
                               ("neutron", ports["neutron"], 200)):
        run.wait_for(lay, state, f"http://127.0.0.1:{port}/", status, name)
    mark(info, "apis_answer")
    for _ in iterate_timeout(run.START_TIMEOUT, "nova-compute to register its node", wait=0.25):
        if _compute_node_up(lay):
            break
        dead = [n for n in SERVICES if n in state["pids"]
                and not run._ours(state["pids"][n], lay)]
        if dead:
            raise run.UpstreamError(f"upstream {', '.join(dead)} exited during start "
                                    f"(see {lay.logs})")
    mark(info, "compute_node")
    _manage(lay, "nova-manage", lay.bin("nova-manage"), "--config-file",
            lay.data / "nova" / "nova.conf", "cell_v2", "discover_hosts", "--verbose")
    mark(info, "discover_hosts")
    info["resources"] = seed.resources(state)
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
    stopped = []
    for name in SERVICES:
        pid = state.get("pids", {}).pop(name, None)
        if pid and any(run._ours(p, lay) for p in group_members(pid)):
            kill_group(pid)
            stopped.append(name)
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
