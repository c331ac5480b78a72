"""``Completion``: one model reply, folded from the event stream. Every front end shares it."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from .events import (
    ContentDelta,
    Event,
    Finish,
    ReasoningDelta,
    Reclassified,
    ToolCallDelta,
    Usage,
)

Status = Literal["streaming", "complete", "interrupted", "stopped", "error"]

_INLINE_TOOL_CALL = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.S)


def _join(parts: list[str]) -> str:
    """The text of ``parts``, which becomes that one piece (memory: the text, once)."""
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return ""
    text = "".join(parts)
    parts[:] = [text]
    return text


@dataclass(slots=True)
class ToolCall:
    """A complete tool call; ``arguments`` is the JSON text, :attr:`args` the parsed object."""

    index: int
    id: str | None
    name: str | None
    arguments: str = ""

    @property
    def args(self) -> Any:
        try:
            return json.loads(self.arguments) if self.arguments else {}
        except ValueError:
            return None


@dataclass(slots=True)
class Timings:
    """Seconds, measured on this machine from the request being sent."""

    start: float = 0.0  # perf_counter at request
    first_token: float | None = None
    reasoning_end: float | None = None
    end: float | None = None

    @property
    def ttft(self) -> float | None:
        """Time to first token (reasoning or answer)."""
        return None if self.first_token is None else self.first_token - self.start

    @property
    def reasoning_s(self) -> float | None:
        """How long the model thought: first token to first answer token (or to the end)."""
        if self.first_token is None:
            return None
        stop = self.reasoning_end or self.end or time.perf_counter()
        return max(0.0, stop - self.first_token)

    @property
    def total_s(self) -> float | None:
        return None if self.end is None else self.end - self.start

    def elapsed(self) -> float:
        return (self.end or time.perf_counter()) - self.start


@dataclass
class Completion:
    """A model reply: ``str(c)`` is the answer; ``.reasoning`` the thinking.

    Built incrementally while streaming; ``status`` says whether it is complete, interrupted,
    stopped or broken (then ``error`` holds the exception). Nothing streamed is ever dropped.
    """

    provider: str = ""
    model: str = ""
    messages: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: Usage | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    timings: Timings = field(default_factory=Timings)
    status: Status = "streaming"
    error: BaseException | None = None
    data: Any = None  # validated structured output (guided JSON)
    schema: dict[str, Any] | None = None
    price_in: float | None = None  # USD per million tokens, from the preset's price table
    price_out: float | None = None
    replayed: bool = False
    #: guided JSON: the earlier attempts of this reply (answers that missed the schema)
    attempts: list[Completion] = field(default_factory=list, repr=False)
    reasoning_complete: bool = False  # the model finished thinking (</think> or a switch)
    # the text as it arrived since it was last read: joined into one piece on every read of
    # .reasoning / .content and on finish, so a finished reply holds each text once
    _reasoning: list[str] = field(default_factory=list, repr=False)
    _content: list[str] = field(default_factory=list, repr=False)
    _n_events: list[int] = field(default_factory=lambda: [0, 0], repr=False)
    #: text deltas as the server sent them (before ``<think>`` tags were split out): what a
    #: server that reports no usage is counted by, about one token each
    deltas: int = field(default=0, repr=False)

    # -- folding events --------------------------------------------------------------------
    def add(self, ev: Event) -> None:
        """Fold one event into this completion."""
        t = type(ev)
        if t is ReasoningDelta:
            if self.timings.first_token is None:
                self.timings.first_token = time.perf_counter()
            self._reasoning.append(ev.text)  # type: ignore[union-attr]
            self._n_events[0] += 1
        elif t is ContentDelta:
            tm = self.timings
            if tm.reasoning_end is None and (tm.first_token is None or self._reasoning):
                now = time.perf_counter()
                if tm.first_token is None:
                    tm.first_token = now
                if self._reasoning:
                    tm.reasoning_end = now
                    self.reasoning_complete = True
            self._content.append(ev.text)  # type: ignore[union-attr]
            self._n_events[1] += 1
        elif t is ToolCallDelta:
            self._add_tool(ev)  # type: ignore[arg-type]
        elif t is Usage:
            self.usage = ev  # type: ignore[assignment]  # cumulative: the last one wins
        elif t is Finish:
            self.finish_reason = ev.reason  # type: ignore[union-attr]
        elif t is Reclassified:
            self._reclassify()

    def _reclassify(self) -> None:
        """The answer so far was reasoning (see :class:`~qwq_magic.events.Reclassified`)."""
        if not self._content:
            return
        self._reasoning.extend(self._content)
        self._content = []
        n = self._n_events
        n[0], n[1] = n[0] + n[1], 0
        # the </think> that reclassified it closed the reasoning: the fold shows "Thought for"
        self.timings.reasoning_end = time.perf_counter()
        self.reasoning_complete = True

    def _add_tool(self, ev: ToolCallDelta) -> None:
        if self.timings.first_token is None:
            self.timings.first_token = time.perf_counter()
        for tc in self.tool_calls:
            if tc.index == ev.index:
                if ev.id and not tc.id:
                    tc.id = ev.id
                if ev.name and not tc.name:
                    tc.name = ev.name
                tc.arguments += ev.arguments
                return
        self.tool_calls.append(ToolCall(ev.index, ev.id, ev.name, ev.arguments))

    def extract_inline_tool_calls(self) -> bool:
        """Servers without a tool parser leave Qwen's ``<tool_call>{json}</tool_call>`` in the
        text: turn those into :attr:`tool_calls` (when none arrived structured)."""
        if self.tool_calls or "<tool_call>" not in self.content:
            return False
        for i, m in enumerate(_INLINE_TOOL_CALL.finditer(self.content)):
            try:
                obj = json.loads(m.group(1))
            except ValueError:
                continue
            if isinstance(obj, dict) and isinstance(obj.get("name"), str):
                args = obj.get("arguments", {})
                self.tool_calls.append(ToolCall(i, None, obj["name"],
                                                args if isinstance(args, str) else json.dumps(args)))
        return bool(self.tool_calls)

    def finish(self, status: Status = "complete", error: BaseException | None = None) -> None:
        """Mark the end of the stream (also on interrupt or error). The first terminal status
        wins: a reply reaches exactly one (later calls may only attach an error)."""
        if self.timings.end is None:
            self.timings.end = time.perf_counter()
        if self.status == "streaming":
            self.status = status
        if error is not None and self.error is None:
            self.error = error
        _join(self._reasoning)
        _join(self._content)
        u = self.usage
        if u is None or (u.prompt_tokens is None and u.completion_tokens is None):
            self.usage = self.counted_usage(u)

    def seed(self, earlier: Completion) -> None:
        """Start from ``earlier``'s text (a continued reply is one reply: see
        :meth:`Client.continue_`)."""
        if earlier.reasoning:
            self._reasoning.append(earlier.reasoning)
        if earlier.content:
            self._content.append(earlier.content)
        self._n_events[:] = [earlier.reasoning_events, earlier.content_events]
        self.deltas = earlier.deltas
        self.reasoning_complete = earlier.reasoning_complete
        self.tool_calls = list(earlier.tool_calls)

    def counted_usage(self, reported: Usage | None = None) -> Usage:
        """Usage counted here, for a server that sent none (labelled ``counted``): completion
        tokens are the deltas received (servers stream about one token per delta), prompt
        tokens ≈ characters / 4. A reported cost is kept."""
        out = (self.deltas or self.reasoning_events + self.content_events) \
            + 8 * len(self.tool_calls)
        chars = sum(len(str(m.get("content") or "")) for m in self.messages)
        prompt = -(-chars // 4) if chars else 0
        return Usage(prompt_tokens=prompt, completion_tokens=out, total_tokens=prompt + out,
                     reasoning_tokens=self.reasoning_events,
                     cost_usd=reported.cost_usd if reported else None, counted=True)

    # -- reading ---------------------------------------------------------------------------
    @property
    def reasoning(self) -> str:
        return _join(self._reasoning)

    @property
    def content(self) -> str:
        return _join(self._content)

    def tail(self, kind: Literal["reasoning", "content"], n_chars: int) -> str:
        """The last ``n_chars`` characters of the reasoning or the answer, without joining the
        whole text (what a live view shows while streaming). Cost: ``O(n_chars)`` plus the
        pieces walked, whatever the length of the reply."""
        parts = self._reasoning if kind == "reasoning" else self._content
        if n_chars <= 0 or not parts:
            return ""
        if len(parts) == 1:
            return parts[0][-n_chars:]
        got, i = 0, len(parts)
        while i > 0 and got < n_chars:
            i -= 1
            got += len(parts[i])
        return "".join(parts[i:])[-n_chars:]

    def chars(self, kind: Literal["reasoning", "content"]) -> int:
        """Length of the reasoning or the answer so far (cheap: no join)."""
        parts = self._reasoning if kind == "reasoning" else self._content
        return sum(map(len, parts))

    @property
    def reasoning_pieces(self) -> list[str]:
        """The reasoning in the pieces not yet joined (reading :attr:`reasoning`, or the end
        of the stream, joins them into one). Kept for renderers written against it; prefer
        :meth:`tail` and :meth:`chars`."""
        return self._reasoning

    @property
    def content_pieces(self) -> list[str]:
        """The answer in the pieces not yet joined (see :attr:`reasoning_pieces`)."""
        return self._content

    @property
    def reasoning_events(self) -> int:
        """How many reasoning deltas arrived (≈ tokens; a live counter before usage is known)."""
        return self._n_events[0]

    @property
    def content_events(self) -> int:
        return self._n_events[1]

    @property
    def text(self) -> str:
        """The answer (alias of :attr:`content`)."""
        return self.content

    @property
    def answering(self) -> bool:
        return bool(self._content) or bool(self.tool_calls)

    @property
    def thinking(self) -> bool:
        """The model is (still) reasoning: reasoning arrived and no answer yet."""
        return bool(self._reasoning) and not self._content and self.status == "streaming"

    @property
    def reasoning_truncated(self) -> bool:
        """Generation stopped (at max_tokens) while the model was still thinking."""
        return self.finish_reason == "length" and not self._content and bool(self._reasoning)

    @property
    def completion_tokens(self) -> int | None:
        return self.usage.completion_tokens if self.usage else None

    @property
    def tokens_per_s(self) -> float | None:
        """Output tokens per second from first token to end (needs usage)."""
        n = self.completion_tokens
        t = self.timings
        if not n or t.first_token is None:
            return None
        span = (t.end or time.perf_counter()) - t.first_token
        return n / span if span > 0 else None

    @property
    def cost(self) -> float | None:
        """USD: the provider's own figure when it sends one, else an estimate from prices."""
        u = self.usage
        if u is None:
            return None
        if u.cost_usd is not None:
            return u.cost_usd
        if self.price_in is None or self.price_out is None:
            return None
        if u.prompt_tokens is None or u.completion_tokens is None:
            return None
        return (u.prompt_tokens * self.price_in + u.completion_tokens * self.price_out) / 1e6

    @property
    def cost_is_estimate(self) -> bool:
        return self.usage is not None and self.usage.cost_usd is None

    def to_message(self, include_reasoning: bool = False) -> dict[str, Any]:
        """This reply as an assistant message for the next turn (reasoning left out by default,
        as the QwQ model card advises)."""
        msg: dict[str, Any] = {"role": "assistant", "content": self.content}
        if include_reasoning and self.reasoning:
            msg["reasoning_content"] = self.reasoning
        if self.tool_calls:
            msg["tool_calls"] = [
                {"id": tc.id, "type": "function",
                 "function": {"name": tc.name, "arguments": tc.arguments}}
                for tc in self.tool_calls
            ]
        return msg

    def __str__(self) -> str:
        return self.content

    def __repr__(self) -> str:
        def short(s: str, n: int = 40) -> str:
            s = s.replace("\n", " ")
            return s if len(s) <= n else s[: n - 1] + "…"

        return (
            f"<Completion {self.provider}:{self.model} status={self.status} "
            f"finish={self.finish_reason} reasoning={short(self.reasoning)!r} "
            f"content={short(self.content)!r}>"
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from .display import render_bundle

        return render_bundle(self)
