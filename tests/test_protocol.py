"""Pure protocol pieces: SSE decoding, dialect chunk parsing, retry policy, error bodies."""

from __future__ import annotations

import json
import random

import pytest

from qwq_magic import _retry
from qwq_magic._sse import SSEDecoder
from qwq_magic.errors import StreamError, mask, redact, register_secret
from qwq_magic.events import ContentDelta, Event, Finish, ReasoningDelta, ToolCallDelta, Usage
from qwq_magic.providers import PRESETS, cloudflare, openai_compat
from qwq_magic.providers._common import error_message


def decode(lines: list[str]) -> list[tuple[str, str]]:
    """Feed ``lines`` (LF-terminated, except the last) one network read each."""
    d = SSEDecoder()
    out = [e for i, line in enumerate(lines)
           for e in d.feed(line.encode() + (b"\n" if i < len(lines) - 1 else b""))]
    out += d.close()
    return [(name, data.decode()) for name, data in out]


def test_sse_data_comments_multiline_and_error_field() -> None:
    assert decode(["data: {\"a\":1}", "", ": OPENROUTER PROCESSING", "", "data: x", "data: y", ""]) == [
        ("message", '{"a":1}'), ("message", "x\ny")]
    assert decode(['error: {"code":400}', "data: [DONE]", ""]) == [
        ("error", '{"code":400}'), ("message", "[DONE]")]
    assert decode(["event: ping", "data:nospace", ""]) == [("ping", "nospace")]
    assert decode(["data: last-without-blank-line"]) == [("message", "last-without-blank-line")]


def parse(mod: object, obj: dict[str, object]) -> list[Event]:
    out: list[Event] = []
    mod.parse_chunk(obj, out)  # type: ignore[attr-defined]
    return out


def test_openai_reasoning_fields_and_nulls() -> None:
    # AI/ML API (DashScope passthrough): content null while reasoning, reasoning null after
    assert parse(openai_compat, {"choices": [{"delta": {"content": None, "reasoning_content": "Ok"}}]}) == [
        ReasoningDelta("Ok")]
    assert parse(openai_compat, {"choices": [{"delta": {"content": "Hi", "reasoning_content": None}}]}) == [
        ContentDelta("Hi")]
    assert parse(openai_compat, {"choices": [{"delta": {"reasoning": "r", "content": "c"}}]}) == [
        ReasoningDelta("r"), ContentDelta("c")]


def test_openai_usage_chunk_with_empty_choices_and_estimated_cost() -> None:
    evs = parse(openai_compat, {"choices": [], "usage": {
        "prompt_tokens": 48, "completion_tokens": 189, "total_tokens": 237, "estimated_cost": 9.24e-05,
        "completion_tokens_details": {"reasoning_tokens": 82}}})
    assert evs == [Usage(48, 189, 237, reasoning_tokens=82, cost_usd=9.24e-05)]


def test_openai_finish_reason_and_empty_string() -> None:
    assert parse(openai_compat, {"choices": [{"delta": {}, "finish_reason": "length"}]}) == [
        Finish("length", "length")]
    assert parse(openai_compat, {"choices": [{"delta": {}, "finish_reason": ""}]}) == []


