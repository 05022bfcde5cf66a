"""Streaming bodies and progress: Content-Length, large chunks, counted bytes, log lines."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from pipeline.core.progress import FileBody, FileReader, Progress, human_bytes


class Sink(BaseHTTPRequestHandler):
    seen: dict = {}

    def log_message(self, *args):
        pass

    def do_PUT(self):
        length = int(self.headers["Content-Length"])
        digest = hashlib.sha256()
        left = length
        while left:
            data = self.rfile.read(min(left, 1 << 20))
            digest.update(data)
            left -= len(data)
        type(self).seen = {"length": length, "sha256": digest.hexdigest(),
                           "chunked": self.headers.get("Transfer-Encoding")}
        self.send_response(204)
        self.end_headers()


@pytest.fixture
def sink():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/upload"
    server.shutdown()
    server.server_close()


def test_file_body_streams_with_content_length(sink, tmp_path):
    path = tmp_path / "disk.raw"
    data = os.urandom(5 * 1024 * 1024 + 3)
    path.write_bytes(data)
    progress = Progress(len(data), "test", tty=False)
    with FileBody(path, progress) as body:
        assert not hasattr(body, "read")           # or urllib3 would send 16 KiB reads
        requests.put(sink, data=body, timeout=30).raise_for_status()
        assert body.sent == len(data)
    assert Sink.seen == {"length": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                         "chunked": None}
    assert progress.done == len(data)


def test_file_reader_range_and_read_cap(tmp_path):
    path = tmp_path / "disk.raw"
    path.write_bytes(bytes(range(256)) * 1024)
    with FileReader(path, offset=1000, length=5000) as reader:
        assert len(reader) == 5000
        got = reader.read(3000) + reader.read() + reader.read()
    assert got == path.read_bytes()[1000:6000]
    FileReader.MAX_READ, old = 4096, FileReader.MAX_READ
    try:
        with FileReader(path) as reader:
            assert len(reader.read()) == 4096        # never the whole file at once
    finally:
        FileReader.MAX_READ = old


def test_log_lines_when_not_on_a_terminal(caplog):
    logger = logging.getLogger("test.progress")
    with caplog.at_level(logging.INFO, logger="test.progress"):
        progress = Progress(4 * 1024 ** 3, "hp-like: upload", tty=False, interval=0,
                            logger=logger)
        progress.update(1024 ** 3)
        progress.close()
    line = caplog.records[0].getMessage()
    assert line.startswith("hp-like: upload: 1.0 GiB of 4.0 GiB (25%), ")
    assert "/s, ETA " in line


def test_bar_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    progress = Progress(1000, "bar", stream=out)
    progress.update(500)
    progress.reset()
    progress.update(1000)
    progress.close()
    assert "bar" in out.getvalue() and progress.done == 1000


@pytest.mark.parametrize("n, text", [(0, "0 B"), (1536, "1.5 KiB"), (3 * 1024 ** 3, "3.0 GiB")])
def test_human_bytes(n, text):
    assert human_bytes(n) == text
