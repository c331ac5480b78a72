"""What the local provider server says: scripted replies, tokens, JSON made up from a schema."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

ReasoningMode = Literal["route", "field", "inline", "inline_open", "none", "content_leak",
                        "reasoning_only"]
ToolCallStyle = Literal["incremental", "whole", "partial_first", "empty_strings", "inline"]

_TOKEN = re.compile(r"\s*\S+|\s+")


def tokens(text: str) -> list[str]:
    """Split text into word-sized 'tokens' (leading whitespace attached); joins back exactly."""
    return _TOKEN.findall(text)


@dataclass
class ToolCall:
    """A tool call the scripted model makes: ``ToolCall("get_weather", {"city": "Paris"})``."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass
class Reply:
    """One scripted model reply.

    ``reasoning`` and ``content`` are what the model 'generates'; the route decides how they
    travel (a reasoning field, inline ``…</think>``, …) unless ``reasoning_mode`` overrides it:

    * ``"route"``: the route's own habit (default)
    * ``"field"``: the route's reasoning field (``reasoning_content`` or ``reasoning``)
    * ``"inline"``: QwQ-style, reasoning then ``</think>`` inside the content, no opening tag
    * ``"inline_open"``: Qwen3-style ``<think>…</think>`` inside the content
    * ``"content_leak"``: an old vLLM qwen3 parser: reasoning leaks into content untagged
    * ``"reasoning_only"``: the deepseek_r1 parser with thinking off: the answer arrives in
      the reasoning field and content stays empty
    * ``"none"``: no reasoning at all

    ``chunk_size`` tokens per chunk, ``pace`` seconds between chunks (None: the server's),
    ``match``: used only for a request whose last user message contains this text.
    ``faults``: faults for the requests that would take this reply, one per request, in order
    (``{"kind": "status", "code": 500}``, ``{"kind": "drop", "after": 3}``…; the options of
    :meth:`ProviderServer.fault`): a retried request meets the next one, then none.
    """

    reasoning: str = ""
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    reasoning_mode: ReasoningMode = "route"
    tool_call_style: ToolCallStyle = "incremental"
    finish_reason: str | None = None
    chunk_size: int = 1
    pace: float | None = None
    match: str | None = None
    prompt_tokens: int | None = None
    faults: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def long(cls, n: int, content: str = "The answer is 42.", **kw: Any) -> Reply:
        """A reply whose reasoning is ``n`` tokens long (for truncation and load tests)."""
        words = ["Let", "me", "think", "about", "this", "step", "by", "step,", "checking", "each", "part", "again", "and", "again.", "Wait,", "is", "that", "right?", "Hmm,", "consider", "the", "other", "case", "too."]
        text = " ".join(words[i % len(words)] for i in range(n))
        return cls(reasoning=text, content=content, **kw)

    def to_json(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["tool_calls"] = [tc.__dict__ for tc in self.tool_calls]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Reply:
        d = dict(d)
        d["tool_calls"] = [ToolCall(**tc) for tc in d.get("tool_calls") or []]
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def default_reply(messages: list[dict[str, Any]], schema: dict[str, Any] | None) -> Reply:
    """What the server says when nothing was scripted: a short think, then an answer."""
    prompt = ""
    for m in reversed(messages):
        if m.get("role") == "user":
            c = m.get("content")
            prompt = c if isinstance(c, str) else str(c)
            break
    short = prompt.strip().replace("\n", " ")
    if len(short) > 80:
        short = short[:77] + "..."
    reasoning = (f"Okay, the user asks: \"{short}\". This is the local qwq_magic test server, "
                 "so I will think briefly and then answer.")
    if schema is not None:
        import json

        return Reply(reasoning=reasoning, content=json.dumps(example_for(schema), indent=1))
    return Reply(reasoning=reasoning,
                 content=f"This is the **local test server** answering: *{short}*")


def example_for(schema: dict[str, Any], root: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """A small value that satisfies common JSON schemas (for JSON-mode replies)."""
    root = root or schema
    if depth > 8:
        return None
    if "$ref" in schema:
        ref = schema["$ref"]
        node: Any = root
        for part in ref.lstrip("#/").split("/"):
            node = node.get(part, {}) if part else node
        return example_for(node, root, depth + 1)
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return example_for(options[0], root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "null")
    if t == "object" or (t is None and "properties" in schema):
        props = schema.get("properties", {})
        return {k: example_for(v, root, depth + 1) for k, v in props.items()}
    if t == "array":
        items = schema.get("items", {})
        n = max(2, int(schema.get("minItems", 0)))
        return [_vary(example_for(items, root, depth + 1), i) for i in range(n)]
    if t == "integer":
        return int(schema.get("minimum", 1990 if "year" in str(schema).lower() else 1))
    if t == "number":
        return float(schema.get("minimum", 1.5))
    if t == "boolean":
        return True
    if t == "null":
        return None
    return "example"


def _vary(v: Any, i: int) -> Any:
    if isinstance(v, dict):
        return {k: _vary(x, i) for k, x in v.items()}
    if isinstance(v, str):
        return f"{v} {i + 1}"
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, int | float):
        return v + i
    return v
