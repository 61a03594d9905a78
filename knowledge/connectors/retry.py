"""Bounded retries for connector API calls: 429 and transient 5xx, honouring Retry-After.

Every API client raises its own exception types, so each connector passes `status_of`,
which reads the HTTP status and the Retry-After seconds (or None) out of an exception, or
returns (None, None) for an exception that is not an HTTP answer (not retried, except for
connection errors the connector maps to status 0). `sleep` is injectable so tests can
count the waits instead of waiting.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)

RETRIED = {0, 429, 500, 502, 503, 504}


@dataclass
class Retry:
    """How a connector retries: at most `attempts` calls, waits capped at `cap` seconds."""

    attempts: int = 5
    base: float = 1.0
    cap: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep)
    waited: list[float] = field(default_factory=list)  # every wait, for reports and tests

    def call(self, fn: Callable[[], T], status_of: Callable[[BaseException], tuple[int | None, float | None]],
             what: str = "request") -> T:
        """`fn()`, retried on 429/5xx/connection errors; the last error is re-raised."""
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except Exception as exc:
                status, retry_after = status_of(exc)
                if status not in RETRIED or attempt == self.attempts:
                    raise
                wait = min(self.cap, retry_after if retry_after is not None else self.base * 2 ** (attempt - 1))
                log.info("%s: HTTP %s, retry %d/%d in %.1fs", what, status, attempt, self.attempts - 1, wait)
                self.waited.append(wait)
                self.sleep(wait)
        raise AssertionError("unreachable")


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form; an HTTP date counts as 1 s)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return 1.0
