"""The client against the local provider server: real HTTP on loopback, every preset, every fault."""

from __future__ import annotations

import asyncio

import pytest

import qwq_magic as qm
from qwq_magic.testing import Reply

REASONING = "Okay, the user wants 2+2. That is 4. Let me double-check: 2+2=4. Yes."
ANSWER = "**4** — two plus two is four. 😀 ✓"

# (preset, server route, model)
ROUTES = [
    ("cloudflare", "cloudflare", "@cf/qwen/qwq-32b"),
    ("deepinfra", "deepinfra", "Qwen/QwQ-32B"),
    ("aimlapi", "aimlapi", "Qwen/QwQ-32B"),
    ("openai", "vllm", "qwq"),
    ("openai", "vllm-old", "qwq"),
    ("openai", "ollama", "qwq"),
    ("openai", "llamacpp", "qwq"),
    ("openai", "openrouter", "qwen/qwq-32b"),
    ("openai", "raw", "Qwen/QwQ-32B"),
]


def make(srv, route: str, **kw) -> qm.Client:  # type: ignore[no-untyped-def]
    ckw = srv.client_kwargs(route)
    preset = "openai" if route not in ("cloudflare", "deepinfra", "aimlapi") else route
    ckw.update(kw)
    return qm.Client(preset, **ckw)


@pytest.mark.parametrize(("preset", "route", "model"), ROUTES, ids=[r[1] for r in ROUTES])
def test_every_preset_streams_reasoning_and_answer_apart(provider_server, preset, route, model):
    srv = provider_server
    srv.script(Reply(reasoning=REASONING, content=ANSWER))
    with make(srv, route, model=model) as client:
        kinds = []
        stream = client.stream("What is 2+2?", max_tokens=1000)
        for ev in stream:
            kinds.append(type(ev).__name__)
        c = stream.completion
    assert c.reasoning.strip() == REASONING
    assert c.content == ANSWER
    assert c.status == "complete" and c.finish_reason == "stop"
    # reasoning arrives first, then the answer: the events never interleave back
    first_content = kinds.index("ContentDelta")
    assert "ReasoningDelta" in kinds[:first_content]
    assert "ReasoningDelta" not in kinds[first_content:]
    assert c.timings.ttft is not None and c.timings.total_s is not None
    if route != "ollama":  # Ollama /v1 sends usage only when asked; we ask, so all do
        assert c.usage is not None and c.usage.completion_tokens
    assert srv.requests[-1].json["messages"][-1] == {"role": "user", "content": "What is 2+2?"}


def test_cloudflare_native_infers_finish_and_estimates_cost(provider_server):
    srv = provider_server
    srv.script(Reply(reasoning=REASONING, content=ANSWER))
    c = make(srv, "cloudflare").complete("2+2?", max_tokens=1000)
    assert c.finish_reason == "stop"  # Workers AI QwQ sends none: inferred from [DONE]
    assert c.usage and c.usage.prompt_tokens and c.usage.completion_tokens
    expected = (c.usage.prompt_tokens * 0.66 + c.usage.completion_tokens * 1.00) / 1e6
    assert c.cost == pytest.approx(expected) and c.cost_is_estimate
    req = srv.requests[-1]
    assert req.path.endswith("/accounts/acct123/ai/run/@cf/qwen/qwq-32b")
    assert req.json["max_tokens"] == 1000 and req.json["stream"] is True


def test_cloudflare_default_max_tokens_cuts_thinking(provider_server):
    srv = provider_server
    srv.script(Reply.long(600))
    c = make(srv, "cloudflare").complete("think long")
    assert "max_tokens" not in srv.requests[-1].json  # provider default (256) applies
    assert c.usage and c.usage.completion_tokens == 256
    assert c.finish_reason == "length" and c.reasoning_truncated and c.content == ""


def test_deepinfra_reports_its_own_cost(provider_server):
    srv = provider_server
    srv.script(Reply(reasoning=REASONING, content=ANSWER))
    c = make(srv, "deepinfra", model="Qwen/QwQ-32B-Preview").complete("2+2?")
    assert c.usage and c.usage.cost_usd is not None
    assert c.cost == c.usage.cost_usd and not c.cost_is_estimate


