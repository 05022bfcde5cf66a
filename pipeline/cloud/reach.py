"""Prove a booted image is usable: SSH answers, our key logs in, a command runs.

Used for local qemu boots and for cloud servers.  Progress goes through
stages (TCP, banner, login, command); when time runs out the error names the
last stage reached, which is what tells a bad network from a bad image:
no banner means sshd never started, a refused login means the key never
arrived (config drive / metadata not read).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass

import paramiko

from pipeline.core.errors import ReachabilityError, WaitTimeout
from pipeline.core.waiting import iterate_timeout

LOG = logging.getLogger(__name__)

NO_TCP = "no TCP connection"
NO_BANNER = "TCP connected but no SSH banner"
LOGIN_FAILED = "SSH banner but login failed"
COMMAND_FAILED = "logged in but command failed"
DEFAULT_COMMAND = "cat /etc/imagefleet-build"
# A command that fails after a good login will not start working by waiting.
COMMAND_ATTEMPTS = 3


@dataclass(frozen=True)
class ReachResult:
    seconds_to_banner: float
    seconds_to_login: float  # login done and command finished
    output: str
    banner: str
    host_key: str  # "ssh-ed25519 SHA256:..."


class _NoBanner(Exception):
    pass


class _CommandFailed(Exception):
    pass


class _RecordHostKey(paramiko.MissingHostKeyPolicy):
    """Accept the (brand new, unknowable) host key but remember it for the report."""

    def __init__(self) -> None:
        self.key = ""

    def missing_host_key(self, client, hostname, key) -> None:
        self.key = f"{key.get_name()} {key.fingerprint}"


@dataclass
class _Progress:
    stage: str = NO_TCP
    detail: str = "not tried yet"
    banner: str = ""
    banner_at: float | None = None

    def note(self, stage: str, detail: object) -> None:
        self.stage = stage
        if isinstance(detail, EOFError):
            detail = "connection closed during the SSH handshake"
        self.detail = (str(detail) or type(detail).__name__).splitlines()[0][:200]
        LOG.debug("ssh attempt: %s (%s)", self.stage, self.detail)


def read_banner(host: str, port: int, timeout: float) -> str:
    """Connect and return the server's ``SSH-2.0-...`` line.

    Raises ``OSError`` when no TCP connection, ``_NoBanner`` when connected
    but nothing SSH-like arrives (closed, silent, or another protocol).
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        data = b""
        try:
            while len(data) < 8192:
                chunk = sock.recv(1024)
                if not chunk:
                    break
                data += chunk
                for line in data.split(b"\n")[:-1]:
                    if line.startswith(b"SSH-"):
                        return line.rstrip(b"\r").decode("ascii", "replace")
        except TimeoutError:
            raise _NoBanner(f"nothing within {timeout:g} s") from None
        except OSError as e:
            raise _NoBanner(f"connection dropped ({e})") from None
    raise _NoBanner("closed before a banner" if not data else f"not SSH: {data[:40]!r}")


def load_key(key_path: str | os.PathLike) -> paramiko.PKey:
    try:
        return paramiko.PKey.from_path(str(key_path))
    except (OSError, paramiko.SSHException, ValueError) as e:
        raise ReachabilityError(f"cannot read private key {key_path}: {e}") from e


def _login_and_run(host: str, port: int, username: str, key: paramiko.PKey, command: str,
                   timeout: float, handshake_timeout: float,
                   command_timeout: float) -> tuple[str, str]:
    client = paramiko.SSHClient()
    policy = _RecordHostKey()
    client.set_missing_host_key_policy(policy)
    try:
        client.connect(host, port=port, username=username, pkey=key, timeout=timeout,
                       banner_timeout=handshake_timeout, auth_timeout=handshake_timeout,
                       channel_timeout=handshake_timeout,
                       allow_agent=False, look_for_keys=False)
        _, stdout, stderr = client.exec_command(command, timeout=command_timeout)
        out = stdout.read().decode("utf-8", "replace")
        err = stderr.read().decode("utf-8", "replace").strip()
        status = stdout.channel.recv_exit_status()
    finally:
        client.close()
    if status != 0:
        raise _CommandFailed(f"{command!r} exited {status}" + (f": {err}" if err else ""))
    return out.strip(), policy.key


def run_command(host: str, port: int, *, username: str, key_path: str | os.PathLike,
                command: str, timeout: float = 10.0, command_timeout: float = 60.0) -> str:
    """One command over SSH on a guest already reached (``wait_for_ssh`` returned); its
    stdout.  Any failure is a ``ReachabilityError``: no waiting, no retry."""
    key = load_key(key_path)
    try:
        output, _ = _login_and_run(host, port, username, key, command, timeout, 30.0,
                                   command_timeout)
    except (_CommandFailed, paramiko.SSHException, OSError, EOFError) as e:
        raise ReachabilityError(f"{host}:{port}: {command.split()[0]}...: {e}") from e
    return output


def _check_vm(vm, where: str | None) -> None:
    """A local guest that died, or whose KVM boot stalled, fails the wait at once."""
    if vm is not None:
        vm.check(where)


