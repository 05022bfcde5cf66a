"""A build's short name, from its digest: the work directory, the image names and the
records all use it (the one home of that length)."""

from __future__ import annotations

BUILD_ID_LEN = 16


def build_id(digest: str) -> str:
    return digest[:BUILD_ID_LEN]
