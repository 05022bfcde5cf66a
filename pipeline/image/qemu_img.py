"""qemu-img, through the one subprocess wrapper: info, convert, check, compare.

Format names here are qemu's (``raw``, ``qcow2``, ``vpc``); ``pipeline.core.formats``
maps Glance's ``vhd`` to ``vpc``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.core import runner
from pipeline.core.errors import CommandError, ConvertError, DiskFullError, ImageCorruptError
from pipeline.core.formats import QEMU_FORMAT

LOG = logging.getLogger(__name__)

QEMU_IMG = "qemu-img"  # swappable, e.g. for a fake in tests
FORMATS = tuple(sorted(set(QEMU_FORMAT.values())))   # qemu names of what we write
_PROGRESS = re.compile(r"\(\s*([0-9.]+)/100%\)")

# qemu-img check exit codes (qemu-img(1)).
CHECK_OK, CHECK_ERROR, CHECK_CORRUPT, CHECK_LEAKS, CHECK_UNSUPPORTED = 0, 1, 2, 3, 63


@dataclass
class CheckResult:
    ok: bool
    corruptions: int = 0
    leaks: int = 0
    supported: bool = True


def info(path: str | Path, fmt: str | None = None) -> dict:
    """``qemu-img info --output=json``; the detected format unless ``fmt`` is given."""
    argv = [QEMU_IMG, "info", "--output=json"]
    if fmt:
        argv += ["-f", fmt]
    try:
        result = runner.run(argv + [str(path)], capture=True, timeout=120, step="info")
    except CommandError as e:
        raise ImageCorruptError(f"qemu-img cannot read {path}: {e.stderr_tail.strip()[-200:]}",
                                step="info") from e
    return json.loads(result.stdout)


def convert_argv(src: str | Path, src_fmt: str, dest: str | Path, dest_fmt: str, *,
                 options: dict[str, str] | None = None, progress: bool = True,
                 coroutines: int = 8, compress: bool = False) -> list[str]:
    """The argv for a sparse-aware conversion; pure, so it can be tested and benchmarked.

    ``compress`` writes compressed qcow2 clusters (deflate), which qemu, Nova and
    Glance read like any other; only qcow2 has them.
    """
    _check_format(src_fmt)
    _check_format(dest_fmt)
    if compress and dest_fmt != "qcow2":
        raise ConvertError(f"only qcow2 takes compressed clusters, not {dest_fmt}")
    argv = [QEMU_IMG, "convert"]
    if progress:
        argv.append("-p")
    argv += ["-f", src_fmt, "-O", dest_fmt, "-m", str(coroutines)]
    # Out-of-order writes are only safe where the destination has no metadata
    # whose layout depends on write order (qemu-img(1) recommends raw).
    if dest_fmt == "raw":
        argv.append("-W")
    if compress:
        argv.append("-c")
    # Detect zero runs of at least 4 KiB and leave them unallocated.
    argv += ["-S", "4k"]
    if options:
        argv += ["-o", ",".join(f"{k}={v}" for k, v in sorted(options.items()))]
    argv += [str(src), str(dest)]
    return argv


def convert(src: str | Path, src_fmt: str, dest: str | Path, dest_fmt: str, *,
            options: dict[str, str] | None = None,
            progress: Callable[[float], None] | None = None,
            log_path: str | Path | None = None, timeout: float | None = 3600,
            compress: bool = False) -> None:
    """Convert ``src`` to ``dest``; ``progress`` receives percentages as qemu-img reports them."""
    def on_line(line: str) -> None:
        match = _PROGRESS.search(line)
        if match and progress:
            progress(float(match.group(1)))

    argv = convert_argv(src, src_fmt, dest, dest_fmt, options=options, progress=True,
                        compress=compress)
    try:
        runner.run(argv, timeout=timeout, log_path=log_path, on_line=on_line, step="convert")
    except CommandError as e:
        if "No space left" in e.stderr_tail:
            raise DiskFullError(f"no space left writing {dest}", step="convert") from e
        raise ConvertError(f"qemu-img convert to {dest_fmt} failed: "
                           f"{e.stderr_tail.strip()[-200:] or e.cause}") from e


def check(path: str | Path, fmt: str) -> CheckResult:
    """``qemu-img check``; corruption raises ``ImageCorruptError``, leaks are only logged."""
    _check_format(fmt)
    result = runner.run([QEMU_IMG, "check", "--output=json", "-f", fmt, str(path)],
                        capture=True, timeout=600, check=False, step="check")
    if result.returncode == CHECK_UNSUPPORTED:
        return CheckResult(ok=True, supported=False)
    data = {}
    if result.stdout.strip().startswith("{"):
        data = json.loads(result.stdout)
    corrupt = int(data.get("corruptions", 0)) + int(data.get("check-errors", 0))
    leaks = int(data.get("leaks", 0))
    if result.returncode in (CHECK_CORRUPT, CHECK_ERROR) or corrupt:
        detail = result.stderr_tail.strip().splitlines()[-1:] or [f"{corrupt} corruptions"]
        raise ImageCorruptError(f"{Path(path).name} is damaged: {detail[0]}")
    if leaks:
        LOG.warning("%s: %d leaked clusters (harmless)", path, leaks)
    return CheckResult(ok=True, corruptions=0, leaks=leaks)


def compare(a: str | Path, a_fmt: str, b: str | Path, b_fmt: str) -> bool:
    """True when both images read the same guest-visible content."""
    result = runner.run([QEMU_IMG, "compare", "-f", a_fmt, "-F", b_fmt, str(a), str(b)],
                        capture=True, timeout=1800, check=False, step="compare")
    if result.returncode in (0, 1):
        return result.returncode == 0
    raise ConvertError(f"qemu-img compare failed: {result.stderr_tail.strip()[-200:]}",
                       step="compare")


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ConvertError(f"unknown qemu image format {fmt!r} (known: {', '.join(FORMATS)})")