def test_aimlapi_qwen3_thinking_switch_and_budget(provider_server):
    srv = provider_server
    client = make(srv, "aimlapi", model="alibaba/qwen3-32b")
    srv.script(Reply(reasoning=REASONING, content=ANSWER))
    off = client.complete("hi")  # documented default: enable_thinking false
    assert off.reasoning == "" and off.content
    srv.script(Reply(reasoning=REASONING, content=ANSWER))
    on = client.complete("hi", enable_thinking=True, thinking_budget=5)
    body = srv.requests[-1].json
    assert body["enable_thinking"] is True and body["thinking_budget"] == 5
    assert on.reasoning and len(on.reasoning.split()) <= 5 and on.content


def test_message_list_system_prompt_and_multi_turn(provider_server):
    srv = provider_server
    client = make(srv, "deepinfra")
    first = client.complete("Name a prime.", system="Be brief.")
    history = [*first.messages, first.to_message()]
    client.complete("Another one?", history=history)
    sent = srv.requests[-1].json["messages"]
    assert sent[0] == {"role": "system", "content": "Be brief."}
    assert sent[2] == {"role": "assistant", "content": first.content}  # no reasoning sent back
    assert sent[-1] == {"role": "user", "content": "Another one?"}
    client.complete([{"role": "user", "content": "raw list"}])
    assert srv.requests[-1].json["messages"] == [{"role": "user", "content": "raw list"}]


async def test_async_api(provider_server):
    srv = provider_server
    srv.script(Reply(reasoning=REASONING, content=ANSWER), Reply(reasoning="r", content="second"))
    async with make(srv, "vllm") as client:
        c = await client.acomplete("hi")
        assert c.content == ANSWER and c.reasoning.strip() == REASONING
        got = [ev async for ev in client.astream("again")]
        assert any(isinstance(e, qm.ContentDelta) for e in got)


async def test_async_stop_keeps_partial(provider_server):
    srv = provider_server
    srv.script(Reply(reasoning=REASONING * 20, content=ANSWER, pace=0.01))
    async with make(srv, "vllm") as client:
        s = client.astream("hi")
        n = 0
        async for _ in s:
            n += 1
            if n == 5:
                break
        await s.aclose()
        assert s.completion.status == "stopped" and s.completion.reasoning


def test_connections_are_reused_and_closed(provider_server):
    srv = provider_server
    client = make(srv, "deepinfra")
    client.complete("one")
    client.complete("two")
    pool = client._sync_http()._transport._pool  # type: ignore[attr-defined]
    assert len(pool.connections) == 1
    client.close()
    assert client._http is None


def test_overrides_and_environment(provider_server, monkeypatch):
    srv = provider_server
    kw = srv.client_kwargs("vllm")
    monkeypatch.setenv("QWQ_PROVIDER", "openai")
    monkeypatch.setenv("QWQ_BASE_URL", kw["base_url"])
    monkeypatch.setenv("QWQ_MODEL", "qwq-env")
    c = qm.Client()
    assert (c.provider, c.model, c.base_url) == ("openai", "qwq-env", kw["base_url"])
    c.complete("hi")
    assert srv.requests[-1].json["model"] == "qwq-env"
    assert qm.Client(model="explicit").model == "explicit"  # arguments beat the environment
    monkeypatch.delenv("QWQ_PROVIDER")
    monkeypatch.delenv("QWQ_BASE_URL")
    monkeypatch.setenv("DEEPINFRA_TOKEN", "tok-from-env-123")
    assert qm.Client("deepinfra").has_key


# -- faults ----------------------------------------------------------------------------------
def test_401_names_the_variable_and_hides_the_key(provider_server):
    srv = provider_server
    client = make(srv, "deepinfra", api_key="sk-wrong-key-0123456789")
    with pytest.raises(qm.AuthenticationError) as ei:
        client.complete("hi")
    msg = str(ei.value)
    assert "DEEPINFRA_TOKEN" in msg and "401" in msg
    assert "0123456789" not in msg + repr(client) + str(ei.value.body)


