"""A package mirror imagefleet does not own: a flat apt repository on loopback, and the
tiny image "built from it".

``AptMirror`` makes .deb files with ``dpkg-deb``, indexes them with
``apt-ftparchive`` (apt-utils, scripts/setup-system.sh) and serves the directory
over HTTP on 127.0.0.1.  ``image_from_mirror`` plays the part of a night's
build against that mirror: real ``apt-get`` (its own lists and cache, no host
sources) downloads the packages, ``dpkg --root`` installs them into a scratch
root, and the resulting dpkg status database is written into a copy of the
tiny image's FAT file system (``mcopy``), where imagefleet's manifest reader
finds it.  Bumping a package's version in the mirror between two nights gives
two images whose contents differ by exactly that package.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

APT_OPTIONS = ("Dir::Etc::SourceParts=/nonexistent", "Debug::NoLocking=1",
               "APT::Sandbox::User=root", "Acquire::Languages=none")


class AptMirror:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.url: str | None = None

    def add(self, name: str, version: str) -> Path:
        """A package ``name`` at ``version`` (replacing any other version of it)."""
        for old in self.root.glob(f"{name}_*.deb"):
            old.unlink()
        with tempfile.TemporaryDirectory() as tmp:
            pkg = Path(tmp) / "pkg"
            (pkg / "DEBIAN").mkdir(parents=True)
            (pkg / "DEBIAN" / "control").write_text(
                f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
                "Maintainer: imagefleet tests <tests@imagefleet.invalid>\n"
                f"Description: {name}, served by the tests' mirror\n")
            doc = pkg / "usr" / "share" / "doc" / name
            doc.mkdir(parents=True)
            (doc / "VERSION").write_text(version + "\n")
            deb = self.root / f"{name}_{version}_all.deb"
            subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(pkg), str(deb)],
                           check=True, capture_output=True)
        self._index()
        return deb

    def _index(self) -> None:
        for name, what in (("Packages", "packages"), ("Release", "release")):
            out = subprocess.run(["apt-ftparchive", what, "."], cwd=self.root, check=True,
                                 capture_output=True, text=True).stdout
            (self.root / name).write_text(out)

    @contextlib.contextmanager
    def serving(self) -> Iterator[str]:
        handler = functools.partial(_QuietHandler, directory=str(self.root))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}/"
        try:
            yield self.url
        finally:
            server.shutdown()
            server.server_close()
            self.url = None


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def _apt(argv: list[str], state: Path, cwd: Path) -> None:
    options = [f"Dir::Etc::SourceList={state / 'sources.list'}",
               f"Dir::State::Lists={state / 'lists'}", f"Dir::Cache={state / 'cache'}",
               *APT_OPTIONS]
    cmd = ["apt-get", "-q", *[x for o in options for x in ("-o", o)], *argv]
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True, timeout=120)


def image_from_mirror(tiny_raw: Path, mirror_url: str, packages: list[str],
                      dest: Path) -> Path:
    """A copy of the tiny image whose dpkg database holds ``packages`` as the mirror
    serves them now."""
    with tempfile.TemporaryDirectory(prefix="night-") as tmp:
        state, debs, root = Path(tmp, "apt"), Path(tmp, "debs"), Path(tmp, "root")
        for d in (state / "lists" / "partial", state / "cache" / "archives" / "partial", debs,
                  root / "var/lib/dpkg/info", root / "var/lib/dpkg/updates"):
            d.mkdir(parents=True)
        (state / "sources.list").write_text(f"deb [trusted=yes] {mirror_url} ./\n")
        (root / "var/lib/dpkg/status").touch()
        _apt(["update"], state, debs)
        _apt(["download", *packages], state, debs)
        subprocess.run(["dpkg", f"--root={root}", "--force-not-root", "-i",
                        *map(str, sorted(debs.glob("*.deb")))],
                       check=True, capture_output=True, timeout=120)
        partial = dest.with_suffix(".part")
        shutil.copyfile(tiny_raw, partial)
        env = {"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"}
        subprocess.run(["mmd", "-i", str(partial), "::/var", "::/var/lib", "::/var/lib/dpkg"],
                       check=True, capture_output=True, env=env)
        subprocess.run(["mcopy", "-i", str(partial), str(root / "var/lib/dpkg/status"),
                        "::/var/lib/dpkg/status"], check=True, capture_output=True, env=env)
        partial.replace(dest)
    return dest
