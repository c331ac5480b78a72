"""Rendering a :class:`~qwq_magic.completion.Completion`: HTML/Markdown/plain bundles, live and final.

Model output is untrusted: Markdown goes through markdown-it-py with raw HTML off, reasoning is
escaped text. While streaming only the reasoning's tail is rendered and the answer's Markdown is
rendered incrementally, so ~20 updates a second of a long reply cost about linear time.
"""

from __future__ import annotations

import re
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from functools import lru_cache
from html import escape
from typing import Any, TextIO

from .completion import Completion
from .events import ContentDelta, ReasoningDelta

LIVE_REASONING_CHARS = 4000  # reasoning shown in live (streaming) renders
PLAIN_REASONING_CHARS = 300  # reasoning tail in the live text/plain

_DIM = "color: var(--jp-ui-font-color2, #777)"
_S_WRAP = "font-family: var(--jp-content-font-family, inherit)"
_S_DETAILS, _S_PRE = "margin: 0 0 0.5em 0", "white-space: pre-wrap; margin: 0.2em 0"
_S_SUMMARY, _S_FOOTER = f"cursor: pointer; {_DIM}; font-size: 0.9em", f"{_DIM}; font-size: 0.8em"
_S_REASONING = (f"white-space: pre-wrap; {_DIM}; font-size: 0.9em; margin: 0.3em 0 0 0.2em; "
                "padding-left: 0.6em; border-left: 2px solid var(--jp-border-color2, #ddd)")
_S_BANNER = "color: var(--jp-warn-color0, #b45f06); margin: 0.3em 0"
_S_ERROR = "color: var(--jp-error-color0, #c62828); margin: 0.3em 0"
_S_BADGE = "border: 1px solid var(--jp-border-color2, #ccc); border-radius: 3px; padding: 0 3px"
TRUNCATED_MSG = ("Thinking used up max_tokens before an answer; raise --max-tokens "
                 "(e.g. --max-tokens 4096) or lower the thinking budget.")


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


def _reasoning_text(c: Completion, live: bool, limit: int = LIVE_REASONING_CHARS) -> str:
    if not live:
        return c.reasoning
    text, cut = _tail(c.reasoning_pieces, limit)
    return "…" + text if cut else text


def _elapsed(c: Completion) -> float:
    return c.timings.elapsed() if c.timings.start > 0 else c.timings.reasoning_s or 0.0


def summary_text(c: Completion) -> str:
    """``Thinking… 120 tokens · 3.2 s`` while reasoning, ``Thought for 12.3 s · 1,234 tokens``
    after."""
    n = (c.usage.reasoning_tokens if c.usage else None) or c.reasoning_events
    if c.thinking:
        return f"Thinking… {_tokens(n)} · {_elapsed(c):.1f} s"
    secs = c.timings.reasoning_s
    if secs is None:
        secs = _elapsed(c)
    return f"Thought for {secs:.1f} s · {_tokens(n)}"


def _tokens(n: int) -> str:
    return f"{n:,} token" + ("" if n == 1 else "s")


def _fmt_cost(cost: float) -> str:
    return f"${cost:.6f}" if cost < 0.01 else f"${cost:.4f}" if cost < 1 else f"${cost:.2f}"


def _footer_parts(c: Completion) -> list[str]:
    parts: list[str] = []
    if c.model:
        parts.append(c.model)
    u = c.usage
    if u is not None and (u.prompt_tokens is not None or u.completion_tokens is not None):
        pin = "?" if u.prompt_tokens is None else f"{u.prompt_tokens:,}"
        pout = "?" if u.completion_tokens is None else f"{u.completion_tokens:,}"
        parts.append(f"{pin} → {pout} tokens")
    if (tps := c.tokens_per_s) is not None:
        parts.append(f"{tps:.1f} tok/s")
    if c.timings.start > 0 and c.timings.ttft is not None:
        parts.append(f"first token {c.timings.ttft:.2f} s")
    if (cost := c.cost) is not None:
        parts.append(("≈" if c.cost_is_estimate else "") + _fmt_cost(cost))
    return parts


def footer_text(c: Completion) -> str:
    """``model · 10 → 20 tokens · 35.2 tok/s · first token 0.42 s · ≈$0.000123``."""
    parts = _footer_parts(c)
    if c.replayed:
        parts.append("↻ replay")
    return " · ".join(parts)


def _banners(c: Completion, note: str | None) -> list[tuple[str, str]]:
    """(kind, text) pairs: kind is ``warn``, ``error`` or ``note``."""
    out: list[tuple[str, str]] = []
    if c.status == "interrupted":
        out.append(("warn", "⏹ interrupted — partial output kept"))
    elif c.status == "stopped":
        out.append(("warn", "⏹ stopped"))
    elif c.status == "error":
        out.append(("error", "⚠ " + (str(c.error) if c.error is not None else "error")))
    if c.reasoning_truncated:
        out.append(("warn", TRUNCATED_MSG))
    if note:
        out.append(("note", note))
    return out


