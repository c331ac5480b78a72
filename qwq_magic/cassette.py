"""Record and replay model streams, for offline demos, lessons and notebooks in CI.

A cassette deals in **requests and timelines**. A recorded reply (a *take*) is the normalised
request (provider, model, messages, parameters, schema — never a key or a header), its key, and
the reply's timeline: the events the front ends saw, each with its time offset, so a replay
keeps the original pace::

    {"key": "…", "request": {...}, "events": [[0.41, "r", "Okay"], [0.45, "c", "Hi"], …]}

The file is JSON Lines with **one line per take**, appended as each reply ends (the file is
never rewritten). The same request recorded three times is three lines, and replays in the
recorded order; after the last take the cassette cycles back to the first
(``exhausted="cycle"``, the default) or raises :class:`CassetteExhaustedError`
(``exhausted="raise"``). Files written by older versions (one line per request, more takes under
``"more"``) still load.

Replay feeds the timeline into the same Completion and renderers (:meth:`Cassette.play` and
:meth:`Cassette.aplay` are thin sync/async shells over one timeline and one :class:`Pacer`);
the Completion is marked ``replayed`` and the display says so. :meth:`Cassette.pause` holds every
replay in place until :meth:`Cassette.resume`; ``speed`` may change at any time.

:func:`from_notebook` builds a cassette from a saved, executed notebook: each ``%%qwq`` output
carries its request key and reply in the ``"qwq_magic"`` metadata (:func:`qwq_magic.runlog.
provenance`), so a notebook run once live replays offline, with its original timing.

A request with no recording is a :class:`~qwq_magic.errors.CassetteMissError` that says which
part differs from the nearest recorded request (the model, a named parameter, the prompt).
"""

from __future__ import annotations

import asyncio
import difflib
import hashlib
import json
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
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
    from ._call import Call as _Call
    from .request import PreparedRequest

Mode = Literal["record", "replay", "auto"]
MODES = ("record", "replay", "auto")
EXHAUSTED = ("cycle", "raise")
POLL_S = 0.05  # a paused replay looks at the clock this often
PROMPT_CHARS = 300  # the prompt kept in an output's provenance (for a replay's miss message)

__all__ = ["Cassette", "CassetteExhaustedError", "CassetteMissError", "Pacer", "Take",
           "decode", "encode", "from_notebook", "normalized_request", "request_key"]


class CassetteExhaustedError(CassetteMissError):
    """Every recorded take of this request has been played and the cassette was made with
    ``exhausted="raise"``."""


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
        try:
            speed = float(env) if env else 1.0
        except ValueError:
            raise QwqError(f"QWQ_REPLAY_SPEED must be a number ≥ 0; got {env!r}.") from None
    if not isinstance(speed, (int, float)) or isinstance(speed, bool) or not speed >= 0 \
            or speed == float("inf"):
        raise QwqError(f"Replay speed must be a number ≥ 0 (0 replays at once); got {speed!r}.")
    return float(speed)


@dataclass
class Take:
    """One recorded reply: the request (and its key) and the timeline ``[(seconds, event)]``."""

    key: str
    request: dict[str, Any]
    timeline: list[tuple[float, Event]]
    recorded: str | None = None
    source: str = "cassette"  # or "notebook"

    def to_line(self) -> dict[str, Any]:
        line: dict[str, Any] = {"key": self.key, "request": self.request,
                                "events": [[dt, *encode(ev)] for dt, ev in self.timeline]}
        if self.recorded:
            line["recorded"] = self.recorded
        return line

    @staticmethod
    def events(items: list[list[Any]]) -> list[tuple[float, Event]]:
        return [(float(it[0]), decode(it[1:])) for it in items]


@dataclass
class Pacer:
    """When each event of a timeline is due: ``remaining(dt)`` is how long to wait now before
    the event at offset ``dt`` (a paused cassette freezes the clock; ``speed`` 0 never waits).
    Pure apart from the clock, which the sync and async shells share."""

    cassette: Cassette
    start: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.start = self.cassette._virtual_now()

    def remaining(self, dt: float) -> float:
        cas = self.cassette
        if cas.paused:
            return POLL_S
        if not cas.speed:
            return 0.0
        return self.start + dt / cas.speed - cas._virtual_now()


