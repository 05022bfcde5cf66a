"""Swift large objects: static (SLO) and dynamic (DLO) manifests, and expiry.

A manifest has no blob of its own; reading it means reading its segments, so
``object_parts`` turns any object into the file ranges that make its bytes.
An import task reads Swift objects the same way.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from urllib.parse import unquote

from localcloud.cloud import Cloud
from localcloud.http import HTTPFault, iso

SLO_LIMITS = {"max_manifest_segments": 1000, "max_manifest_size": 8 << 20,
              "min_segment_size": 1, "yield_frequency": 10, "allow_async_delete": False}
MAX_DEPTH = 10


def alive(cloud: Cloud, obj: dict | None) -> dict | None:
    """The object unless X-Delete-At has passed (then it is removed now)."""
    if obj is not None and obj["delete_at"] is not None and obj["delete_at"] <= time.time():
        cloud.store.delete_object(obj)
        return None
    return obj


def lookup(cloud: Cloud, account: str, container: str, name: str) -> dict | None:
    return alive(cloud, cloud.store.get_object(cloud.name, account, container, name))


def split_path(path: str) -> tuple[str, str]:
    """'/container/object' (maybe URL-quoted) -> (container, object)."""
    container, _, name = unquote(path).lstrip("/").partition("/")
    if not container or not name:
        raise ValueError(path)
    return container, name


def dlo_segments(cloud: Cloud, obj: dict) -> list[dict]:
    container, _, prefix = unquote(obj["manifest_data"]).partition("/")
    found = cloud.store.list_objects(cloud.name, obj["account"], container, prefix=prefix)
    return [s for s in found if alive(cloud, s) is not None]


def object_parts(cloud: Cloud, obj: dict, depth: int = 0) -> list[tuple[Path, int, int]]:
    """The (file, offset, length) ranges whose concatenation is the object's content."""
    if depth > MAX_DEPTH:
        raise HTTPFault(409, "Max recursion depth exceeded on large object manifest")
    if obj["manifest"] == "slo":
        parts = []
        for seg in obj["manifest_data"]:
            container, name = split_path(seg["name"])
            segment = lookup(cloud, obj["account"], container, name)
            if segment is None:
                raise HTTPFault(409, f"Segment {seg['name']} of the manifest is missing")
            parts += object_parts(cloud, segment, depth + 1)
        return parts
    if obj["manifest"] == "dlo":
        return [p for s in dlo_segments(cloud, obj) for p in object_parts(cloud, s, depth + 1)]
    if obj["size"] == 0 or obj["blob"] is None:
        return []
    return [(cloud.store.blob_path(obj["blob"]), 0, obj["size"])]


def etag_of(cloud: Cloud, obj: dict) -> str:
    """The ETag header: plain md5, or the quoted md5 of the segments' etags."""
    if obj["manifest"] == "slo":
        return f'"{obj["etag"]}"'
    if obj["manifest"] == "dlo":
        joined = "".join(s["etag"] for s in dlo_segments(cloud, obj))
        return f'"{hashlib.md5(joined.encode(), usedforsecurity=False).hexdigest()}"'
    return obj["etag"]


def size_of(cloud: Cloud, obj: dict) -> int:
    if obj["manifest"] == "dlo":
        return sum(size_of(cloud, s) for s in dlo_segments(cloud, obj))
    return obj["size"]


def build_slo(cloud: Cloud, account: str, manifest: object) -> tuple[list[dict], str, int]:
    """Check an SLO manifest against its segments; (stored manifest, etag, total size)."""
    if not isinstance(manifest, list) or not manifest:
        raise HTTPFault(400, "Manifest must be a non-empty list of segments")
    if len(manifest) > SLO_LIMITS["max_manifest_segments"]:
        raise HTTPFault(400, f"Too many segments: more than "
                             f"{SLO_LIMITS['max_manifest_segments']}")
    stored, errors, etags, total = [], [], [], 0
    for entry in manifest:
        path = entry.get("path") if isinstance(entry, dict) else None
        if not isinstance(path, str):
            raise HTTPFault(400, "Each segment needs a path")
        try:
            container, name = split_path(path)
        except ValueError:
            errors.append(f"{path}, Invalid path")
            continue
        segment = lookup(cloud, account, container, name)
        if segment is None:
            errors.append(f"/{container}/{name}, 404 Not Found")
            continue
        seg_etag = etag_of(cloud, segment).strip('"')
        seg_size = size_of(cloud, segment)
        if entry.get("etag") not in (None, "", seg_etag):
            errors.append(f"/{container}/{name}, Etag Mismatch")
        if entry.get("size_bytes") not in (None, seg_size):
            errors.append(f"/{container}/{name}, Size Mismatch")
        stored.append({"name": f"/{container}/{name}", "hash": seg_etag, "bytes": seg_size,
                       "content_type": segment["content_type"],
                       "last_modified": iso(segment["last_modified"], micro=True, zulu=False)})
        etags.append(seg_etag)
        total += seg_size
    for entry in stored[:-1]:
        if entry["bytes"] < SLO_LIMITS["min_segment_size"]:
            errors.append(f"{entry['name']}, Too Small; each segment must be at least "
                          f"{SLO_LIMITS['min_segment_size']} bytes.")
    if errors:
        raise HTTPFault(400, "Errors:\n" + "\n".join(errors))
    etag = hashlib.md5("".join(etags).encode(), usedforsecurity=False).hexdigest()
    return stored, etag, total


def delete_slo(cloud: Cloud, obj: dict) -> tuple[int, int]:
    """Delete a manifest and its segments; (deleted, not found) as the bulk reply counts."""
    deleted = not_found = 0
    for seg in obj["manifest_data"]:
        container, name = split_path(seg["name"])
        segment = lookup(cloud, obj["account"], container, name)
        if segment is None:
            not_found += 1
            continue
        if segment["manifest"] == "slo":
            more, missing = delete_slo(cloud, segment)
            deleted, not_found = deleted + more, not_found + missing
            continue
        cloud.store.delete_object(segment)
        deleted += 1
    cloud.store.delete_object(obj)
    return deleted + 1, not_found


def segment_names(cloud: Cloud) -> set[tuple[str, str, str]]:
    """(account, container, name) of every object that some manifest uses as a segment."""
    used = set()
    for obj in cloud.store.list_objects(cloud.name):
        if obj["manifest"] == "slo":
            for seg in obj["manifest_data"]:
                used.add((obj["account"], *split_path(seg["name"])))
        elif obj["manifest"] == "dlo":
            used.update((s["account"], s["container"], s["name"])
                        for s in dlo_segments(cloud, obj))
    return used


def resources(cloud: Cloud) -> dict[str, list]:
    """Accounting: containers, plain objects and manifests, and segments apart."""
    segments = segment_names(cloud)
    objects, segs = [], []
    for obj in cloud.store.list_objects(cloud.name):
        entry = {"account": obj["account"], "container": obj["container"], "name": obj["name"],
                 "bytes": obj["size"], "large_object": obj["manifest"]}
        (segs if (obj["account"], obj["container"], obj["name"]) in segments
         else objects).append(entry)
    containers = [{"account": c["account"], "name": c["name"]}
                  for c in cloud.store.list_containers(cloud.name)]
    return {"containers": containers, "objects": objects, "segments": segs}