def _tool_lines(c: Completion) -> list[str]:
    return [f"🔧 {tc.name or '?'}({tc.arguments})" for tc in c.tool_calls]


# -- Markdown --------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _md() -> tuple[Any, Any]:
    """The Markdown renderer (raw HTML off) and pygments' formatter (inline styles)."""
    from markdown_it import MarkdownIt
    from pygments.formatters import HtmlFormatter

    fmt = HtmlFormatter(nowrap=True, noclasses=True)
    md = MarkdownIt("js-default", {"highlight": _highlight})
    rules = md.renderer.rules  # type: ignore[attr-defined]
    for rule in ("fence", "code_block"):  # a visible box for code, in every front end
        default = rules[rule]

        def boxed(tokens: Any, idx: int, options: Any, env: Any, _d: Any = default) -> str:
            return str(_d(tokens, idx, options, env)).replace("<pre><code", _PRE, 1)

        rules[rule] = boxed
    return md, fmt


# pygments' colours are for a light background: keep code boxes light in every theme (so they
# stay readable in JupyterLab Dark too); JupyterLab gives inline <code> a background, not here
_PRE = ('<pre style="background: #f6f8fa; color: #1f2328; padding: 0.6em 0.8em; '
        'border-radius: 4px; border: 1px solid #d0d7de; overflow-x: auto; line-height: 1.4">'
        '<code style="background: none; padding: 0; color: inherit"')


