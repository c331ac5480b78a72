"""The OpenAI-compatible chat-completions dialect (DeepInfra, AI/ML API, vLLM, Ollama /v1,
llama.cpp, LM Studio, OpenRouter, DashScope…). Pure functions over dicts."""

from __future__ import annotations

import json
from typing import Any

from ..errors import StreamError
from ..events import ContentDelta, Event, Finish, ReasoningDelta, ToolCallDelta, normalize_finish
from ._common import error_from_obj, parse_usage


def url(base_url: str, model: str, account_id: str | None = None) -> str:
    return base_url.rstrip("/") + "/chat/completions"


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
    b: dict[str, Any] = {"model": model, "messages": messages, "stream": stream}
    if stream:
        b["stream_options"] = {"include_usage": True}
    b.update(params)
    if response_format:
        b.update(response_format)
    if tools:
        b["tools"] = [_as_openai_tool(t) for t in tools]
    if extra:
        _deep_update(b, extra)
    return b


def raw_url(base_url: str, model: str, account_id: str | None = None) -> str:
    """The raw text-completion endpoint (a prompt in, text out): used to continue a reply."""
    return base_url.rstrip("/") + "/completions"


def raw_body(model: str, prompt: str, params: dict[str, Any], *, stream: bool) -> dict[str, Any]:
    b: dict[str, Any] = {"model": model, "prompt": prompt, "stream": stream}
    if stream:
        b["stream_options"] = {"include_usage": True}
    b.update(params)
    return b


def _as_openai_tool(t: dict[str, Any]) -> dict[str, Any]:
    if "function" in t:
        return t
    return {"type": "function", "function": t}


def _deep_update(dst: dict[str, Any], src: dict[str, Any]) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _deep_update(dst[k], v)
        else:
            dst[k] = v


def parse_chunk(obj: dict[str, Any], out: list[Event]) -> None:
    """One decoded ``chat.completion.chunk`` (or a whole ``chat.completion``) → events."""
    err = obj.get("error")
    if err is not None or obj.get("object") == "error":
        msg, code = error_from_obj(obj)
        raise StreamError(f"the provider reported an error mid-stream: {msg}", code=code,
                          body=json.dumps(obj))
    choices = obj.get("choices")
    if choices:
        if type(choices) is not list:
            raise StreamError(f"'choices' is a {type(choices).__name__}, not a list")
        ch = choices[0]
        delta = ch.get("delta")
        if delta is None:
            delta = ch.get("message")
        if delta:
            r = delta.get("reasoning_content")
            if r is None:
                r = delta.get("reasoning")
                if r is None:
                    r = delta.get("thinking")
            if r and isinstance(r, str):
                out.append(ReasoningDelta(r))
            c = delta.get("content")
            if c:
                out.append(ContentDelta(c if isinstance(c, str) else json.dumps(c)))
            tcs = delta.get("tool_calls")
            if tcs:
                for i, tc in enumerate(tcs):
                    parse_tool_call(tc, i, out)
        else:
            t = ch.get("text")  # a raw /completions chunk (Continue)
            if t and isinstance(t, str):
                out.append(ContentDelta(t))
        fr = ch.get("finish_reason")
        if fr:
            if type(fr) is not str:
                raise StreamError(f"finish_reason is not a string: {json.dumps(fr)[:100]}")
            out.append(Finish(normalize_finish(fr), fr))
    usage = obj.get("usage")
    if usage:
        out.append(parse_usage(usage))


def parse_tool_call(tc: dict[str, Any], position: int, out: list[Event]) -> None:
    """A tool-call delta (incremental, whole, or flat Cloudflare/Ollama style) → event."""
    fn = tc.get("function")
    if isinstance(fn, dict):
        name = fn.get("name")
        args = fn.get("arguments")
    else:
        name = tc.get("name")
        args = tc.get("arguments")
    if args is None:
        args = ""
    elif not isinstance(args, str):
        args = json.dumps(args)
    index = tc.get("index")
    if not isinstance(index, int):
        index = position
    tid = tc.get("id") or None
    name = name or None
    if tid is None and name is None and not args:
        return  # Cloudflare's null "finalization" sentinel, or an empty trailing delta
    out.append(ToolCallDelta(index=index, id=tid, name=name, arguments=args))
