"""``%%qwq`` / ``%qwq`` in a real IPython InteractiveShell against the local provider server."""

from __future__ import annotations

import math
import re
import time

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import qwq_magic as qm
from qwq_magic import session
from qwq_magic.testing import Reply

REASONING = "The user wants a haiku about cats. Five, seven, five syllables."
ANSWER = "Soft paws on the sill\n\n```python\nprint({'cat': 1})\n```"


@pytest.fixture
def ip():
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "qwq_magic")
    session.reset()
    yield shell
    session.reset()
    shell.run_line_magic("config", "QwqMagics.display = 'auto'")
    shell.run_line_magic("config", "QwqMagics.max_hz = 20.0")
    for k in ("_qwq", "ans", "topic", "obj", "d"):
        shell.user_ns.pop(k, None)


@pytest.fixture
def srv(provider_server, ip):
    ip.run_line_magic("qwq", f"use openai --base-url {provider_server.base_url('vllm')} "
                      "--model qwq")
    return provider_server


def run(ip, line: str, cell: str):
    with capture_output() as cap:
        ip.run_cell_magic("qwq", line, cell)
    return cap


def html_of(out) -> str:
    return out.data["text/html"]


def test_streams_folds_and_stores(ip, srv):
    srv.script(Reply(reasoning=REASONING * 40, content=ANSWER, pace=0.002))
    cap = run(ip, "-o ans --temperature 0.6 --max-tokens 2048", "Write a haiku about cats")
    outs = cap.outputs
    assert len(outs) >= 3
    for o in outs:  # every update carries all three representations
        assert {"text/html", "text/markdown", "text/plain"} <= set(o.data)
    thinking = [o for o in outs if "Thinking…" in html_of(o)]
    assert thinking, "a live 'Thinking…' block while the model reasons"
    assert re.search(r"<details[^>]*\bopen\b", html_of(thinking[0]))
    final = html_of(outs[-1])
    assert re.search(r"<details(?![^>]*\bopen\b)[^>]*>", final) and "Thought for" in final
    assert "Soft paws on the sill" in final and "<span" in final  # Markdown + highlighting
    c = ip.user_ns["ans"]
    assert c is ip.user_ns["_qwq"] and isinstance(c, qm.Completion)
    assert str(c) == ANSWER and c.reasoning.strip() == (REASONING * 40).strip()
    assert c.params["temperature"] == 0.6 and c.messages[-1]["content"] == (
        "Write a haiku about cats")
    body = srv.requests[-1].json
    assert body["temperature"] == 0.6 and body["max_tokens"] == 2048
    assert "Thought for" in c._repr_mimebundle_()["text/html"]  # the rich repr folds too


def test_every_flag_reaches_the_request(ip, provider_server):
    srv = provider_server
    ip.run_line_magic("qwq", f"use deepinfra --base-url {srv.base_url('deepinfra')}")
    session.client_kwargs["api_key"] = "test-key"
    run(ip, "--temperature 0.7 --top-p 0.9 --top-k 40 --min-p 0.05 --max-tokens 999 --seed 7 "
        "--repetition-penalty 1.1 --frequency-penalty 0.2 --presence-penalty 0.3 --stop END "
        "--stop '###' --system 'Be brief.' -m Qwen/QwQ-32B-Preview", "hi")
    body = srv.requests[-1].json
    assert body["model"] == "Qwen/QwQ-32B-Preview"
    assert {k: body[k] for k in ("temperature", "top_p", "top_k", "min_p", "max_tokens", "seed",
                                 "repetition_penalty", "frequency_penalty",
                                 "presence_penalty", "stop")} == {
        "temperature": 0.7, "top_p": 0.9, "top_k": 40, "min_p": 0.05, "max_tokens": 999,
        "seed": 7, "repetition_penalty": 1.1, "frequency_penalty": 0.2,
        "presence_penalty": 0.3, "stop": ["END", "###"]}
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}


def test_thinking_switch_and_budget(ip, provider_server):
    srv = provider_server
    ip.run_line_magic("qwq", f"use aimlapi --base-url {srv.base_url('aimlapi')} "
                      "--model alibaba/qwen3-32b")
    session.client_kwargs["api_key"] = "test-key"
    srv.script(Reply(reasoning=REASONING, content="ok"))
    run(ip, "--thinking --thinking-budget 4", "hi")
    assert srv.requests[-1].json["enable_thinking"] is True
    assert srv.requests[-1].json["thinking_budget"] == 4
    assert len(ip.user_ns["_qwq"].reasoning.split()) <= 4
    run(ip, "--no-thinking", "hi")
    assert srv.requests[-1].json["enable_thinking"] is False


