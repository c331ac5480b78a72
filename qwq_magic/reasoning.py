"""Streaming splitter for inline ``<think>…</think>`` reasoning (pure: no I/O).

Sits once above every provider dialect. Providers that send reasoning in a field
(``reasoning_content`` / ``reasoning``) pass through untouched; for everything that arrives as
answer text the splitter decides what is reasoning:

* ``"open"``: the chat template already opened ``<think>`` in the prompt (QwQ, R1 distills,
  Qwen3 thinking-2507, Qwen3.5). Everything is reasoning until the first ``</think>``; a
  generated ``<think>`` at the very start is dropped; a stream that stops before ``</think>``
  stays reasoning (truncated thinking).
* ``"auto"``: the model may open ``<think>`` itself (Qwen3 hybrid, unknown models). If the text
  starts (after whitespace) with ``<think>`` it is reasoning until ``</think>``, else answer —
  until a ``</think>`` arrives with no ``<think>`` opened (QwQ served under a name that says
  nothing: ``--served-model-name reasoner``, an Ollama tag, a GGUF path). Then everything before
  it was reasoning: the splitter emits one :class:`~qwq_magic.events.Reclassified` carrying the
  answer text sent so far (consumers move it into the reasoning; the ``Completion`` does so
  itself), the rest before the tag as reasoning, and what follows as the answer. A later
  ``</think>`` stays answer text.
* ``"off"``: thinking disabled; everything is answer. A stray empty ``<think>\\n\\n</think>``
  at the start is dropped.

Tags cut across chunks at any character are held back (at most 8 characters) until they can be
decided, so every chunking of the same text gives the same reasoning and answer; :meth:`flush`
releases them and must run on every end of a stream, broken or not. Only the first ``</think>``
ends reasoning; later ones are answer text. Newlines right after ``</think>`` (and at the start
of the answer in general) are dropped; nothing else is.
"""

from __future__ import annotations

from typing import Literal

from .events import ContentDelta, Event, ReasoningDelta, Reclassified

ThinkMode = Literal["open", "auto", "off"]

OPEN = "<think>"
CLOSE = "</think>"

# states
_START = 0  # deciding whether text opens with <think>
_REASONING = 1
_CONTENT = 2


def _partial_suffix(s: str, tag: str) -> int:
    """Length of the longest suffix of ``s`` that is a proper prefix of ``tag``."""
    tail = s[-(len(tag) - 1) :]
    i = tail.find("<")
    while i != -1:
        if tag.startswith(tail[i:]):
            return len(tail) - i
        i = tail.find("<", i + 1)
    return 0