class Cassette:
    """A JSON Lines file of recorded replies (see the module docstring).

    ``mode``: ``"replay"`` (never touch the network), ``"record"`` (always call the provider
    and append the reply) or ``"auto"`` (replay what is there, record what is not).
    ``speed``: 1.0 keeps the original pace, 2.0 is twice as fast, 0 replays at once.
    ``exhausted``: after the last take of a request, ``"cycle"`` back to the first or
    ``"raise"`` :class:`CassetteExhaustedError`.
    ``new=True`` (record mode) starts the file afresh instead of appending to it.
    """

    def __init__(self, path: str | os.PathLike[str] | None, mode: str = "replay",
                 speed: float | None = None, exhausted: str = "cycle", *,
                 new: bool = False, takes: list[Take] | None = None) -> None:
        if mode not in MODES:
            raise QwqError(f"Cassette mode must be one of {', '.join(MODES)}; got {mode!r}.")
        if exhausted not in EXHAUSTED:
            raise QwqError(f"exhausted must be 'cycle' or 'raise'; got {exhausted!r}.")
        self.path = Path(path) if path is not None else None
        self.path_is_notebook = False
        self.mode: str = mode
        self.speed = _speed(speed)
        self.exhausted = exhausted
        self._takes: dict[str, list[Take]] = {}
        self._played: dict[str, int] = {}  # replays per key: repeats get the takes in turn
        self._lock = threading.Lock()
        self._paused_at: float | None = None
        self._paused_total = 0.0
        if self.path is not None and self.path.suffix == ".ipynb":  # a notebook's own replies
            if mode != "replay":
                raise QwqError(f"{self.path} is a notebook: it can only be replayed "
                               "(record into a .jsonl file).")
            takes = [*(takes or ()), *notebook_takes(self.path)]
            self.path_is_notebook = True
        for take in takes or ():
            self._add(take)
        if self.path is not None and not self.path_is_notebook:
            if mode != "replay":  # a recording that cannot be saved fails now, not after a reply
                _check_writable(self.path)
            if new and self.path.exists():
                if mode != "record":
                    raise QwqError("new=True starts a fresh recording: use it with mode='record'.")
                self.path.unlink()
            if self.path.exists():
                self._load()
            elif mode == "replay" and not takes:
                raise QwqError(f"No recording at {self.path}: record one first with "
                               "mode='record' (or %qwq record PATH).")
        elif mode != "replay":
            raise QwqError("A cassette without a file can only replay: give a path to record.")

    def __repr__(self) -> str:
        where = str(self.path) if self.path is not None else "<takes>"
        return (f"Cassette({where!r}, mode={self.mode!r}, {len(self._takes)} requests, "
                f"{self.takes} replies{', paused' if self.paused else ''})")

    def __len__(self) -> int:
        return len(self._takes)

    @property
    def takes(self) -> int:
        """How many replies are recorded (all takes of all requests)."""
        return sum(len(v) for v in self._takes.values())

    def _add(self, take: Take) -> None:
        self._takes.setdefault(take.key, []).append(take)

    def _load(self) -> None:
        assert self.path is not None
        for n, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                key, req = entry["key"], entry["request"]
                for events in [entry["events"], *entry.get("more", ())]:  # "more": old files
                    self._add(Take(key, req, Take.events(events), entry.get("recorded")))
            except (ValueError, KeyError, TypeError, IndexError) as e:
                raise QwqError(f"{self.path}:{n}: not a cassette line ({e}).") from None

    def _append(self, take: Take) -> None:
        """One line at the end of the file: a recording is never rewritten."""
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(take.to_line(), ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(line)

    # -- pause and resume ---------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    def pause(self) -> None:
        """Hold every replay where it is (``%qwq replay --pause``); :meth:`resume` goes on."""
        if self._paused_at is None:
            self._paused_at = time.perf_counter()

    def resume(self) -> None:
        if self._paused_at is not None:
            self._paused_total += time.perf_counter() - self._paused_at
            self._paused_at = None

    def _virtual_now(self) -> float:
        """The replay clock: real time minus the time spent paused (frozen while paused)."""
        now = self._paused_at if self._paused_at is not None else time.perf_counter()
        return now - self._paused_total

    # -- lookup ------------------------------------------------------------------------------
    def _key(self, req: PreparedRequest) -> str:
        return request_key(normalized_request(req))

    def _replaying(self, req: PreparedRequest) -> bool:
        return self.mode == "replay" or (self.mode == "auto" and self._key(req) in self._takes)

    def next_take(self, req: PreparedRequest) -> Take:
        """The take a replay of ``req`` plays now: the recorded ones in order, then cycling (or
        :class:`CassetteExhaustedError`); :class:`CassetteMissError` when none is recorded."""
        key = self._key(req)
        takes = self._takes.get(key)
        if not takes:
            raise self._miss(req)
        with self._lock:
            n = self._played.get(key, 0)
            if n >= len(takes) and self.exhausted == "raise":
                raise CassetteExhaustedError(
                    f"All {len(takes)} recorded replies to this request in {self._where()} have "
                    "been played. Record more takes (%qwq record PATH), or make the cassette with "
                    "exhausted='cycle' to start again from the first.")
            self._played[key] = n + 1
        return takes[n % len(takes)]

    def rewind(self) -> None:
        """Start every request from its first take again."""
        self._played.clear()

    def _where(self) -> str:
        return str(self.path) if self.path is not None else "the recording"

    def _miss(self, req: PreparedRequest) -> CassetteMissError:
        norm = normalized_request(req)
        last = norm["messages"][-1]["content"] if norm["messages"] else ""
        near = nearest(norm, [t[0].request for t in self._takes.values()])
        if near is None:
            detail = "the recording is empty"
        else:
            diffs = differences(norm, near)
            detail = "the nearest recorded request differs in " + "; ".join(diffs)
        return CassetteMissError(
            f"No recording in {self._where()} for this request (prompt {_short(last, 80)!r}): "
            f"{detail}.\nRecord it with mode='record' (or %qwq record), or change the "
            "prompt/parameters back to the recorded ones.")

    # -- play: one timeline, two thin shells ---------------------------------------------------
    def play(self, call: _Call, live: Callable[[], Iterator[Event]]) -> Iterator[Event]:
        """Replay ``call``'s request, or run ``live()`` and record it."""
        if self._replaying(call.req):
            take = self.next_take(call.req)
            pacer = Pacer(self)
            for dt, ev in take.timeline:
                while (wait := pacer.remaining(dt)) > 0:
                    time.sleep(min(wait, POLL_S) if self.paused else wait)
                call.completion.add(ev)
                yield ev
            _done(call, take)
            return
        recorded: list[tuple[float, Event]] = []
        t0 = time.perf_counter()
        for ev in live():
            recorded.append((round(time.perf_counter() - t0, 3), ev))
            yield ev
        self._store(call, recorded)

    async def aplay(self, call: _Call,
                    live: Callable[[], AsyncIterator[Event]]) -> AsyncIterator[Event]:
        """Async twin of :meth:`play`."""
        if self._replaying(call.req):
            take = self.next_take(call.req)
            pacer = Pacer(self)
            for dt, ev in take.timeline:
                while (wait := pacer.remaining(dt)) > 0:
                    await asyncio.sleep(min(wait, POLL_S) if self.paused else wait)
                call.completion.add(ev)
                yield ev
            _done(call, take)
            return
        recorded: list[tuple[float, Event]] = []
        t0 = time.perf_counter()
        async for ev in live():
            recorded.append((round(time.perf_counter() - t0, 3), ev))
            yield ev
        self._store(call, recorded)

    def _store(self, call: _Call, recorded: list[tuple[float, Event]]) -> None:
        if call.completion.status != "complete" or self.path is None:
            return  # never record a broken or stopped stream
        norm = normalized_request(call.req)
        take = Take(request_key(norm), norm, recorded, time.strftime("%Y-%m-%d"))
        self._add(take)
        self._append(take)


def _done(call: _Call, take: Take) -> None:
    c = call.completion
    c.replayed = True
    c.reasoning_complete = bool(c.content_pieces) or c.reasoning_complete
    c.finish("complete")
    # the recorded timings, whatever the replay speed (time to first token, tokens/s…)
    t = c.timings
    events = take.timeline
    first = next((dt for dt, ev in events if type(ev) in (ReasoningDelta, ContentDelta)), None)
    answer = next((dt for dt, ev in events if type(ev) is ContentDelta), None)
    if first is not None:
        t.first_token = t.start + first
    if answer is not None and c.reasoning_pieces:
        t.reasoning_end = t.start + answer
    if events:
        t.end = t.start + events[-1][0]


# -- misses: what differs from the nearest recorded request ---------------------------------
def _short(text: Any, n: int = 60) -> str:
    s = text if isinstance(text, str) else json.dumps(text, ensure_ascii=False, default=repr)
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 1] + "…"


