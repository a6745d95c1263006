"""
Polling with a growing interval inside a total time budget.

Archives that prepare files asynchronously (JSOC exports, TAP async jobs) are
asked "is it ready?" again and again. `poll` does that the same way for every
archive: the first check comes quickly, the interval then grows by a constant
factor up to a cap (no fixed multi-second sleeps), the whole wait is bounded
by a budget, and a server's own hint (e.g. JSOC's ``wait``) can shorten or
lengthen the next interval within those limits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["PollTimeout", "Backoff", "poll"]

T = TypeVar("T")


class PollTimeout(TimeoutError):
    """The budget ran out before the condition was met.

    Attributes
    ----------
    last : object
        The last value the check returned (e.g. the last status answer).
    elapsed : float
        Seconds spent polling.
    """

    def __init__(self, message: str, last: Any = None, elapsed: float = 0.0):
        super().__init__(message)
        self.last = last
        self.elapsed = elapsed


@dataclass(frozen=True)
class Backoff:
    """The intervals between polls.

    Parameters
    ----------
    first : float
        Seconds before the second check.
    factor : float
        Each interval is the previous one times this.
    cap : float
        Longest interval.

    Examples
    --------
    >>> list(Backoff(0.5, 2.0, 3.0).intervals(5))
    [0.5, 1.0, 2.0, 3.0, 3.0]
    """

    first: float = 0.25
    factor: float = 1.6
    cap: float = 15.0

    def intervals(self, count: int):
        """The first ``count`` intervals."""
        value = self.first
        for _ in range(count):
            yield min(value, self.cap)
            value *= self.factor


def poll(check: Callable[[], tuple[bool, T]], *, budget: float, backoff: Backoff = Backoff(),
         hint: Callable[[T], float | None] | None = None,
         on_wait: Callable[[T, float], None] | None = None,
         sleep: Callable[[float], None] = time.sleep,
         clock: Callable[[], float] = time.monotonic) -> T:
    """Call ``check`` until it reports done, sleeping growing intervals in between.

    Parameters
    ----------
    check : callable
        ``check() -> (done, value)``. Exceptions propagate (retry transient
        errors inside ``check``).
    budget : float
        Total seconds allowed, checks and sleeps included.
    backoff : Backoff
        Interval schedule.
    hint : callable, optional
        ``hint(value) -> seconds or None``: the server's estimate. When given,
        the next interval is the smaller of the schedule's and the hint (never
        below ``backoff.first``), so a server saying "ready in 1 s" is asked
        again after about 1 s rather than after a long backoff step.
    on_wait : callable, optional
        ``on_wait(value, seconds)`` before each sleep (progress display).
    sleep, clock : callable
        Injected for tests.

    Returns
    -------
    object
        The value of the check that reported done.

    Raises
    ------
    PollTimeout
        The budget ran out; ``.last`` holds the last value.

    Examples
    --------
    >>> answers = iter([(False, "queued"), (False, "processing"), (True, "done")])
    >>> poll(lambda: next(answers), budget=5, sleep=lambda s: None)
    'done'
    """
    started = clock()
    interval = backoff.first
    while True:
        done, value = check()
        if done:
            return value
        elapsed = clock() - started
        remaining = budget - elapsed
        if remaining <= 0:
            raise PollTimeout(f"not done after {elapsed:.1f} s", last=value, elapsed=elapsed)
        wait = min(interval, backoff.cap)
        if hint is not None:
            suggested = hint(value)
            if suggested is not None and suggested > 0:
                wait = max(backoff.first, min(wait, float(suggested)))
        wait = min(wait, remaining)
        if on_wait is not None:
            on_wait(value, wait)
        sleep(wait)
        interval *= backoff.factor