def test_help_lists_every_option(ip):
    with capture_output() as cap:
        ip.run_cell_magic("qwq", "--help", "any body")
    with capture_output() as cap2:
        ip.run_line_magic("qwq", "--help")
    assert cap.stdout == cap2.stdout
    for flag in ("--provider", "--model", "--temperature", "--top-p", "--top-k", "--min-p",
                 "--max-tokens", "--seed", "--repetition-penalty", "--frequency-penalty",
                 "--presence-penalty", "--stop", "--thinking", "--no-thinking",
                 "--thinking-budget", "--system", "--out", "--chat", "--new",
                 "--hide-reasoning", "--raw", "--dry-run", "--json", "--df", "--retries",
                 "--no-interpolate"):
        assert flag in cap.stdout, flag


def test_dry_run_shows_the_request_with_the_key_masked(ip, provider_server):
    srv = provider_server
    ip.run_line_magic("qwq", f"use deepinfra --base-url {srv.base_url('deepinfra')}")
    session.client_kwargs["api_key"] = "sk-live-abcdefghijklmnop1234"
    cap = run(ip, "--dry-run --temperature 0.6", "hello")
    text = cap.outputs[0].data["text/plain"]
    assert "POST " in text and '"temperature": 0.6' in text and "Bearer sk-" in text
    assert "abcdefghijklmnop1234" not in text + cap.outputs[0].data["text/html"]
    assert srv.requests == []


@pytest.mark.parametrize(("prompt", "sent"), [
    ("About {topic}.", "About cats."),
    ("{obj.real} and {d['key']} and {d[\"key\"]}", "3.0 and K and K"),
    ('JSON: {"a": 1, "b": [1, 2]}', 'JSON: {"a": 1, "b": [1, 2]}'),
    ("code:\n```python\nx = {topic: 1}\nprint(f'{x}')\n```", None),
    ("dict {x: 1} set {1, 2}", None),
    ("TeX $\\frac{a}{b}$ and \\sum_{i=1}^{n} x_{i}", None),
    ("{{topic}} stays, {topic} goes", "{topic} stays, cats goes"),
])
def test_interpolation(ip, srv, prompt, sent):
    ip.user_ns.update(topic="cats", obj=3.0, d={"key": "K"})
    run(ip, "", prompt)
    assert srv.requests[-1].json["messages"][-1]["content"] == (prompt if sent is None else sent)


def test_undefined_name_is_an_error_before_sending(ip, srv):
    with pytest.raises(qm.QwqError, match="'nope' is not defined"):
        ip.run_cell_magic("qwq", "", "Tell me about {nope}")
    assert srv.requests == []
    run(ip, "--no-interpolate", "Tell me about {nope}")
    assert srv.requests[-1].json["messages"][-1]["content"] == "Tell me about {nope}"


def test_conversation_sends_earlier_turns_without_reasoning(ip, srv):
    srv.script(Reply(reasoning="r1", content="first answer"),
               Reply(reasoning="r2", content="second answer"),
               Reply(reasoning="r3", content="fresh"))
    run(ip, "--chat tutor", "Question one")
    run(ip, "--chat tutor", "Question two")
    msgs = srv.requests[-1].json["messages"]
    assert msgs == [{"role": "user", "content": "Question one"},
                    {"role": "assistant", "content": "first answer"},
                    {"role": "user", "content": "Question two"}]
    with capture_output() as cap:
        ip.run_line_magic("qwq", "history tutor")
    assert "Question two" in cap.stdout and "second answer" in cap.stdout
    run(ip, "--chat tutor --new", "Start over")
    assert srv.requests[-1].json["messages"] == [{"role": "user", "content": "Start over"}]
    ip.run_line_magic("qwq", "reset tutor")
    assert "tutor" not in session.conversations


