"""A tiny bootable disk image: Debian's kernel, a busybox initramfs, syslinux on FAT.

The guest loads virtio-net (and the IDE CD-ROM and ISO 9660 drivers), takes
its address from the config drive's ``network_data.json`` when that says
static, DHCP otherwise, and answers on port 22 with ``SSH-2.0-imagefleet-tiny``.
Then, without a config drive, it prints its instance id and keys from the
metadata service (``http://169.254.169.254/openstack/latest/meta_data.json``)
to the console, or "no metadata service" after 10 s.
It reaches its banner in about 10 s under TCG. Built from the host's
``linux-image-amd64``, ``busybox-static``, ``syslinux`` and ``mtools``
(``scripts/setup-system.sh``), cached by content under ``work/test-assets/``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

BANNER = b"SSH-2.0-imagefleet-tiny"
CACHE = Path(__file__).resolve().parents[2] / "work" / "test-assets"
MODULES = ["virtio_pci", "virtio_net", "ata_piix", "sr_mod", "isofs"]
BUSYBOX = Path("/bin/busybox")
SYSLINUX_CFG = """DEFAULT tiny
PROMPT 0
TIMEOUT 0
LABEL tiny
  LINUX /vmlinuz
  INITRD /initrd.gz
  APPEND console=ttyS0 quiet loglevel=3 panic=-1
"""
INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
first() { echo "$2" | grep -o "\"$1\":\"[0-9.]*\"" | head -1 | cut -d'"' -f4; }
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "tiny: loading modules"
for m in @MODULES@; do insmod /lib/modules/$m; done
ip link set lo up
ip link set eth0 up
ADDR=
for i in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/sr0 ] && break; sleep 0.2; done
if [ -b /dev/sr0 ] && mount -t iso9660 -o ro /dev/sr0 /mnt 2>/dev/null; then
  echo "tiny: config drive $(cat /proc/mounts | grep /mnt)"
  ND=$(tr -d ' \n' < /mnt/openstack/latest/network_data.json)
  case "$ND" in *'"type":"ipv4"'*)
    ADDR=$(first ip_address "$ND"); MASK=$(first netmask "$ND"); GW=$(first gateway "$ND");;
  esac
  grep -o '"public_keys": {[^}]*}' /mnt/openstack/latest/meta_data.json | cut -c1-60
  umount /mnt
  DRIVE=1
fi
if [ -n "$ADDR" ]; then
  echo "tiny: static $ADDR/$MASK gateway $GW"
  ifconfig eth0 "$ADDR" netmask "$MASK" up
  route add default gw "$GW"
else
  echo "tiny: dhcp"
  udhcpc -i eth0 -n -q -t 10 -T 1 -s /etc/udhcpc.script
fi
printf '#!/bin/sh\necho "SSH-2.0-imagefleet-tiny\r"\nsleep 5\n' > /bin/banner
chmod 755 /bin/banner
nc -ll -p 22 -e /bin/banner &
echo "tiny: ready"
if [ -z "$DRIVE" ]; then
  MD=$(timeout 10 wget -q -O - http://169.254.169.254/openstack/latest/meta_data.json)
  if [ -n "$MD" ]; then
    echo "tiny: metadata service $(echo "$MD" | grep -o '"uuid": "[^"]*"')"
    echo "tiny: metadata keys $(echo "$MD" | grep -o '"public_keys": {[^}]*}')"
  else
    echo "tiny: no metadata service"
  fi
fi
while true; do sleep 3600; done
"""
DHCP_SCRIPT = """#!/bin/sh
case "$1" in bound|renew)
  ifconfig "$interface" "$ip" netmask "${subnet:-255.255.255.0}" up
  [ -n "$router" ] && route add default gw "${router%% *}" ;;
esac
"""


def kernel_release() -> str:
    found = sorted(Path("/lib/modules").glob("*/modules.dep"))
    found = [p.parent for p in found if Path(f"/boot/vmlinuz-{p.parent.name}").exists()]
    if not found:
        raise FileNotFoundError("no kernel with modules: install linux-image-amd64 "
                                "(make setup)")
    return found[-1].name


def module_order(release: str, wanted: list[str]) -> list[Path]:
    """The .ko files for ``wanted`` and everything they need, dependencies first."""
    root = Path("/lib/modules", release)
    deps: dict[str, list[str]] = {}
    for line in (root / "modules.dep").read_text().splitlines():
        path, _, needs = line.partition(":")
        deps[path] = needs.split()
    by_name = {Path(p).name.split(".ko")[0].replace("-", "_"): p for p in deps}
    order: list[str] = []

    def add(path: str) -> None:
        for need in reversed(deps[path]):
            add(need)
        if path not in order:
            order.append(path)
    for name in wanted:
        add(by_name[name])
    return [root / p for p in order]


