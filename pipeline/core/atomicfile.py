"""Small files written whole or not at all: a reader never sees half of one."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def partial_path(path: str | os.PathLike) -> Iterator[Path]:
    """A hidden sibling of ``path`` to write; renamed over ``path`` on success.

    On any failure (a full disk included) the partial file is removed, so
    nothing that looks finished, or half-finished, is left behind.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` with ``text`` atomically."""
    with partial_path(path) as tmp:
        tmp.write_text(text)
