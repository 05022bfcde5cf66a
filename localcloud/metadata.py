"""The metadata service a guest reaches at http://169.254.169.254, as Nova serves it.

``documents`` is pure: the guest's config-drive files (``configdrive.files``)
and user data in, every path the service answers out: that OpenStack tree plus
the listings cloud-init walks:
``/openstack`` lists the versions (``MetadataReader._fetch_available_versions``),
``/openstack/<version>/meta_data.json`` is required, the other files optional.
cloud-init's OpenStack datasource also reads the EC2 tree
(``ec2.get_instance_metadata``: ``/latest/meta-data/`` and each leaf it lists,
retrying what fails), so a small one is served. ``serve`` answers GETs for one
guest on one listening socket (in that guest's namespace, ``localcloud.netns``)
and records each path it was asked for.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Callable

LOG = logging.getLogger("localcloud.metadata")
EC2_VERSIONS = ("2009-04-04", "latest")
MAX_REQUEST = 8192


def documents(openstack: dict[str, bytes], user_data: bytes | None) -> dict[str, bytes]:
    """Every path (no leading or trailing slash) the guest's metadata service answers,
    from the config drive's files (``openstack/<version>/...``, ``configdrive.files``)."""
    out = dict(openstack)
    versions = sorted({p.split("/")[1] for p in openstack}, key=lambda v: (v == "latest", v))
    out["openstack"] = "\n".join(versions).encode()
    for version in versions:
        prefix = f"openstack/{version}/"
        out[f"openstack/{version}"] = "\n".join(
            sorted(p[len(prefix):] for p in out if p.startswith(prefix))).encode()
    meta = json.loads(out["openstack/latest/meta_data.json"])
    public_keys: dict[str, str] = meta.get("public_keys") or {}
    leaves = {"instance-id": meta["uuid"], "hostname": meta["hostname"],
              "local-hostname": meta["hostname"],
              "placement/availability-zone": meta["availability_zone"]}
    for version in EC2_VERSIONS:
        base = f"{version}/meta-data"
        listing = ["hostname", "instance-id", "local-hostname", "placement/"]
        for path, value in leaves.items():
            out[f"{base}/{path}"] = value.encode()
        out[f"{base}/placement"] = b"availability-zone"
        if public_keys:
            listing.append("public-keys/")
            out[f"{base}/public-keys"] = "\n".join(
                f"{i}={name}" for i, name in enumerate(public_keys)).encode()
            for i, key in enumerate(public_keys.values()):
                out[f"{base}/public-keys/{i}"] = b"openssh-key"
                out[f"{base}/public-keys/{i}/openssh-key"] = key.encode()
        out[base] = "\n".join(listing).encode()
        out[version] = b"meta-data/" + (b"\nuser-data" if user_data is not None else b"")
        if user_data is not None:
            out[f"{version}/user-data"] = user_data
    out[""] = "\n".join(EC2_VERSIONS).encode()
    return out


def answer(docs: dict[str, bytes], path: str) -> tuple[int, bytes]:
    """Status and body for a GET of ``path`` (query and slashes at either end ignored)."""
    key = path.split("?", 1)[0].strip("/")
    if key in docs:
        return 200, docs[key]
    return 404, b"404 Not Found\n\nThe resource could not be found.\n"


async def serve(sock: socket.socket, docs: dict[str, bytes],
                record: Callable[[str], None]) -> asyncio.AbstractServer:
    """Answer HTTP GETs on the listening ``sock`` from ``docs``; ``record`` sees each path."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if len(head) > MAX_REQUEST:
                    break
                request_line = head.split(b"\r\n", 1)[0].decode("latin-1").split()
                if len(request_line) != 3:
                    break
                method, path, _ = request_line
                if method not in ("GET", "HEAD"):
                    status, body = 405, b""
                else:
                    record(path)
                    status, body = answer(docs, path)
                reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}[status]
                kind = "application/json" if path.endswith(".json") else "text/plain"
                writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}; "
                             f"charset=UTF-8\r\nContent-Length: {len(body)}\r\n\r\n"
                             .encode() + (body if method == "GET" else b""))
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError,
                asyncio.CancelledError):      # the guest hung up, or the cloud stops
            pass
        finally:
            writer.close()
    return await asyncio.start_server(handle, sock=sock)