def _prompt_of(req: dict[str, Any]) -> Any:
    msgs = req.get("messages")
    if isinstance(msgs, list):
        return [(m.get("role"), m.get("content")) for m in msgs]
    return req.get("prompt")  # a request read from a notebook: the prompt's start only


def differences(asked: dict[str, Any], recorded: dict[str, Any]) -> list[str]:
    """What differs between two normalised requests, worded for a person, most telling first:
    the provider, the model, each named parameter, the schema, the prompt (a short diff)."""
    out: list[str] = []
    for name in ("provider", "model"):
        if name in recorded and asked.get(name) != recorded.get(name):
            out.append(f"{name}: asked {asked.get(name)!r}, recorded {recorded.get(name)!r}")
    pa, pr = asked.get("params") or {}, recorded.get("params") or {}
    for name in sorted(set(pa) | set(pr)):
        if pa.get(name) != pr.get(name):
            a = "not set" if name not in pa else repr(pa[name])
            r = "not set" if name not in pr else repr(pr[name])
            out.append(f"{name}: asked {a}, recorded {r}")
    if "schema" in recorded and asked.get("schema") != recorded.get("schema"):
        out.append("the JSON schema")
    if "messages" in recorded:
        out.extend(_message_diff(asked.get("messages") or [], recorded["messages"] or []))
    elif isinstance(recorded.get("prompt"), str):  # read from a notebook: the prompt only
        msgs = [m for m in asked.get("messages") or [] if m.get("role") == "user"]
        text = str(msgs[-1].get("content") or "") if msgs else ""
        if text[:PROMPT_CHARS] != recorded["prompt"][:PROMPT_CHARS]:
            out.append(f"the prompt: {_word_diff(text, recorded['prompt'])}")
    return out or ["nothing the file shows (recorded by another qwq_magic version?)"]


