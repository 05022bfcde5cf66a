"""Glance ``disk_format`` -> qemu block driver: the one table of that fact."""

from __future__ import annotations

QEMU_DRIVERS = {"raw": "raw", "qcow2": "qcow2", "vhd": "vpc", "vpc": "vpc", "vhdx": "vhdx",
                "vmdk": "vmdk", "vdi": "vdi", "ami": "raw", "iso": "raw"}


def qemu_driver(disk_format: str) -> str:
    """qemu's name for a Glance disk format; ``KeyError`` when qemu cannot read it."""
    return QEMU_DRIVERS[disk_format.lower()]
