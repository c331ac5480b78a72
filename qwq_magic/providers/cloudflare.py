"""Cloudflare Workers AI native dialect: ``POST /accounts/{id}/ai/run/{model}``.

Streams ``{"response": "...", "p": "<padding>"}`` chunks and a final ``{"response": "",
"usage": {...}}``; QwQ sends no finish_reason and only the closing ``</think>``. Models with
OpenAI-shaped output (Qwen3 on Workers AI) stream ``chat.completion.chunk`` objects through the
same endpoint, so both shapes are read here.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from ..errors import ConfigurationError, StreamError
from ..events import ContentDelta, Event
from . import openai_compat
from ._common import error_from_obj, parse_usage


def url(base_url: str, model: str, account_id: str | None = None) -> str:
    if not account_id:
        raise ConfigurationError(
            "Cloudflare needs an account id: set CLOUDFLARE_ACCOUNT_ID (or pass account_id=…). "
            "It is in the dashboard URL: dash.cloudflare.com/<account id>/ai/workers-ai."
        )
    return f"{base_url.rstrip('/')}/accounts/{quote(account_id, safe='')}/ai/run/{quote(model, safe='@/')}"


def body(
    model: str,
    messages: list[dict[str, Any]],
    params: dict[str, Any],
    *,
    stream: bool,
    response_format: dict[str, Any] | None = None,
    tools: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    # Workers AI wants string content ("" rather than null for tool-call turns)
    msgs = [{**m, "content": m.get("content") or ""} for m in messages]
    b: dict[str, Any] = {"messages": msgs, "stream": stream}
    b.update(params)
    if response_format:
        b.update(response_format)
    if tools:
        b["tools"] = tools
    if extra:
        b.update(extra)
    return b


def parse_chunk(obj: dict[str, Any], out: list[Event]) -> None:
    """A native chunk, a whole ``result`` object, or an OpenAI-shaped chunk → events."""
    if "result" in obj and ("success" in obj or "errors" in obj):
        if obj.get("success") is False:
            msg, code = error_from_obj(obj)
            raise StreamError(f"the provider reported an error: {msg}", code=code)
        obj = obj.get("result") or {}
        if not isinstance(obj, dict):
            out.append(ContentDelta(obj if isinstance(obj, str) else json.dumps(obj)))
            return
    if "choices" in obj or "error" in obj:
        openai_compat.parse_chunk(obj, out)
        return
    if obj.get("errors") and obj.get("success") is False:
        msg, code = error_from_obj(obj)
        raise StreamError(f"the provider reported an error mid-stream: {msg}", code=code)
    r = obj.get("response")
    if r is not None and r != "":
        # JSON mode returns an object (sometimes a number) instead of a string
        out.append(ContentDelta(r if isinstance(r, str) else json.dumps(r)))
    tcs = obj.get("tool_calls")
    if tcs:
        for i, tc in enumerate(tcs):
            openai_compat.parse_tool_call(tc, i, out)
    usage = obj.get("usage")
    if usage:
        out.append(parse_usage(usage))