@lru_cache(maxsize=64)
def _lexer(lang: str) -> Any:
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound

    try:
        return get_lexer_by_name(lang, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None


def _highlight(code: str, lang: str, attrs: str) -> str:
    """markdown-it ``highlight`` hook: pygments spans with inline styles ('' = plain escape)."""
    lexer = _lexer(lang.strip().lower()) if lang else None
    if lexer is None:
        return ""
    from pygments import highlight

    try:
        return str(highlight(code, lexer, _md()[1]))
    except Exception:  # a lexer bug must not break the display
        return ""


def render_markdown_full(text: str) -> str:
    """Render Markdown in one go (no cache)."""
    return str(_md()[0].render(text))


_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_NO_SPLIT_START = re.compile(r"^(?:[ \t]|[-*+](?:[ \t]|$)|\d{1,9}[.)](?:[ \t]|$)|\[\^?[^\]]*\]:)")
_REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:", re.M)


def _fence_open(line: str) -> tuple[str, int] | None:
    """(char, length) if ``line`` opens a fenced code block (at any indent: lists nest them)."""
    m = _FENCE.match(line)
    if m is None:
        return None
    f = m.group(1)
    if f[0] == "`" and "`" in line[m.end():]:  # ```x``` is a code span, not a fence
        return None
    return f[0], len(f)


def _fence_closes(line: str, fence: tuple[str, int]) -> bool:
    m = _FENCE.match(line)
    return (m is not None and m.group(1)[0] == fence[0] and len(m.group(1)) >= fence[1]
            and not line[m.end():].strip())


def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > _MAX_STATES:
        cache.popitem(last=False)


class _MdState:
    """What is known about one growing text: ``text[:stable]`` is rendered as ``html``."""
    __slots__ = ("fence", "html", "prefix", "prev_blank", "scan", "stable")

    def __init__(self) -> None:
        self.prefix = ""  # text[:scan], to check the next text still starts with it
        self.stable = 0  # split point: rendered part ends here (a block boundary)
        self.html: list[str] = []
        self.scan = 0  # complete lines scanned up to here
        self.fence: tuple[str, int] | None = None  # open fence (char, length)
        self.prev_blank = False


_STATES: OrderedDict[Any, _MdState] = OrderedDict()
_MAX_STATES = 32


def render_markdown(text: str, key: Any = None) -> str:
    """Render Markdown to HTML, incrementally for a text that grows under the same ``key``.

    Blocks before the last safe blank line (outside fences, not followed by an indented line,
    a list item or a reference definition) are rendered once; only the tail is re-rendered.
    The result equals :func:`render_markdown_full` for ordinary Markdown.
    """
    if _REF_DEF.search(text):  # references may be used before they are defined
        return render_markdown_full(text)
    st = _STATES.get(key)
    if st is None or not text.startswith(st.prefix):
        st = _MdState()
    _remember(_STATES, key, st)

    split = st.stable
    pos = st.scan
    end = text.rfind("\n") + 1  # only complete lines are scanned
    while pos < end:
        nl = text.index("\n", pos)
        line = text[pos:nl]
        if st.fence is not None:
            if _fence_closes(line, st.fence):
                st.fence = None
            st.prev_blank = False
        elif not line.strip():
            st.prev_blank = True
        else:
            if st.prev_blank and not _NO_SPLIT_START.match(line):
                split = pos
            st.prev_blank = False
            st.fence = _fence_open(line)
        pos = nl + 1
    st.scan = pos
    st.prefix = text[:pos]
    if split > st.stable:
        st.html.append(render_markdown_full(text[st.stable:split]))
        st.stable = split
    return "".join(st.html) + (render_markdown_full(text[st.stable:]) if text[st.stable:] else "")


_CODE_SPAN = re.compile(r"(`+)(?:.+?)\1")
_ESC_STATES: OrderedDict[Any, tuple[str, str, tuple[str, int] | None]] = OrderedDict()


def _escape_lines(text: str, fence: tuple[str, int] | None) -> tuple[str, tuple[str, int] | None]:
    out: list[str] = []
    for line in text.splitlines(keepends=True):
        if fence is not None:
            if _fence_closes(line, fence):
                fence = None
            out.append(line)
        elif (fence := _fence_open(line)) is not None:
            out.append(line)
        else:
            pos = 0
            for cm in _CODE_SPAN.finditer(line):
                out.append(line[pos:cm.start()].replace("<", "&lt;").replace(">", "&gt;"))
                out.append(cm.group(0))
                pos = cm.end()
            out.append(line[pos:].replace("<", "&lt;").replace(">", "&gt;"))
    return "".join(out), fence


def _md_escape_html(text: str, key: Any = None) -> str:
    """Escape ``<``/``>`` outside fenced code and code spans so no raw HTML passes
    (incremental per ``key``: complete lines are escaped once)."""
    src, done, fence = _ESC_STATES.get(key, ("", "", None))
    if not text.startswith(src):
        src, done, fence = "", "", None
    end = text.rfind("\n") + 1
    if end > len(src):
        more, fence = _escape_lines(text[len(src):end], fence)
        src, done = text[:end], done + more
        _remember(_ESC_STATES, key, (src, done, fence))
    return done + _escape_lines(text[len(src):], fence)[0]


# -- the bundle ------------------------------------------------------------------------------
def _fence(text: str, lang: str = "") -> str:
    ticks = "`" * max(3, max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
    return f"{ticks}{lang}\n{text}\n{ticks}"


def _progress(c: Completion, hide_reasoning: bool) -> str | None:
    """A status line while nothing visible is arriving (waiting, or hidden thinking)."""
    if c.status != "streaming":
        return None
    if not c.reasoning_pieces and not c.answering:
        return f"Waiting for the model… {_elapsed(c):.1f} s"
    return summary_text(c) if hide_reasoning and c.thinking else None


def render_bundle(c: Completion, *, hide_reasoning: bool = False, raw: bool = False,
                  preview: str | None = None, note: str | None = None) -> dict[str, str]:
    """The MIME bundle for ``c`` as it is now (bounded while streaming, complete after)."""
    h: list[str] = [f'<div class="qwq-output" style="{_S_WRAP}">']
    m: list[str] = []  # text/markdown blocks
    p: list[str] = []  # text/plain lines
    if c.reasoning_pieces and not hide_reasoning:
        live = c.status == "streaming"
        body = escape(_reasoning_text(c, live), quote=False)
        summary = escape(summary_text(c))
        is_open = " open" if c.thinking else ""
        h.append(f'<details class="qwq-reasoning" style="{_S_DETAILS}"{is_open}>'
                 f'<summary style="{_S_SUMMARY}">{summary}</summary>'
                 f'<div class="qwq-reasoning-text" style="{_S_REASONING}">{body}</div></details>')
        quoted = "\n".join("> " + line for line in body.split("\n"))
        m.append(f"<details{is_open}><summary>{summary}</summary>\n\n{quoted}\n\n</details>")
        if c.thinking:
            tail, cut = _tail(c.reasoning_pieces, PLAIN_REASONING_CHARS)
            p.append("[thinking] " + ("…" if cut else "") + tail)
        else:
            p.append(f"[{summary_text(c).replace('Thought', 'thought', 1)}]")
    progress = _progress(c, hide_reasoning)
    if progress:
        h.append(f'<div class="qwq-progress" style="{_S_FOOTER}">{escape(progress)}</div>')
        m.append(f"*{escape(progress)}*")
        p.append(progress)
    if preview is not None:
        h.append(f'<pre class="qwq-json" style="{_S_PRE}">{escape(preview, quote=False)}</pre>')
        m.append(_fence(preview, "json"))
        p.append(preview)
    elif c.content_pieces:
        content = c.content
        if raw:
            h.append(f'<pre class="qwq-answer" style="{_S_PRE}">'
                     f"{escape(content, quote=False)}</pre>")
        else:
            h.append(f'<div class="qwq-answer">{render_markdown(content, key=id(c))}</div>')
        m.append(_fence(content) if raw else _md_escape_html(content, key=id(c)))
        p.append(content)
    tools = "\n".join(_tool_lines(c))
    if tools:
        h.append(f'<pre class="qwq-tools" style="{_S_PRE}">{escape(tools, quote=False)}</pre>')
        m.append(_fence(tools))
        p.append(tools)
    for kind, text in _banners(c, note):
        style = _S_ERROR if kind == "error" else _S_BANNER if kind == "warn" else _DIM
        h.append(f'<div class="qwq-{kind}" style="{style}">{escape(text)}</div>')
        m.append(f"**{escape(text)}**" if kind != "note" else escape(text))
    parts = [escape(x) for x in _footer_parts(c)]
    if c.replayed:
        parts.append(f'<span class="qwq-replay" style="{_S_BADGE}">↻ replay</span>')
    if parts:
        h.append(f'<div class="qwq-footer" style="{_S_FOOTER}">{" · ".join(parts)}</div>')
        m.append(f"*{escape(footer_text(c))}*")
        p.append(footer_text(c))
    p.extend(text for _kind, text in _banners(c, note))
    h.append("</div>")
    return {"text/html": "".join(h), "text/markdown": "\n\n".join(m), "text/plain": "\n".join(p)}


# -- live output -----------------------------------------------------------------------------
class LiveDisplay:
    """One output that updates in place, at most ``max_hz`` times a second (plus the final)."""

    def __init__(self, *, hide_reasoning: bool = False, raw: bool = False, max_hz: float = 20.0,
                 publish: Callable[[dict[str, str], bool], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.hide_reasoning = hide_reasoning
        self.raw = raw
        self.interval = 1.0 / max_hz if max_hz > 0 else 0.0
        self.clock = clock
        self._publish_fn = publish
        self.handle: Any = None
        self.n_updates = 0
        self._last: float | None = None

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
        self._last = self.clock()

    def due(self) -> bool:
        """Whether an update now would be published (callers skip costly work otherwise)."""
        return self._last is None or self.clock() - self._last >= self.interval

    def update(self, c: Completion, *, preview: str | None = None, force: bool = False) -> bool:
        """Publish the current state unless the last publish was less than 1/max_hz ago."""
        if not force and not self.due():
            return False
        self._publish(render_bundle(c, hide_reasoning=self.hide_reasoning, raw=self.raw,
                                    preview=preview))
        return True

    def finish(self, c: Completion, *, preview: str | None = None, note: str | None = None,
               metadata: dict[str, Any] | None = None) -> None:
        """Publish the final, complete bundle (always), with the output's ``metadata``."""
        self._publish(render_bundle(c, hide_reasoning=self.hide_reasoning, raw=self.raw,
                                    preview=preview, note=note), metadata)


class TerminalStream:
    """Streams a reply to a terminal: dim reasoning, then the answer, then the footer."""

    def __init__(self, out: TextIO | None = None, hide_reasoning: bool = False) -> None:
        self.out = out if out is not None else sys.stdout
        self.hide_reasoning = hide_reasoning
        isatty = getattr(self.out, "isatty", None)
        self.color = bool(isatty and isatty())
        self._state = ""  # "", "reasoning", "content"
        self._last = ""

    def _w(self, text: str, dim: bool = False) -> None:
        if text:
            self.out.write(f"\x1b[2m{text}\x1b[0m" if dim and self.color else text)
            self._last = text[-1]

    def on_event(self, ev: Any) -> None:
        if isinstance(ev, ReasoningDelta):
            if self.hide_reasoning or self._state == "content":
                return
            if self._state == "":
                self._w("Thinking…\n", dim=True)
                self._state = "reasoning"
            self._w(ev.text, dim=True)
        elif isinstance(ev, ContentDelta):
            if self._state == "reasoning":
                self._w("\n\n" if self._last != "\n" else "\n")
            self._state = "content"
            self._w(ev.text)
        else:
            return
        self.out.flush()

    def finish(self, c: Completion, note: str | None = None) -> None:
        if self._state != "content" and c.content:  # nothing streamed (e.g. a replay)
            if self._state == "reasoning":
                self._w("\n\n")
            self._w(c.content)
            self._state = "content"
        if self._last and self._last != "\n":
            self._w("\n")
        for line in _tool_lines(c):
            self._w(line + "\n")
        if foot := footer_text(c):
            self._w(foot + "\n", dim=True)
        for _kind, text in _banners(c, note):
            self._w(text + "\n")
        self.out.flush()
