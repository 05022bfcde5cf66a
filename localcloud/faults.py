"""Faults on demand: rules that make a matching request misbehave.

A fault matches by cloud, service, method and a path regex, lets ``skip``
matching requests through, then fires ``times`` times (``null``: forever).
Request-level kinds (status, reset, delay, token_expire, stall) are applied by
the HTTP middleware (``stall`` takes the request and never answers, or stops
reading its body after ``after_bytes``; it holds the request until the client
gives up or ``seconds`` pass, then drops the connection); the others are asked for by the handler that knows the
moment (``task_fail`` when an import task runs, ``stuck`` when an image would
become active, ``in_use`` when an image is deleted, ``server_error``/
``slow_build``/``no_answer`` when a server is created, ``quota_exceeded`` when
a quota is checked). A new kind is one ``register_kind`` call and one ``take``.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# kind -> {parameter: (type, required)}
KINDS: dict[str, dict[str, tuple[type | tuple[type, ...], bool]]] = {}

MATCH_KEYS = {"id", "kind", "cloud", "service", "method", "path", "skip", "times"}


def register_kind(kind: str, **params: tuple[type | tuple[type, ...], bool]) -> None:
    KINDS[kind] = params


register_kind("status", status=(int, True), message=(str, False), headers=(dict, False))
register_kind("reset", after_bytes=(int, True))
register_kind("delay", seconds=((int, float), True))
register_kind("token_expire")
register_kind("stall", seconds=((int, float), False), after_bytes=(int, False))
register_kind("task_fail", message=(str, False))
register_kind("stuck", state=(str, True))
# an image whose store refuses the delete (Ceph: clones of it back servers); DELETE -> 409
register_kind("in_use")
# compute and network: asked by the server-create and allocation handlers
register_kind("server_error", message=(str, False))
register_kind("slow_build", seconds=((int, float), True))
register_kind("no_answer")
register_kind("quota_exceeded", resource=(str, True))

STUCK_STATES = ("queued", "saving")
STALL_SECONDS = 120          # the longest a stall holds a request: nothing outlives it


class FaultError(ValueError):
    """A fault specification that cannot be used; the admin API answers 400."""


@dataclass
class Fault:
    id: str
    kind: str
    cloud: str = "*"
    service: str = "*"
    method: str | None = None
    path: str = ""
    skip: int = 0
    times: int | None = 1
    params: dict[str, Any] = field(default_factory=dict)
    seen: int = 0
    fired: int = 0
    holding: int = 0          # requests a stall fault holds right now

    def __post_init__(self) -> None:
        self._path_re = re.compile(self.path)

    def matches(self, cloud: str, service: str, method: str, path: str) -> bool:
        return (self.cloud in ("*", cloud) and self.service in ("*", service)
                and (self.method is None or self.method.upper() == method.upper())
                and self._path_re.search(path) is not None)

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "cloud": self.cloud, "service": self.service,
                "method": self.method, "path": self.path, "skip": self.skip,
                "times": self.times, **self.params, "seen": self.seen, "fired": self.fired,
                "holding": self.holding, "exhausted": self.exhausted}


def parse(spec: dict[str, Any], cloud: str | None = None) -> dict[str, Any]:
    """Check a fault specification; returns the keyword arguments of ``Fault``."""
    if not isinstance(spec, dict):
        raise FaultError("a fault is a JSON object")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise FaultError(f"kind must be one of {sorted(KINDS)}, not {kind!r}")
    allowed = KINDS[kind]
    unknown = set(spec) - MATCH_KEYS - set(allowed)
    if unknown:
        raise FaultError(f"{kind}: unknown keys {sorted(unknown)}")
    params = {}
    for name, (typ, required) in allowed.items():
        if name not in spec:
            if required:
                raise FaultError(f"{kind}: {name} is required")
            continue
        if not isinstance(spec[name], typ) or isinstance(spec[name], bool):
            raise FaultError(f"{kind}: {name} has the wrong type")
        params[name] = spec[name]
    if kind == "stuck" and params["state"] not in STUCK_STATES:
        raise FaultError(f"stuck: state must be one of {STUCK_STATES}")
    if kind == "stall" and not 0 < params.get("seconds", STALL_SECONDS) <= STALL_SECONDS:
        raise FaultError(f"stall: seconds must be in (0, {STALL_SECONDS}]")
    if kind == "status" and not 400 <= params["status"] <= 599:
        raise FaultError("status: status must be an HTTP error code (400-599)")
    times = spec.get("times", 1)
    if times is not None and (not isinstance(times, int) or times < 1):
        raise FaultError("times must be a positive integer, or null for always")
    skip = spec.get("skip", 0)
    if not isinstance(skip, int) or skip < 0:
        raise FaultError("skip must be a non-negative integer")
    path = spec.get("path", "")
    try:
        re.compile(path)
    except (re.error, TypeError) as e:
        raise FaultError(f"path is not a regular expression: {e}") from e
    return {"kind": kind, "cloud": cloud or spec.get("cloud", "*"),
            "service": spec.get("service", "*"), "method": spec.get("method"),
            "path": path, "skip": skip, "times": times, "params": params}


class FaultRegistry:
    """The faults in force, shared by every cloud of the process."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def add(self, spec: dict[str, Any], cloud: str | None = None) -> Fault:
        kwargs = parse(spec, cloud)
        with self._lock:
            fault = Fault(id=str(spec.get("id") or f"fault-{next(self._ids)}"), **kwargs)
            self._faults.append(fault)
        return fault

    def list(self, cloud: str | None = None) -> list[Fault]:
        with self._lock:
            return [f for f in self._faults if cloud is None or f.cloud in ("*", cloud)]

    def remove(self, fault_id: str) -> bool:
        with self._lock:
            kept = [f for f in self._faults if f.id != fault_id]
            found = len(kept) != len(self._faults)
            self._faults = kept
        return found

    def clear(self, cloud: str | None = None) -> int:
        with self._lock:
            kept = [f for f in self._faults if cloud is not None and f.cloud != cloud]
            removed = len(self._faults) - len(kept)
            self._faults = kept
        return removed

    def take(self, kind: str, cloud: str, service: str, method: str, path: str,
             where: Callable[[Fault], bool] | None = None) -> Fault | None:
        """The first fault of ``kind`` (and ``where``) that fires for this request, counted."""
        with self._lock:
            for fault in self._faults:
                if fault.kind != kind or fault.exhausted or (where and not where(fault)):
                    continue
                if not fault.matches(cloud, service, method, path):
                    continue
                fault.seen += 1
                if fault.seen <= fault.skip:
                    continue
                fault.fired += 1
                return fault
        return None
