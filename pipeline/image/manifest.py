"""What is inside a build: every installed package with its version, and the kernel.

Read from the image itself (its dpkg status database through ``dpkg-query
--admindir``, the kernels' own version strings), stored beside the build
(``WorkDir.manifest``) and summarised by a content digest that goes on every
image we upload (``marks.CONTENT``).  Two builds with the same manifest are the
same image to a user, whatever their build ids; the changelog between two
manifests is what a night changed.

An image without a dpkg database (a prebuilt file from another tool) has no
package list; its content digest is then its inputs' digest, so it is never
mistaken for an unchanged one.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.core import runner
from pipeline.image import imagefs

STATUS = "var/lib/dpkg/status"
KERNELS = ("boot/vmlinuz-*", "vmlinuz")
QUERY_FORMAT = r"${db:Status-Abbrev}\t${Package}\t${Version}\n"
KERNEL_PACKAGE = re.compile(r"^linux-image-(\d\S*)$")


@dataclass(frozen=True)
class Manifest:
    packages: dict[str, str] | None        # name -> version; None: no package database
    kernels: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        return cls(packages=data.get("packages"), kernels=list(data.get("kernels") or []))

    def content_digest(self, inputs_digest: str) -> str:
        """The digest of what a user gets; without a package list, the inputs' digest."""
        if self.packages is None:
            return "inputs:" + inputs_digest[:32]
        body = json.dumps({"packages": self.packages, "kernels": sorted(self.kernels)},
                          sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()


def parse_dpkg_query(text: str) -> dict[str, str]:
    """``dpkg-query -W -f QUERY_FORMAT`` output: the installed packages (status ``ii``;
    half-installed or removed ones are not part of the image)."""
    packages = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[0].strip() == "ii":
            packages[parts[1]] = parts[2]
    return packages


def kernel_packages(packages: dict[str, str]) -> list[str]:
    """Kernel releases from ``linux-image-<release>`` packages (not the meta-packages)."""
    return sorted(f"{m.group(1)} ({version})" for name, version in packages.items()
                  if (m := KERNEL_PACKAGE.match(name)))


def bzimage_version(data: bytes) -> str | None:
    """The version string an x86 bzImage carries (boot protocol: ``HdrS`` at 0x202, the
    string's offset minus 0x200 at 0x20E)."""
    if len(data) < 0x210 or data[0x202:0x206] != b"HdrS":
        return None
    start = int.from_bytes(data[0x20E:0x210], "little") + 0x200
    end = data.find(b"\0", start, start + 256)
    if start >= len(data) or end < 0:
        return None
    return data[start:end].decode("ascii", "replace").split(" ", 1)[0] or None


def read_manifest(image: str | Path) -> Manifest:
    """The manifest of a raw image (read-only: nothing in it runs)."""
    with tempfile.TemporaryDirectory(prefix="imagefleet-manifest-") as tmp:
        root = Path(tmp)
        imagefs.copy_out(image, [STATUS, *KERNELS], root)
        packages = None
        if (root / STATUS).is_file():
            result = runner.run(["dpkg-query", f"--admindir={root / STATUS}".removesuffix(
                "/status"), "-W", "-f", QUERY_FORMAT], capture=True, step="manifest")
            packages = parse_dpkg_query(result.stdout)
        kernels = kernel_packages(packages or {})
        if not kernels:
            found = (bzimage_version(p.read_bytes()) for pattern in KERNELS
                     for p in sorted(root.glob(pattern)))
            kernels = sorted({v for v in found if v})
        return Manifest(packages=packages, kernels=kernels)


# --- what changed -----------------------------------------------------------------------

def _order(c: str) -> int:
    """dpkg's weight of one character: ``~`` before the end of the string, letters before
    the other characters."""
    if c == "~":
        return -1
    return ord(c) if c.isalpha() else ord(c) + 256


def _verrevcmp(a: str, b: str) -> int:
    """dpkg's ``verrevcmp``: alternate non-digit runs (by ``_order``, the end weighing 0)
    and digit runs (as numbers)."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ca = _order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            cb = _order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ca != cb:
                return ca - cb
            i, j = i + 1, j + 1
        da = re.match(r"\d*", a[i:]).group()
        db = re.match(r"\d*", b[j:]).group()
        i, j = i + len(da), j + len(db)
        if int(da or 0) != int(db or 0):
            return int(da or 0) - int(db or 0)
    return 0


def compare_versions(a: str, b: str) -> int:
    """Debian version order (epoch, upstream, revision), as ``dpkg --compare-versions``:
    negative, zero or positive."""
    def split(v: str) -> tuple[int, str, str]:
        epoch, _, rest = v.partition(":") if ":" in v else ("0", "", v)
        upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "")
        return int(epoch or 0), upstream, revision
    ea, ua, ra = split(a)
    eb, ub, rb = split(b)
    if ea != eb:
        return ea - eb
    return _verrevcmp(ua, ub) or _verrevcmp(ra, rb)


def changelog(old: Manifest, new: Manifest) -> dict[str, list]:
    """Packages added, removed, upgraded and downgraded (with both versions), and the
    kernels before and after when they differ."""
    before, after = old.packages or {}, new.packages or {}
    changed = [(n, before[n], after[n]) for n in sorted(set(before) & set(after))
               if before[n] != after[n]]
    return {
        "added": [[n, after[n]] for n in sorted(set(after) - set(before))],
        "removed": [[n, before[n]] for n in sorted(set(before) - set(after))],
        "upgraded": [list(c) for c in changed if compare_versions(c[1], c[2]) < 0],
        "downgraded": [list(c) for c in changed if compare_versions(c[1], c[2]) > 0],
        "kernels": [old.kernels, new.kernels] if old.kernels != new.kernels else [],
    }


def changelog_lines(log: dict[str, list]) -> list[str]:
    """One short line per change, for the terminal and the HTML report."""
    lines = [f"+ {n} {v}" for n, v in log.get("added", [])]
    lines += [f"- {n} {v}" for n, v in log.get("removed", [])]
    lines += [f"↑ {n} {a} → {b}" for n, a, b in log.get("upgraded", [])]
    lines += [f"↓ {n} {a} → {b}" for n, a, b in log.get("downgraded", [])]
    if log.get("kernels"):
        lines.append(f"kernel {', '.join(log['kernels'][0]) or '-'} → "
                     f"{', '.join(log['kernels'][1]) or '-'}")
    return lines
