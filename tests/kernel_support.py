"""Talking to a real kernel (jupyter_client) in tests: one reply and its output."""

from __future__ import annotations

import queue
import time
from typing import Any


def collect(kc: Any, msg_id: str, timeout: float = 30, drain: bool = False
            ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The execute_reply for ``msg_id`` and the iopub messages of that request (``drain``: also
    what arrives just after the reply)."""
    iopub: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    reply = None
    while reply is None and time.monotonic() < deadline:
        try:
            m = kc.get_shell_msg(timeout=0.05)
            if m["parent_header"].get("msg_id") == msg_id:
                reply = m
        except queue.Empty:
            pass
        _take(kc, msg_id, iopub, 0.01)
    assert reply is not None, "the kernel did not answer (no execute_reply)"
    if drain:
        _take(kc, msg_id, iopub, 0.05)
    return reply, iopub


def _take(kc: Any, msg_id: str, into: list[dict[str, Any]], wait: float) -> None:
    while True:
        try:
            m = kc.get_iopub_msg(timeout=wait)
        except queue.Empty:
            return
        if m["parent_header"].get("msg_id") == msg_id:
            into.append(m)