def test_missing_key_fails_before_sending(provider_server, monkeypatch):
    for var in ("DEEPINFRA_TOKEN", "DEEPINFRA_API_KEY", "QWQ_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    srv = provider_server
    kw = srv.client_kwargs("deepinfra")
    kw.pop("api_key")
    with pytest.raises(qm.MissingKeyError, match="DEEPINFRA_TOKEN"):
        qm.Client("deepinfra", **kw).complete("hi")
    assert srv.requests == []


@pytest.mark.parametrize("route", ["deepinfra", "cloudflare", "vllm"])
def test_unknown_model_is_named(provider_server, route):
    client = make(provider_server, route, model="no/such-model")
    with pytest.raises(qm.NotFoundError, match="no/such-model"):
        client.complete("hi")


def test_429_retries_honouring_retry_after_then_succeeds(provider_server):
    srv = provider_server
    srv.fault("status", code=429, retry_after=0.05, times=2)
    c = make(srv, "deepinfra").complete("hi")
    assert c.content and len(srv.requests) == 3


def test_429_gives_up_after_bounded_retries(provider_server):
    srv = provider_server
    srv.fault("status", code=429, retry_after=0.01, times=10)
    with pytest.raises(qm.RateLimitError) as ei:
        make(srv, "openrouter", max_retries=2).complete("hi")
    assert ei.value.attempts == 3 and "after 3 attempts" in str(ei.value)
    assert len(srv.requests) == 3


@pytest.mark.parametrize("code", [500, 503])
def test_5xx_before_first_token_is_retried(provider_server, code):
    srv = provider_server
    srv.fault("status", code=code, times=1)
    c = make(srv, "aimlapi").complete("hi")
    assert c.content and len(srv.requests) == 2


def test_5xx_gives_up_with_a_clear_error(provider_server):
    srv = provider_server
    srv.fault("status", code=500, times=10)
    with pytest.raises(qm.ServerError, match="HTTP 500"):
        make(srv, "deepinfra", max_retries=1).complete("hi")


@pytest.mark.parametrize("route", ["vllm", "llamacpp", "openrouter", "deepinfra"])
def test_error_event_mid_stream_keeps_partial(provider_server, route):
    srv = provider_server
    srv.script(Reply(reasoning=REASONING, content=ANSWER))
    srv.fault("error_event", after=8)
    client = make(srv, route)
    with pytest.raises(qm.StreamError) as ei:
        client.complete("hi")
    c = ei.value.completion
    assert c is not None and c.status == "error" and c.reasoning
    assert REASONING.startswith(c.reasoning.strip()[:20])
    assert len(srv.requests) == 1  # never retried once tokens were shown


def test_dropped_connection_keeps_partial(provider_server):
    srv = provider_server
    srv.script(Reply(reasoning=REASONING, content=ANSWER))
    srv.fault("drop", after=10)
    stream = make(srv, "deepinfra").stream("hi")
    seen = []
    with pytest.raises(qm.StreamError, match="connection") as ei:
        for ev in stream:
            seen.append(ev)
    assert seen and ei.value.completion is stream.completion
    assert stream.completion.reasoning and stream.completion.status == "error"


def test_stall_hits_the_configured_timeout(provider_server):
    srv = provider_server
    srv.script(Reply(reasoning=REASONING, content=ANSWER))
    srv.fault("stall", after=5, seconds=3)
    with pytest.raises((qm.TimeoutError, qm.StreamError)) as ei:
        make(srv, "vllm", timeout=0.5).complete("hi")
    assert ei.value.completion is not None and ei.value.completion.reasoning


@pytest.mark.parametrize("size", [1, 2, 3, 7])
@pytest.mark.parametrize("route", ["cloudflare", "deepinfra", "raw"])
def test_chunks_cut_mid_tag_and_mid_utf8(provider_server, route, size):
    srv = provider_server
    srv.script(Reply(reasoning=REASONING, content=ANSWER))
    srv.fault("cut_bytes", size=size)
    c = make(srv, route).complete("hi", max_tokens=1000)
    assert c.reasoning.strip() == REASONING and c.content == ANSWER


@pytest.mark.parametrize("kind", ["comments", "crlf", "no_done", "json_instead_of_stream"])
def test_framing_variants(provider_server, kind):
    srv = provider_server
    route = "cloudflare" if kind == "json_instead_of_stream" else "openrouter"
    srv.script(Reply(reasoning=REASONING, content=ANSWER))
    srv.fault(kind)
    c = make(srv, route).complete("hi", max_tokens=1000)
    assert c.reasoning.strip() == REASONING and c.content == ANSWER and c.status == "complete"


def test_http_200_error_body_on_a_stream(provider_server):
    srv = provider_server
    srv.fault("error_200")
    with pytest.raises(qm.StreamError):
        make(srv, "vllm").complete("hi")


def test_unreachable_server_is_one_clear_error():
    client = qm.Client("openai", base_url="http://127.0.0.1:9/v1", max_retries=0)
    with pytest.raises(qm.ConnectError, match=r"cannot reach 127\.0\.0\.1:9"):
        client.complete("hi")


def test_tool_calls_arrive_whole(provider_server):
    from qwq_magic.testing import ToolCall

    srv = provider_server
    for style in ("incremental", "whole", "partial_first", "empty_strings"):
        srv.script(Reply(reasoning="I should call it.", content="",
                         tool_calls=[ToolCall("get_weather", {"city": "Paris"})],
                         tool_call_style=style))
        c = make(srv, "vllm").complete("weather?", tools=[{
            "name": "get_weather", "description": "weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}])
        assert len(c.tool_calls) == 1, style
        assert c.tool_calls[0].name == "get_weather" and c.tool_calls[0].args == {"city": "Paris"}
        assert c.finish_reason == "tool_calls"


def test_cassette_records_and_replays_without_network(provider_server, tmp_path):
    srv = provider_server
    path = tmp_path / "rec.jsonl"
    srv.script(Reply(reasoning=REASONING, content=ANSWER))
    live = make(srv, "deepinfra", cassette=path, mode="record").complete("2+2?", temperature=0.6)
    text = path.read_text()
    assert "test-key" not in text and "Authorization" not in text
    n = len(srv.requests)
    replay = qm.Client("deepinfra", cassette=path, mode="replay")  # no key, no server
    c = replay.complete("2+2?", temperature=0.6)
    assert len(srv.requests) == n
    assert (c.reasoning, c.content, c.replayed) == (live.reasoning, live.content, True)
    from qwq_magic.cassette import CassetteMissError

    with pytest.raises(CassetteMissError, match=r"never asked|No recording"):
        replay.complete("something else")


def test_sync_stream_close_marks_stopped(provider_server):
    srv = provider_server
    srv.script(Reply(reasoning=REASONING * 10, content=ANSWER, pace=0.005))
    client = make(srv, "vllm")
    s = client.stream("hi")
    for i, _ in enumerate(s):
        if i == 3:
            break
    s.close()
    assert s.completion.status == "stopped" and s.completion.reasoning
    # the client still works afterwards
    assert client.complete("again").content


def test_asyncio_run_with_sync_api_does_not_leak(provider_server):
    srv = provider_server

    async def main() -> str:
        async with make(srv, "vllm") as c:
            return (await c.acomplete("hi")).content

    assert asyncio.run(main())


async def test_async_calls_are_recorded_into_an_empty_cassette(provider_server, tmp_path):
    srv = provider_server
    srv.script(Reply(reasoning="r", content="async answer"))
    path = tmp_path / "async.jsonl"
    async with make(srv, "vllm", cassette=path, mode="record") as client:
        await client.acomplete("hi")
    replay = qm.Client("openai", model="qwq", cassette=path, mode="replay")
    assert (await replay.acomplete("hi")).content == "async answer"


def test_latency_knob_delays_each_request_concurrently(provider_server):
    """The server's latency knob: requests wait in parallel; max_in_flight counts them."""
    import asyncio

    import qwq_magic as qm

    provider_server.latency = 0.3
    client = qm.Client("openai", **provider_server.client_kwargs("vllm"))

    async def go() -> list[qm.Completion]:
        return await asyncio.gather(*(client.acomplete("hi") for _ in range(3)))

    res = asyncio.run(go())
    assert all(r.status == "complete" for r in res)
    # all three were being answered at once (a stalled stream from an earlier test may add one)
    assert provider_server.max_in_flight >= 3
    provider_server.reset()
    assert provider_server.latency == 0.0
