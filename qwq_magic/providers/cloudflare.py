"""Cloudflare Workers AI: everything about it in one file — the native dialect
(``POST /accounts/{id}/ai/run/{model}``), its parameter tables, error codes, JSON mode and preset.

Streams ``{"response": "...", "p": "<padding>"}`` chunks and a final ``{"response": "",
"usage": {...}}``; QwQ sends no finish_reason and only the closing ``</think>``. Models with
OpenAI-shaped output (Qwen3 on Workers AI) stream ``chat.completion.chunk`` objects through the
same endpoint, so both shapes are read here.
"""

from __future__ import annotations

import json
import sys
from typing import Any
from urllib.parse import quote

from ..errors import ConfigurationError, StreamError
from ..events import ContentDelta, Event
from ..params import ParamSpec, SpecTable
from . import openai_compat
from ._common import error_from_obj, parse_usage
from .base import NO_THINK_SWITCH, ONE_CHOICE, ModelInfo, Preset


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


def raw_url(base_url: str, model: str, account_id: str | None = None) -> str:
    """Workers AI takes a raw prompt at the same endpoint (``raw: true``): used to continue."""
    return url(base_url, model, account_id)


def raw_body(model: str, prompt: str, params: dict[str, Any], *, stream: bool) -> dict[str, Any]:
    return {"prompt": prompt, "raw": True, "stream": stream, **params}


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


# -- parameters: https://developers.cloudflare.com/workers-ai/models/qwq-32b/ (input schema) ------
F, INT, B, L = float, int, bool, list
QWQ: SpecTable = {
    "temperature": ParamSpec(F, 0, 5, default=0.15),
    "top_p": ParamSpec(F, 0, 2),
    "top_k": ParamSpec(INT, 1, 50),
    "min_p": "not in the Workers AI schema for this model",
    "max_tokens": ParamSpec(INT, 1, 24000, default=256),
    "seed": ParamSpec(INT, 1, 9999999999),
    "repetition_penalty": ParamSpec(F, 0, 2),
    "frequency_penalty": ParamSpec(F, 0, 2),
    "presence_penalty": ParamSpec(F, 0, 2),
    "stop": "not in the Workers AI schema for this model",
    "n": ONE_CHOICE,
    "enable_thinking": NO_THINK_SWITCH,
    "thinking_budget": NO_THINK_SWITCH,
}
# https://developers.cloudflare.com/workers-ai/models/qwen3-30b-a3b-fp8/
QWEN3: SpecTable = {
    **QWQ,
    "temperature": ParamSpec(F, 0, 5, default=0.6),
    "top_p": ParamSpec(F, 0.001, 1),
    "max_tokens": ParamSpec(INT, 1, 32768, default=2000),
    "frequency_penalty": ParamSpec(F, -2, 2),
    "presence_penalty": ParamSpec(F, -2, 2),
    "enable_thinking": "not in the Workers AI schema for this model",
    "thinking_budget": "not in the Workers AI schema for this model",
}

#: Workers AI error codes: 5007 "no such model", 3042 "invalid model"; 3036 "daily free
#: allocation used up" (waiting won't help today)
NOT_FOUND_CODES = frozenset({5007, 3042})
FINAL_CODES = frozenset({3036})

PRESET = Preset(
    name="cloudflare",
    title="Cloudflare Workers AI",
    wire=sys.modules[__name__],  # type: ignore[arg-type]
    base_url="https://api.cloudflare.com/client/v4",
    key_env=("CLOUDFLARE_API_TOKEN", "CLOUDFLARE_AUTH_TOKEN"),
    key_required=True,
    default_model="@cf/qwen/qwq-32b",
    models={
        "@cf/qwen/qwq-32b": ModelInfo(
            "@cf/qwen/qwq-32b", QWQ, think="open", price_in=0.66, price_out=1.00,
            context=24000, json_modes=("guided_json", "prompt"),
            note="max_tokens defaults to 256 on Workers AI: raise it, or thinking is cut off",
        ),
        "@cf/qwen/qwen3-30b-a3b-fp8": ModelInfo(
            "@cf/qwen/qwen3-30b-a3b-fp8", QWEN3, think="auto", context=32768,
            json_modes=("json_schema", "prompt"),
        ),
    },
    generic_params=QWQ,
    doc_url="https://developers.cloudflare.com/workers-ai/models/qwq-32b/",
    account_env="CLOUDFLARE_ACCOUNT_ID",
    not_found_codes=NOT_FOUND_CODES,
    final_codes=FINAL_CODES,
    json_schema_bare=True,  # Workers AI takes the bare schema in response_format
    json_streams=False,  # "JSON Mode currently doesn't support streaming"
)
