"""A private RabbitMQ node for upstream Nova and Neutron, one per data dir.

Debian's ``rabbitmq-server`` (``scripts/setup-system.sh``) provides the broker;
the system service is never used. Each start runs its own node from empty
state: ``RABBITMQ_MNESIA_BASE``, ``RABBITMQ_LOG_BASE`` and the config under
``data/rabbitmq``, a node name derived from the data dir, AMQP and Erlang
distribution on free loopback ports, no plugins. The Erlang port mapper
(epmd) is started by us on its own free loopback port (``ERL_EPMD_PORT``)
before the node, so the node finds it and does not daemonize a shared one on
4369 that would outlive ``stop``. ``/usr/lib/rabbitmq/bin/rabbitmq-server`` is
run directly: ``/usr/sbin/rabbitmq-server`` switches to the ``rabbitmq`` user
and its home, which would share the Erlang cookie with the system.

Both processes are spawned by ``run.spawn`` and recorded with the other
services' pids, so ``python -m upstream.run stop`` ends them too.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from upstream.run import Layout

SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
PORT_NAMES = ("amqp", "amqp_dist", "epmd")


def node_name(lay: Layout) -> str:
    """A node name of our own: two work dirs never share one."""
    return f"imagefleet-{hashlib.sha256(str(lay.root).encode()).hexdigest()[:10]}@localhost"


def transport_url(ports: dict[str, int]) -> str:
    return f"rabbit://guest:guest@127.0.0.1:{ports['amqp']}/"


def epmd_argv(ports: dict[str, int]) -> list[str]:
    epmd = shutil.which("epmd") or "/usr/bin/epmd"
    return [epmd, "-port", str(ports["epmd"]), "-address", "127.0.0.1"]


def server_env(lay: Layout, ports: dict[str, int]) -> dict[str, str]:
    """The environment of the node: everything under ``data/rabbitmq``."""
    base = lay.data / "rabbitmq"
    for sub in ("mnesia", "log"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    (base / "enabled_plugins").write_text("[].\n")
    (base / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = 127.0.0.1:{ports['amqp']}\n"
        # guest may log in from loopback only, which is all we use.
        "loopback_users.guest = true\n")
    (base / "rabbitmq-env.conf").write_text("")
    return {
        "HOME": str(base),                 # the Erlang cookie lives here
        "RABBITMQ_HOME": str(SERVER.parent.parent),
        "RABBITMQ_NODENAME": node_name(lay),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
        "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_PLUGINS_EXPAND_DIR": str(base / "plugins-expand"),
        "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
        "RABBITMQ_DIST_PORT": str(ports["amqp_dist"]),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        "ERL_EPMD_PORT": str(ports["epmd"]),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
    }


def amqp_ready(port: int) -> bool:
    """The node speaks AMQP 0-9-1 (answers a protocol header with Connection.Start)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"AMQP\x00\x00\x09\x01")
            return s.recv(1) == b"\x01"             # a method frame
    except OSError:
        return False
