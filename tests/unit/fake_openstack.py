"""A tiny Keystone (v2.0 and v3 tokens) with canned answers for other paths.

For unit tests that need real keystoneauth1 traffic but not the local cloud:
what the logs contain during auth, and image API shapes the local cloud does
not have (a catalog URL whose root answers nothing).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PASSWORD = "s3cret-pass-0xDEADBEEF"
APP_SECRET = "app-cred-secret-0xFEEDFACE"
TOKEN = "gAAAAA-token-that-must-not-leak"
DENIED = {"error": {"code": 401, "title": "Unauthorized",
                    "message": "The request you have made requires authentication."}}


class FakeOpenStack(BaseHTTPRequestHandler):
    """Tokens at /v3/auth/tokens and /v2.0/tokens; ``routes`` answers everything else.

    ``catalog`` maps service type to a path on this server; ``routes`` maps
    "METHOD /path" (query string dropped) to (status, JSON body[, public]);
    a route without ``public`` wants the token.
    """

    catalog: dict[str, str] = {}
    routes: dict[str, tuple[int, Any]] = {}
    requests: list[str] = []

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        type(self).requests.append(f"POST {self.path}")
        if self.path == "/v3/auth/tokens":
            ident = body["auth"]["identity"]
            ok = (ident.get("password", {}).get("user", {}).get("password") == PASSWORD
                  or ident.get("application_credential", {}).get("secret") == APP_SECRET)
            if not ok:
                return self._send(401, DENIED)
            catalog = [{"type": t, "name": t, "id": t, "endpoints": [
                {"id": f"{t}-public", "interface": "public", "region": "RegionOne",
                 "region_id": "RegionOne", "url": self._base() + path}]}
                for t, path in self.catalog.items()]
            token = {"methods": ["password"], "expires_at": "2999-01-01T00:00:00.000000Z",
                     "issued_at": "2024-01-01T00:00:00.000000Z",
                     "user": {"id": "u1", "name": "demo", "domain": {"id": "default"}},
                     "project": {"id": "p1", "name": "demo", "domain": {"id": "default"}},
                     "catalog": catalog}
            return self._send(201, {"token": token}, {"X-Subject-Token": TOKEN})
        if self.path == "/v2.0/tokens":
            if body["auth"].get("passwordCredentials", {}).get("password") != PASSWORD:
                return self._send(401, DENIED)
            catalog = [{"type": t, "name": t, "endpoints": [
                {"region": "RegionOne", "publicURL": self._base() + path}]}
                for t, path in self.catalog.items()]
            access = {"token": {"id": TOKEN, "expires": "2999-01-01T00:00:00Z",
                                "tenant": {"id": "p1", "name": "demo"}},
                      "user": {"id": "u1", "name": "demo"}, "serviceCatalog": catalog}
            return self._send(200, {"access": access})
        self._route("POST")

    def do_GET(self) -> None:
        type(self).requests.append(f"GET {self.path}")
        self._route("GET")

    def _route(self, method: str) -> None:
        key = f"{method} {self.path.split('?')[0]}"
        if key not in self.routes:
            return self._send(404, {"message": "not here"})
        status, body, *public = self.routes[key]
        if not public and self.headers.get("X-Auth-Token") != TOKEN:
            return self._send(401, DENIED)
        self._send(status, body)


@dataclass
class Served:
    url: str
    requests: list[str]      # "METHOD /path?query", in arrival order


@contextmanager
def serve(catalog: dict[str, str], routes: dict[str, tuple[int, Any]]) -> Iterator[Served]:
    """Run a FakeOpenStack with this catalog and these routes until the block ends."""
    seen: list[str] = []
    handler = type("Fake", (FakeOpenStack,), {"catalog": catalog, "routes": routes,
                                              "requests": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{server.server_address[1]}", seen)
    finally:
        server.shutdown()
        server.server_close()


def v3_entry(url: str, **extra: Any) -> dict:
    """A clouds.yaml entry for the fake at ``url`` (v3 password)."""
    return {"auth_type": "v3password", "region_name": "RegionOne", "auth": {
        "auth_url": f"{url}/v3", "username": "demo", "password": PASSWORD,
        "project_name": "demo", "user_domain_name": "Default",
        "project_domain_name": "Default"}, **extra}
