"""Which disk format a cloud gets: a pure decision over its profile and config."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from qemuhost.formats import QEMU_DRIVERS

# The Glance disk formats we write, their qemu names (qemuhost's one table) and extensions.
KNOWN_FORMATS = ("vhd", "qcow2", "raw")
QEMU_FORMAT = {fmt: QEMU_DRIVERS[fmt] for fmt in KNOWN_FORMATS}
EXTENSION = {"vhd": "vhd", "qcow2": "qcow2", "raw": "raw"}


def choose_disk_format(accepted: Sequence[str], override: str | None = None,
                       known: Sequence[str] = KNOWN_FORMATS) -> str:
    """The format to upload to a cloud.

    ``accepted`` is the profile's list, most preferred first; ``override`` is a
    clouds.yaml ``image_format``, which must be known and accepted.
    """
    if override is not None:
        if override not in known:
            raise ValueError(f"unknown format {override!r} (known: {', '.join(known)})")
        if override not in accepted:
            raise ValueError(f"format {override!r} is not accepted by this vendor "
                             f"(accepts: {', '.join(accepted)})")
        return override
    for fmt in accepted:
        if fmt in known:
            return fmt
    raise ValueError(f"none of {', '.join(accepted)} is a format imagefleet can write "
                     f"(known: {', '.join(known)})")


def distinct_formats(formats: Iterable[str]) -> list[str]:
    """Each format once, in a stable order: one conversion per format."""
    return sorted(set(formats))
