"""Has a booting guest got past its boot loader?  Read from its serial console.

A KVM that is emulating rather than accelerating shows the firmware and boot
loader lines and then nothing ("Loading initial ramdisk ..." and silence).
Any console line that is not a firmware or boot-loader line is the kernel or
its userland talking, which is the progress a KVM boot must show within
``STALL_SECONDS``; an image that prints nothing on the serial console still
shows progress by answering on its SSH port (the callers check that too).
"""

from __future__ import annotations

import os
import re

STALL_SECONDS = 30.0
READ_LIMIT = 64 * 1024

_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\x1b[=>c]")
# Lines SeaBIOS, iPXE, GRUB (menu included) and SYSLINUX print before the kernel runs.
_LOADER = re.compile(
    r"^(SeaBIOS|iPXE|Booting |Boot failed|Press |Use the |The highlighted entry|"
    r"GNU GRUB|Welcome to GRUB|GRUB |Loading |error: |Machine UUID|Probing EDD|"
    r"(SYS|ISO|EXT|PXE)LINUX|Debian GNU/Linux|Advanced options|$)")


def loader_line(line: str) -> bool:
    return bool(_LOADER.match(line.strip(" \t|*+-")))


def past_boot_loader(console: str) -> bool:
    """Whether the console shows anything the kernel or userland printed (pure)."""
    text = _ESCAPES.sub("", console).replace("\r", "\n")
    return any(not loader_line(line) for line in text.split("\n"))


def stalled(accel: str, elapsed: float, console: str, limit: float = STALL_SECONDS) -> bool:
    """A KVM boot with nothing past the boot loader after ``limit`` seconds (pure)."""
    return accel == "kvm" and elapsed >= limit and not past_boot_loader(console)


def read_console(path: str | os.PathLike) -> str:
    """The start of a console log: enough to see the kernel begin."""
    try:
        with open(path, "rb") as f:
            return f.read(READ_LIMIT).decode("utf-8", "replace")
    except OSError:
        return ""
