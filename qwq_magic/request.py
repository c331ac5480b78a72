"""Turning a prompt, options and a preset into a validated, ready-to-send request."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigurationError, mask
from .params import nest, validate
from .providers import ModelInfo, Preset
from .reasoning import ThinkMode

Message = dict[str, Any]


def build_messages(
    prompt: str | Sequence[Mapping[str, Any]] | None,
    *,
    system: str | None = None,
    history: Sequence[Mapping[str, Any]] | None = None,
) -> list[Message]:
    """``[system] + history + prompt`` as a message list; ``prompt`` may already be a list."""
    msgs: list[Message] = []
    if system is not None and not isinstance(system, str):
        raise ConfigurationError(f"system= takes the system prompt as a string, not "
                                 f"{type(system).__name__}.")
    if system:
        msgs.append({"role": "system", "content": system})
    if history:
        msgs.extend(_messages(history, "history="))
    if prompt is None:
        pass
    elif isinstance(prompt, str):
        if not prompt.strip():
            raise ConfigurationError("The prompt is empty: give a question or a list of messages.")
        msgs.append({"role": "user", "content": prompt})
    else:
        msgs.extend(_messages(prompt, "the prompt"))
        if system and len(msgs) > 1 and msgs[1].get("role") == "system":
            raise ConfigurationError("Both system= and a system message were given; use one.")
    if not any(m.get("role") != "system" for m in msgs):
        raise ConfigurationError("The prompt is empty: give a question or a list of messages.")
    return msgs


ROLES = ("system", "user", "assistant", "tool", "developer", "function")


def _messages(items: Any, what: str) -> list[Message]:
    """A list of chat messages, each a dict with a known ``role`` (else a clear error)."""
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Sequence):
        kind = "a list of messages" if what == "history=" else (
            "a question (str) or a list of messages")
        raise ConfigurationError(
            f"{what[0].upper()}{what[1:]} must be {kind} like "
            f"{{'role': 'user', 'content': '…'}}, not {type(items).__name__}.")
    out = []
    for m in items:
        if not isinstance(m, Mapping) or "role" not in m:
            raise ConfigurationError(
                f"Each message must be a dict with 'role' and 'content'; got {m!r:.80}.")
        if m["role"] not in ROLES:
            raise ConfigurationError(
                f"A message's role must be one of {', '.join(ROLES)}; got {m['role']!r:.40}.")
        out.append(dict(m))
    return out


@dataclass
class PreparedRequest:
    """Everything about one call except the key: what ``--dry-run`` shows."""

    provider: str
    model: str
    url: str
    body: dict[str, Any]
    stream: bool
    messages: list[Message]
    params: dict[str, Any]  # canonical names, validated
    think: ThinkMode
    info: ModelInfo
    json_schema: dict[str, Any] | None = None
    json_mode: str | None = None
    schema_source: Any = None  # what the user passed as the schema (dict, class, string…)
    headers: dict[str, str] = field(default_factory=dict)
    preset: Preset | None = field(default=None, repr=False, compare=False)
    #: set for servers that answer one request at a time: concurrent calls queue on this key
    queue_key: str | None = field(default=None, repr=False, compare=False)

    def describe(self, api_key: str | None = None) -> str:
        """The exact HTTP request, key masked."""
        hdr = {"Content-Type": "application/json", **self.headers}
        if api_key:
            hdr["Authorization"] = f"Bearer {mask(api_key)}"
        lines = [f"POST {self.url}"]
        lines += [f"{k}: {v}" for k, v in hdr.items()]
        lines.append("")
        lines.append(json.dumps(self.body, indent=2, ensure_ascii=False))
        return "\n".join(lines)


def prepare(
    preset: Preset,
    *,
    base_url: str,
    model: str,
    account_id: str | None,
    messages: list[Message],
    params: Mapping[str, Any],
    stream: bool = True,
    think: ThinkMode | None = None,
    response_format: dict[str, Any] | None = None,
    tools: list[dict[str, Any]] | None = None,
    extra_body: dict[str, Any] | None = None,
    server: Any = None,
) -> PreparedRequest:
    """Validate parameters against the provider's table — adapted to the server behind the URL
    when it is known (``server``: a :class:`~qwq_magic.providers.servers.ServerInfo`) — and
    build the body."""
    from .providers import servers

    if not isinstance(model, str) or not model.strip():
        raise ConfigurationError(f"model must be a model name (a non-empty string); got "
                                 f"{model!r:.60}.")
    if tools is not None and (not isinstance(tools, list)
                              or not all(isinstance(t, dict) for t in tools)):
        raise ConfigurationError("tools= must be a list of tool dicts "
                                 "({'type': 'function', 'function': {...}}).")
    if extra_body is not None and not isinstance(extra_body, dict):
        raise ConfigurationError(f"extra_body= must be a dict of extra request fields, not "
                                 f"{type(extra_body).__name__}.")
    info = preset.model_info(model)
    where = f"{preset.name} ({model})"
    table = servers.spec_table(server, info.params) if server is not None else info.params
    wire = nest(validate(params, table, where))
    canonical = {k: v for k, v in params.items() if v is not None}
    url = preset.wire.url(base_url, model, account_id)
    body = preset.wire.body(model, messages, wire, stream=stream, response_format=response_format,
                            tools=tools, extra=extra_body)
    if server is not None:
        body = servers.adapt_body(server, body)
    if think is None:
        think = "off" if canonical.get("enable_thinking") is False else info.think
    return PreparedRequest(
        provider=preset.name, model=model, url=url, body=body, stream=stream, messages=messages,
        params=canonical, think=think, info=info, preset=preset,
    )