class ThinkSplitter:
    """Turns a stream of answer-text deltas into reasoning and content deltas.

    Cost per delta is proportional to the delta, never to the text so far: only a held-back
    partial tag (at most 8 characters) is carried from one delta to the next, and a delta
    without ``<`` takes a fast path with no scanning at all.
    """

    __slots__ = ("_buf", "_content_started", "_fielded", "_watched", "mode", "saw_close",
                 "state")

    def __init__(self, mode: ThinkMode = "auto") -> None:
        self.mode: ThinkMode = mode
        self.state = _START
        self._buf = ""
        self._fielded = False  # the provider sends reasoning in a field: no inline splitting
        self._content_started = False
        self.saw_close = False  # a </think> (or a reasoning→answer switch) was seen
        # mode "auto", answer decided at the start: the answer pieces sent so far, in case a
        # </think> shows they were reasoning (None: not watching)
        self._watched: list[str] | None = None

    @property
    def in_reasoning(self) -> bool:
        """True while text would currently count as reasoning."""
        return self.state == _REASONING or (self.state == _START and self.mode == "open")

    @property
    def holding(self) -> int:
        """How many characters are held back (a possible tag), not yet sent on."""
        return len(self._buf)

    # -- public API ---------------------------------------------------------------------------
    def process(self, ev: Event, out: list[Event]) -> None:
        """Feed one event from a dialect; append the resulting events to ``out``."""
        t = type(ev)
        if t is ContentDelta:
            text = ev.text  # type: ignore[union-attr]
            if not text:
                return
            if (self.state == _CONTENT and self._content_started and self._watched is None
                    and not self._buf):
                out.append(ev)  # plain answer text: passed on as it is
            else:
                self.feed(text, out)
        elif t is ReasoningDelta:
            if not self._fielded:
                self._fielded = True
                self._watched = None
                if self._buf:
                    # text held while deciding is answer-side text
                    buf, self._buf = self._buf, ""
                    self._emit_content(buf, out)
                self.state = _CONTENT
            if ev.text:  # type: ignore[union-attr]
                out.append(ev)
        else:
            out.append(ev)

    def feed(self, text: str, out: list[Event]) -> None:
        """Split one piece of answer text."""
        if not text:
            return
        if self._fielded:
            # a provider with a reasoning field may still leak one stray tag into the answer
            if not self._content_started:
                s = self._buf + text
                stripped = s.lstrip()
                for tag in (CLOSE, OPEN):
                    if stripped.startswith(tag):
                        stripped = stripped[len(tag) :]
                        self._buf = ""
                        self._emit_content(stripped, out)
                        return
                    if tag.startswith(stripped):
                        self._buf = s
                        return
                self._buf = ""
                text = s
            self._emit_content(text, out)
            return
        state = self.state
        if state == _REASONING and not self._buf and "<" not in text:
            out.append(ReasoningDelta(text))  # fast path: nothing to look for
            return
        s = self._buf + text if self._buf else text
        self._buf = ""
        if state == _START:
            rest = self._decide_start(s, out)
            if rest is None:
                return
            s = rest
            state = self.state
        if state == _REASONING:
            i = s.find(CLOSE)
            if i == -1:
                k = _partial_suffix(s, CLOSE)
                if k:
                    self._buf = s[-k:]
                    s = s[:-k]
                if s:
                    out.append(ReasoningDelta(s))
                return
            if i:
                out.append(ReasoningDelta(s[:i]))
            self.state = _CONTENT
            self.saw_close = True
            s = s[i + len(CLOSE) :]
        elif self._watched is not None:
            s = self._watch(s, out)
        if s:
            self._emit_content(s, out)

    def flush(self, out: list[Event]) -> None:
        """End of stream (clean or not): release anything held back. Call it on every end —
        error, dropped connection, interrupt, stop — so no character is lost."""
        s, self._buf = self._buf, ""
        self._watched = None
        if not s:
            return
        if self._fielded or self.state == _CONTENT:
            self._emit_content(s, out)
        elif self.state == _REASONING or self.mode == "open":
            out.append(ReasoningDelta(s))
        else:
            self._emit_content(s, out)

    # -- internals ---------------------------------------------------------------------------
    def _watch(self, s: str, out: list[Event]) -> str:
        """Answer text in mode "auto" before any ``</think>``: a ``</think>`` now means all
        of it was reasoning. Returns the part still to send as answer."""
        if "<" not in s:
            return s
        i = s.find(CLOSE)
        if i == -1:
            k = _partial_suffix(s, CLOSE)
            if k:
                self._buf = s[-k:]
                return s[:-k]
            return s
        watched = self._watched or []
        self._watched = None
        self.state = _CONTENT
        self.saw_close = True
        before = s[:i]
        if watched:
            out.append(Reclassified("".join(watched)))
        elif not self._content_started:
            before = before.lstrip("\r\n")  # as it would have been had it been sent as answer
        if before:
            out.append(ReasoningDelta(before))
        self._content_started = False  # the answer starts after the tag (newlines dropped)
        return s[i + len(CLOSE) :]

    def _decide_start(self, s: str, out: list[Event]) -> str | None:
        """At the very start: look for an opening tag. Returns the rest, or None to wait."""
        stripped = s.lstrip()
        if not stripped:
            self._buf = s
            return None
        if stripped.startswith(OPEN):
            rest = stripped[len(OPEN) :]
            if self.mode == "off":
                # thinking disabled but the template leaked an empty block: drop it
                rest_stripped = rest.lstrip()
                if rest_stripped.startswith(CLOSE):
                    self.state = _CONTENT
                    self.saw_close = True
                    return rest_stripped[len(CLOSE) :]
                if CLOSE.startswith(rest_stripped):
                    self._buf = s
                    return None
            self.state = _REASONING
            return rest
        if OPEN.startswith(stripped):
            self._buf = s  # could still become <think>
            return None
        if self.mode == "open":
            self.state = _REASONING
        else:
            self.state = _CONTENT
            if self.mode == "auto":
                self._watched = []  # a </think> may still show this was reasoning
        return s

    def _emit_content(self, s: str, out: list[Event]) -> None:
        if not self._content_started:
            s = s.lstrip("\r\n")
            if not s:
                return
            self._content_started = True
        if self._watched is not None:
            self._watched.append(s)
        out.append(ContentDelta(s))


def split_text(text: str, mode: ThinkMode = "auto") -> tuple[str, str]:
    """Split a whole reply at once: ``(reasoning, content)``."""
    out: list[Event] = []
    sp = ThinkSplitter(mode)
    sp.feed(text, out)
    sp.flush(out)
    return apply_events(out)


def apply_events(events: list[Event]) -> tuple[str, str]:
    """``(reasoning, content)`` from a list of events, :class:`Reclassified` applied — what a
    stream consumer that keeps its own text does."""
    r: list[str] = []
    c: list[str] = []
    for e in events:
        t = type(e)
        if t is ReasoningDelta:
            r.append(e.text)  # type: ignore[union-attr]
        elif t is ContentDelta:
            c.append(e.text)  # type: ignore[union-attr]
        elif t is Reclassified:
            r.extend(c)
            c = []
    return "".join(r), "".join(c)


def think_mode_for(model: str | None, enable_thinking: bool | None = None) -> ThinkMode:
    """Guess how a model's template starts its reply (see module docstring)."""
    if enable_thinking is False:
        return "off"
    m = (model or "").lower()
    if any(k in m for k in ("qwq", "deepseek-r1", "r1-distill", "thinking-2507", "qwen3.5",
                            "qwen3.6", "-thinking")):
        return "open"
    return "auto"
