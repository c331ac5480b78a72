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
    if system:
        msgs.append({"role": "system", "content": system})
    if history:
        msgs.extend(dict(m) for m in history)
    if prompt is None:
        pass
    elif isinstance(prompt, str):
        msgs.append({"role": "user", "content": prompt})
    else:
        for m in prompt:
            if not isinstance(m, Mapping) or "role" not in m:
                raise ConfigurationError(
                    f"Each message must be a dict with 'role' and 'content'; got {m!r:.80}."
                )
            msgs.append(dict(m))
        if system and len(msgs) > 1 and msgs[1].get("role") == "system":
            raise ConfigurationError("Both system= and a system message were given; use one.")
    if not any(m.get("role") != "system" for m in msgs):
        raise ConfigurationError("The prompt is empty: give a question or a list of messages.")
    return msgs


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