def _classify(exc: BaseException) -> str:
    """Which stage a failed paramiko login got to, from its exception."""
    if isinstance(exc, paramiko.AuthenticationException):
        return LOGIN_FAILED
    if isinstance(exc, paramiko.SSHException) and "protocol banner" in str(exc):
        return NO_BANNER
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError | ConnectionRefusedError):
        return NO_TCP
    return LOGIN_FAILED


def wait_for_banner(host: str, port: int = 22, *, timeout: float, vm=None,
                    where: str | None = None, poll: float = 1.0, connect_timeout: float = 5.0,
                    progress: _Progress | None = None) -> ReachResult:
    """Wait for the ``SSH-`` line: the first stage of ``wait_for_ssh``, and all of the
    check for test images that cannot log in (the result's login time is the banner's).

    Times count from ``vm.started_at`` when a local ``vm`` is given (a dead
    qemu fails fast with ``BootError``).  Raises ``ReachabilityError`` naming
    the last stage reached; ``progress``, if given, records the stages.
    """
    start = vm.started_at if vm is not None else time.monotonic()
    deadline = time.monotonic() + timeout
    progress = progress if progress is not None else _Progress()
    target = f"{host}:{port}"
    try:
        for _ in iterate_timeout(timeout, f"SSH banner from {target}", wait=poll):
            _check_vm(vm, where)
            try:
                banner = read_banner(host, port, _attempt_timeout(connect_timeout, deadline))
            except _NoBanner as e:
                progress.note(NO_BANNER, e)
                continue
            except OSError as e:
                progress.note(NO_TCP, e)
                continue
            progress.banner, progress.banner_at = banner, time.monotonic() - start
            LOG.info("%s: banner %s after %.1f s", target, banner, progress.banner_at)
            seconds = round(progress.banner_at, 1)
            return ReachResult(seconds_to_banner=seconds, seconds_to_login=seconds,
                               output="", banner=banner, host_key="")
    except WaitTimeout:
        _check_vm(vm, where)
        raise ReachabilityError(f"{target}: no SSH banner within {timeout:g} s; last stage: "
                                f"{progress.stage} ({progress.detail})", where=where) from None
    raise AssertionError("unreachable")


def _attempt_timeout(limit: float, deadline: float) -> float:
    """A slow emulated guest gets long handshakes, but never past the deadline."""
    return max(0.5, min(limit, deadline - time.monotonic()))


def wait_for_ssh(host: str, port: int = 22, *, timeout: float, key_path: str | os.PathLike,
                 username: str, command: str = DEFAULT_COMMAND, vm=None,
                 poll: float = 1.0, login_poll: float = 3.0, connect_timeout: float = 5.0,
                 handshake_timeout: float = 30.0, command_timeout: float = 60.0,
                 where: str | None = None) -> ReachResult:
    """Wait until ``username`` logs in with ``key_path`` and ``command`` succeeds.

    Times count from ``vm.started_at`` when a local ``vm`` is given (then a
    dead qemu fails fast with ``BootError``), otherwise from this call.
    Raises ``ReachabilityError`` naming the last stage reached.
    """
    key = load_key(key_path)
    start = vm.started_at if vm is not None else time.monotonic()
    deadline = time.monotonic() + timeout
    progress = _Progress()
    target = f"{host}:{port}"

    def give_up() -> ReachabilityError:
        seen = ""
        if progress.banner_at is not None and progress.stage in (NO_TCP, NO_BANNER):
            seen = f"; a banner was seen at {progress.banner_at:.1f} s"
        return ReachabilityError(
            f"{target}: no SSH login as {username} within {timeout:g} s; "
            f"last stage: {progress.stage} ({progress.detail}){seen}", where=where)

    try:
        wait_for_banner(host, port, timeout=timeout, vm=vm, where=where, poll=poll,
                        connect_timeout=connect_timeout, progress=progress)
    except ReachabilityError:
        raise give_up() from None
    progress.stage, progress.detail = LOGIN_FAILED, "login not tried yet"
    command_failures = 0
    remaining = max(0.0, deadline - time.monotonic())
    try:
        for _ in iterate_timeout(remaining, f"SSH login on {target}", wait=login_poll):
            _check_vm(vm, where)
            try:
                output, host_key = _login_and_run(
                    host, port, username, key, command,
                    _attempt_timeout(connect_timeout, deadline),
                    _attempt_timeout(handshake_timeout, deadline), command_timeout)
            except _CommandFailed as e:
                progress.note(COMMAND_FAILED, e)
                command_failures += 1
                if command_failures >= COMMAND_ATTEMPTS:
                    raise ReachabilityError(
                        f"{target}: logged in as {username} but the command failed "
                        f"{command_failures} times ({progress.detail})", where=where) from None
                continue
            except (paramiko.SSHException, OSError, EOFError) as e:
                progress.note(_classify(e), e)
                continue
            seconds = time.monotonic() - start
            LOG.info("%s: logged in as %s after %.1f s", target, username, seconds)
            return ReachResult(seconds_to_banner=round(progress.banner_at, 1),
                               seconds_to_login=round(seconds, 1), output=output,
                               banner=progress.banner, host_key=host_key)
    except WaitTimeout:
        _check_vm(vm, where)
        raise give_up() from None
    raise give_up()  # unreachable: iterate_timeout either yields or raises
