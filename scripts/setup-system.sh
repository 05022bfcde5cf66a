#!/usr/bin/env bash
# Install the Debian packages imagefleet needs; quick no-op when all are there.
set -eu -o pipefail

PACKAGES=(
  qemu-utils qemu-system-x86 debootstrap kpartx sudo fdisk gdisk dosfstools
  genisoimage libvhdi-utils curl squashfs-tools procps iproute2 openssh-client
  util-linux e2fsprogs
  zstd  # the content's compressed size, the floor of bytes per format (tests/e2e, bench/peers.py)
  busybox-static linux-image-amd64 syslinux syslinux-common mtools  # local-cloud test guest
  apt-utils  # apt-ftparchive: the tests' loopback package mirror
  chromium  # headless screenshots of report.html in the tests
  rabbitmq-server  # upstream Nova's message broker, a private node per data dir (upstream/broker.py)
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup: installing Debian packages: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The package starts a system-wide broker where systemd runs; imagefleet starts
# its own private node (upstream/broker.py) and needs none listening on 5672.
if [[ " ${missing[*]} " == *" rabbitmq-server "* ]] && command -v systemctl >/dev/null \
    && systemctl is-system-running >/dev/null 2>&1; then
  $SUDO systemctl disable --now rabbitmq-server || true
fi
