"""Record and replay model streams, for offline demos and notebooks in CI.

A cassette is a JSON Lines file: one line per recorded exchange, holding the normalised request
(provider, model, messages, parameters, schema — never a key or a header) and the events the
front ends saw, each with its time offset so a replay can keep the original pace::

    {"key": "…", "request": {...}, "events": [[0.41, "r", "Okay"], [0.45, "c", "Hi"], …]}

Replay feeds the same events into the same Completion and renderers; the Completion is marked
``replayed`` and the display says so. A request with no recording is a clear error that shows
what was asked.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .errors import CassetteMissError, QwqError
from .events import (
    ContentDelta,
    Event,
    Finish,
    ReasoningDelta,
    Reclassified,
    ToolCallDelta,
    Usage,
)

if TYPE_CHECKING:
    from .client import _Call
    from .request import PreparedRequest

Mode = Literal["record", "replay", "auto"]
MODES = ("record", "replay", "auto")


def normalized_request(req: PreparedRequest) -> dict[str, Any]:
    """What identifies a request: provider, model, messages, parameters and schema."""
    return {
        "provider": req.provider,
        "model": req.model,
        "messages": [{"role": m.get("role"), "content": m.get("content")} for m in req.messages],
        "params": {k: req.params[k] for k in sorted(req.params)},
        "schema": req.json_schema,
    }


def request_key(norm: dict[str, Any]) -> str:
    blob = json.dumps(norm, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def encode(ev: Event) -> list[Any]:
    t = type(ev)
    if t is ReasoningDelta:
        return ["r", ev.text]  # type: ignore[union-attr]
    if t is ContentDelta:
        return ["c", ev.text]  # type: ignore[union-attr]
    if t is ToolCallDelta:
        return ["t", ev.index, ev.id, ev.name, ev.arguments]  # type: ignore[union-attr]
    if t is Usage:
        u: Usage = ev  # type: ignore[assignment]
        d = {k: getattr(u, k) for k in u.__slots__ if getattr(u, k) is not None}  # type: ignore[attr-defined]
        return ["u", d]
    if t is Reclassified:
        return ["x", ev.text]  # type: ignore[union-attr]
    f: Finish = ev  # type: ignore[assignment]
    return ["f", f.reason, f.raw]


def decode(item: list[Any]) -> Event:
    kind = item[0]
    if kind == "r":
        return ReasoningDelta(item[1])
    if kind == "c":
        return ContentDelta(item[1])
    if kind == "t":
        return ToolCallDelta(item[1], item[2], item[3], item[4])
    if kind == "u":
        return Usage(**item[1])
    if kind == "f":
        return Finish(item[1], item[2])
    if kind == "x":
        return Reclassified(item[1])
    raise ValueError(f"unknown event kind {kind!r} in cassette")


def _speed(speed: float | None) -> float:
    """An explicit speed wins; else ``QWQ_REPLAY_SPEED`` (e.g. 0 in CI: replay at once); else 1."""
    if speed is None:
        env = os.environ.get("QWQ_REPLAY_SPEED", "").strip()
        speed = float(env) if env else 1.0
    if not isinstance(speed, (int, float)) or isinstance(speed, bool) or not speed >= 0 \
            or speed == float("inf"):
        raise QwqError(f"Replay speed must be a number ≥ 0 (0 replays at once); got {speed!r}.")
    return float(speed)


class Cassette:
    """A JSON Lines file of recorded exchanges.

    ``mode``: ``"replay"`` (never touch the network), ``"record"`` (always call the provider
    and store the result) or ``"auto"`` (replay what is there, record what is not).
    ``speed``: 1.0 keeps the original pace, 2.0 is twice as fast, 0 replays at once.
    """

    def __init__(self, path: str | os.PathLike[str], mode: str = "replay",
                 speed: float | None = None) -> None:
        if mode not in MODES:
            raise QwqError(f"Cassette mode must be one of {', '.join(MODES)}; got {mode!r}.")
        self.path = Path(path)
        self.mode: str = mode
        self.speed = _speed(speed)
        self._entries: dict[str, dict[str, Any]] = {}
        self._fresh: set[str] = set()  # keys recorded by this object: a repeat adds a take
        self._played: dict[str, int] = {}  # replays per key: repeats get the takes in turn
        if mode != "replay":  # a recording that cannot be saved fails now, not after a reply
            _check_writable(self.path)
        if self.path.exists():
            self._load()
        elif mode == "replay":
            raise QwqError(f"No recording at {self.path}: record one first with mode='record' "
                           "(or %qwq record PATH).")

    def __repr__(self) -> str:
        return f"Cassette({str(self.path)!r}, mode={self.mode!r}, {len(self._entries)} recordings)"

    def __len__(self) -> int:
        return len(self._entries)

    def _load(self) -> None:
        for n, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                self._entries[entry["key"]] = entry
            except (ValueError, KeyError) as e:
                raise QwqError(f"{self.path}:{n}: not a cassette line ({e}).") from None

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            for entry in self._entries.values():
                f.write(json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n")
        tmp.replace(self.path)

    # -- lookup ------------------------------------------------------------------------------
    def _lookup(self, req: PreparedRequest) -> dict[str, Any] | None:
        return self._entries.get(request_key(normalized_request(req)))

    def _replaying(self, req: PreparedRequest) -> bool:
        return self.mode == "replay" or (self.mode == "auto" and self._lookup(req) is not None)

    def _miss(self, req: PreparedRequest) -> CassetteMissError:
        norm = normalized_request(req)
        asked = json.dumps(norm, ensure_ascii=False)
        if len(asked) > 600:
            asked = asked[:600] + "…"
        last = norm["messages"][-1]["content"] if norm["messages"] else ""
        close = [e["request"]["messages"][-1]["content"] for e in self._entries.values()
                 if e["request"]["messages"]][:5]
        hint = ("\nRecorded prompts: " + "; ".join(repr(str(c)[:60]) for c in close)) if close else ""
        return CassetteMissError(
            f"No recording in {self.path} for this request (prompt {str(last)[:80]!r}). "
            f"Asked: {asked}{hint}\nRecord it with mode='record' (or %qwq record), or change "
            "the prompt/parameters back to a recorded one.")

    # -- play --------------------------------------------------------------------------------
    def play(self, call: _Call, live: Callable[[], Iterator[Event]]) -> Iterator[Event]:
        """Replay ``call``'s request, or run ``live()`` and record it."""
        if self._replaying(call.req):
            entry = self._lookup(call.req)
            if entry is None:
                raise self._miss(call.req)
            entry = {**entry, "events": self._take(entry)}
            t0 = time.perf_counter()
            for dt, ev in self._events(entry):
                if self.speed:
                    wait = t0 + dt / self.speed - time.perf_counter()
                    if wait > 0:
                        time.sleep(wait)
                self._fold(call, ev)
                yield ev
            self._done(call, entry)
            return
        recorded: list[list[Any]] = []
        t0 = time.perf_counter()
        for ev in live():
            recorded.append([round(time.perf_counter() - t0, 3), *encode(ev)])
            yield ev
        self._store(call, recorded)

    async def aplay(self, call: _Call,
                    live: Callable[[], AsyncIterator[Event]]) -> AsyncIterator[Event]:
        """Async twin of :meth:`play`."""
        if self._replaying(call.req):
            entry = self._lookup(call.req)
            if entry is None:
                raise self._miss(call.req)
            entry = {**entry, "events": self._take(entry)}
            t0 = time.perf_counter()
            for dt, ev in self._events(entry):
                if self.speed:
                    wait = t0 + dt / self.speed - time.perf_counter()
                    if wait > 0:
                        await asyncio.sleep(wait)
                self._fold(call, ev)
                yield ev
            self._done(call, entry)
            return
        recorded: list[list[Any]] = []
        t0 = time.perf_counter()
        async for ev in live():
            recorded.append([round(time.perf_counter() - t0, 3), *encode(ev)])
            yield ev
        self._store(call, recorded)

    def _take(self, entry: dict[str, Any]) -> list[list[Any]]:
        """The recorded events for this replay: the same request asked again (``runs=3`` of
        one setting) gets the next take, cycling through them."""
        takes = [entry["events"], *entry.get("more", ())]
        n = self._played.get(entry["key"], 0)
        self._played[entry["key"]] = n + 1
        return takes[n % len(takes)]

    def _events(self, entry: dict[str, Any]) -> Iterator[tuple[float, Event]]:
        for item in entry["events"]:
            yield item[0], decode(item[1:])

    @staticmethod
    def _fold(call: _Call, ev: Event) -> None:
        call.completion.add(ev)

    @staticmethod
    def _done(call: _Call, entry: dict[str, Any]) -> None:
        c = call.completion
        c.replayed = True
        c.reasoning_complete = bool(c.content_pieces) or c.reasoning_complete
        c.finish("complete")
        # the recorded timings, whatever the replay speed (time to first token, tokens/s…)
        t = c.timings
        events = entry["events"]
        first = next((e[0] for e in events if e[1] in ("r", "c")), None)
        answer = next((e[0] for e in events if e[1] == "c"), None)
        if first is not None:
            t.first_token = t.start + first
        if answer is not None and c.reasoning_pieces:
            t.reasoning_end = t.start + answer
        if events:
            t.end = t.start + events[-1][0]

    def _store(self, call: _Call, recorded: list[list[Any]]) -> None:
        if call.completion.status != "complete":
            return  # never record a broken or stopped stream
        norm = normalized_request(call.req)
        key = request_key(norm)
        old = self._entries.get(key)
        if old is not None and key in self._fresh:  # asked again in this session: one more take
            old.setdefault("more", []).append(recorded)
        else:
            self._entries[key] = {
                "key": key,
                "request": norm,
                "events": recorded,
                "recorded": time.strftime("%Y-%m-%d"),
            }
            self._fresh.add(key)
        self._save()


def _check_writable(path: Path) -> None:
    """Refuse a recording path that cannot be written, before anything streams."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    above = next((p for p in path.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise QwqError(f"Cannot record to {str(path)!r}: {str(above)!r} is a file, not a "
                       "folder. Choose another path (nothing was sent).")
    try:
        if path.is_dir():
            raise IsADirectoryError(f"{path} is a directory")
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("a", encoding="utf-8"):
            pass
        tmp.unlink()
    except OSError as e:
        raise QwqError(f"Cannot record to {str(path)!r}: {e.strerror or e}. Choose a path "
                       "in a folder you can write to (nothing was sent).") from None
