"""Queueing for servers that answer one request at a time (llama-cpp-python's server): a
second concurrent stream to such a server waits for the first instead of interrupting it (it
would otherwise drop the connection and be retried). Keyed by base URL, shared by every client
and every event loop of the process."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator

_GATES: dict[str, threading.Lock] = {}
_GUARD = threading.Lock()
POLL_S = 0.02


def _gate(key: str) -> threading.Lock:
    with _GUARD:
        return _GATES.setdefault(key, threading.Lock())


@contextlib.contextmanager
def hold(key: str | None) -> Iterator[None]:
    """Hold the server's one slot (no-op for ``None``: servers that take many at once)."""
    if key is None:
        yield
        return
    gate = _gate(key)
    gate.acquire()
    try:
        yield
    finally:
        gate.release()


@contextlib.asynccontextmanager
async def ahold(key: str | None) -> AsyncIterator[None]:
    """Async :func:`hold`: waits without blocking the loop, and a cancelled wait takes
    nothing (the lock is polled, never acquired by a thread that could outlive the wait)."""
    if key is None:
        yield
        return
    gate = _gate(key)
    while not gate.acquire(blocking=False):
        await asyncio.sleep(POLL_S)
    try:
        yield
    finally:
        gate.release()
