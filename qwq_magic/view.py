"""One view of a reply: the wording every front end shows, decided once.

Given a :class:`~qwq_magic.completion.Completion` (and whether it is live, whether reasoning is
hidden), :func:`view_of` returns a :class:`ReplyView`: the fold's summary ("Thinking… 120 tokens
· 3.2 s" / "Thought for 12.3 s · 1,234 tokens"), a progress line while nothing visible arrives
("Waiting for the model… 1.2 s", "No new tokens for 3.1 s"), the banners (interrupted, stopped,
error, cut off by max_tokens while thinking or while answering, notes) and the footer (model,
tokens reported or counted, tok/s, first token, cost). The magic's HTML/Markdown/plain bundles
(:mod:`qwq_magic.display`), the terminal renderer, the chat panel's Python side and its JS all
read these strings; none of them words a status on its own.

Also here: :class:`Throttle` (how often a live output may redraw: a rate while thinking, a rate
while answering, and a cap on bytes per second whatever the model's speed) and :class:`Ticker`
(a daemon thread that keeps the clock moving while nothing arrives). Pure and cheap to import.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from .completion import Completion
from .errors import fmt_usd

Surface = Literal["magic", "panel", "terminal"]
Kind = Literal["warn", "error", "note"]

#: seconds without a new token after which the live display says so (and the clock ticks)
STALL_S = 1.0

TRUNCATED_MSG = ("Thinking used up max_tokens before an answer; raise --max-tokens "
                 "(e.g. --max-tokens 4096) or lower the thinking budget, or run %qwq continue.")
_CUT_ANSWER = ("✂ The answer was cut off by max_tokens; raise --max-tokens "
               "(e.g. --max-tokens 4096) or run %qwq continue to go on.")
_PANEL_CUT_THINKING = ("Thinking used up max_tokens before an answer; raise max_tokens under "
                       "Sampling (or lower the thinking budget) and ask again.")
_PANEL_CUT_ANSWER = ("✂ The answer was cut off by max_tokens; raise max_tokens under Sampling "
                     "and ask again.")


@dataclass(slots=True)
class ReplyView:
    """What a front end shows for one reply, as plain strings (serialisers add the markup)."""

    status: str  # the Completion's status
    live: bool  # still streaming: bounded renders, a moving clock
    thinking: bool  # the reasoning fold is open (the model is still thinking)
    show_reasoning: bool  # there is reasoning and it is not hidden
    summary: str  # the fold's summary line ("" without reasoning)
    progress: str  # a status line while nothing visible arrives ("" otherwise)
    banners: list[tuple[Kind, str]] = field(default_factory=list)
    footer_parts: list[str] = field(default_factory=list)
    replayed: bool = False

    @property
    def footer(self) -> str:
        """``model · 10 → 20 tokens · 35.2 tok/s · first token 0.42 s · ≈$0.000123 · ↻ replay``."""
        return " · ".join([*self.footer_parts, *(["↻ replay"] if self.replayed else [])])

    @property
    def status_line(self) -> tuple[str, str]:
        """(kind, text) of the one line a compact view (the panel) shows under the answer:
        the first banner, else the progress line; kind is warn/error/note/progress or ''."""
        if self.banners:
            return self.banners[0]
        if self.progress:
            return "progress", self.progress
        return "", ""


# -- small wording helpers -------------------------------------------------------------------
def tokens(n: int) -> str:
    """``1 token`` / ``1,234 tokens``."""
    return f"{n:,} token" + ("" if n == 1 else "s")


def fmt_cost(cost: float) -> str:
    """A sum in US dollars as every front end (and the budget's messages) shows it."""
    return fmt_usd(cost)


def elapsed(c: Completion, now: float | None = None) -> float:
    t = c.timings
    if t.start <= 0:
        return t.reasoning_s or 0.0
    return (t.end or (now if now is not None else time.perf_counter())) - t.start


def is_thinking(c: Completion) -> bool:
    """Reasoning arrived, no answer yet, still streaming, and the model has not closed it
    (a reclassified ``</think>`` makes a reply "thought" even before its answer arrives)."""
    return c.thinking and not c.reasoning_complete


def reasoning_count(c: Completion) -> tuple[int, bool]:
    """(reasoning tokens, counted): the provider's figure, else the deltas counted here."""
    n = c.usage.reasoning_tokens if c.usage else None
    return (n, False) if n else (c.reasoning_events, True)


def summary_text(c: Completion, now: float | None = None) -> str:
    """``Thinking… 120 tokens · 3.2 s`` while reasoning, ``Thought for 12.3 s · 1,234 tokens``
    after."""
    n, _counted = reasoning_count(c)
    if is_thinking(c):
        return f"Thinking… {tokens(n)} · {elapsed(c, now):.1f} s"
    secs = c.timings.reasoning_s
    if secs is None:
        secs = elapsed(c, now)
    return f"Thought for {secs:.1f} s · {tokens(n)}"


def _usage_counted(c: Completion) -> bool:
    """The usage was counted from the stream rather than reported by the server."""
    u = c.usage
    return bool(getattr(u, "counted", False) or getattr(c, "usage_counted", False))


def footer_parts(c: Completion, now: float | None = None) -> list[str]:
    """The footer's parts; counted figures carry ``~`` and say "counted"."""
    parts: list[str] = []
    if c.model:
        parts.append(c.model)
    u = c.usage
    counted = _usage_counted(c)
    tps: float | None = None
    if u is not None and (u.prompt_tokens is not None or u.completion_tokens is not None):
        pin = "?" if u.prompt_tokens is None else f"{u.prompt_tokens:,}"
        pout = "?" if u.completion_tokens is None else f"{u.completion_tokens:,}"
        parts.append(f"~{pin} → ~{pout} tokens (counted)" if counted
                     else f"{pin} → {pout} tokens")
        tps = _rate(c, u.completion_tokens)
    elif c.status != "streaming" and (n := c.reasoning_events + c.content_events):
        # no usage from the server: count the deltas (≈ tokens), and say so
        parts.append(f"~{tokens(n)} (counted)")
        counted = True
        tps = _rate(c, n)
    if tps is not None:
        parts.append(("~" if counted else "") + f"{tps:.1f} tok/s")
    if c.timings.start > 0 and c.timings.ttft is not None:
        parts.append(f"first token {c.timings.ttft:.2f} s")
    if (cost := c.cost) is not None:
        parts.append(("≈" if c.cost_is_estimate or counted else "") + fmt_cost(cost))
    return parts


def _rate(c: Completion, n: int | None) -> float | None:
    """Tokens per second from the first token on; None when the tokens arrived all at once
    (a non-streaming reply: the figure would be absurd)."""
    t = c.timings
    if not n or t.first_token is None:
        return None
    span = (t.end or time.perf_counter()) - t.first_token
    return n / span if span >= 0.05 else None


def footer_text(c: Completion) -> str:
    """``model · 10 → 20 tokens · 35.2 tok/s · first token 0.42 s · ≈$0.000123``."""
    parts = footer_parts(c)
    if c.replayed:
        parts.append("↻ replay")
    return " · ".join(parts)


def _error_line(e: BaseException | None) -> str:
    if e is None:
        return "error"
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


def banners(c: Completion, note: str | None = None, surface: Surface = "magic"
            ) -> list[tuple[Kind, str]]:
    """(kind, text) pairs: kind is ``warn``, ``error`` or ``note``."""
    out: list[tuple[Kind, str]] = []
    if c.status == "interrupted":
        out.append(("warn", "⏹ interrupted — partial output kept"))
    elif c.status == "stopped":
        out.append(("warn", "⏹ stopped — partial output kept"))
    elif c.status == "error":
        err = _error_line(c.error) if surface == "panel" else (
            str(c.error) if c.error is not None else "error")
        out.append(("error", "⚠ " + err))
    if c.finish_reason == "length" and c.status != "streaming":
        panel = surface == "panel"
        if c.reasoning_truncated or (is_thinking(c) or (c.reasoning_pieces and not c.content)):
            out.append(("warn", _PANEL_CUT_THINKING if panel else TRUNCATED_MSG))
        else:
            out.append(("warn", _PANEL_CUT_ANSWER if panel else _CUT_ANSWER))
    if (c.status == "complete" and c.finish_reason == "stop" and c.params.get("stop")
            and c.reasoning and not c.content and not c.tool_calls):
        out.append(("warn", "A stop string ended the reply while the model was still thinking, "
                    "so there is no answer: the stop strings also match inside the reasoning. "
                    "Pick stop strings the reasoning will not contain, or drop them."))
    if note:
        out.append(("note", note))
    return out


def progress_text(c: Completion, *, hide_reasoning: bool = False, idle: float | None = None,
                  now: float | None = None) -> str:
    """A status line while nothing visible arrives: waiting for the first token, hidden
    thinking, or a stall of more than :data:`STALL_S` seconds (``idle`` = seconds since the last
    event, when the caller knows it)."""
    if c.status != "streaming":
        return ""
    if not c.reasoning_pieces and not c.answering:
        return f"Waiting for the model… {elapsed(c, now):.1f} s"
    if hide_reasoning and is_thinking(c):
        return summary_text(c, now)
    if idle is not None and idle >= STALL_S:
        return f"No new tokens for {idle:.1f} s…"
    return ""


def view_of(c: Completion, *, hide_reasoning: bool = False, note: str | None = None,
            surface: Surface = "magic", idle: float | None = None,
            now: float | None = None) -> ReplyView:
    """The wording of ``c`` as it is now (see the module docstring)."""
    live = c.status == "streaming"
    has_reasoning = bool(c.reasoning_pieces)
    return ReplyView(
        status=c.status,
        live=live,
        thinking=is_thinking(c),
        show_reasoning=has_reasoning and not hide_reasoning,
        summary=summary_text(c, now) if has_reasoning else "",
        progress=progress_text(c, hide_reasoning=hide_reasoning, idle=idle, now=now),
        banners=banners(c, note, surface),
        footer_parts=footer_parts(c, now),
        replayed=c.replayed,
    )


# -- pacing live output ----------------------------------------------------------------------
class Throttle:
    """When a live output may redraw: at most ``max_hz`` a second while answering,
    ``thinking_hz`` while thinking, and never more than ``max_bytes_per_s`` (the size of the
    last update, plus ``overhead`` for the message around it, spreads the next one out), so the
    traffic is bounded whatever the model's speed. The magic and the panel share it.
    """

    def __init__(self, max_hz: float = 20.0, *, thinking_hz: float | None = None,
                 max_bytes_per_s: float | None = None, thinking_bytes_per_s: float | None = None,
                 overhead: int = 600, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / max_hz if max_hz > 0 else 0.0
        hz = thinking_hz if thinking_hz is not None else min(max_hz, 12.0) if max_hz > 0 else 0
        self.thinking_interval = max(self.interval, 1.0 / hz) if hz > 0 else self.interval
        self.max_bytes_per_s = max_bytes_per_s
        self.thinking_bytes_per_s = thinking_bytes_per_s
        self.overhead = overhead
        self.clock = clock
        self.last: float | None = None
        self.last_bytes = 0
        self.sent_bytes = 0
        self.n = 0

    def wait(self, thinking: bool = False) -> float:
        """Seconds to wait before the next update is due (0: now)."""
        if self.last is None:
            return 0.0
        gap = self.thinking_interval if thinking else self.interval
        cap = self.thinking_bytes_per_s if thinking else self.max_bytes_per_s
        if cap:
            gap = max(gap, (self.last_bytes + self.overhead) / cap)
        return max(0.0, self.last + gap - self.clock())

    def due(self, thinking: bool = False) -> bool:
        """Whether an update now would be published (callers skip costly work otherwise)."""
        return self.wait(thinking) <= 0.0

    def idle(self) -> float:
        """Seconds since the last update (inf before the first)."""
        return float("inf") if self.last is None else self.clock() - self.last

    def sent(self, nbytes: int = 0) -> None:
        """Record an update of ``nbytes`` (the payload, without the message around it)."""
        self.last = self.clock()
        self.last_bytes = nbytes
        self.sent_bytes += nbytes
        self.n += 1


class Ticker:
    """Calls ``tick()`` every ``period`` seconds on a daemon thread until :meth:`stop` (or until
    ``tick`` returns False). The thread runs in a copy of the starting thread's context, so a
    kernel's output routing (its parent header) follows it."""

    def __init__(self, tick: Callable[[], bool], period: float = 0.5) -> None:
        self._tick = tick
        self.period = period
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Ticker:
        if self._thread is None:
            ctx = contextvars.copy_context()
            self._thread = threading.Thread(target=ctx.run, args=(self._run,),
                                            name="qwq-ticker", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                if self._tick() is False:
                    return
            except Exception:  # a redraw must never kill anything: stop quietly
                return

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout=2.0)
