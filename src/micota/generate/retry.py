"""How long to keep retrying a failing server, and how long to wait between tries.

A vLLM server restart takes minutes (loading a 32B model), so the budget is time, not a
count: ``retry_total_s`` (default 15 minutes), with ``max_retries`` as an optional cap on
tries. Waits grow exponentially with *full jitter* (a uniform draw between 0 and the
exponential bound), which spreads hundreds of in-flight requests that failed together so
they do not hit the restarted server in one burst (AWS Architecture Blog, "Exponential
Backoff And Jitter", 2015). A server's ``Retry-After`` is a floor on the wait.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass, field
from typing import Optional

BASE_DELAY_S = 0.5  # first wait bound; doubles per try
MAX_DELAY_S = 30.0  # no single wait longer than this ...
MIN_TRIES_IN_BUDGET = 10  # ... nor longer than retry_total_s / this, so a short budget still gets ~10 tries


class TransientError(Exception):
    """A failure worth retrying: the server was down, busy, cut the answer short or garbled it.

    ``retry_after_s`` is the server's ``Retry-After`` (seconds), when it sent one; ``timed_out``
    says the try ran into ``request_timeout_s``.
    """

    def __init__(self, message: str, retry_after_s: Optional[float] = None, *, timed_out: bool = False):
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.timed_out = timed_out


def retry_after_seconds(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date (RFC 9110 10.2.3).

    >>> retry_after_seconds("3")
    3.0
    >>> retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0)
    10.0
    >>> retry_after_seconds("soon") is None
    True
    """
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass
class RetryClock:
    """The retry state of one request: call :meth:`next_wait` after each failed try.

    The budget runs from the request's first failure. A failure after the server had worked
    on the request for longer than the whole budget (it was up, then died again, e.g. a second
    restart an hour later) starts a new budget; a timeout never does, so a server that hangs
    cannot keep a request alive forever.
    """

    total_s: float  # retry budget (EngineConfig.retry_total_s)
    max_retries: Optional[int] = None  # cap on retries (None: the budget alone decides)
    rng: random.Random = field(default_factory=random.Random)
    retries: int = 0
    first_failure: Optional[float] = None

    def next_wait(self, error: TransientError, attempt_s: float) -> Optional[float]:
        """Seconds to wait before the next try, or None when the budget or the cap is spent."""
        now = time.monotonic()
        if self.first_failure is None or (attempt_s > self.total_s and not error.timed_out):
            self.first_failure = now
        left = self.total_s - (now - self.first_failure)
        if left <= 0 or (self.max_retries is not None and self.retries >= self.max_retries):
            return None
        self.retries += 1
        bound = min(MAX_DELAY_S, self.total_s / MIN_TRIES_IN_BUDGET, BASE_DELAY_S * 2 ** (self.retries - 1))
        wait = self.rng.uniform(0.0, bound)
        if error.retry_after_s is not None:
            wait = max(wait, error.retry_after_s)
        return min(wait, left)

    def elapsed_s(self) -> float:
        """Seconds since the first failure of the current budget."""
        return 0.0 if self.first_failure is None else time.monotonic() - self.first_failure
