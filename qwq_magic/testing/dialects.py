"""How each route of the local server writes a reply: the providers' wire formats, quirks included.

Every route turns the same plan (reasoning tokens, content tokens, tool calls, usage, finish)
into the bytes its provider sends (see ``wire-formats.md``). The server handles the framing
(SSE, chunked writes, faults); this module only builds the event payloads and error bodies.
"""

from __future__ import annotations

import json
import random
import string
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .replies import ToolCall, tokens


@dataclass
class Route:
    name: str
    style: str  # "cloudflare" or "openai"
    reasoning_field: str | None  # None: inline in the content
    inline_open: bool = False  # emit the opening <think> too
    auth: bool = True  # require the server's key
    usage: str = "final"  # final | with_finish | include_usage | cumulative | none
    done: bool = True  # send data: [DONE]
    error_style: str = "openai"  # openai | vllm | llamacpp | openrouter | deepinfra | aimlapi
    role_every_chunk: bool = False
    finish_chunk_separate: bool = False
    comments: tuple[str, ...] = ()
    spacing: bool = False  # Python-style ", " / ": " separators (DeepInfra)
    default_max_tokens: int | None = None
    prices: tuple[float, float] | None = None  # estimated_cost per million tokens in/out
    models: tuple[str, ...] = ()  # known models ("" = any model containing "qw")
    extras: dict[str, Any] = field(default_factory=dict)


ROUTES: dict[str, Route] = {
    r.name: r
    for r in [
        Route("cloudflare", "cloudflare", None, usage="final", error_style="cloudflare",
              default_max_tokens=256,
              models=("@cf/qwen/qwq-32b", "@cf/qwen/qwen3-30b-a3b-fp8")),
        Route("deepinfra", "openai", "reasoning_content", usage="with_finish",
              error_style="deepinfra", role_every_chunk=True, spacing=True,
              prices=(0.12, 0.18),
              models=("Qwen/QwQ-32B", "Qwen/QwQ-32B-Preview", "Qwen/Qwen3-32B")),
        Route("aimlapi", "openai", "reasoning_content", usage="final", done=False,
              error_style="aimlapi", models=("Qwen/QwQ-32B", "alibaba/qwen3-32b")),
        Route("vllm", "openai", "reasoning", auth=False, usage="include_usage",
              error_style="vllm", extras={"stop_reason": True}),
        Route("vllm-old", "openai", "reasoning_content", auth=False, usage="include_usage",
              error_style="vllm-old", extras={"stop_reason": True}),
        Route("ollama", "openai", "reasoning", auth=False, usage="include_usage",
              error_style="openai", finish_chunk_separate=True,
              extras={"system_fingerprint": "fp_ollama"}),
        Route("llamacpp", "openai", "reasoning_content", auth=False, usage="final",
              error_style="llamacpp", extras={"timings": True}),
        Route("openrouter", "openai", "reasoning", usage="final", error_style="openrouter",
              comments=(": OPENROUTER PROCESSING",)),
        Route("raw", "openai", None, auth=False, usage="include_usage", error_style="vllm"),
    ]
}

OPENAI_FORMAT_CF_MODELS = ("@cf/qwen/qwen3-30b-a3b-fp8",)


def padding() -> str:
    return "".join(random.choices(string.ascii_lowercase + string.digits,
                                  k=random.randint(1, 24)))


def dumps(obj: Any, route: Route) -> str:
    if route.spacing:
        return json.dumps(obj, ensure_ascii=False)
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


@dataclass
class Plan:
    """What one reply streams, in order."""

    pieces: list[tuple[str, str]]  # ("r", text) reasoning, ("c", text) content, ("t", "</think>")
    tool_calls: list[ToolCall]
    tool_style: str
    finish: str  # stop | length | tool_calls
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    model: str
    reasoning_field: str | None
    chunk_size: int = 1


