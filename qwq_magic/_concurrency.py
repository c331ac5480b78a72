"""An adaptive concurrency limiter for many requests at once (``qm.map``, ``qm.compare``).

AIMD, as TCP does it: the limit starts at the ceiling the user asked for; a rate limit (HTTP
429) halves it and pauses new requests for the server's ``Retry-After``; every ``limit``
successes in a row grow it back by one, up to the ceiling. Several 429s from one burst count
as one decrease.

:class:`AIMD` is the arithmetic alone (pure, with an injectable clock, tested directly);
:class:`AdaptiveLimiter` puts it behind ``async with limiter:`` like an ``asyncio.Semaphore``.
Its counters are plain attributes, so another thread (a progress bar) may read them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

__all__ = ["AIMD", "AdaptiveLimiter"]

#: the wait after a 429 that came without a Retry-After header
DEFAULT_PAUSE = 1.0


@dataclass
class AIMD:
    """The limit arithmetic: ``on_success()``, ``on_rate_limit(retry_after)``, ``limit``."""

    ceiling: int
    floor: int = 1
    clock: Callable[[], float] = time.monotonic
    limit: int = 0
    paused_until: float = 0.0
    rate_limits: int = 0  # 429s seen
    decreases: int = 0  # how many times the limit was cut
    lowest: int = 0  # the lowest the limit went
    _streak: int = 0  # successes since the last change
    _last_cut: float = field(default=-1e18, repr=False)

    def __post_init__(self) -> None:
        if self.ceiling < 1:
            raise ValueError(f"concurrency must be at least 1, got {self.ceiling}")
        self.floor = max(1, min(self.floor, self.ceiling))
        self.limit = self.limit or self.ceiling
        self.lowest = self.limit

    def on_success(self) -> None:
        """One request succeeded: after ``limit`` of them in a row, allow one more."""
        self._streak += 1
        if self.limit < self.ceiling and self._streak >= self.limit:
            self.limit += 1
            self._streak = 0

    def on_rate_limit(self, retry_after: float | None = None) -> float:
        """A 429: halve the limit (once per burst) and pause; returns the pause in seconds."""
        now = self.clock()
        self.rate_limits += 1
        pause = DEFAULT_PAUSE if retry_after is None else max(0.0, float(retry_after))
        self.paused_until = max(self.paused_until, now + pause)
        # the requests already in flight when we cut were sent under the old limit: their 429s
        # are the same signal, not a new one
        if now - self._last_cut > max(pause, 0.05):
            self.limit = max(self.floor, self.limit // 2)
            self.lowest = min(self.lowest, self.limit)
            self.decreases += 1
            self._last_cut = now
        self._streak = 0
        return pause

    def waiting(self) -> float:
        """Seconds left in the current rate-limit pause (0 when not paused)."""
        return max(0.0, self.paused_until - self.clock())


class AdaptiveLimiter:
    """``async with limiter:`` admits at most ``limiter.limit`` callers at once.

    Report outcomes with :meth:`success` and :meth:`rate_limited` (the ``RateLimitError``'s
    ``retry_after``); while paused after a 429, no new caller is admitted. A drop-in for an
    ``asyncio.Semaphore(n)``: ``AdaptiveLimiter(n)``.
    """

    def __init__(self, concurrency: int, *, floor: int = 1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.aimd = AIMD(int(concurrency), floor=floor, clock=clock)
        self.in_flight = 0
        self._cond: asyncio.Condition | None = None

    # -- reading (any thread) ----------------------------------------------------------------
    @property
    def limit(self) -> int:
        return self.aimd.limit

    @property
    def ceiling(self) -> int:
        return self.aimd.ceiling

    def waiting(self) -> float:
        """Seconds left before new requests may start again after a rate limit."""
        return self.aimd.waiting()

    def __repr__(self) -> str:
        w = self.waiting()
        pause = f", paused {w:.1f} s" if w else ""
        return (f"AdaptiveLimiter(limit={self.limit}/{self.ceiling}, in_flight={self.in_flight}"
                f"{pause})")

    # -- reporting ---------------------------------------------------------------------------
    def success(self) -> None:
        """Record a success (the limit grows back slowly; waiters wake at release)."""
        self.aimd.on_success()

    def rate_limited(self, retry_after: float | None = None) -> float:
        """Record a 429; returns how long new requests now wait."""
        return self.aimd.on_rate_limit(retry_after)

    # -- admission ---------------------------------------------------------------------------
    def _condition(self) -> asyncio.Condition:
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    async def acquire(self) -> None:
        cond = self._condition()
        async with cond:
            while True:
                pause = self.aimd.waiting()
                if pause > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(cond.wait(), timeout=pause)
                    continue
                if self.in_flight < self.aimd.limit:
                    self.in_flight += 1
                    return
                await cond.wait()

    async def release(self) -> None:
        cond = self._condition()
        async with cond:
            self.in_flight -= 1
            cond.notify_all()

    async def __aenter__(self) -> AdaptiveLimiter:
        await self.acquire()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.release()
