"""What every service shares: error bodies, the request middleware, streaming bodies.

The middleware applies request-level faults, then checks the token on every
call that is not marked ``public``. Bodies are streamed in both directions;
hashing and disk writes run in worker threads, so a 4 GiB upload holds about
one chunk in memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import struct
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formatdate
from http import HTTPStatus
from pathlib import Path
from typing import Any

from aiohttp import web

from localcloud.faults import STALL_SECONDS

CHUNK = 1 << 20
TCP_ESTABLISHED = 1          # tcpi_state in Linux's struct tcp_info
UNAUTHORIZED = "The request you have made requires authentication."


class HTTPFault(Exception):
    """An error answer in the format of the service that raises it."""

    def __init__(self, status: int, message: str = "", headers: dict | None = None,
                 kind: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message or reason(status)
        self.headers = headers or {}
        self.kind = kind            # the API's own error name (Neutron's "type"), if it has one


class ConnectionResetInjected(Exception):
    """A reset fault fired; the socket is already gone."""


def reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def public(handler: Callable) -> Callable:
    """Mark a handler that answers without a token (version documents, /info, auth)."""
    handler.public = True
    return handler


# --- time formats the APIs use ------------------------------------------------
def iso(ts: float | None, micro: bool = False, zulu: bool = True) -> str | None:
    if ts is None:
        return None
    fmt = "%Y-%m-%dT%H:%M:%S.%f" if micro else "%Y-%m-%dT%H:%M:%S"
    return datetime.fromtimestamp(ts, UTC).strftime(fmt) + ("Z" if zulu else "")


def http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)


# --- responses -----------------------------------------------------------------
def json_response(data: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(data), headers=headers,
                        content_type="application/json")


# service type -> (status, message, kind) -> JSON error body; services register their own
ERROR_BODIES: dict[str, Callable[[int, str, str | None], Any]] = {}
# service type -> a check of an authenticated request's headers (Nova's microversion);
# it raises HTTPFault to refuse the request before its handler runs
REQUEST_CHECKS: dict[str, Callable[[web.Request], None]] = {}


def error_response(service: str, status: int, message: str,
                   headers: dict | None = None, kind: str | None = None) -> web.Response:
    """An error body as the service's API gives it, so stock clients parse it."""
    title = reason(status)
    if service in ERROR_BODIES:
        return json_response(ERROR_BODIES[service](status, message, kind), status, headers)
    if service == "object-store":
        body = f"<html><h1>{title}</h1><p>{message}</p></html>"
        return web.Response(status=status, text=body, headers=headers,
                            content_type="text/html", charset="UTF-8")
    if service == "image":
        data: dict = {"message": message, "code": f"{status} {title}", "title": title}
    else:
        data = {"error": {"code": status, "title": title, "message": message}}
    return json_response(data, status, headers)


def service_of(request: web.Request) -> str:
    for prefix, service in request.app["service_prefixes"]:
        if request.path == prefix or request.path.startswith(prefix + "/"):
            return service
    return "object-store"


# --- the middleware --------------------------------------------------------------
@web.middleware
async def cloud_middleware(request: web.Request, handler: Callable) -> web.StreamResponse:
    cloud = request.app["cloud"]
    service = service_of(request)
    request["service"] = service
    try:
        response = await _apply_faults(request, cloud, service)
        if response is None:
            if not getattr(request.match_info.route.handler, "public", False):
                request["token"] = authenticate(request, cloud)
                if service in REQUEST_CHECKS:
                    REQUEST_CHECKS[service](request)
            response = await handler(request)
    except HTTPFault as e:
        headers = dict(e.headers)
        if e.status == 401:
            headers.setdefault("WWW-Authenticate", f'Keystone uri="{cloud.base_url}/identity"')
        response = error_response(service, e.status, e.message, headers, e.kind)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        response = error_response(service, e.status, e.reason)
    except ConnectionResetInjected:
        return web.Response(status=500)
    return response


async def add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer carries a request id, as the OpenStack services' middleware adds."""
    request_id = f"req-{uuid.uuid4()}"
    response.headers["X-Openstack-Request-Id"] = request_id
    response.headers["X-Trans-Id"] = request_id


def authenticate(request: web.Request, cloud: Any) -> dict:
    """The token document of a valid, unexpired token of this cloud, or a 401."""
    token_id = request.headers.get("X-Auth-Token")
    found = cloud.store.get_token(token_id) if token_id else None
    if found is None:
        raise HTTPFault(401, UNAUTHORIZED)
    token_cloud, expires, doc = found
    if token_cloud != cloud.realm or expires <= time.time():
        raise HTTPFault(401, UNAUTHORIZED)
    return doc


async def _apply_faults(request: web.Request, cloud: Any,
                        service: str) -> web.StreamResponse | None:
    def take(kind: str):
        return cloud.faults.take(kind, cloud.name, service, request.method, request.path)

    delay = take("delay")
    if delay:
        await asyncio.sleep(delay.params["seconds"])
    if request.headers.get("X-Auth-Token") and take("token_expire"):
        cloud.store.expire_token(request.headers["X-Auth-Token"], time.time() - 1)
    status = take("status")
    if status:
        async for _ in body_chunks(request):
            pass
        return error_response(service, status.params["status"],
                              status.params.get("message") or reason(status.params["status"]),
                              status.params.get("headers"))
    stall = take("stall")
    if stall:
        if stall.params.get("after_bytes") and request.body_exists:
            request["stall_after"] = (stall.params["after_bytes"], stall)
        else:
            # The body is taken (as a buffering proxy would) and the answer never comes.
            async for _ in body_chunks(request):
                pass
            await stall_request(request, stall)
    reset = take("reset")
    if reset:
        request["reset_after"] = reset.params["after_bytes"]
        if not request.body_exists:
            reset_connection(request)
    return None