# -- error bodies -------------------------------------------------------------------------------
def error_body(route: Route, status: int, message: str, *, code: Any = None,
               path: str = "") -> dict[str, Any]:
    """The body each provider sends with a non-2xx status."""
    style = route.error_style
    kind = {400: "BadRequestError", 401: "AuthenticationError", 404: "NotFoundError",
            429: "RateLimitError", 503: "ServiceUnavailableError"}.get(status,
                                                                    "InternalServerError")
    if style == "cloudflare":
        cf = code or {400: 5006, 401: 10000, 404: 3042, 429: 3040, 500: 3001,
                      503: 3040}.get(status, 3001)
        return {"result": None, "success": False,
                "errors": [{"code": cf, "message": message}], "messages": []}
    if style == "deepinfra":
        if status == 422:
            return {"detail": [{"loc": ["body", code or "body"], "msg": message,
                                "type": "value_error"}]}
        return {"error": {"message": message}}
    if style == "aimlapi":
        return {"message": message, "path": path, "requestId": str(uuid.uuid4()),
                "statusCode": status, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z")}
    if style == "vllm-old":
        return {"object": "error", "message": message, "type": kind, "param": None,
                "code": status}
    if style == "llamacpp":
        return {"error": {"code": status, "message": message,
                          "type": "invalid_request_error" if status < 500 else "server_error"}}
    if style == "openrouter":
        return {"error": {"code": status, "message": message, "metadata": {}}}
    return {"error": {"message": message, "type": kind, "param": None, "code": status}}


def stream_error(route: Route, message: str, model: str) -> list[tuple[str, str]]:
    """A mid-stream error, as (sse field, payload) lines, the way each server sends it."""
    style = route.error_style
    if style == "llamacpp":
        return [("error", dumps({"code": 500, "message": message, "type": "server_error"},
                                route)), ("data", "[DONE]")]
    if style == "openrouter":
        obj = {"id": "cmpl-err", "object": "chat.completion.chunk", "created": int(time.time()),
               "model": model, "provider": "local",
               "error": {"code": "server_error", "message": message},
               "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]}
        return [("data", dumps(obj, route))]
    if style == "cloudflare":
        obj = {"result": None, "success": False, "errors": [{"code": 3001, "message": message}],
               "messages": []}
        return [("data", dumps(obj, route))]
    if style == "vllm-old":
        return [("data", dumps({"object": "error", "message": message,
                                "type": "InternalServerError", "param": None, "code": 500},
                               route)), ("data", "[DONE]")]
    obj = {"error": {"message": message, "type": "InternalServerError", "param": None,
                     "code": 500}}
    return [("data", dumps(obj, route)), ("data", "[DONE]")]


# -- streaming chunks ---------------------------------------------------------------------------
def _groups(pieces: list[tuple[str, str]], size: int) -> list[list[tuple[str, str]]]:
    """Group consecutive tokens of one kind into chunks of ``size`` tokens."""
    out: list[list[tuple[str, str]]] = []
    cur: list[tuple[str, str]] = []
    for p in pieces:
        if cur and (len(cur) >= size or cur[-1][0] != p[0] or p[0] == "t"):
            out.append(cur)
            cur = []
        cur.append(p)
    if cur:
        out.append(cur)
    return out


def usage_obj(plan: Plan, route: Route, completion_tokens: int | None = None) -> dict[str, Any]:
    ct = plan.completion_tokens if completion_tokens is None else completion_tokens
    u: dict[str, Any] = {"prompt_tokens": plan.prompt_tokens, "completion_tokens": ct,
                         "total_tokens": plan.prompt_tokens + ct}
    if route.name == "aimlapi" and plan.reasoning_tokens:
        u["completion_tokens_details"] = {"reasoning_tokens": plan.reasoning_tokens}
    if route.prices:
        pin, pout = route.prices
        u["estimated_cost"] = float(f"{(plan.prompt_tokens * pin + ct * pout) / 1e6:.3e}")
    if route.name == "openrouter":
        u["cost"] = round((plan.prompt_tokens * 0.15 + ct * 0.2) / 1e6, 10)
    if route.name == "vllm":
        u["prompt_tokens_details"] = {"cached_tokens": 0}
    return u


def cloudflare_native_events(plan: Plan, route: Route) -> list[str]:
    """Workers AI native QwQ: ``response`` deltas with ``p`` padding, inline ``</think>``,
    no finish_reason, a final usage chunk, ``[DONE]``."""
    out: list[str] = []
    for grp in _groups(plan.pieces, plan.chunk_size):
        text = "".join(t for _, t in grp)
        out.append(dumps({"response": text, "p": padding()}, route))
    if plan.tool_calls:
        if plan.tool_style == "whole":
            tcs = [{"name": tc.name, "arguments": tc.arguments} for tc in plan.tool_calls]
            out.append(dumps({"response": "", "tool_calls": tcs}, route))
        else:
            out.append(dumps({"response": "", "tool_calls": []}, route))
            for i, tc in enumerate(plan.tool_calls):
                out.append(dumps({"tool_calls": [{"id": tc.id or f"chatcmpl-tool-{i}",
                                                  "type": "function", "index": i,
                                                  "function": {"name": tc.name}}]}, route))
                for frag in _fragments(json.dumps(tc.arguments)):
                    out.append(dumps({"tool_calls": [{"index": i,
                                                      "function": {"arguments": frag}}]}, route))
            out.append(dumps({"tool_calls": [{"id": None, "type": None, "index": 0,
                                              "function": {"name": None, "arguments": ""}}]},
                             route))
    out.append(dumps({"tool_calls": [], "p": padding()}, route))  # a chunk without response
    out.append(dumps({"response": "", "usage": usage_obj(plan, route)}, route))
    return out


def _fragments(s: str, n: int = 7) -> list[str]:
    return [s[i:i + n] for i in range(0, len(s), n)] or [""]


def openai_events(plan: Plan, route: Route, include_usage: bool) -> list[str]:
    """``chat.completion.chunk`` SSE payloads with each server's habits."""
    cid = "chatcmpl-" + uuid.uuid4().hex[:24]
    created = int(time.time())
    cumulative = route.usage == "cumulative" or route.name == "cloudflare"
    emitted = 0

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
        obj: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created,
                               "model": plan.model}
        if "system_fingerprint" in route.extras:
            obj["system_fingerprint"] = route.extras["system_fingerprint"]
        choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None,
                                  "finish_reason": finish}
        if route.extras.get("stop_reason"):
            choice["stop_reason"] = None
        obj["choices"] = [choice]
        if route.name in ("deepinfra", "aimlapi"):
            obj["usage"] = None
        if cumulative:
            obj["usage"] = usage_obj(plan, route, emitted)
        obj.update(extra)
        return obj

    out: list[dict[str, Any]] = []
    first = True
    rf = plan.reasoning_field
    for grp in _groups(plan.pieces, plan.chunk_size):
        kind = grp[0][0]
        text = "".join(t for _, t in grp)
        emitted += len(grp)
        if kind == "t":
            if rf is not None:
                continue  # a lone </think> token produces no chunk (vLLM)
            delta: dict[str, Any] = {"content": text}
        elif kind == "r" and rf is not None:
            delta = {rf: text}
            if route.name == "aimlapi":
                delta = {"content": None, "refusal": None, rf: text}
        else:
            delta = {"content": text}
            if route.name == "aimlapi" and rf is not None:
                delta = {"content": text, "refusal": None, rf: None}
        if route.name == "deepinfra":
            delta = {"role": "assistant", **delta, "tool_calls": None}
        elif first:
            delta = {"role": "assistant", **delta}
            if route.name == "aimlapi" and rf is not None and kind == "r":
                out.append(chunk({"content": None, "role": "assistant", "refusal": None,
                                  rf: ""}))
                delta = {k: v for k, v in delta.items() if k != "role"}
        first = False
        out.append(chunk(delta))
    # vLLM: at the reasoning→content boundary one delta can carry both fields; we merge the
    # last reasoning chunk with the first content chunk when they meet in a reasoning field.
    if route.name == "vllm" and rf is not None:
        _merge_boundary(out, rf)
    if plan.tool_calls:
        out += _openai_tool_chunks(plan, chunk)
    finish = plan.finish
    tail_extra: dict[str, Any] = {}
    if route.extras.get("timings"):
        tail_extra["timings"] = {"prompt_n": plan.prompt_tokens, "prompt_ms": 4.8,
                                 "predicted_n": plan.completion_tokens,
                                 "predicted_ms": 10.0 * plan.completion_tokens,
                                 "predicted_per_second": 100.0}
    if route.finish_chunk_separate or route.name in ("vllm", "vllm-old", "raw", "aimlapi"):
        fin = chunk({"content": "", "refusal": None, rf or "reasoning_content": None}
                    if route.name == "aimlapi" else {}, finish)
        out.append(fin)
    else:
        fin = chunk({"role": "assistant", "content": "", "tool_calls": None}
                    if route.name == "deepinfra" else {}, finish, **tail_extra)
        if route.usage in ("with_finish", "final"):
            fin["usage"] = usage_obj(plan, route)
        out.append(fin)
        tail_extra = {}
    if (route.usage == "include_usage" and include_usage) or route.name in ("aimlapi",
                                                                             "cloudflare"):
        u = {"id": cid, "object": "chat.completion.chunk", "created": created,
             "model": plan.model, "choices": [], "usage": usage_obj(plan, route), **tail_extra}
        out.append(u)
    return [dumps(o, route) for o in out]