def test_set_params_validates_and_reports_sources(ip, srv):
    with capture_output() as cap:
        ip.run_line_magic("qwq", "set temperature=0.6 top_p=0.95 stop=['END']")
    assert session.params.temperature == 0.6 and session.params.stop == ["END"]
    assert re.search(r"temperature\s+0\.6\s+%qwq set", cap.outputs[-1].data["text/plain"])
    with pytest.raises(qm.ParameterError, match=r"temperature=9 .*allowed 0–2"):
        ip.run_line_magic("qwq", "set temperature=9")
    assert session.params.temperature == 0.6  # a refused value changes nothing
    run(ip, "", "hi")
    assert srv.requests[-1].json["temperature"] == 0.6
    run(ip, "--temperature 0.1", "hi")  # a flag beats the session default for one call
    assert srv.requests[-1].json["temperature"] == 0.1
    ip.run_line_magic("qwq", "set temperature=none")
    assert session.params.temperature is None


def test_ipython_config_sets_defaults(ip, srv):
    ip.run_line_magic("config", "QwqMagics.params = {'top_p': 0.8}")
    assert session.params.top_p == 0.8 and session.params.sources["top_p"] == "config"
    ip.run_line_magic("config", "QwqMagics.hide_reasoning = True")
    try:
        srv.script(Reply(reasoning="SECRET THOUGHTS", content="visible"))
        cap = run(ip, "", "hi")
        assert "SECRET THOUGHTS" not in html_of(cap.outputs[-1])
    finally:
        ip.run_line_magic("config", "QwqMagics.hide_reasoning = False")
        ip.run_line_magic("config", "QwqMagics.params = {}")


@pytest.mark.parametrize(("line", "setup", "error", "pattern"), [
    ("-p nosuch", None, qm.ConfigurationError, "Unknown provider 'nosuch'"),
    ("--temperature 7", None, qm.ParameterError, "temperature=7"),
    ("--top-k 5", "deepinfra-nokey", qm.MissingKeyError, "DEEPINFRA_TOKEN"),
    ("-m no/such-model", None, qm.NotFoundError, "no/such-model"),
    ("--base-url http://127.0.0.1:9/v1", None, qm.ConnectError, "cannot reach"),
])
def test_user_errors_are_one_line(ip, srv, monkeypatch, line, setup, error, pattern):
    if setup == "deepinfra-nokey":
        for v in ("DEEPINFRA_TOKEN", "DEEPINFRA_API_KEY", "QWQ_API_KEY"):
            monkeypatch.delenv(v, raising=False)
        ip.run_line_magic("qwq", f"use deepinfra --base-url {srv.base_url('deepinfra')}")
    with pytest.raises(error, match=pattern) as ei:
        ip.run_cell_magic("qwq", line + " --max-tokens 100", "hi")
    lines = ei.value._render_traceback_()
    assert len(lines) == 1 and error.__name__ in lines[0]
    # and in a real run_cell the user sees that one line, not a traceback wall
    with capture_output() as cap:
        ip.run_cell(f"%%qwq {line}\nhi")
    assert "Traceback" not in cap.stdout + cap.stderr


def test_rate_limited_after_retries_is_one_line(ip, srv):
    srv.fault("status", code=429, retry_after=0.01, times=10)
    with pytest.raises(qm.RateLimitError, match="after 3 attempts"):
        ip.run_cell_magic("qwq", "", "hi")


def test_mid_stream_error_keeps_partial_visible_and_in_python(ip, srv):
    srv.script(Reply(reasoning=REASONING, content=ANSWER))
    srv.fault("drop", after=6)
    with capture_output() as cap, pytest.raises(qm.StreamError):
        ip.run_cell_magic("qwq", "-o ans", "hi")
    c = ip.user_ns["_qwq"]
    assert c.status == "error" and c.reasoning
    assert ip.user_ns["ans"] is c  # the partial reply, marked as broken, is reachable
    final = html_of(cap.outputs[-1])
    assert "⚠" in final and c.reasoning.split()[0] in final


def test_length_inside_reasoning_says_how_to_fix(ip, srv):
    srv.script(Reply.long(400))
    cap = run(ip, "--max-tokens 50", "think hard")
    c = ip.user_ns["_qwq"]
    assert c.finish_reason == "length" and c.reasoning_truncated
    assert "max_tokens" in html_of(cap.outputs[-1]) and "--max-tokens" in html_of(cap.outputs[-1])


def test_model_output_cannot_inject_html(ip, srv):
    evil = "<img src=x onerror=alert(1)> <script>alert(2)</script> [x](javascript:alert(3))"
    srv.script(Reply(reasoning=evil, content=evil))
    cap = run(ip, "", "hi")
    for o in cap.outputs:
        h = html_of(o)
        assert "<img" not in h and "<script" not in h and 'href="javascript' not in h
        assert "<script" not in o.data["text/markdown"]