def reset_connection(request: web.Request) -> None:
    """Abort the connection with a TCP RST, as a dying load balancer would."""
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    raise ConnectionResetInjected()


def _peer_gone(request: web.Request) -> bool:
    """Whether the client closed its end (its socket is no longer ESTABLISHED)."""
    transport = request.transport
    if transport is None or transport.is_closing():
        return True
    sock = transport.get_extra_info("socket")
    if sock is None or not hasattr(socket, "TCP_INFO"):
        return False
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] != TCP_ESTABLISHED


async def stall_request(request: web.Request, fault: Any) -> None:
    """Answer nothing and read nothing until the client gives up or the fault's
    ``seconds`` pass, then drop the connection: a hung load balancer."""
    deadline = time.monotonic() + fault.params.get("seconds", STALL_SECONDS)
    fault.holding += 1
    try:
        while time.monotonic() < deadline and not _peer_gone(request):
            await asyncio.sleep(0.05)
    finally:
        fault.holding -= 1
    reset_connection(request)


# --- request bodies --------------------------------------------------------------
async def body_chunks(request: web.Request) -> AsyncIterator[bytes]:
    """The request body as it arrives; honours a reset fault set by the middleware."""
    limit = request.get("reset_after")
    stall_after, stall = request.get("stall_after") or (None, None)
    received = 0
    async for chunk in request.content.iter_chunked(CHUNK):
        if stall_after is not None and received + len(chunk) >= stall_after:
            await stall_request(request, stall)
        if limit is not None and received + len(chunk) >= limit:
            if limit > received:
                yield chunk[:limit - received]
            reset_connection(request)
        received += len(chunk)
        yield chunk


async def read_body(request: web.Request, limit: int = 8 << 20) -> bytes:
    """A small body (JSON, a manifest) read whole; larger than ``limit`` is a 413."""
    data = bytearray()
    async for chunk in body_chunks(request):
        data += chunk
        if len(data) > limit:
            raise HTTPFault(413, "Request body too large")
    return bytes(data)


async def read_json(request: web.Request) -> Any:
    raw = await read_body(request)
    try:
        return json.loads(raw or b"null")
    except ValueError as e:
        raise HTTPFault(400, f"Malformed JSON in request body: {e}") from e


@dataclass(frozen=True)
class Received:
    size: int
    md5: str
    sha512: str | None


class Digest:
    """Size, md5 (and sha512) of bytes as they go by; Glance keeps both, Swift md5."""

    def __init__(self, sha512: bool = True):
        self.size = 0
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._sha = hashlib.sha512() if sha512 else None

    def update(self, data: bytes) -> None:
        self.size += len(data)
        self._md5.update(data)
        if self._sha is not None:
            self._sha.update(data)

    def result(self) -> Received:
        return Received(self.size, self._md5.hexdigest(),
                        self._sha.hexdigest() if self._sha is not None else None)


async def receive_file(request: web.Request, path: Path, sha512: bool = True,
                       max_size: int | None = None) -> Received:
    """Stream the request body into ``path`` while hashing it (md5, and sha512)."""
    digest = Digest(sha512)
    size = 0
    buf = bytearray()
    with open(path, "wb") as f:
        def flush(data: bytes) -> None:
            f.write(data)
            digest.update(data)

        async for chunk in body_chunks(request):
            buf += chunk
            size += len(chunk)
            if max_size is not None and size > max_size:
                raise HTTPFault(413, f"Request body is larger than {max_size} bytes")
            if len(buf) >= CHUNK:
                data = bytes(buf)
                buf.clear()
                await asyncio.to_thread(flush, data)
        if buf:
            await asyncio.to_thread(flush, bytes(buf))
    return digest.result()


# --- response bodies -------------------------------------------------------------
async def send_parts(request: web.Request, parts: list[tuple[Path, int, int]],
                     headers: dict, status: int = 200) -> web.StreamResponse:
    """Stream byte ranges of files (one object, or the segments of a large one)."""
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = sum(length for _, _, length in parts)
    await response.prepare(request)
    if request.method == "HEAD":
        return response
    for path, offset, length in parts:
        with open(path, "rb") as f:
            f.seek(offset)
            remaining = length
            while remaining > 0:
                data = await asyncio.to_thread(f.read, min(CHUNK, remaining))
                if not data:
                    break
                await response.write(data)
                remaining -= len(data)
    await response.write_eof()
    return response


def take_fault(request: web.Request, kind: str, where: Callable | None = None) -> Any:
    """A handler-level fault of ``kind`` that fires for this request, if any."""
    cloud = request.app["cloud"]
    return cloud.faults.take(kind, cloud.name, request["service"], request.method,
                             request.path, where)