def _merge_boundary(out: list[dict[str, Any]], rf: str) -> None:
    for i in range(1, len(out)):
        prev, cur = out[i - 1]["choices"][0]["delta"], out[i]["choices"][0]["delta"]
        if rf in prev and "content" in cur and rf not in cur and "content" not in prev:
            prev["content"] = cur.pop("content")
            if not {k for k in cur if k != "role"}:
                del out[i]
            return


def _openai_tool_chunks(plan: Plan, chunk: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, tc in enumerate(plan.tool_calls):
        tid = tc.id or f"call_{uuid.uuid4().hex[:12]}"
        args = json.dumps(tc.arguments)
        if plan.tool_style == "whole":
            out.append(chunk({"tool_calls": [{"index": i, "id": tid, "type": "function",
                                              "function": {"name": tc.name,
                                                           "arguments": args}}]}))
            continue
        frags = _fragments(args)
        head: dict[str, Any] = {"index": i, "id": tid, "type": "function",
                                "function": {"name": tc.name, "arguments": ""}}
        if plan.tool_style == "partial_first":
            head["function"]["arguments"] = frags.pop(0)
        out.append(chunk({"tool_calls": [head]}))
        for frag in frags:
            d: dict[str, Any] = {"index": i, "function": {"arguments": frag}}
            if plan.tool_style == "empty_strings":
                d = {"index": i, "id": "", "type": "function",
                     "function": {"name": "", "arguments": frag}}
            out.append(chunk({"tool_calls": [d]}))
    return out


# -- non-streaming bodies -----------------------------------------------------------------------
def whole_body(plan: Plan, route: Route, json_mode: bool, cf_openai: bool) -> dict[str, Any]:
    reasoning = "".join(t for k, t in plan.pieces if k == "r")
    content = "".join(t for k, t in plan.pieces if k == "c")
    inline = "".join(t for _, t in plan.pieces)
    if route.style == "cloudflare" and not cf_openai:
        response: Any = inline
        if json_mode:
            try:
                response = json.loads(content)
            except ValueError:
                response = content
        result: dict[str, Any] = {"response": response, "usage": usage_obj(plan, route)}
        if plan.tool_calls:
            result["tool_calls"] = [{"name": tc.name, "arguments": tc.arguments}
                                    for tc in plan.tool_calls]
        return {"result": result, "success": True, "errors": [], "messages": []}
    msg: dict[str, Any] = {"role": "assistant"}
    if plan.reasoning_field:
        msg["content"] = content
        msg[plan.reasoning_field] = reasoning or None
    else:
        msg["content"] = inline
    if plan.tool_calls:
        msg["tool_calls"] = [{"id": tc.id or f"call_{i}", "type": "function",
                              "function": {"name": tc.name, "arguments": json.dumps(tc.arguments)}}
                             for i, tc in enumerate(plan.tool_calls)]
    body = {"id": "chatcmpl-" + uuid.uuid4().hex[:24], "object": "chat.completion",
            "created": int(time.time()), "model": plan.model,
            "choices": [{"index": 0, "message": msg, "finish_reason": plan.finish}],
            "usage": usage_obj(plan, route)}
    if cf_openai:
        return {"result": body, "success": True, "errors": [], "messages": []}
    return body


def count_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    n = 0
    for m in messages:
        c = m.get("content")
        n += 4 + len(tokens(c if isinstance(c, str) else json.dumps(c)))
    return n
