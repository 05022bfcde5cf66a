"""wait_for_ssh against servers on 127.0.0.1 that fail at each stage, and one that works."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import paramiko
import pytest

from pipeline.cloud import reach
from pipeline.cloud.keys import make_keypair
from pipeline.core.errors import ReachabilityError

TIMEOUT = 3.0
FAST = {"poll": 0.2, "login_poll": 0.3, "connect_timeout": 1.0}


@contextlib.contextmanager
def tcp_server(handle):
    """Accept connections on 127.0.0.1 and give each to ``handle`` in a thread."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=handle, args=(conn, stop), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()


def banner_then_close(conn, stop):
    with conn:
        conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 fake\r\n")


def silent(conn, stop):
    with conn:
        stop.wait(5)


@pytest.fixture(scope="module")
def client_key(tmp_path_factory):
    return make_keypair(tmp_path_factory.mktemp("keys"), "client")


def _fails(port, client_key, **kwargs):
    start = time.monotonic()
    with pytest.raises(ReachabilityError) as err:
        reach.wait_for_ssh("127.0.0.1", port, timeout=TIMEOUT,
                           key_path=client_key.private_key_path,
                           **{"username": "debian", **FAST, **kwargs})
    elapsed = time.monotonic() - start
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    return message, elapsed


def test_closed_port_says_no_tcp(client_key):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused
        message, elapsed = _fails(port, client_key)
    assert "last stage: no TCP connection" in message
    assert elapsed < TIMEOUT + 2


def test_silent_server_says_no_banner(client_key):
    with tcp_server(silent) as port:
        message, elapsed = _fails(port, client_key)
    assert "last stage: TCP connected but no SSH banner" in message
    assert elapsed < TIMEOUT + 3


def test_banner_then_close_says_login_failed(client_key):
    with tcp_server(banner_then_close) as port:
        message, elapsed = _fails(port, client_key)
    assert "last stage: SSH banner but login failed" in message
    assert f"127.0.0.1:{port}" in message and "as debian" in message
    assert elapsed < TIMEOUT + 3


class _Server(paramiko.ServerInterface):
    def __init__(self, allowed: paramiko.PKey, files: dict[str, str]):
        self.allowed = allowed
        self.files = files
        self.command = None
        self.ready = threading.Event()

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        if username == "debian" and key.asbytes() == self.allowed.asbytes():
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED if kind == "session" else \
            paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel, command):
        self.command = command.decode()
        self.ready.set()
        return True


@pytest.fixture(scope="module")
def paramiko_server(tmp_path_factory, client_key):
    """A tiny SSH server: key-only login as debian, ``cat <file>`` from a dict."""
    host_key = paramiko.PKey.from_path(
        str(make_keypair(tmp_path_factory.mktemp("host"), "host").private_key_path))
    allowed = paramiko.PKey.from_path(str(client_key.private_key_path))
    files = {"/etc/imagefleet-build": "build-42\n"}

    def handle(conn, stop):
        transport = paramiko.Transport(conn)
        transport.add_server_key(host_key)
        server = _Server(allowed, files)
        try:
            transport.start_server(server=server)
            channel = transport.accept(5)
            if channel is None or not server.ready.wait(5):
                return
            verb, _, path = server.command.partition(" ")
            if verb == "cat" and path in files:
                channel.sendall(files[path].encode())
                channel.send_exit_status(0)
            else:
                channel.sendall_stderr(f"cat: {path}: No such file or directory\n".encode())
                channel.send_exit_status(1)
            channel.close()
        except (paramiko.SSHException, EOFError, OSError):
            pass
        finally:
            time.sleep(0.1)
            transport.close()

    with tcp_server(handle) as port:
        yield port, host_key


def test_login_runs_command_and_records_host_key(paramiko_server, client_key):
    port, host_key = paramiko_server
    result = reach.wait_for_ssh("127.0.0.1", port, timeout=10,
                                key_path=client_key.private_key_path, username="debian",
                                **FAST)
    assert result.output == "build-42"
    assert result.banner.startswith("SSH-2.0-")
    assert result.host_key == f"ssh-ed25519 {host_key.fingerprint}"
    assert 0 <= result.seconds_to_banner <= result.seconds_to_login < 10


def test_wrong_user_says_login_failed(paramiko_server, client_key):
    port, _ = paramiko_server
    message, _ = _fails(port, client_key, username="root")
    assert "last stage: SSH banner but login failed" in message
    assert "Authentication failed" in message


def test_failing_command_gives_up_early_with_stderr(paramiko_server, client_key):
    port, _ = paramiko_server
    start = time.monotonic()
    with pytest.raises(ReachabilityError, match="command failed .*No such file") as err:
        reach.wait_for_ssh("127.0.0.1", port, timeout=30, key_path=client_key.private_key_path,
                           username="debian", command="cat /etc/missing", **FAST)
    assert time.monotonic() - start < 15
    assert "/etc/missing" in str(err.value)


def test_unreadable_key_is_one_clear_line(tmp_path):
    bad = tmp_path / "bad"
    bad.write_text("not a key\n")
    with pytest.raises(ReachabilityError, match="cannot read private key"):
        reach.wait_for_ssh("127.0.0.1", 1, timeout=1, key_path=bad, username="debian")
