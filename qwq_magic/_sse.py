"""A byte-level Server-Sent Events decoder that knows nothing about providers.

It takes the response body as it arrives from the network (``resp.iter_bytes()``) and returns
complete events. Lines end at CR, LF or CRLF only, as the SSE spec says: U+2028, U+2029 and
U+0085 (legal unescaped inside JSON strings, and sent raw by real servers) are ordinary
characters here, unlike with ``str.splitlines``/httpx's ``iter_lines``. Nothing is decoded to
text: an event's data stays ``bytes`` (JSON parsers read UTF-8 bytes directly), so a multi-byte
character cut across two network reads is simply joined with the rest of its line.

Why not httpx-sse: its decoder (correctly, per the spec) ignores unknown field names, but
llama.cpp sends mid-stream errors as an ``error: {...}`` line that must not be dropped. This
decoder surfaces ``error`` lines as events named ``"error"``, and a bare JSON line (NDJSON, or
a whole JSON body sent as a stream) as an event named ``"json"``.

Limits: one line may be at most :data:`MAX_LINE_BYTES` long; a longer one raises
:class:`SSEError` (memory stays bounded whatever the server sends). A UTF-8 byte order mark at
the very start is dropped. Blank lines between events cost a few byte comparisons and nothing
more.
"""

from __future__ import annotations

__all__ = ["MAX_ERROR_BODY_BYTES", "MAX_LINE_BYTES", "SSEDecoder", "SSEError"]

MAX_LINE_BYTES = 16 * 1024 * 1024
"""The longest SSE line accepted (16 MiB); a longer one ends the stream with an error."""

MAX_ERROR_BODY_BYTES = 1024 * 1024
"""How much of an error response body is read (1 MiB); the rest is not read at all."""

_BOM = b"\xef\xbb\xbf"
_MESSAGE = "message"


class SSEError(ValueError):
    """The byte stream broke a limit (a line longer than :data:`MAX_LINE_BYTES`)."""


def _mib(n: int) -> str:
    return f"{n / 1048576:g} MiB"


class SSEDecoder:
    """Feed network bytes; get complete ``(event, data)`` pairs back (``data`` is bytes).

    >>> d = SSEDecoder()
    >>> d.feed(b'data: {"a": 1}\\n\\ndata: [DO') + d.feed(b"NE]\\n\\n")
    [('message', b'{"a": 1}'), ('message', b'[DONE]')]
    """

    __slots__ = ("_cr", "_data", "_event", "_part", "_part_len", "_start", "max_line")

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self.max_line = max_line
        self._event = ""  # the current event's name ("" = message)
        self._data: bytes | None = None  # first data line of the current event
        self._part: list[bytes] = []  # an unfinished line, in the pieces it arrived in
        self._part_len = 0
        self._cr = False  # the previous chunk ended with CR: a leading LF is its CRLF
        self._start = True  # nothing seen yet (a BOM may come)

    # -- bytes in ------------------------------------------------------------------------------
    def feed(self, chunk: bytes) -> list[tuple[str, bytes]]:
        """One network read (any size, cut anywhere) → the events it completed."""
        if self._start:
            chunk = self._strip_bom(chunk)
            if not chunk:
                return []
        if self._cr:
            self._cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if b"\r" in chunk:
            if chunk[-1:] == b"\r":
                self._cr = True
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if self._part:
            i = chunk.find(b"\n")
            if i == -1:
                self._more(chunk)
                return []
            self._more(chunk[:i])
            first = b"".join(self._part)
            self._part = []
            self._part_len = 0
            lines = chunk[i + 1:].split(b"\n")
            lines[0:0] = [first]
        else:
            lines = chunk.split(b"\n")
        rest = lines.pop()
        if rest:
            self._more(rest)
        out: list[tuple[str, bytes]] = []
        for line in lines:
            if not line:
                # a blank line dispatches the event collected so far
                if self._data is not None:
                    out.append((self._event or _MESSAGE, self._data))
                    self._data = None
                self._event = ""
            elif line[:6] == b"data: ":
                if self._data is None:
                    self._data = line[6:]
                else:
                    self._data += b"\n" + line[6:]
            else:
                ev = self._field(line)
                if ev is not None:
                    out.append(ev)
        return out

    def close(self) -> list[tuple[str, bytes]]:
        """End of the body: an unfinished last line and a trailing event without its blank
        line still count."""
        out: list[tuple[str, bytes]] = []
        if self._part:
            out = self.feed(b"\n")
        if self._data is not None:
            out.append((self._event or _MESSAGE, self._data))
            self._data = None
        self._event = ""
        return out

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a complete line."""
        return self._part_len

    # -- internals -----------------------------------------------------------------------------
    def _strip_bom(self, chunk: bytes) -> bytes:
        head = b"".join(self._part) + chunk if self._part else chunk
        if len(head) < len(_BOM) and _BOM.startswith(head):
            self._part = [head]  # maybe the start of a BOM: wait for more
            self._part_len = len(head)
            return b""
        self._part = []
        self._part_len = 0
        self._start = False
        return head[len(_BOM):] if head.startswith(_BOM) else head

    def _more(self, piece: bytes) -> None:
        self._part_len += len(piece)
        if self._part_len > self.max_line:
            n = self._part_len
            self._part = []
            self._part_len = 0
            raise SSEError(f"a stream line grew past {_mib(self.max_line)} without ending "
                           f"({n:,} bytes so far); the server is not sending SSE lines")
        self._part.append(piece)

    def _field(self, line: bytes) -> tuple[str, bytes] | None:
        """Any line but ``data: …`` and blank (comments, other fields, NDJSON)."""
        if line[:1] == b":":
            return None  # comment / keep-alive (": OPENROUTER PROCESSING")
        if line[:1] in (b"{", b"["):
            return ("json", line)  # not SSE at all: an NDJSON line or a bare JSON body
        name, sep, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data = value if self._data is None else self._data + b"\n" + value
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"error" and sep:
            return ("error", value)  # llama.cpp: "error: {...}", a complete event on its own
        elif name.lstrip()[:1] in (b"{", b"["):
            return ("json", line)
        return None
