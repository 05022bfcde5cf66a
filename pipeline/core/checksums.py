"""md5, sha256 and sha512 of a converted image: one read pass, cached beside the file.

Glance reports ``checksum`` (md5) and ``os_hash_value`` (sha512 by default);
sha256 names the content in our image properties.  The three hashes run on
their own threads (hashlib releases the GIL for large buffers), so the pass
costs about as much as the slowest hash.  The cache
(``<file>.digests.json``) is keyed by size and mtime: any rewrite of the file
invalidates it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.core import atomicfile

LOG = logging.getLogger(__name__)

ALGORITHMS = ("md5", "sha256", "sha512")
CHUNK = 4 * 1024 * 1024
CACHE_SUFFIX = ".digests.json"


@dataclass(frozen=True)
class Digests:
    size: int
    md5: str
    sha256: str
    sha512: str

    def get(self, algorithm: str) -> str | None:
        """The digest for a Glance ``os_hash_algo`` name, if we have it."""
        return getattr(self, algorithm.lower(), None) if algorithm.lower() in ALGORITHMS else None


def cache_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + CACHE_SUFFIX)


def compute_digests(path: str | os.PathLike, chunk_size: int = CHUNK) -> Digests:
    """Hash the file in one pass; each algorithm on its own thread."""
    hashes = [hashlib.new(name) for name in ALGORITHMS]
    size = 0
    with open(path, "rb", buffering=0) as f, ThreadPoolExecutor(len(hashes)) as pool:
        while True:
            chunk = f.read(chunk_size)
            if not chunk:
                break
            size += len(chunk)
            for future in [pool.submit(h.update, chunk) for h in hashes]:
                future.result()
    md5, sha256, sha512 = (h.hexdigest() for h in hashes)
    return Digests(size=size, md5=md5, sha256=sha256, sha512=sha512)


def file_digests(path: str | os.PathLike) -> Digests:
    """The digests of ``path``, from the cache if size and mtime still match."""
    st = os.stat(path)
    key = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    cache = cache_path(path)
    try:
        data = json.loads(cache.read_text())
        if {k: data.get(k) for k in key} == key:
            return Digests(**{k: data[k] for k in ("size", *ALGORITHMS)})
    except (OSError, ValueError, KeyError, TypeError):
        pass
    LOG.info("%s: computing md5/sha256/sha512", Path(path).name)
    digests = compute_digests(path)
    if digests.size != st.st_size:
        return digests             # the file changed under us: do not cache
    try:
        atomicfile.write_text(cache, json.dumps({**key, **asdict(digests)}, indent=1))
    except OSError as e:
        LOG.warning("%s: cannot cache digests: %s", cache, e.strerror)
    return digests
