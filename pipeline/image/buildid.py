"""A build's short name: the work directory, the image names and the records all use it
(the one home of that length and of how a build time enters it).

A build is its inputs' digest *and* the time it was made: the packages a mirror
serves change while the inputs do not, so tonight's build of unchanged inputs
is a different image from last night's (nodepool's rebuild-age).  Without a
build time (``built_at=""``) the id is the digest's prefix, as before.
"""

from __future__ import annotations

import hashlib

BUILD_ID_LEN = 16


def build_id(digest: str, built_at: str = "") -> str:
    if not built_at:
        return digest[:BUILD_ID_LEN]
    return hashlib.sha256(f"{digest}@{built_at}".encode()).hexdigest()[:BUILD_ID_LEN]
