"""Upload progress: a tqdm bar on a terminal, periodic log lines otherwise.

``FileBody`` and ``FileReader`` stream a file (or a range of it) into an HTTP
request without reading it into memory, counting bytes into a ``Progress`` as
they go: ``FileBody`` is an iterable with a length (requests sets
Content-Length and sends it in large chunks); ``FileReader`` is file-like for
clients that call ``read`` (python-swiftclient).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO

LOG = logging.getLogger(__name__)

CHUNK = 1024 * 1024
LOG_INTERVAL = 10.0


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def human_seconds(s: float) -> str:
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """Bytes done of a total, shown as a bar (tty) or as log lines every ``interval`` s.

    Thread-safe: Swift segment uploads report from several threads.
    """

    def __init__(self, total: int, label: str, *, tty: bool | None = None,
                 interval: float = LOG_INTERVAL, logger: logging.Logger = LOG,
                 stream: IO[str] | None = None):
        self.total = total
        self.label = label
        self.done = 0
        self.interval = interval
        self.logger = logger
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._last_log = self._start
        stream = stream or sys.stderr
        if tty is None:
            tty = bool(getattr(stream, "isatty", lambda: False)())
        self._bar = None
        if tty:
            from tqdm import tqdm
            self._bar = tqdm(total=total, desc=label, unit="B", unit_scale=True,
                             unit_divisor=1024, file=stream, leave=False, dynamic_ncols=True)

    def update(self, n: int) -> None:
        with self._lock:
            self.done += n
            if self._bar is not None:
                self._bar.update(n)
                return
            now = time.monotonic()
            if now - self._last_log >= self.interval:
                self._last_log = now
                self.logger.info("%s", self.line(now))

    def reset(self) -> None:
        """Start over (a retried upload sends the file again)."""
        with self._lock:
            self.done = 0
            self._start = self._last_log = time.monotonic()
            if self._bar is not None:
                self._bar.reset(total=self.total)

    def line(self, now: float | None = None) -> str:
        elapsed = max((now or time.monotonic()) - self._start, 1e-6)
        rate = self.done / elapsed
        text = f"{self.label}: {human_bytes(self.done)} of {human_bytes(self.total)}"
        if self.total:
            text += f" ({100 * self.done / self.total:.0f}%)"
        text += f", {human_bytes(rate)}/s"
        if rate > 0 and self.total > self.done:
            text += f", ETA {human_seconds((self.total - self.done) / rate)}"
        return text

    @property
    def seconds(self) -> float:
        return time.monotonic() - self._start

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        else:
            self.logger.info("%s", self.line())

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


ProgressFactory = Callable[[int, str], Progress]


def make_progress(total: int, label: str) -> Progress:
    """The default factory: a bar on a terminal, log lines otherwise."""
    return Progress(total, label)


class FileReader:
    """File-like view of ``length`` bytes of ``path`` from ``offset``; counts what is read.

    A read returns at most ``MAX_READ`` bytes, so no caller can pull the file
    into memory.
    """

    MAX_READ = 8 * CHUNK

    def __init__(self, path: str | os.PathLike, progress: Progress | None = None,
                 offset: int = 0, length: int | None = None):
        self.path = os.fspath(path)
        self.progress = progress
        self._f = open(self.path, "rb", buffering=0)
        size = os.fstat(self._f.fileno()).st_size
        self.length = size - offset if length is None else length
        self._f.seek(offset)
        self._left = self.length
        self.sent = 0

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            n = self._left
        n = min(n, self._left, self.MAX_READ)
        if n <= 0:
            return b""
        data = self._f.read(n)
        self._left -= len(data)
        self.sent += len(data)
        if self.progress is not None and data:
            self.progress.update(len(data))
        return data

    def __len__(self) -> int:
        return self.length

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> FileReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {os.path.basename(self.path)} {self.length} bytes>"


class FileBody:
    """An HTTP request body: iterates 1 MiB chunks and has a length, but no ``read``.

    Without ``read``, requests/urllib3 send what ``__iter__`` yields as it is,
    with a Content-Length from ``__len__`` (a file object would go out in 16 KiB
    reads).
    """

    def __init__(self, path: str | os.PathLike, progress: Progress | None = None):
        self._reader = FileReader(path, progress)

    def __iter__(self) -> Iterator[bytes]:
        while data := self._reader.read(CHUNK):
            yield data

    def __len__(self) -> int:
        return len(self._reader)

    @property
    def sent(self) -> int:
        return self._reader.sent

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> FileBody:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {os.path.basename(self._reader.path)} {len(self)} bytes>"
