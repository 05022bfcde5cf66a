"""The upstream target's private RabbitMQ node and how its processes are recognised."""

from __future__ import annotations

import subprocess
import sys

import pytest

from upstream import broker
from upstream.run import Layout, _ours

PORTS = {"amqp": 40001, "amqp_dist": 40002, "epmd": 40003}


def test_each_work_dir_has_its_own_node(tmp_path):
    a, b = Layout(tmp_path / "a"), Layout(tmp_path / "b")
    assert broker.node_name(a) == broker.node_name(Layout(tmp_path / "a"))
    assert broker.node_name(a) != broker.node_name(b)
    assert broker.node_name(a).endswith("@localhost")


@pytest.mark.parametrize(("var", "expected"), [
    ("RABBITMQ_DIST_PORT", "40002"),
    ("ERL_EPMD_PORT", "40003"),
    ("ERL_EPMD_ADDRESS", "127.0.0.1"),
    ("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS", "-kernel inet_dist_use_interface {127,0,0,1}"),
])
def test_node_listens_on_its_own_loopback_ports(tmp_path, var, expected):
    assert broker.server_env(Layout(tmp_path), PORTS)[var] == expected


def test_node_keeps_everything_in_the_data_dir(tmp_path):
    lay = Layout(tmp_path)
    env = broker.server_env(lay, PORTS)
    for var in ("HOME", "RABBITMQ_MNESIA_BASE", "RABBITMQ_LOG_BASE", "RABBITMQ_CONFIG_FILE",
                "RABBITMQ_CONF_ENV_FILE", "RABBITMQ_ENABLED_PLUGINS_FILE", "RABBITMQ_PID_FILE"):
        assert env[var].startswith(str(lay.data / "rabbitmq")), var
    conf = (lay.data / "rabbitmq" / "rabbitmq.conf").read_text()
    assert "listeners.tcp.default = 127.0.0.1:40001" in conf
    assert broker.transport_url(PORTS) == "rabbit://guest:guest@127.0.0.1:40001/"
    assert broker.epmd_argv(PORTS)[1:] == ["-port", "40003", "-address", "127.0.0.1"]


def test_a_process_is_ours_by_its_working_directory(tmp_path):
    """epmd's command line names no path, and gunicorn retitles its processes:
    the data dir they were started in tells them apart."""
    lay, other = Layout(tmp_path / "mine"), Layout(tmp_path / "other")
    lay.data.mkdir(parents=True)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"],
                            cwd=lay.data)
    try:
        assert _ours(proc.pid, lay)
        assert not _ours(proc.pid, other)
        assert not _ours(proc.pid, Layout(tmp_path / "mi"))     # a prefix is not the dir
    finally:
        proc.kill()
        proc.wait()
