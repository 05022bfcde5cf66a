"""Throw-away SSH keypairs for proving an image boots and accepts a login.

The key is made with ``ssh-keygen`` (paramiko cannot generate ed25519 keys)
through ``runner``; the public half goes into the config drive or a cloud
keypair, the private half to ``reach.wait_for_ssh``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.core import runner

SSH_KEYGEN = "ssh-keygen"


@dataclass(frozen=True)
class KeyPair:
    name: str
    private_key_path: Path
    public_key: str  # one line, "ssh-ed25519 AAAA... comment"


def make_keypair(directory: str | os.PathLike, name: str = "imagefleet",
                 comment: str | None = None) -> KeyPair:
    """Write ``<directory>/<name>`` (private, mode 0600) and ``<name>.pub``.

    The caller deletes both files (or uses ``temporary_keypair``).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    private = directory / name
    for stale in (private, private.with_name(name + ".pub")):
        stale.unlink(missing_ok=True)
    runner.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment or name,
                "-f", str(private)], step="keygen")
    os.chmod(private, 0o600)
    public = private.with_name(name + ".pub").read_text().strip()
    return KeyPair(name=name, private_key_path=private, public_key=public)


@contextlib.contextmanager
def temporary_keypair(parent: str | os.PathLike | None = None,
                      name: str = "imagefleet") -> Iterator[KeyPair]:
    """A keypair in a private temporary directory, removed on exit."""
    directory = tempfile.mkdtemp(prefix="imagefleet-key-", dir=parent)
    try:
        yield make_keypair(directory, name)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
