"""One error tree for the whole pipeline.

Every error a user can meet is a ``PipelineError``: it knows *where* (a cloud
name or a file), the *step* and the *cause*, and prints as one line
``where: step: cause``.  Foreign exceptions are wrapped at the boundary with
``raise ... from e`` so ``-v`` can still show the chain.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every expected failure; ``str()`` is the one line a user sees."""

    default_step = "pipeline"

    def __init__(self, cause: str, *, where: str | None = None, step: str | None = None):
        super().__init__(cause)
        self.cause = cause
        self.where = where
        self.step = step or self.default_step

    def at(self, where: str | None = None, step: str | None = None) -> PipelineError:
        """Fill in the location if the raiser did not know it; returns self."""
        if self.where is None and where:
            self.where = where
        if step and self.step == self.default_step:
            self.step = step
        return self

    def __str__(self) -> str:
        parts = [p for p in (self.where, self.step, self.cause) if p]
        return ": ".join(parts)


class Retriable:
    """Mixin: the operation may succeed if tried again (5xx, reset, timeout)."""


# --- configuration -------------------------------------------------------

class ConfigError(PipelineError):
    """Bad or missing configuration: names the file, the key and the problem."""

    default_step = "config"

    def __init__(self, cause: str, *, file: str | None = None, key: str | None = None,
                 where: str | None = None, step: str | None = None):
        self.file = file
        self.key = key
        if key:
            cause = f"{key}: {cause}"
        super().__init__(cause, where=where or file, step=step)


# --- local tools ---------------------------------------------------------

class CommandError(PipelineError):
    """A subprocess failed; carries the command, exit code and stderr tail."""

    default_step = "command"

    def __init__(self, argv: list[str], returncode: int | None, stderr_tail: str = "",
                 *, log_path: str | None = None, where: str | None = None,
                 step: str | None = None, timed_out: bool = False):
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        self.log_path = log_path
        self.timed_out = timed_out
        prog = self.argv[0].rsplit("/", 1)[-1] if self.argv else "?"
        if timed_out:
            cause = f"{prog} timed out"
        elif returncode is None:
            cause = f"{prog} could not be started"
        else:
            cause = f"{prog} exited {returncode}"
        last = _last_line(stderr_tail)
        if last:
            cause += f" ({last})"
        if log_path:
            cause += f"; log: {log_path}"
        super().__init__(cause, where=where, step=step)


class ToolMissingError(PipelineError):
    """A required executable is not installed (run ``make setup``)."""

    default_step = "setup"


class BuildError(PipelineError):
    default_step = "build"


class ConvertError(PipelineError):
    default_step = "convert"


class ImageCorruptError(PipelineError):
    """``qemu-img check`` or our own reader found the image damaged."""

    default_step = "check"


class DiskFullError(PipelineError):
    default_step = "disk"


# --- clouds --------------------------------------------------------------

class CloudError(PipelineError):
    """Anything a cloud API answered or failed to answer."""

    default_step = "cloud"


class HttpError(CloudError):
    """A non-success HTTP status, mapped by ``from_status`` to a subclass."""

    status: int | None = None

    def __init__(self, cause: str, *, status: int | None = None, method: str | None = None,
                 url: str | None = None, where: str | None = None, step: str | None = None):
        self.status = status if status is not None else type(self).status
        self.method = method
        self.url = url
        super().__init__(cause, where=where, step=step)


class BadRequest(HttpError):
    status = 400


class Unauthorized(HttpError):
    status = 401


class Forbidden(HttpError):
    status = 403


class NotFound(HttpError):
    status = 404


class Conflict(HttpError):
    status = 409


class RequestTooLarge(HttpError):
    """413: the image or the request exceeds a size or quota limit; not retried."""

    status = 413


class UnsupportedMediaType(HttpError):
    status = 415


class ServerError(Retriable, HttpError):
    status = 500


class ServiceUnavailable(Retriable, HttpError):
    status = 503


class ConnectionFailed(Retriable, CloudError):
    """The connection was refused, reset or timed out."""


class TimedOut(ConnectionFailed):
    """A call made no progress within its connect or read timeout: a stalled connection."""


class QuotaExceeded(CloudError):
    """A quota is exhausted (images, floating IPs, instances); not retried."""


class EndpointNotFound(CloudError):
    """The catalog has no usable endpoint for a service."""

    default_step = "discovery"


class WaitTimeout(PipelineError):
    """``iterate_timeout`` ran out before the awaited state arrived."""

    default_step = "wait"


class UploadError(CloudError):
    default_step = "upload"


class ChecksumMismatch(UploadError):
    """The cloud reports a checksum other than ours: the upload is bad."""


class VerifyError(PipelineError):
    default_step = "verify"


class BootError(VerifyError):
    """The server went to ERROR or never became ACTIVE."""

    default_step = "boot"


class AccelStalled(BootError):
    """A KVM boot showed nothing past the boot loader in time: KVM emulates here."""


class ReachabilityError(VerifyError):
    """The server never answered on its check port, or login failed."""

    default_step = "reach"


_code_map: dict[int, type[HttpError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: RequestTooLarge,
    415: UnsupportedMediaType,
    500: ServerError,
    502: ServerError,
    503: ServiceUnavailable,
    504: ServiceUnavailable,
}


def from_status(status: int, cause: str, **kwargs) -> HttpError:
    """Build the ``HttpError`` subclass that matches an HTTP status."""
    cls = _code_map.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else HttpError
    return cls(cause, status=status, **kwargs)


def is_retriable(exc: BaseException) -> bool:
    return isinstance(exc, Retriable)


def _last_line(text: str) -> str:
    for line in reversed((text or "").strip().splitlines()):
        line = line.strip()
        if line:
            return line[:200]
    return ""
