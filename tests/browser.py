"""Headless Chromium for tests: what a person opening ``report.html`` would see.

Chromium stays off the network: the page is a file:// URL, the component
updater is off and every host name resolves to nothing.  Screenshots and the
rendered DOM are kept in ``work/test-artifacts/`` for a person to look at.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import zlib
from html.parser import HTMLParser
from pathlib import Path

from tests.built_image import REPO

ARTIFACTS = REPO / "work" / "test-artifacts"
WINDOW = (1400, 900)
TIMEOUT = 120
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-dev-shm-usage", "--no-first-run", "--hide-scrollbars",
         f"--window-size={WINDOW[0]},{WINDOW[1]}",
         # without these two it still looks up clients2.google.com and redirector.gvt1.com
         "--disable-component-update", "--host-resolver-rules=MAP * ~NOTFOUND"]


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    return None


def _chromium(html: Path, *args: str) -> str:
    """Run Chromium once on a fresh profile; its stdout.  A hung browser is killed
    with all its helper processes."""
    binary = chromium_binary()
    if binary is None:
        raise FileNotFoundError("chromium is not installed (make setup installs it)")
    with tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True) as home:
        argv = [binary, *FLAGS, f"--user-data-dir={home}/profile", *args,
                html.resolve().as_uri()]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LANG": "C.UTF-8"}
        with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env, start_new_session=True) as proc:
            try:
                out, err = proc.communicate(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, err = proc.communicate()
                raise RuntimeError(f"{' '.join(argv)} took over {TIMEOUT} s: {err[-2000:]}") \
                    from None
    if proc.returncode:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {err[-2000:]}")
    return out


def screenshot(html: Path, png: Path) -> Path:
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    _chromium(html, f"--screenshot={png.resolve()}")
    return png


def dump_dom(html: Path) -> str:
    """The DOM after Chromium has parsed and rendered the page, serialised."""
    return _chromium(html, "--dump-dom")


def png_size(png: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk; fails on anything that is not a PNG."""
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{png} is not a PNG"
    assert data[12:16] == b"IHDR", f"{png} has no IHDR chunk first"
    return struct.unpack(">II", data[16:24])


def png_distinct_bytes(png: Path) -> int:
    """Distinct byte values in the decompressed, filtered pixel rows: a blank page
    filters to a handful (mostly zeros), text and coloured cells to many."""
    data, pos, idat = png.read_bytes(), 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return len(set(zlib.decompress(idat)))


class CloudRows(HTMLParser):
    """The report's ``tr.cloud`` rows: cloud name, data-status, error cell text."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str]] = []
        self._cell: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and "cloud" in (a.get("class") or "").split():
            self.rows.append({"cloud": "", "status": a.get("data-status") or "", "error": ""})
        elif self.rows and tag in ("th", "td"):
            self._cell = "error" if "error" in (a.get("class") or "").split() else tag

    def handle_endtag(self, tag: str) -> None:
        if tag in ("th", "td", "tr"):
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell == "th":
            self.rows[-1]["cloud"] += data
        elif self._cell == "error":
            self.rows[-1]["error"] += data


def cloud_rows(dom: str) -> list[dict[str, str]]:
    parser = CloudRows()
    parser.feed(dom)
    parser.close()
    return parser.rows


def check_report_in_browser(report_dir: Path, expected_clouds: list[str],
                            artifact_name: str) -> dict[str, str]:
    """Open ``report_dir/report.html`` in Chromium: a real, non-blank screenshot and
    one row per expected cloud, each with the status and error of report.json.
    Keeps ``<artifact_name>.png`` and ``<artifact_name>.dom.html``; {cloud: status}."""
    html = report_dir / "report.html"
    png = screenshot(html, ARTIFACTS / f"{artifact_name}.png")
    assert png_size(png) == WINDOW
    assert png.stat().st_size > 8 * 1024, f"{png}: {png.stat().st_size} bytes, a blank page?"
    assert png_distinct_bytes(png) > 32, f"{png} looks blank"

    dom = dump_dom(html)
    (ARTIFACTS / f"{artifact_name}.dom.html").write_text(dom)
    rows = cloud_rows(dom)
    assert sorted(r["cloud"] for r in rows) == sorted(expected_clouds), rows
    report = json.loads((report_dir / "report.json").read_text())
    for want, seen in zip(report["clouds"], rows, strict=True):
        assert seen["cloud"] == want["cloud"] and seen["status"] == want["status"], seen
        assert seen["error"].strip() == (want["error"] or ""), seen
    return {r["cloud"]: r["status"] for r in rows}
