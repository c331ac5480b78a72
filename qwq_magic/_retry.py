"""Retry policy as small pure functions (tests call them directly)."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to retry before the first token, and the longest wait accepted."""

    max_retries: int = 2
    max_wait: float = 60.0


RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
BASE_DELAY = 0.5
MAX_DELAY = 8.0


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the server asked us to wait: ``retry-after-ms``, then ``retry-after`` given in
    seconds or as an HTTP date. ``None`` when absent or unreadable."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    ra = headers.get("retry-after")
    if not ra:
        return None
    try:
        return max(0.0, float(ra))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(ra).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def backoff(attempt: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: 0.5 s, 1 s, 2 s … capped at 8 s, minus up to 25 %."""
    delay = min(BASE_DELAY * 2**attempt, MAX_DELAY)
    jitter = 1 - 0.25 * (rng or random).random()
    return delay * jitter


def should_retry(status: int, code: object = None, final_codes: frozenset[object] = frozenset()
                 ) -> bool:
    """Whether an HTTP error is worth retrying (before anything streamed). ``final_codes``: the
    provider's error codes after which waiting cannot help (its ``Preset.final_codes``)."""
    if code in final_codes:
        return False
    return status in RETRY_STATUSES or status >= 500


def next_delay(attempt: int, headers: Mapping[str, str], rng: random.Random | None = None) -> float:
    """The wait before retry number ``attempt`` (0-based): the server's word, else backoff."""
    ra = retry_after(headers)
    return ra if ra is not None else backoff(attempt, rng)
