"""A small line-level Server-Sent Events decoder that knows nothing about providers.

Why not httpx-sse: its decoder (correctly, per the spec) ignores unknown field names, but
llama.cpp sends mid-stream errors as an ``error: {...}`` line that must not be dropped. This
decoder surfaces ``error`` lines as events named ``"error"``. It takes lines as httpx's
``iter_lines`` yields them (\\n, \\r\\n and \\r endings already split, UTF-8 already decoded
incrementally, so multibyte characters cut across network reads arrive whole).
"""

from __future__ import annotations

__all__ = ["SSEDecoder"]


class SSEDecoder:
    """Feed lines; get ``(event, data)`` pairs back when an event is complete."""

    __slots__ = ("_data", "_event")

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> tuple[str, str] | None:
        # fast path: a single "data: {...}" line (the overwhelmingly common case) is kept and
        # dispatched on the blank line that follows
        if not line:
            if not self._data:
                self._event = ""
                return None
            ev = (self._event or "message", "\n".join(self._data))
            self._event = ""
            self._data = []
            return ev
        if line[0] == ":":
            return None  # comment / keep-alive (": OPENROUTER PROCESSING")
        name, sep, value = line.partition(":")
        if sep and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "error":
            # llama.cpp: "error: {...}" — a complete event on its own line
            return ("error", value)
        elif name.startswith("{"):
            # not SSE at all: an NDJSON line or a bare JSON body
            return ("json", line)
        return None

    def close(self) -> tuple[str, str] | None:
        """End of stream: a trailing event without its blank line still counts."""
        return self.feed("")
