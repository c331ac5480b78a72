"""Rendering a :class:`~qwq_magic.completion.Completion` for notebooks and terminals.

The wording comes from :mod:`qwq_magic.view`; this module serialises it three ways (HTML,
Markdown, plain text). Model output is untrusted: Markdown goes through markdown-it-py with raw
HTML off, unsafe links refused and remote images not loaded (:mod:`qwq_magic._markdown`);
reasoning is escaped text; the plain copy shows control characters as symbols.

Live output is sized for long reasoning: while streaming only HTML carries the reply (a few
lines of the reasoning's tail, the answer rendered incrementally), the Markdown and plain-text
copies are one status line, and a :class:`~qwq_magic.view.Throttle` bounds updates per second and
bytes per second. The final output stores the full reasoning once (in HTML); the Markdown copy
summarises it. While nothing arrives a :class:`~qwq_magic.view.Ticker` keeps the clock moving.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from html import escape
from typing import Any, TextIO

from . import view as _view
from ._markdown import _STATES, markdown_copy, md_literal, render_markdown, render_markdown_full
from .completion import Completion
from .events import ContentDelta, ReasoningDelta
from .view import TRUNCATED_MSG, Throttle, Ticker, footer_text, summary_text

__all__ = [
    "TRUNCATED_MSG",
    "_STATES",
    "LiveDisplay",
    "ReplyRenderer",
    "TerminalStream",
    "footer_text",
    "live_bundle",
    "remote_images_allowed",
    "render_bundle",
    "render_markdown",
    "render_markdown_full",
    "summary_text",
]

LIVE_TAIL_CHARS = 480  # reasoning shown while streaming: a few lines of its tail…
LIVE_TAIL_LINES = 6  # …at most this many
PLAIN_REASONING_CHARS = 300  # reasoning tail in a streaming text/plain
MD_REASONING_CHARS = 240  # reasoning kept at each end of the final Markdown copy's summary
TICK_S = 0.5  # the clock's redraw period while nothing arrives
TICKER_MAX_S = 900.0  # a clock with no update for this long stops on its own

_DIM = "color: var(--jp-ui-font-color2, #777)"
_S_WRAP = "font-family: var(--jp-content-font-family, inherit)"
_S_DETAILS, _S_PRE = "margin: 0 0 0.5em 0", "white-space: pre-wrap; margin: 0.2em 0"
_S_SUMMARY, _S_FOOTER = f"cursor: pointer; {_DIM}; font-size: 0.9em", f"{_DIM}; font-size: 0.8em"
_S_REASONING = (f"white-space: pre-wrap; {_DIM}; font-size: 0.9em; margin: 0.3em 0 0 0.2em; "
                "padding-left: 0.6em; border-left: 2px solid var(--jp-border-color2, #ddd)")
_S_BANNER = "color: var(--jp-warn-color0, #b45f06); margin: 0.3em 0"
_S_ERROR = "color: var(--jp-error-color0, #c62828); margin: 0.3em 0"
_S_BADGE = "border: 1px solid var(--jp-border-color2, #ccc); border-radius: 3px; padding: 0 3px"


def font_scale() -> float:
    """``%config QwqMagics.font_scale = 1.4``: text size of the magic's output and the panel
    (1 = the notebook's own size; a projector likes 1.3–1.6)."""
    mod = sys.modules.get("qwq_magic.magics")
    m = getattr(mod, "_magics", None) if mod is not None else None
    try:
        return float(getattr(m, "font_scale", 1.0) or 1.0)
    except (TypeError, ValueError):
        return 1.0


def remote_images_allowed() -> bool:
    """``%config QwqMagics.remote_images = True`` (off by default: an image URL can carry data
    out of the notebook the moment it renders)."""
    mod = sys.modules.get("qwq_magic.magics")
    m = getattr(mod, "_magics", None) if mod is not None else None
    return bool(getattr(m, "remote_images", False))


# -- small text helpers ----------------------------------------------------------------------
def _tail(pieces: list[str], limit: int) -> tuple[str, bool]:
    """The last ``limit`` characters of ``"".join(pieces)`` and whether it was cut (without
    joining everything: the last k pieces, k doubling)."""
    k = 64
    while True:
        text = "".join(pieces[-k:])
        if len(text) > limit:
            return text[-limit:], True
        if k >= len(pieces):
            return text, False
        k *= 2


def live_tail(pieces: list[str], chars: int = LIVE_TAIL_CHARS,
              lines: int = LIVE_TAIL_LINES) -> str:
    """The last few lines of a growing text, ``…`` first when cut."""
    text, cut = _tail(pieces, chars)
    if text.count("\n") >= lines:
        text, cut = "\n".join(text.split("\n")[-lines:]), True
    return "…" + text if cut else text


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")


def printable(text: str) -> str:
    """Control characters shown as symbols (␛ for ESC): a terminal never obeys model text."""
    return _CONTROL.sub(lambda m: chr(0x2400 + ord(m.group(0))) if ord(m.group(0)) < 0x20
                        else "␡" if m.group(0) == "\x7f" else "\ufffd", text)


def _fence(text: str, lang: str = "") -> str:
    ticks = "`" * max(3, max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
    return f"{ticks}{lang}\n{text}\n{ticks}"


def _quote(text: str) -> str:
    return "\n".join("> " + line for line in text.split("\n"))


def _tool_lines(c: Completion) -> list[str]:
    return [f"🔧 {tc.name or '?'}({tc.arguments})" for tc in c.tool_calls]


# -- HTML ------------------------------------------------------------------------------------
def _html_reasoning(c: Completion, v: _view.ReplyView, live: bool) -> str:
    body = live_tail(c.reasoning_pieces) if live else c.reasoning
    is_open = " open" if v.thinking else ""
    return (f'<details class="qwq-reasoning" style="{_S_DETAILS}"{is_open}>'
            f'<summary style="{_S_SUMMARY}">{escape(v.summary)}</summary>'
            f'<div class="qwq-reasoning-text" style="{_S_REASONING}">'
            f"{escape(body, quote=False)}</div></details>")


REVEAL_LABEL = "Reveal reasoning"


def _html_reveal(c: Completion, v: _view.ReplyView) -> str:
    """Hidden reasoning of a finished reply: a closed ``<details>`` the reader opens ("Reveal
    reasoning"). Plain HTML, no script: it works in JupyterLab, Notebook 7, nbviewer and an
    untrusted notebook alike."""
    return (f'<details class="qwq-reveal" style="{_S_DETAILS}">'
            f'<summary style="{_S_SUMMARY}">{REVEAL_LABEL} · {escape(v.summary)}</summary>'
            f'<div class="qwq-reasoning-text" style="{_S_REASONING}">'
            f"{escape(c.reasoning, quote=False)}</div></details>")


def _hidden(c: Completion, v: _view.ReplyView, reveal: bool) -> bool:
    """Reasoning there, hidden behind a control (``reveal``), and the reply over: the output
    offers "Reveal reasoning"."""
    return reveal and not v.show_reasoning and not v.live and bool(c.reasoning_pieces)


def _html_answer(c: Completion, raw: bool, preview: str | None, remote_images: bool) -> str:
    if preview is not None:
        return f'<pre class="qwq-json" style="{_S_PRE}">{escape(preview, quote=False)}</pre>'
    if not c.content_pieces:
        return ""
    content = c.content
    if raw:
        return f'<pre class="qwq-answer" style="{_S_PRE}">{escape(content, quote=False)}</pre>'
    html = render_markdown(content, key=id(c), remote_images=remote_images)
    return f'<div class="qwq-answer">{html}</div>'


def _html_status(v: _view.ReplyView) -> str:
    out = []
    for kind, text in v.banners:
        style = _S_ERROR if kind == "error" else _S_BANNER if kind == "warn" else _DIM
        out.append(f'<div class="qwq-{kind}" style="{style}">{escape(text)}</div>')
    parts = [escape(x) for x in v.footer_parts]
    if v.replayed:
        parts.append(f'<span class="qwq-replay" style="{_S_BADGE}">↻ replay</span>')
    if parts:
        out.append(f'<div class="qwq-footer" style="{_S_FOOTER}">{" · ".join(parts)}</div>')
    return "".join(out)


def _html(c: Completion, v: _view.ReplyView, *, raw: bool, preview: str | None,
          remote_images: bool, reveal: bool = False) -> str:
    scale = font_scale()
    size = f"; font-size: {scale:g}em" if scale != 1 else ""
    h = [f'<div class="qwq-output" style="{_S_WRAP}{size}">']
    if v.show_reasoning:
        h.append(_html_reasoning(c, v, v.live))
    elif _hidden(c, v, reveal):
        h.append(_html_reveal(c, v))
    if v.progress:
        h.append(f'<div class="qwq-progress" style="{_S_FOOTER}">{escape(v.progress)}</div>')
    h.append(_html_answer(c, raw, preview, remote_images))
    tools = "\n".join(_tool_lines(c))
    if tools:
        h.append(f'<pre class="qwq-tools" style="{_S_PRE}">{escape(tools, quote=False)}</pre>')
    h.append(_html_status(v))
    h.append("</div>")
    return "".join(h)


# -- Markdown and plain text -----------------------------------------------------------------
def _md_reasoning(c: Completion, v: _view.ReplyView) -> str:
    """The fold with a summary of the reasoning (its ends); the full text is in the HTML."""
    if v.live:
        text = live_tail(c.reasoning_pieces)
    else:
        text = c.reasoning
        k = MD_REASONING_CHARS
        if len(text) > 3 * k:
            text = f"{text[:k]} … [{len(text) - 2 * k:,} characters] … {text[-k:]}"
    is_open = " open" if v.thinking else ""
    return (f"<details{is_open}><summary>{escape(v.summary)}</summary>\n\n"
            f"{_quote(md_literal(text))}\n\n</details>")


def _markdown(c: Completion, v: _view.ReplyView, *, raw: bool, preview: str | None,
              remote_images: bool, reveal: bool = False) -> str:
    m: list[str] = []
    if v.show_reasoning:
        m.append(_md_reasoning(c, v))
    elif _hidden(c, v, reveal):
        m.append(_md_reasoning(c, v).replace("<summary>", f"<summary>{REVEAL_LABEL} · ", 1))
    if v.progress:
        m.append(f"*{md_literal(v.progress)}*")
    if preview is not None:
        m.append(_fence(preview, "json"))
    elif c.content_pieces:
        m.append(_fence(c.content) if raw else markdown_copy(c.content, key=id(c),
                                                             remote_images=remote_images))
    tools = "\n".join(_tool_lines(c))
    if tools:
        m.append(_fence(tools))
    for kind, text in v.banners:
        m.append(f"**{md_literal(text)}**" if kind != "note" else md_literal(text))
    if v.footer:
        m.append(f"*{md_literal(v.footer)}*")
    return "\n\n".join(m)


def _plain(c: Completion, v: _view.ReplyView, preview: str | None) -> str:
    p: list[str] = []
    if v.show_reasoning:
        if v.thinking:
            tail, cut = _tail(c.reasoning_pieces, PLAIN_REASONING_CHARS)
            p.append("[thinking] " + ("…" if cut else "") + printable(tail))
        else:
            p.append(f"[{v.summary.replace('Thought', 'thought', 1)}]")
    if v.progress:
        p.append(v.progress)
    if preview is not None:
        p.append(printable(preview))
    elif c.content_pieces:
        p.append(printable(c.content))
    tools = "\n".join(_tool_lines(c))
    if tools:
        p.append(printable(tools))
    if v.footer:
        p.append(v.footer)
    p.extend(printable(text) for _kind, text in v.banners)
    return "\n".join(p)


def render_bundle(c: Completion, *, hide_reasoning: bool = False, raw: bool = False,
                  preview: str | None = None, note: str | None = None,
                  remote_images: bool | None = None, idle: float | None = None,
                  reveal: bool = False) -> dict[str, str]:
    """The MIME bundle for ``c`` as it is now (bounded while streaming, complete after).

    ``hide_reasoning`` leaves the reasoning out; with ``reveal`` too, a finished reply keeps
    it behind a closed "Reveal reasoning" fold (class mode, ``--hide-reasoning``)."""
    ri = remote_images_allowed() if remote_images is None else remote_images
    v = _view.view_of(c, hide_reasoning=hide_reasoning, note=note, idle=idle)
    return {"text/html": _html(c, v, raw=raw, preview=preview, remote_images=ri,
                               reveal=reveal),
            "text/markdown": _markdown(c, v, raw=raw, preview=preview, remote_images=ri,
                                       reveal=reveal),
            "text/plain": _plain(c, v, preview)}


def _status(c: Completion, v: _view.ReplyView) -> str:
    return v.progress or v.summary or (f"Answering… {len(c.content):,} characters"
                                       if c.content_pieces else "")


def _live_line(c: Completion, v: _view.ReplyView) -> str:
    line = _status(c, v)
    return f"*{md_literal(line)}*" if line else ""


def live_bundle(c: Completion, *, hide_reasoning: bool = False, raw: bool = False,
                preview: str | None = None, remote_images: bool | None = None,
                idle: float | None = None) -> dict[str, str]:
    """What a live update sends: the HTML view, and one status line as Markdown and text (the
    full copies come with the final output)."""
    ri = remote_images_allowed() if remote_images is None else remote_images
    v = _view.view_of(c, hide_reasoning=hide_reasoning, idle=idle)
    line = _live_line(c, v)
    return {"text/html": _html(c, v, raw=raw, preview=preview, remote_images=ri),
            "text/markdown": line, "text/plain": _status(c, v)}


def _size(bundle: dict[str, str]) -> int:
    return sum(len(x) for x in bundle.values())


# -- live output -----------------------------------------------------------------------------
class LiveDisplay:
    """One output that updates in place, paced by a :class:`~qwq_magic.view.Throttle` (at most
    ``max_hz`` updates a second, fewer while thinking, bytes per second bounded), plus the final.

    While streaming and nothing new arrives for :data:`TICK_S`, a :class:`~qwq_magic.view.Ticker`
    redraws so the clock keeps moving ("Waiting for the model… 2.5 s"); :meth:`finish` stops it.
    """

    def __init__(self, *, hide_reasoning: bool = False, raw: bool = False, max_hz: float = 20.0,
                 publish: Callable[[dict[str, str], bool], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, thinking_hz: float | None = None,
                 max_bytes_per_s: float | None = 120_000,
                 thinking_bytes_per_s: float | None = 24_000, tick: float | None = TICK_S,
                 remote_images: bool | None = None, reveal: bool = False) -> None:
        self.hide_reasoning = hide_reasoning
        self.reveal = reveal  # hidden reasoning behind a "Reveal reasoning" fold at the end
        self.raw = raw
        self.throttle = Throttle(max_hz, thinking_hz=thinking_hz, clock=clock,
                                 max_bytes_per_s=max_bytes_per_s,
                                 thinking_bytes_per_s=thinking_bytes_per_s)
        self.interval = self.throttle.interval
        self.clock = clock
        self.remote_images = (remote_images_allowed() if remote_images is None
                              else remote_images)
        self._publish_fn = publish
        self.handle: Any = None
        self.n_updates = 0
        self.bytes_sent = 0
        self._tick_s = tick
        self._ticker: Ticker | None = None
        self._lock = threading.RLock()
        self._current: tuple[Completion, str | None] | None = None
        self._events_seen = -1
        self._event_at = clock()
        self._finished = False
        self._exec_count = _execution_count()
        self._updated_at = time.monotonic()  # real time, for the ticker's safety net

    def _publish(self, bundle: dict[str, str], metadata: dict[str, Any] | None = None) -> None:
        first = self.n_updates == 0
        meta = {"metadata": metadata} if metadata else {}
        if self._publish_fn is not None:
            self._publish_fn(bundle, first)
        elif first or self.handle is None:
            from IPython.display import display

            self.handle = display(bundle, raw=True, display_id=True, **meta)
        else:
            self.handle.update(bundle, raw=True, **meta)
        self.n_updates += 1
        n = _size(bundle)
        self.bytes_sent += n
        self.throttle.sent(n)

    def _idle(self, c: Completion) -> float:
        """Seconds since the last event arrived in ``c`` (as seen by this display)."""
        n = c.reasoning_events + c.content_events + len(c.tool_calls)
        now = self.clock()
        if n != self._events_seen:
            self._events_seen, self._event_at = n, now
        return now - self._event_at

    def due(self, c: Completion | None = None) -> bool:
        """Whether an update now would be published (callers skip costly work otherwise)."""
        return self.throttle.due(thinking=c is not None and _view.is_thinking(c))

    def update(self, c: Completion, *, preview: str | None = None, force: bool = False) -> bool:
        """Publish the current state unless the throttle says it is too soon."""
        with self._lock:
            if self._finished:
                return False
            idle = self._idle(c)
            if not force and not self.throttle.due(thinking=_view.is_thinking(c)):
                return False
            self._current = (c, preview)
            self._updated_at = time.monotonic()
            self._publish(live_bundle(c, hide_reasoning=self.hide_reasoning, raw=self.raw,
                                      preview=preview, remote_images=self.remote_images,
                                      idle=idle))
        self._start_ticker()
        return True

    def tick(self) -> bool:
        """The clock: redraw if streaming and nothing was published for :data:`TICK_S` (so the
        elapsed time moves through a wait or a stall). False once there is nothing to tick."""
        with self._lock:
            if self._finished or self._current is None:
                return False
            c, preview = self._current
            if (c.status != "streaming" or _execution_count() != self._exec_count
                    or time.monotonic() - self._updated_at > TICKER_MAX_S):
                return False  # over, or left behind by a bug (a new cell, a long silence)
            if self.throttle.idle() >= (self._tick_s or TICK_S) * 0.9:
                self._publish(live_bundle(c, hide_reasoning=self.hide_reasoning, raw=self.raw,
                                          preview=preview, remote_images=self.remote_images,
                                          idle=self._idle(c)))
        return True

    def _start_ticker(self) -> None:
        if self._tick_s and self._ticker is None and not self._finished:
            self._ticker = Ticker(self.tick, self._tick_s).start()

    def stop(self) -> None:
        """Stop the clock (the output keeps what it shows)."""
        self._finished = True
        if self._ticker is not None:
            self._ticker.stop()

    def finish(self, c: Completion, *, preview: str | None = None, note: str | None = None,
               metadata: dict[str, Any] | None = None) -> None:
        """Publish the final, complete bundle (always), with the output's ``metadata``, and stop
        the clock."""
        with self._lock:
            self._finished = True
            self._publish(render_bundle(c, hide_reasoning=self.hide_reasoning, raw=self.raw,
                                        preview=preview, note=note,
                                        remote_images=self.remote_images,
                                        reveal=self.reveal), metadata)
        if self._ticker is not None:
            self._ticker.stop()

    def clear(self) -> None:
        """Remove what was shown (an attempt that produced nothing): no stale block remains."""
        with self._lock:
            self._finished = True
            if self.n_updates:
                self._publish({"text/plain": ""})
        if self._ticker is not None:
            self._ticker.stop()


def _execution_count() -> int | None:
    """The shell's execution count (a new cell means a ticker left over must stop)."""
    mod = sys.modules.get("IPython")
    get = getattr(mod, "get_ipython", None) if mod is not None else None
    shell = get() if get is not None else None
    return getattr(shell, "execution_count", None)


class ReplyRenderer:
    """Feeds one streamed reply (or several attempts of one, for guided JSON) to the notebook
    display or the terminal. Used by ``%%qwq``: ``consume(stream, attempt)`` per attempt, then
    ``done(completion, note=...)`` on an error path (``consume`` calls it itself on success).

    Every attempt draws into the same output, so an attempt that failed before its first token
    (a JSON wire form the server refused) leaves no stale "Waiting…" block behind.
    """

    def __init__(self, rich: bool, hide: bool, raw: bool, max_hz: float, preview: bool,
                 reveal: bool = False) -> None:
        self.rich, self.hide, self.raw, self.max_hz, self.preview = rich, hide, raw, max_hz, preview
        self.reveal = reveal  # hidden reasoning: a "Reveal reasoning" fold (class mode)
        self.stream: Any = None
        self.started = False
        self.live: LiveDisplay | None = None
        self.term: TerminalStream | None = None
        self.note: str | None = None

    def consume(self, stream: Any, attempt: int) -> Any:
        self.stream = stream
        self.started = True
        if attempt:
            self.note = f"retry {attempt}: the previous answer did not validate"
        preview_fn: Callable[[str], str | None] | None = None
        if self.preview:
            from .structured import partial_preview

            preview_fn = partial_preview
        c = stream.completion
        if self.rich:
            self._next_live().update(c, force=True)
        else:
            self.term = self.term or TerminalStream(hide_reasoning=self.hide)
            self.term.start(c)
        term = self.term if not self.rich else None
        live = self.live
        try:
            for ev in stream:
                if term is not None:
                    term.on_event(ev)
                elif live is not None and live.due(c):
                    live.update(c, preview=preview_fn(c.content) if preview_fn and c.content
                                else None, force=True)
        except BaseException:
            self._stop_clock()
            raise
        self.done(c)
        return c

    def _next_live(self) -> LiveDisplay:
        """A display for the next attempt: it draws over the previous attempt's output when that
        showed nothing of a reply (it failed before its first token)."""
        old = self.live
        live = LiveDisplay(hide_reasoning=self.hide, raw=self.raw, max_hz=self.max_hz,
                           reveal=self.reveal)
        if old is not None:
            old.stop()
            if old.n_updates and not _shows_reply(old):
                live.handle, live.n_updates, live._publish_fn = (old.handle, old.n_updates,
                                                                 old._publish_fn)
        self.live = live
        return live

    def _stop_clock(self) -> None:
        if self.live is not None:
            self.live.stop()
        if self.term is not None:
            self.term.stop()

    def done(self, c: Any, note: str | None = None) -> None:
        note = note or self.note
        if c.replayed:
            note = (note + " · " if note else "") + "replayed from a recording"
        if self.live is not None:
            preview = None
            if self.preview and c.content and c.data is None:
                from .structured import partial_preview

                preview = partial_preview(c.content)
            metadata = _provenance(c)
            self.live.finish(c, preview=preview, note=note, metadata=metadata)
            if self.hide and self.live.handle is not None and c.reasoning_pieces:
                from . import teaching  # the output can be revealed later (%qwq reveal)

                teaching.remember_hidden(self.live.handle, c, raw=self.raw, preview=preview,
                                         note=note, metadata=metadata)
        elif self.term is not None:
            self.term.finish(c, note=note)


def _provenance(c: Any) -> dict[str, Any] | None:
    """The run log's provenance for the output's metadata, where the run log exists."""
    import importlib

    try:
        runlog = importlib.import_module("qwq_magic.runlog")
    except ImportError:
        return None
    return {"qwq_magic": runlog.provenance(c)}


def _shows_reply(live: LiveDisplay) -> bool:
    c = live._current[0] if live._current else None
    return c is not None and bool(c.reasoning_pieces or c.content_pieces or c.tool_calls)


class TerminalStream:
    """Streams a reply to a terminal: dim reasoning, then the answer, then the footer. On a tty
    a "Waiting for the model… 1.5 s" line ticks until the first token (then is erased).
    Control characters in model text are shown as symbols, never sent to the terminal."""

    def __init__(self, out: TextIO | None = None, hide_reasoning: bool = False,
                 tick: float | None = TICK_S) -> None:
        self.out = out if out is not None else sys.stdout
        self.hide_reasoning = hide_reasoning
        isatty = getattr(self.out, "isatty", None)
        self.color = bool(isatty and isatty())
        self._state = ""  # "", "reasoning", "content"
        self._last = ""
        self._lock = threading.RLock()
        self._tick_s = tick
        self._ticker: Ticker | None = None
        self._waiting_shown = False
        self._c: Completion | None = None

    def _w(self, text: str, dim: bool = False) -> None:
        if text:
            with self._lock:
                self._erase_waiting()
                self.out.write(f"\x1b[2m{text}\x1b[0m" if dim and self.color else text)
                self._last = text[-1]

    def start(self, c: Completion) -> None:
        """Show the waiting clock (on a tty) until the first event of ``c``."""
        self._c = c
        if self.color and self._tick_s and self._ticker is None:
            self._ticker = Ticker(self._tick, self._tick_s).start()

    def _tick(self) -> bool:
        c = self._c
        with self._lock:
            if c is None or self._state or c.status != "streaming" or c.answering:
                return False
            text = _view.progress_text(c)
            if not text:
                return False
            self.out.write(f"\r\x1b[2m{text}\x1b[0m\x1b[K")
            self.out.flush()
            self._waiting_shown = True
        return True

    def _erase_waiting(self) -> None:
        if self._waiting_shown:
            self.out.write("\r\x1b[K")
            self._waiting_shown = False

    def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
        with self._lock:
            self._erase_waiting()

    def on_event(self, ev: Any) -> None:
        if isinstance(ev, ReasoningDelta):
            if self.hide_reasoning or self._state == "content":
                return
            if self._state == "":
                self._state = "reasoning"
                self._w("Thinking…\n", dim=True)
            self._w(printable(ev.text), dim=True)
        elif isinstance(ev, ContentDelta):
            if self._state == "reasoning":
                self._w("\n\n" if self._last != "\n" else "\n")
            self._state = "content"
            self._w(printable(ev.text))
        elif type(ev).__name__ == "Reclassified":
            # a late </think>: what was printed as the answer was reasoning (it cannot be
            # unprinted, so say so); the answer follows
            if self._state == "content" and not self.hide_reasoning:
                self._w(("\n" if self._last != "\n" else "")
                        + "[the text above was the model's reasoning]\n\n", dim=True)
            self._state = "reasoning"
        else:
            return
        self.out.flush()

    def finish(self, c: Completion, note: str | None = None) -> None:
        self.stop()
        if self._state != "content" and c.content:  # nothing streamed (e.g. a replay)
            if self._state == "reasoning":
                self._w("\n\n")
            self._w(printable(c.content))
            self._state = "content"
        if self._last and self._last != "\n":
            self._w("\n")
        for line in _tool_lines(c):
            self._w(printable(line) + "\n")
        if foot := footer_text(c):
            self._w(foot + "\n", dim=True)
        for _kind, text in _view.banners(c, note, "terminal"):
            self._w(printable(text) + "\n")
        self.out.flush()


def publish_sizes(bundles: Iterable[dict[str, str]]) -> int:
    """Characters in a sequence of bundles (benchmarks)."""
    return sum(_size(b) for b in bundles)
