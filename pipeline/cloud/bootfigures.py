"""How the guest's first boot spent its time, as systemd tells it (``systemd-analyze``).

After the local boot's login the same key runs one command in the guest: wait
(bounded) for the boot to finish, then ``systemd-analyze time`` and the
slowest units of ``systemd-analyze blame``.  The figures go into the local
boot record and the report; a guest that cannot answer costs a warning, never
the boot.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from pipeline.cloud import reach
from pipeline.core.errors import ReachabilityError

LOG = logging.getLogger(__name__)

BLAME_TOP = 8
SETTLE_SECONDS = 120        # how long the guest may take to finish booting, once logged in
COMMAND = (f"timeout {SETTLE_SECONDS} systemctl is-system-running --wait >/dev/null 2>&1; "
           f"systemd-analyze time; systemd-analyze blame --no-pager | head -n {BLAME_TOP}")

_SPAN_TEXT = r"(?:\d+min(?:\s+[\d.]+m?s)?|[\d.]+m?s)"
_SPAN = re.compile(r"^(?:(\d+)min)?\s*(?:([\d.]+)(ms|s))?$")
_PART = re.compile(rf"({_SPAN_TEXT})\s+\((kernel|initrd|userspace|firmware|loader)\)")
_TOTAL = re.compile(rf"=\s*({_SPAN_TEXT})\s*$")
_BLAME = re.compile(rf"^\s*({_SPAN_TEXT})\s+(\S+)\s*$", re.MULTILINE)


def seconds(span: str) -> float:
    """systemd's ``1min 2.345s`` / ``812ms`` / ``3.2s`` as seconds."""
    match = _SPAN.match(span.strip())
    if not match or not span.strip():
        raise ValueError(f"not a systemd time span: {span!r}")
    minutes, value, unit = match.groups()
    secs = float(value or 0) / (1000 if unit == "ms" else 1)
    return round(int(minutes or 0) * 60 + secs, 3)


def parse(text: str) -> dict[str, Any]:
    """``systemd-analyze time`` + ``blame`` output as figures (pure).

    ``{"kernel": 2.1, "initrd": 1.3, "userspace": 20.4, "total": 23.8,
    "blame": [["cloud-init.service", 9.1], ...]}``; parts systemd did not
    print are left out, and ``finished`` is False when it printed no
    "Startup finished" line (the boot still running, or no systemd).
    """
    time_line = next((line for line in text.splitlines() if line.startswith("Startup finished")),
                     "")
    figures: dict[str, Any] = {"finished": bool(time_line)}
    for span, part in _PART.findall(time_line):
        figures[part] = seconds(span)
    total = _TOTAL.search(time_line)
    if total:
        figures["total"] = seconds(total.group(1))
    figures["blame"] = [[unit, seconds(span)] for span, unit in _BLAME.findall(text)
                        if not unit.startswith("(")][:BLAME_TOP]
    return figures


def analyse(host: str, port: int, *, key_path: str | Path, username: str,
            where: str | None = None) -> dict[str, Any] | None:
    """The guest's boot figures over SSH, or None (and a warning) when it cannot say."""
    try:
        output = reach.run_command(host, port, username=username, key_path=key_path,
                                   command=COMMAND, command_timeout=SETTLE_SECONDS + 60)
    except ReachabilityError as e:
        LOG.warning("%s: no systemd-analyze figures: %s", where or host, e.cause)
        return None
    figures = parse(output)
    LOG.info("%s: boot %s", where or host, summary(figures))
    return figures


def summary(figures: dict[str, Any] | None) -> str:
    """One line for the log and the terminal report."""
    if not figures:
        return "no systemd-analyze figures"
    parts = [f"{name} {figures[name]:.1f} s" for name in ("kernel", "initrd", "userspace", "total")
             if name in figures]
    slowest = ", ".join(f"{unit} {secs:.1f} s" for unit, secs in figures.get("blame", [])[:3])
    line = "; ".join(parts) or "not finished"
    return f"{line}; slowest: {slowest}" if slowest else line