def _message_diff(asked: list[dict[str, Any]], recorded: list[dict[str, Any]]) -> list[str]:
    if len(asked) != len(recorded):
        return [f"the conversation: asked {len(asked)} messages, recorded {len(recorded)}"]
    for i, (a, r) in enumerate(zip(asked, recorded, strict=True)):
        if a == r:
            continue
        what = "the prompt" if i == len(asked) - 1 else f"message {i + 1} ({a.get('role')})"
        at, rt = str(a.get("content") or ""), str(r.get("content") or "")
        return [f"{what}: {_word_diff(at, rt)}"]
    return []


def _word_diff(asked: str, recorded: str) -> str:
    """A short word diff: ``asked 'pun' where recorded 'joke'`` (the first change)."""
    aw, rw = asked.split(), recorded.split()
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=rw, b=aw, autojunk=False).get_opcodes():
        if op == "equal":
            continue
        rec, ask = " ".join(rw[i1:i2]), " ".join(aw[j1:j2])
        if op == "insert":
            return f"asked {_short(ask, 40)!r} extra (recorded {_short(recorded)!r})"
        if op == "delete":
            return f"recorded {_short(rec, 40)!r} is missing (recorded {_short(recorded)!r})"
        return f"asked {_short(ask, 40)!r} where the recording has {_short(rec, 40)!r}"
    return f"whitespace or roles differ (recorded {_short(recorded)!r})"


