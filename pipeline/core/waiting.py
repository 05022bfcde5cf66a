"""The one waiting loop: every poll in the pipeline goes through ``iterate_timeout``."""

from __future__ import annotations

import time
from collections.abc import Iterator

from pipeline.core.errors import WaitTimeout


def iterate_timeout(timeout: float, message: str, wait: float = 2.0,
                    max_wait: float | None = None, **error_kwargs) -> Iterator[int]:
    """Yield attempt numbers until ``timeout`` seconds pass, sleeping between.

    With ``max_wait`` the sleep doubles each attempt up to that cap (backoff).
    Raises ``WaitTimeout(message)`` when the time is up.
    """
    deadline = time.monotonic() + timeout
    attempt = 0
    delay = wait
    while True:
        yield attempt
        attempt += 1
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        time.sleep(min(delay, remaining))
        if max_wait is not None:
            delay = min(delay * 2, max_wait)
        if time.monotonic() >= deadline:
            break
    raise WaitTimeout(f"{message} (after {timeout:g} s)", **error_kwargs)
