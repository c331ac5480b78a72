"""The typed events every provider dialect produces and every front end consumes.

Small slotted dataclasses, one per kind (no pydantic per chunk: it costs more than the parse).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error", "unknown"]


@dataclass(slots=True)
class ReasoningDelta:
    """A piece of the model's reasoning ("thinking") text."""

    text: str


@dataclass(slots=True)
class ContentDelta:
    """A piece of the answer text."""

    text: str


@dataclass(slots=True)
class ToolCallDelta:
    """A fragment of a tool call, keyed by ``index``; ``arguments`` fragments concatenate."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(slots=True)
class Usage:
    """Token usage as reported by the provider (fields it did not send stay ``None``), or
    counted from the stream when it sent none (``counted=True``)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None
    cost_usd: float | None = None
    counted: bool = False


@dataclass(slots=True)
class Reclassified:
    """The answer text received so far, ``text``, was reasoning after all.

    Sent when a ``</think>`` arrives although no ``<think>`` opened (a QwQ-style model served
    under a name that says nothing, so the splitter could not know the reply starts inside the
    reasoning). Everything streamed as :class:`ContentDelta` until now is ``text``; a consumer
    moves it from its answer to its reasoning (``reasoning += text; answer = ""``). The
    :class:`~qwq_magic.completion.Completion` does this itself. It happens at most once per
    reply; a later ``</think>`` stays answer text.
    """

    text: str


@dataclass(slots=True)
class Finish:
    """The end of a choice: a normalised reason plus the provider's raw value."""

    reason: FinishReason
    raw: str | None = None


Event = ReasoningDelta | ContentDelta | ToolCallDelta | Usage | Finish | Reclassified

_FINISH_MAP: dict[str, FinishReason] = {
    "stop": "stop",
    "eos": "stop",
    "end_turn": "stop",
    "length": "length",
    "model_length": "length",
    "max_tokens": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    "error": "error",
    "other": "unknown",
    "unknown": "unknown",
}


def normalize_finish(raw: str) -> FinishReason:
    """Map a provider's finish_reason string onto ours (unknown strings count as stop)."""
    return _FINISH_MAP.get(raw, "stop")


#: the message a front end cancels a stream's task with when the user interrupted (Ctrl-C):
#: ``task.cancel(INTERRUPTED)``; the stream then ends "interrupted", any other cancel "stopped"
INTERRUPTED = "interrupted"