def test_tool_call_variants() -> None:
    first = {"choices": [{"delta": {"tool_calls": [{"id": "call1", "type": "function", "index": 0,
                                                    "function": {"name": "f", "arguments": "{\"a\":"}}]}}]}
    later = {"choices": [{"delta": {"tool_calls": [{"id": "", "index": 0,
                                                    "function": {"name": "", "arguments": " 1}"}}]}}]}
    sentinel = {"tool_calls": [{"id": None, "type": None, "index": 0,
                                "function": {"name": None, "arguments": ""}}]}
    assert parse(openai_compat, first) == [ToolCallDelta(0, "call1", "f", "{\"a\":")]
    assert parse(openai_compat, later) == [ToolCallDelta(0, None, None, " 1}")]
    assert parse(cloudflare, sentinel) == []
    flat = {"response": "", "tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}]}
    assert parse(cloudflare, flat) == [ToolCallDelta(0, None, "add", json.dumps({"a": 1, "b": 2}))]


def test_cloudflare_native_chunks() -> None:
    assert parse(cloudflare, {"response": "As", "p": "abcde"}) == [ContentDelta("As")]
    assert parse(cloudflare, {"tool_calls": [], "p": "abdefgh"}) == []
    assert parse(cloudflare, {"response": "", "usage": {"prompt_tokens": 24, "completion_tokens": 17,
                                                        "total_tokens": 41}}) == [Usage(24, 17, 41)]
    # JSON mode: response is an object (or a number) in a result envelope
    env = {"result": {"response": {"name": "India"}, "usage": {"prompt_tokens": 1}},
           "success": True, "errors": [], "messages": []}
    assert parse(cloudflare, env)[0] == ContentDelta('{"name": "India"}')
    assert parse(cloudflare, {"response": 42}) == [ContentDelta("42")]
    # OpenAI-shaped output through /ai/run (Qwen3 on Workers AI)
    assert parse(cloudflare, {"choices": [{"delta": {"reasoning_content": "Okay"}}],
                              "usage": {"prompt_tokens": 13}}) == [ReasoningDelta("Okay"), Usage(13)]


@pytest.mark.parametrize("obj", [
    {"error": {"message": "boom", "type": "InternalServerError", "code": 500}},
    {"object": "error", "message": "boom", "code": 400},
    {"id": "x", "error": {"code": "server_error", "message": "boom"},
     "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]},
])
def test_mid_stream_error_objects_raise(obj: dict[str, object]) -> None:
    with pytest.raises(StreamError, match="boom"):
        parse(openai_compat, obj)


@pytest.mark.parametrize(("body", "msg", "code"), [
    ('{"result":null,"success":false,"errors":[{"code":5007,"message":"No such model x or task"}],"messages":[]}',
     "No such model x or task", 5007),
    ('{"detail":[{"loc":["body","temperature"],"msg":"must be <= 2","type":"value_error"}]}',
     "temperature: must be <= 2", None),
    ('{"message":"Too Many Requests","path":"/v1/chat/completions","statusCode":"429"}',
     "Too Many Requests", "429"),
    ('{"error":{"message":"Model busy, retry later"}}', "Model busy, retry later", None),
    ('{"error":"the model failed to generate a response"}', "the model failed to generate a response", None),
    ("<html><head><title>502 Bad Gateway</title></head></html>", "non-JSON error page: 502 Bad Gateway", None),
])
def test_error_bodies_of_every_provider(body: str, msg: str, code: object) -> None:
    assert error_message(body) == (msg, code)


def test_retry_after_forms() -> None:
    assert _retry.retry_after({"retry-after": "3"}) == 3.0
    assert _retry.retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert _retry.retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412470.0) == 10.0
    assert _retry.retry_after({"retry-after": "soon"}) is None
    assert _retry.retry_after({}) is None


def test_backoff_grows_and_caps() -> None:
    rng = random.Random(0)
    delays = [_retry.backoff(i, rng) for i in range(8)]
    assert all(0.375 <= d <= 0.5 for d in delays[:1])
    assert delays[3] > delays[1] and max(delays) <= 8.0
    assert _retry.next_delay(0, {"retry-after": "2"}) == 2.0


def test_retry_statuses() -> None:
    assert all(_retry.should_retry(s) for s in (408, 409, 429, 500, 502, 503, 504))
    assert not any(_retry.should_retry(s) for s in (400, 401, 403, 404, 422))
    assert not _retry.should_retry(429, 3036, PRESETS["cloudflare"].final_codes)  # daily quota


def test_secrets_are_masked_everywhere() -> None:
    register_secret("sk-live-0123456789abcdef")
    assert "0123456789abcdef" not in redact("key sk-live-0123456789abcdef was refused")
    assert redact("Authorization: Bearer abcdefghijkl") == "Authorization: Bearer ***"
    assert mask("sk-live-0123456789abcdef") == "sk-…ef"
    from qwq_magic.errors import APIError

    e = APIError("bad key sk-live-0123456789abcdef", body='{"key":"sk-live-0123456789abcdef"}')
    assert "0123456789" not in str(e) and "0123456789" not in (e.body or "")


def test_inline_qwen_tool_call_is_extracted() -> None:
    from qwq_magic.completion import Completion

    c = Completion()
    c.add(ContentDelta('<tool_call>\n{"name": "get_weather", "arguments": {"location": "Paris"}}\n'
                       "</tool_call>"))
    assert c.extract_inline_tool_calls()
    assert c.tool_calls[0].name == "get_weather" and c.tool_calls[0].args == {"location": "Paris"}
    assert not c.extract_inline_tool_calls()  # idempotent
