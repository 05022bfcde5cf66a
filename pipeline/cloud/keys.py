"""Throw-away SSH keypairs for proving an image boots and accepts a login.

The key is made with ``ssh-keygen`` (paramiko cannot generate ed25519 keys)
through ``runner``; the public half goes into the config drive or a cloud
keypair, the private half to ``reach.wait_for_ssh``.  ed25519 unless the
profile's ``compute.key_type`` says ``rsa``; with ``auto`` (the default) a
cloud whose Nova refuses ed25519 ("Keypair data is invalid", older releases)
gets an RSA key instead (``register_keypair``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.core import errors, runner

LOG = logging.getLogger(__name__)

SSH_KEYGEN = "ssh-keygen"
# compute.key_type -> the key types to offer the cloud, in order
KEY_TYPES = {"auto": ("ed25519", "rsa"), "ed25519": ("ed25519",), "rsa": ("rsa",)}
KEYGEN_ARGS = {"ed25519": ["-t", "ed25519"], "rsa": ["-t", "rsa", "-b", "3072"]}
REFUSED_KEY = "Keypair data is invalid"      # Nova's InvalidKeypair (nova/exception.py)


@dataclass(frozen=True)
class KeyPair:
    name: str
    private_key_path: Path
    public_key: str  # one line, "ssh-ed25519 AAAA... comment"
    key_type: str = "ed25519"


def make_keypair(directory: str | os.PathLike, name: str = "imagefleet",
                 comment: str | None = None, key_type: str = "ed25519") -> KeyPair:
    """Write ``<directory>/<name>`` (private, mode 0600) and ``<name>.pub``.

    The caller deletes both files (or uses ``temporary_keypair``).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    private = directory / name
    for stale in (private, private.with_name(name + ".pub")):
        stale.unlink(missing_ok=True)
    runner.run([SSH_KEYGEN, "-q", *KEYGEN_ARGS[key_type], "-N", "", "-C", comment or name,
                "-f", str(private)], step="keygen")
    os.chmod(private, 0o600)
    public = private.with_name(name + ".pub").read_text().strip()
    return KeyPair(name=name, private_key_path=private, public_key=public, key_type=key_type)


def refused_key(error: errors.PipelineError) -> bool:
    """Whether Nova refused the public key itself (not the name, the quota...)."""
    return isinstance(error, errors.BadRequest) and REFUSED_KEY in error.cause


def register_keypair(create: Callable[[str, str], object], directory: str | os.PathLike,
                     name: str, key_type: str = "auto") -> KeyPair:
    """Make a key of the first type in ``KEY_TYPES[key_type]`` the cloud takes, register
    it with ``create(name, public_key)``, and return it (its private half for SSH)."""
    types = KEY_TYPES[key_type]
    for i, kind in enumerate(types):
        key = make_keypair(directory, name, key_type=kind)
        try:
            create(name, key.public_key)
            return key
        except errors.PipelineError as e:
            if i + 1 == len(types) or not refused_key(e):
                raise
            LOG.info("the cloud refused an %s key (%s); trying %s", kind, e.cause,
                     types[i + 1])
    raise AssertionError("unreachable")


@contextlib.contextmanager
def key_directory(parent: str | os.PathLike | None = None) -> Iterator[Path]:
    """A private temporary directory for keys, removed on exit."""
    directory = tempfile.mkdtemp(prefix="imagefleet-key-", dir=parent)
    try:
        yield Path(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def temporary_keypair(parent: str | os.PathLike | None = None,
                      name: str = "imagefleet") -> Iterator[KeyPair]:
    """A keypair in a private temporary directory, removed on exit."""
    with key_directory(parent) as directory:
        yield make_keypair(directory, name)
