"""Real ssh-keygen: a usable ed25519 pair, private file locked down, removed after use."""

from __future__ import annotations

import stat

import paramiko

from pipeline.cloud.keys import make_keypair, temporary_keypair


def test_make_keypair(tmp_path):
    pair = make_keypair(tmp_path / "k", "probe")
    assert pair.public_key.startswith("ssh-ed25519 ") and pair.public_key.endswith(" probe")
    assert stat.S_IMODE(pair.private_key_path.stat().st_mode) == 0o600
    key = paramiko.PKey.from_path(str(pair.private_key_path))
    assert f"{key.get_name()} {key.get_base64()}" == " ".join(pair.public_key.split()[:2])


def test_make_keypair_replaces_a_stale_pair(tmp_path):
    first = make_keypair(tmp_path, "probe")
    second = make_keypair(tmp_path, "probe")
    assert first.public_key != second.public_key


def test_temporary_keypair_is_removed(tmp_path):
    with temporary_keypair(tmp_path) as pair:
        assert pair.private_key_path.exists()
    assert not pair.private_key_path.parent.exists()