def nearest(asked: dict[str, Any], recorded: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The recorded request with the fewest differences (then the most similar prompt)."""
    if not recorded:
        return None
    prompt = json.dumps(_prompt_of(asked), ensure_ascii=False, default=repr)

    def score(r: dict[str, Any]) -> tuple[int, float]:
        n = len([d for d in differences(asked, r) if not d.startswith("nothing")])
        other = json.dumps(_prompt_of(r), ensure_ascii=False, default=repr)
        ratio = difflib.SequenceMatcher(a=prompt[:2000], b=other[:2000]).quick_ratio()
        return n, -ratio

    return min(recorded, key=score)


# -- a notebook is its own recording -------------------------------------------------------
def timeline_from_provenance(prov: dict[str, Any]) -> list[tuple[float, Event]]:
    """A reply's timeline rebuilt from an output's provenance: the reasoning spread from the
    first token to the end of thinking, the answer from there to the end, at the recorded
    times (time to first token, reasoning seconds, total seconds), then usage and finish."""
    reply = prov.get("reply") or {}
    timings = prov.get("timings") or {}
    reasoning, content = str(reply.get("reasoning") or ""), str(reply.get("content") or "")
    ttft = float(timings.get("ttft") or 0.0)
    total = float(timings.get("total") or ttft)
    think = timings.get("reasoning")
    r_end = ttft + float(think) if think is not None and reasoning else ttft
    r_end = min(max(r_end, ttft), max(total, ttft))
    out: list[tuple[float, Event]] = []
    out += [(t, ReasoningDelta(p)) for t, p in _spread(reasoning, ttft, r_end)]
    out += [(t, ContentDelta(p)) for t, p in _spread(content, r_end, max(total, r_end))]
    for i, tc in enumerate(reply.get("tool_calls") or ()):
        out.append((max(total, r_end), ToolCallDelta(i, tc.get("id"), tc.get("name"),
                                                     tc.get("arguments") or "")))
    usage = {k: v for k, v in (prov.get("usage") or {}).items()
             if k in Usage.__slots__ and v is not None}  # type: ignore[attr-defined]
    if prov.get("cost_kind") == "reported" and prov.get("cost") is not None:
        usage["cost_usd"] = prov["cost"]
    end = round(max(total, r_end), 3)
    if usage and not (prov.get("usage") or {}).get("counted"):
        out.append((end, Usage(**usage)))
    out.append((end, Finish(reply.get("finish_reason") or "stop", None)))
    return out


def _spread(text: str, start: float, end: float, piece: int = 12) -> list[tuple[float, str]]:
    """``text`` cut into pieces of a few characters (at spaces where it can), evenly over
    ``[start, end]``."""
    if not text:
        return []
    pieces: list[str] = []
    i = 0
    while i < len(text):
        j = min(len(text), i + piece)
        k = text.find(" ", j)
        j = k + 1 if 0 <= k < j + piece else j
        pieces.append(text[i:j])
        i = j
    n = len(pieces)
    step = (end - start) / n if n else 0.0
    return [(round(start + step * (m + 1), 3), p) for m, p in enumerate(pieces)]


def notebook_takes(path: str | os.PathLike[str]) -> list[Take]:
    """Every reply recorded in a saved notebook's outputs, in cell order."""
    p = Path(path)
    try:
        nb = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise QwqError(f"No notebook at {p}: give the path of a saved .ipynb.") from None
    except (OSError, ValueError) as e:
        raise QwqError(f"{p} is not a readable notebook ({e}).") from None
    takes: list[Take] = []
    for cell in nb.get("cells") or () if isinstance(nb, dict) else ():
        for out in cell.get("outputs") or () if isinstance(cell, dict) else ():
            prov = ((out.get("metadata") or {}).get("qwq_magic")
                    if isinstance(out, dict) else None)
            if not isinstance(prov, dict):
                continue
            req, reply = prov.get("request") or {}, prov.get("reply") or {}
            if not req.get("key") or reply.get("status") not in ("complete", None):
                continue  # only whole replies replay (a stopped one would mislead the class)
            request = {"provider": req.get("provider"), "model": req.get("model"),
                       "params": req.get("params") or {},
                       "prompt": req.get("prompt")}
            if "json_schema" in req:
                request["schema"] = req["json_schema"]
            takes.append(Take(req["key"], request, timeline_from_provenance(prov),
                              prov.get("time"), source="notebook"))
    return takes


def from_notebook(path: str | os.PathLike[str], speed: float | None = None,
                  exhausted: str = "cycle") -> Cassette:
    """A replay-only cassette of the replies stored in a saved, executed notebook."""
    if Path(path).suffix != ".ipynb":
        raise QwqError(f"{path} is not a notebook (.ipynb); replay a cassette with "
                       "%qwq replay PATH.jsonl.")
    cas = Cassette(path, mode="replay", speed=speed, exhausted=exhausted)
    if not cas.takes:
        raise QwqError(f"{path} holds no recorded replies: run its %%qwq cells live once, save "
                       "it, then replay it (each %%qwq output keeps its reply in its metadata).")
    return cas


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