def test_raw_output(ip, srv):
    srv.script(Reply(reasoning="r", content="**not bold**"))
    cap = run(ip, "--raw", "hi")
    assert "<strong>" not in html_of(cap.outputs[-1])
    assert "**not bold**" in html_of(cap.outputs[-1])


def test_long_stream_has_bounded_display_updates(ip, srv):
    ip.run_line_magic("config", "QwqMagics.max_hz = 20.0")
    srv.script(Reply.long(5000, pace=0.0001))
    t0 = time.monotonic()
    cap = run(ip, "--max-tokens 6000", "go")
    elapsed = time.monotonic() - t0
    n = len(cap.outputs)
    assert ip.user_ns["_qwq"].reasoning_events >= 4999
    # at most max_hz per second plus the first and the final update, whatever the token count
    assert n <= math.ceil(elapsed * 20) + 2, (n, elapsed)


def test_terminal_mode_streams_text(ip, srv):
    ip.run_line_magic("config", "QwqMagics.display = 'text'")
    srv.script(Reply(reasoning=REASONING, content="The answer."))
    with capture_output() as cap:
        ip.run_cell_magic("qwq", "", "hi")
    out = cap.stdout
    assert out.index("Thinking…") < out.index(REASONING[:20]) < out.index("The answer.")
    assert "tokens" in out.splitlines()[-1] or "tok" in out


def test_line_magic_prompt_and_subcommands(ip, srv):
    srv.script(Reply(reasoning="r", content="one-liner"))
    run(ip, "", "x")  # warm up
    with capture_output():
        ip.run_line_magic("qwq", "What is 2+2?")
    assert srv.requests[-1].json["messages"][-1]["content"] == "What is 2+2?"
    with capture_output() as cap:
        ip.run_line_magic("qwq", "providers")
        ip.run_line_magic("qwq", "models")
        ip.run_line_magic("qwq", "params")
        ip.run_line_magic("qwq", "help")
    text = "\n".join(o.data["text/plain"] for o in cap.outputs) + cap.stdout
    for word in ("cloudflare", "DEEPINFRA_TOKEN", "AIMLAPI_KEY", "qwq", "temperature",
                 "%qwq use"):
        assert word in text, word


def test_autodetects_a_local_server(ip, provider_server, monkeypatch):
    for v in ("QWQ_PROVIDER", "QWQ_BASE_URL", "DEEPINFRA_TOKEN", "DEEPINFRA_API_KEY",
              "AIMLAPI_KEY", "CLOUDFLARE_API_TOKEN", "CLOUDFLARE_AUTH_TOKEN", "QWQ_API_KEY"):
        monkeypatch.delenv(v, raising=False)
    magics = ip.magics_manager.registry["QwqMagics"]
    monkeypatch.setattr(magics, "local_ports", [9, provider_server.port])
    cap = run(ip, "", "hello")
    assert f"127.0.0.1:{provider_server.port}/v1" in cap.outputs[0].data["text/plain"]
    assert session.provider == "openai" and srv_model(provider_server) == "qwq"
    session.reset()
    monkeypatch.setattr(magics, "local_ports", [9])
    with pytest.raises(qm.ConfigurationError, match="DEEPINFRA_TOKEN") as ei:
        ip.run_cell_magic("qwq", "", "hello")
    assert "%qwq use openai --base-url" in str(ei.value)


def srv_model(srv) -> str:
    return srv.requests[-1].json["model"]


def test_record_and_replay_offline(ip, srv, tmp_path):
    path = tmp_path / "demo.jsonl"
    srv.script(Reply(reasoning=REASONING, content="recorded answer"))
    ip.run_line_magic("qwq", f"record {path}")
    run(ip, "--temperature 0.6", "the question")
    ip.run_line_magic("qwq", "live")
    n = len(srv.requests)
    ip.run_line_magic("qwq", f"replay {path} --speed 0")
    cap = run(ip, "--temperature 0.6", "the question")
    assert len(srv.requests) == n  # nothing sent
    c = ip.user_ns["_qwq"]
    assert c.replayed and c.content == "recorded answer"
    assert "replay" in html_of(cap.outputs[-1]).lower()
    from qwq_magic.cassette import CassetteMissError

    with pytest.raises(CassetteMissError):
        ip.run_cell_magic("qwq", "", "a question never recorded")
    assert "test-key" not in path.read_text()