def cpio_newc(entries: list[tuple[str, int, bytes]]) -> bytes:
    """A newc cpio archive (what the kernel unpacks as an initramfs)."""
    out = bytearray()
    for ino, (name, mode, data) in enumerate([*entries, ("TRAILER!!!", 0, b"")], start=1):
        encoded = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
        out += b"070701" + "".join(f"{v:08X}" for v in fields).encode() + encoded
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


def initramfs(release: str) -> bytes:
    modules = module_order(release, MODULES)
    names = [m.name for m in modules]
    entries: list[tuple[str, int, bytes]] = [
        (d, stat.S_IFDIR | 0o755, b"") for d in ("bin", "dev", "proc", "sys", "mnt", "etc",
                                                 "tmp", "lib", "lib/modules")]
    entries += [("bin/busybox", stat.S_IFREG | 0o755, BUSYBOX.read_bytes()),
                ("bin/sh", stat.S_IFLNK | 0o777, b"busybox"),
                ("init", stat.S_IFREG | 0o755,
                 INIT.replace("@MODULES@", " ".join(names)).encode()),
                ("etc/udhcpc.script", stat.S_IFREG | 0o755, DHCP_SCRIPT.encode())]
    entries += [(f"lib/modules/{m.name}", stat.S_IFREG | 0o644, m.read_bytes())
                for m in modules]
    return gzip.compress(cpio_newc(entries), 6, mtime=0)


def build_raw(dest: Path) -> Path:
    """A 24 MiB FAT disk (no partition table) that syslinux boots: kernel + initramfs."""
    release = kernel_release()
    # names of this call's own: test processes and threads (pytest-xdist workers, the
    # kill lanes) may build the same cached image at once. Two builds differ (the FAT serial, file
    # times), and the other formats are converted from the first: the first one
    # published stays (``publish``), a later one is dropped.
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{dest.name}.", suffix=".d", dir=dest.parent))
    (work / "initrd.gz").write_bytes(initramfs(release))
    shutil.copyfile(f"/boot/vmlinuz-{release}", work / "vmlinuz")
    (work / "syslinux.cfg").write_text(SYSLINUX_CFG)
    fd, name = tempfile.mkstemp(prefix=f"{dest.name}.", suffix=".part", dir=dest.parent)
    partial = Path(name)
    with os.fdopen(fd, "wb") as f:
        f.truncate(24 << 20)
    for argv in (["mkfs.vfat", "-n", "TINY", str(partial)],
                 ["mcopy", "-i", str(partial), str(work / "vmlinuz"), str(work / "initrd.gz"),
                  str(work / "syslinux.cfg"), "::/"],
                 ["syslinux", "--install", str(partial)]):
        subprocess.run(argv, check=True, capture_output=True)
    shutil.rmtree(work)
    publish(partial, dest)
    return dest


def publish(partial: Path, dest: Path) -> None:
    """Move a finished file into the cache unless another process was first: a cached
    file never changes once there, so what was converted from it stays true."""
    try:
        os.link(partial, dest)
    except FileExistsError:
        pass
    partial.unlink()


def tiny_image(disk_format: str, cache: Path = CACHE) -> Path:
    """The tiny image in ``disk_format`` (raw, qcow2 or vhd), built once and cached."""
    release = kernel_release()
    key = hashlib.sha256((INIT + DHCP_SCRIPT + SYSLINUX_CFG + release + " ".join(MODULES))
                         .encode()).hexdigest()[:12]
    cache.mkdir(parents=True, exist_ok=True)
    raw = cache / f"tiny-{key}.raw"
    if not raw.exists():
        build_raw(raw)
    if disk_format == "raw":
        return raw
    target = cache / f"tiny-{key}.{disk_format}"
    if not target.exists():
        qemu_format = {"vhd": "vpc"}.get(disk_format, disk_format)
        fd, name = tempfile.mkstemp(prefix=f"{target.name}.", suffix=".part", dir=cache)
        os.close(fd)
        partial = Path(name)
        subprocess.run(["qemu-img", "convert", "-O", qemu_format, str(raw), str(partial)],
                       check=True, capture_output=True)
        publish(partial, target)
    return target
