"""Logging for the CLI: a terse console, a full log file, secrets masked in both."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

_SECRETS: set[str] = set()
CONSOLE_FORMAT = "%(asctime)s %(levelname).1s %(message)s"
FILE_FORMAT = "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"


def register_secret(value: str | None) -> None:
    """Mask ``value`` wherever it would appear in a log record."""
    if value and len(value) >= 4:
        _SECRETS.add(str(value))


def mask(text: str) -> str:
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            message = record.getMessage()
            masked = mask(message)
            if masked != message:
                record.msg, record.args = masked, None
            if record.exc_info and not record.exc_text:
                record.exc_text = mask(logging.Formatter().formatException(record.exc_info))
        return True


def configure(verbose: int = 0, log_file: Path | None = None) -> None:
    """Console: INFO (DEBUG with -vv), luigi's chatter only with -v; file: everything."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.DEBUG)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.DEBUG if verbose >= 2 else logging.INFO)
    console.setFormatter(logging.Formatter(CONSOLE_FORMAT, "%H:%M:%S"))
    console.addFilter(RedactingFilter())
    if not verbose:
        console.addFilter(_QuietThirdParty())
    root.addHandler(console)
    if log_file:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = _LogFile(log_file)
        handler.setLevel(logging.DEBUG)
        handler.setFormatter(logging.Formatter(FILE_FORMAT))
        handler.addFilter(RedactingFilter())
        root.addHandler(handler)
    for noisy in ("urllib3", "paramiko", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class _LogFile(logging.FileHandler):
    """The log file; a record that cannot be written (a full work disk) is dropped
    instead of printing logging's "--- Logging error ---" traceback on the console."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        if not isinstance(sys.exc_info()[1], OSError):
            super().handleError(record)


class _QuietThirdParty(logging.Filter):
    """Without -v the console shows our own lines, not luigi's or the HTTP stack's."""

    def filter(self, record: logging.LogRecord) -> bool:
        ours = record.name.startswith(("pipeline", "imagefleet", "tasks"))
        return ours and not (record.levelno >= logging.ERROR and record.exc_info)
