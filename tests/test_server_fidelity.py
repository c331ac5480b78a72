"""The local provider server stays faithful to the real wire formats.

The official ``openai`` SDK must parse every OpenAI-dialect route; raw bytes are checked for the
quirks each provider documents (wire-formats.md), so our client is tested against the real shapes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import openai
import pytest

import qwq_magic as qm
from qwq_magic.testing import API_KEY, ProviderServer, Reply, ToolCall

OPENAI_ROUTES = ["deepinfra", "aimlapi", "vllm", "vllm-old", "ollama", "llamacpp", "openrouter",
                 "raw"]
REASONING = "Let me add: two plus two is four."
ANSWER = "The answer is **4**. ✓"


def sdk(srv: ProviderServer, route: str) -> tuple[openai.OpenAI, str]:
    kw = srv.client_kwargs(route)
    model = kw.get("model") or "Qwen/QwQ-32B"
    return openai.OpenAI(base_url=kw["base_url"], api_key=API_KEY, max_retries=0), model


def raw_lines(srv: ProviderServer, route: str, body: dict, path: str = "/chat/completions"
              ) -> tuple[httpx.Response, list[str]]:
    r = httpx.post(srv.base_url(route) + path, json=body,
                   headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
    return r, r.text.splitlines()


def data_objects(lines: list[str]) -> list[dict]:
    """The JSON payloads of the ``data:`` lines of an SSE body."""
    return [json.loads(x[6:]) for x in lines if x.startswith("data: {")]


def cf_stream(srv: ProviderServer, model: str) -> tuple[httpx.Response, list[dict]]:
    """A streamed Workers AI ``/ai/run`` call: the response and its data objects."""
    r, lines = raw_lines(srv, "cloudflare", {"messages": [{"role": "user", "content": "hi"}],
                                             "stream": True},
                         path=f"/accounts/acct123/ai/run/{model}")
    return r, data_objects(lines)


@pytest.mark.parametrize("route", OPENAI_ROUTES)
def test_official_openai_sdk_parses_every_openai_route(provider_server, route):
    srv = provider_server
    srv.script(Reply(reasoning=REASONING, content=ANSWER))
    client, model = sdk(srv, route)
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "2+2?"}], stream=True,
        stream_options={"include_usage": True})
    content, reasoning, usage, finish = "", "", None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for ch in chunk.choices:
            extra = ch.delta.model_extra or {}
            reasoning += extra.get("reasoning_content") or extra.get("reasoning") or ""
            content += ch.delta.content or ""
            finish = ch.finish_reason or finish
    if route == "raw":  # no reasoning parser: QwQ's text arrives inline, closing tag only
        assert content == f"{REASONING}\n</think>\n\n{ANSWER}"
    else:
        assert (reasoning, content) == (REASONING, ANSWER)
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens > 0
    # and the non-streaming shape (AI/ML API refuses stream=false for QwQ, as documented)
    if route == "aimlapi":
        with pytest.raises(openai.BadRequestError, match="only support stream mode"):
            client.chat.completions.create(model=model, messages=[{"role": "user",
                                                                   "content": "x"}])
        return
    srv.script(Reply(reasoning=REASONING, content=ANSWER))
    res = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    assert res.choices[0].finish_reason == "stop" and res.usage.total_tokens > 0


@pytest.mark.parametrize("route", ["vllm", "deepinfra"])
def test_sdk_reads_tool_call_deltas(provider_server, route):
    srv = provider_server
    srv.script(Reply(content="", tool_calls=[ToolCall("add", {"a": 1, "b": 2})]))
    client, model = sdk(srv, route)
    args, name = "", None
    for chunk in client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "1+2"}], stream=True):
        for ch in chunk.choices:
            for tc in ch.delta.tool_calls or []:
                name = tc.function.name or name
                args += tc.function.arguments or ""
    assert name == "add" and json.loads(args) == {"a": 1, "b": 2}


def test_sdk_sees_provider_errors(provider_server):
    srv = provider_server
    client, model = sdk(srv, "openrouter")
    srv.fault("status", code=429, retry_after=1)
    with pytest.raises(openai.RateLimitError) as ei:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    assert ei.value.response.headers["retry-after"] == "1"
    bad = openai.OpenAI(base_url=srv.base_url("deepinfra"), api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="Qwen/QwQ-32B", messages=[{"role": "user",
                                                                     "content": "x"}])


def test_cloudflare_native_stream_shape(provider_server):
    srv = provider_server
    srv.script(Reply(reasoning=REASONING, content=ANSWER))
    r, objs = cf_stream(srv, "@cf/qwen/qwq-32b")
    assert r.text.rstrip().endswith("data: [DONE]")
    text = "".join(o.get("response", "") for o in objs)
    assert text == f"{REASONING}\n</think>\n\n{ANSWER}"  # no opening tag, inline closing tag
    assert all("p" in o for o in objs if o.get("response"))  # side-channel padding
    assert any("response" not in o for o in objs)  # a chunk without response
    assert objs[-1]["response"] == "" and objs[-1]["usage"]["completion_tokens"] > 0
    assert not any("finish_reason" in o for o in objs)


def test_cloudflare_errors_use_its_envelope(provider_server):
    srv = provider_server
    base = f"{srv.base_url('cloudflare')}/accounts/acct123/ai/run/"
    h = {"Authorization": f"Bearer {API_KEY}"}
    r = httpx.post(base + "@cf/qwen/qwq-32b", json={"messages": [{"role": "user",
                                                                  "content": "x"}],
                                                    "temperature": 7}, headers=h)
    assert r.status_code == 400
    body = r.json()
    assert body["success"] is False and body["errors"][0]["code"] == 5006
    r = httpx.post(base + "@cf/no/model", json={"prompt": "x"}, headers=h)
    assert r.json()["errors"][0]["code"] == 5007
    r = httpx.post(base + "@cf/qwen/qwq-32b", json={"nothing": 1}, headers=h)
    assert "oneOf at '/' not met" in r.json()["errors"][0]["message"]
    r = httpx.post(base + "@cf/qwen/qwq-32b", json={"prompt": "x"}, headers={})
    assert r.status_code == 401 and r.json()["result"] is None


def test_cloudflare_json_mode_returns_an_object_and_refuses_streaming(provider_server):
    srv = provider_server
    srv.script(Reply(reasoning="", content='{"name": "India", "capital": "New Delhi"}',
                     reasoning_mode="none"))
    base = f"{srv.base_url('cloudflare')}/accounts/acct123/ai/run/@cf/qwen/qwq-32b"
    h = {"Authorization": f"Bearer {API_KEY}"}
    schema = {"type": "object", "properties": {"name": {"type": "string"}}}
    r = httpx.post(base, json={"messages": [{"role": "user", "content": "x"}],
                               "guided_json": schema}, headers=h)
    assert r.json()["result"]["response"] == {"name": "India", "capital": "New Delhi"}
    r = httpx.post(base, json={"messages": [{"role": "user", "content": "x"}], "stream": True,
                               "guided_json": schema}, headers=h)
    assert r.status_code == 400 and "doesn't support streaming" in r.text


def test_cloudflare_qwen3_streams_openai_chunks_with_cumulative_usage(provider_server):
    srv = provider_server
    srv.script(Reply(reasoning=REASONING, content=ANSWER))
    _, objs = cf_stream(srv, "@cf/qwen/qwen3-30b-a3b-fp8")
    used = [o["usage"]["completion_tokens"] for o in objs]
    assert used == sorted(used) and used[-1] > 0  # cumulative on every chunk
    assert objs[-1]["choices"] == []
    c = qm.Client("cloudflare", model="@cf/qwen/qwen3-30b-a3b-fp8",
                  **srv.client_kwargs("cloudflare"))
    srv.script(Reply(reasoning=REASONING, content=ANSWER))
    res = c.complete("hi")
    assert (res.reasoning, res.content) == (REASONING, ANSWER)


def test_deepinfra_quirks(provider_server):
    srv = provider_server
    srv.script(Reply(reasoning=REASONING, content=ANSWER))
    _, lines = raw_lines(srv, "deepinfra", {"model": "Qwen/QwQ-32B-Preview", "stream": True,
                                            "messages": [{"role": "user", "content": "x"}]})
    data = [x for x in lines if x.startswith("data: {")]
    assert all('", "' in x or '": ' in x for x in data)  # Python-style spacing
    objs = [json.loads(x[6:]) for x in data]
    assert all(o["choices"][0]["delta"]["role"] == "assistant" for o in objs)
    assert all(o["usage"] is None for o in objs[:-1])
    assert "e-" in data[-1] and objs[-1]["usage"]["estimated_cost"] > 0
    r, _ = raw_lines(srv, "deepinfra", {"model": "Qwen/QwQ-32B", "top_k": 5000,
                                        "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "top_k"]


def test_aimlapi_quirks(provider_server):
    srv = provider_server
    srv.script(Reply(reasoning=REASONING, content=ANSWER))
    _, lines = raw_lines(srv, "aimlapi", {"model": "alibaba/qwen3-32b", "stream": True,
                                          "enable_thinking": True,
                                          "messages": [{"role": "user", "content": "x"}]})
    objs = data_objects(lines)
    assert "data: [DONE]" not in lines  # as in the documented capture
    first = objs[0]["choices"][0]["delta"]
    assert first["reasoning_content"] == "" and first["content"] is None
    after = [o["choices"][0]["delta"] for o in objs if o["choices"]
             and o["choices"][0]["delta"].get("content")]
    assert after and all(dl["reasoning_content"] is None for dl in after)
    assert objs[-1]["choices"] == [] and objs[-1]["model"] == "qwen3-32b"
    r, _ = raw_lines(srv, "aimlapi", {"model": "Qwen/QwQ-32B", "temperature": 9,
                                      "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400 and r.json()["message"].startswith("Body validation error!")


def test_llamacpp_error_line_and_openrouter_error_chunk(provider_server):
    srv = provider_server
    srv.fault("error_event", after=2)
    _, lines = raw_lines(srv, "llamacpp", {"model": "qwq", "stream": True,
                                           "messages": [{"role": "user", "content": "x"}]})
    assert any(x.startswith("error: {") for x in lines) and lines[-2] == "data: [DONE]"
    srv.fault("error_event", after=2)
    _, lines = raw_lines(srv, "openrouter", {"model": "qwen/qwq-32b", "stream": True,
                                             "messages": [{"role": "user", "content": "x"}]})
    last = data_objects(lines)[-1]
    assert last["error"]["code"] == "server_error"
    assert last["choices"][0]["finish_reason"] == "error"
    assert lines[0] == ": OPENROUTER PROCESSING"


def test_reasoning_modes_and_inline_tool_calls(provider_server):
    srv = provider_server
    c = qm.Client("openai", **srv.client_kwargs("raw"))
    srv.script(Reply(reasoning=REASONING, content=ANSWER, reasoning_mode="inline_open"))
    res = c.complete("x", model="Qwen/Qwen3-32B")
    assert (res.reasoning.strip(), res.content) == (REASONING, ANSWER)
    srv.script(Reply(reasoning="", content="",
                     tool_calls=[ToolCall("get_weather", {"city": "Oslo"})],
                     tool_call_style="inline"))
    res = c.complete("weather?", model="Qwen/Qwen3-32B")
    assert res.tool_calls and res.tool_calls[0].args == {"city": "Oslo"}
    v = qm.Client("openai", **srv.client_kwargs("vllm"))
    srv.script(Reply(reasoning=REASONING, content=ANSWER, reasoning_mode="reasoning_only"))
    res = v.complete("x")  # deepseek_r1 parser + thinking off: everything lands in reasoning
    assert res.reasoning.startswith(REASONING) and ANSWER in res.reasoning


def test_cloudflare_tool_call_shapes(provider_server):
    srv = provider_server
    c = qm.Client("cloudflare", **srv.client_kwargs("cloudflare"))
    for style in ("whole", "incremental"):
        srv.script(Reply(reasoning="Use the tool.", content="",
                         tool_calls=[ToolCall("getWeather", {"latitude": "51.5"})],
                         tool_call_style=style))
        res = c.complete("weather?", max_tokens=500)
        assert [t.name for t in res.tool_calls] == ["getWeather"], style
        assert res.tool_calls[0].args == {"latitude": "51.5"}


def test_reject_json_schema_and_html_500(provider_server):
    srv = provider_server
    srv.fault("reject_json_schema", code=500, times=None)
    r, _ = raw_lines(srv, "vllm", {"model": "qwq", "messages": [{"role": "user",
                                                                "content": "x"}],
                                   "response_format": {"type": "json_schema",
                                                       "json_schema": {"name": "x",
                                                                       "schema": {}}}})
    assert r.status_code == 500
    r, _ = raw_lines(srv, "vllm", {"model": "qwq", "messages": [{"role": "user",
                                                                "content": "x"}],
                                   "response_format": {"type": "json_object"}})
    assert r.status_code == 200
    srv.reset()
    srv.fault("html_500")
    with pytest.raises(qm.ServerError, match="HTTP 500"):
        qm.Client("openai", max_retries=0, **srv.client_kwargs("vllm")).complete("x")


def test_default_reply_and_json_from_schema(provider_server):
    srv = provider_server
    r, _ = raw_lines(srv, "vllm", {"model": "qwq", "messages": [{"role": "user",
                                                                "content": "Who?"}],
                                   "response_format": {"type": "json_schema", "json_schema": {
                                       "name": "p", "schema": {
                                           "type": "object", "properties": {
                                               "name": {"type": "string"},
                                               "year": {"type": "integer"}}}}}})
    msg = r.json()["choices"][0]["message"]
    assert set(json.loads(msg["content"])) == {"name", "year"} and "Who?" in msg["reasoning"]


def test_control_endpoints_script_a_server_in_another_process(provider_server):
    srv = provider_server
    httpx.post(srv.root + "/_control/script", json=[Reply(reasoning="hm", content="scripted!").to_json()])
    httpx.post(srv.root + "/_control/fault", json={"kind": "status", "code": 503})
    c = qm.Client("openai", **srv.client_kwargs("vllm"))
    assert c.complete("x").content == "scripted!"
    reqs = httpx.get(srv.root + "/_control/requests").json()
    assert len(reqs) == 2 and reqs[-1]["json"]["messages"][0]["content"] == "x"
    assert httpx.get(srv.base_url("ollama") + "/models").json()["data"][0]["id"] == "qwq"


def test_cli_starts_fast_and_prints_its_urls():
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "qwq_magic.testing", "--port", "0"],
                         stdout=subprocess.PIPE, text=True)
    try:
        head = p.stdout.readline()  # type: ignore[union-attr]
        startup = time.perf_counter() - t0
        assert head.startswith("qwq_magic test server on http://127.0.0.1:")
        root = head.split()[4]
        assert httpx.get(root + "/").json()["server"] == "qwq_magic.testing"
        print(f"server up in {startup:.3f} s")
    finally:
        p.terminate()
        p.wait(5)
