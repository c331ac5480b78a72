"""Against a real third-party server: llama-cpp-python's OpenAI-compatible server.

It serves a tiny model built by ``tests/llama/make_model.py`` (a real Qwen2 vocabulary and
QwQ-32B's real chat template, weights that make decoding follow a fixed token chain) under the
name ``reasoner``, so these tests know the reply token by token: reasoning, ``</think>`` with
no opening tag (the template opened it in the prompt), the answer, ``<|im_end|>``; and, when the
server constrains the output to JSON, ``{"answer": 4}``.

Needs ``scripts/setup-llama.sh`` (``scripts/test.sh`` runs it). Without llama-cpp-python the
tests skip, unless ``QWQMAGIC_REQUIRE_LLAMA=1`` (set by ``scripts/test.sh``), where they fail.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Iterator

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import qwq_magic as qm
from qwq_magic import session

pytestmark = pytest.mark.llama

if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("gguf") is None:
    if os.environ.get("QWQMAGIC_REQUIRE_LLAMA") == "1":
        raise RuntimeError("llama-cpp-python is not installed: run scripts/setup-llama.sh")
    pytest.skip("llama-cpp-python not installed (scripts/setup-llama.sh)", allow_module_level=True)

from llama.make_model import JSON_SCHEMA  # noqa: E402
from llama.server import LlamaServer  # noqa: E402


@pytest.fixture(scope="session")
def llama() -> Iterator[LlamaServer]:
    with LlamaServer() as srv:
        yield srv


@pytest.fixture
def client(llama: LlamaServer) -> Iterator[qm.Client]:
    c = qm.Client("openai", **llama.client_kwargs())
    yield c
    c.close()


@pytest.fixture
def qwq_client(llama: LlamaServer) -> Iterator[qm.Client]:
    """The same server with the template's behaviour stated (think="open")."""
    c = qm.Client("openai", think="open", **llama.client_kwargs())
    yield c
    c.close()


def chats(llama: LlamaServer, mark: int) -> list[int]:
    """The statuses of the chat requests logged since ``mark`` (probes left out)."""
    return [st for _, path, st in llama.since(mark) if path == "/v1/chat/completions"]


def _text(c: qm.Completion) -> str:
    return c.reasoning + c.content


# -- streaming ---------------------------------------------------------------------------------
def test_streams_the_whole_reply_token_by_token(llama, client):
    m = llama.model
    s = client.stream("What is 2+2?")
    deltas = [e for e in s if isinstance(e, qm.ReasoningDelta | qm.ContentDelta)]
    c = s.completion
    assert c.status == "complete" and c.finish_reason == "stop"
    assert len(deltas) >= m.completion_tokens - 2  # one chunk per token, not one blob
    text = _text(c)
    assert m.reasoning.strip() in text and text.rstrip().endswith(m.answer)


def test_custom_name_missing_open_tag_still_splits(llama, client):
    c = client.complete("What is 2+2?")
    assert c.reasoning.strip() == llama.model.reasoning.strip()
    assert c.content == llama.model.answer


def test_stated_open_template_splits(llama, qwq_client):
    c = qwq_client.complete("What is 2+2?")
    assert c.reasoning.strip() == llama.model.reasoning.strip()
    assert c.content == llama.model.answer and c.reasoning_complete


async def test_async_stream(llama, qwq_client):
    c = await qwq_client.acomplete("What is 2+2?")
    assert c.content == llama.model.answer and c.finish_reason == "stop"


# -- usage -------------------------------------------------------------------------------------
def test_usage_reported_without_streaming(llama, client):
    c = client.complete("What is 2+2?", stream=False)
    u = c.usage
    assert u is not None and u.completion_tokens == llama.model.completion_tokens
    assert u.prompt_tokens and u.total_tokens == u.prompt_tokens + u.completion_tokens


def test_usage_counted_when_the_stream_has_none(llama, client):
    c = client.complete("What is 2+2?")
    assert c.usage is not None and c.usage.completion_tokens == llama.model.completion_tokens
    assert c.usage.counted and c.tokens_per_s


# -- cut-offs ----------------------------------------------------------------------------------
def test_length_in_reasoning(llama, qwq_client):
    c = qwq_client.complete("What is 2+2?", max_tokens=5)
    assert c.finish_reason == "length" and c.content == ""
    assert c.reasoning == "Okay, the user wants" and c.reasoning_truncated


def test_length_in_answer(llama, qwq_client):
    m = llama.model
    c = qwq_client.complete("What is 2+2?", max_tokens=m.reasoning_tokens + 4)
    assert c.finish_reason == "length" and not c.reasoning_truncated
    assert c.reasoning.strip() == m.reasoning.strip() and c.content == "The answer"


def test_length_in_answer_without_streaming(llama, qwq_client):
    m = llama.model
    c = qwq_client.complete("What is 2+2?", max_tokens=m.reasoning_tokens + 4, stream=False)
    assert c.finish_reason == "length" and c.content == "The answer"
    assert c.usage is not None and c.usage.completion_tokens == m.reasoning_tokens + 4


# -- JSON enforced by the server -----------------------------------------------------------
def test_server_enforces_the_schema(llama, client):
    mark = llama.mark()
    c = client.complete("What is 2+2? Reply in JSON.", json_schema=JSON_SCHEMA)
    assert c.data == {"answer": 4} and c.content == llama.model.json_answer
    # the first request used a form the server accepts: no refused attempts, no retries
    assert chats(llama, mark) == [200]


def test_grammar_from_the_first_token_is_the_answer(llama, qwq_client):
    """With a template that opens <think>, a constrained reply is still the answer."""
    c = qwq_client.complete("What is 2+2?", json_schema=JSON_SCHEMA)
    assert c.data == {"answer": 4}
    assert c.content == llama.model.json_answer and c.reasoning == ""


def test_think_first_keeps_the_reasoning_and_constrains_the_answer(llama, qwq_client):
    mark = llama.mark()
    c = qwq_client.complete("What is 2+2?", json_schema=JSON_SCHEMA, think_first=True)
    assert c.data == {"answer": 4} and c.content == llama.model.json_answer
    assert c.reasoning.strip() == llama.model.reasoning.strip()
    assert chats(llama, mark) == [200, 200]  # think, then answer


def test_a_missed_schema_gets_one_visible_repair_attempt(llama, client):
    # the grammar cannot express "minimum": the model's 4 misses it, twice
    schema = {"type": "object", "properties": {"answer": {"type": "integer", "minimum": 5}},
              "required": ["answer"]}
    with pytest.raises(qm.QwqError, match="minimum") as e:
        client.complete("What is 2+2?", json_schema=schema)
    attempts = e.value.attempts
    assert len(attempts) == 2 and all(a.content == '{"answer": 4}' for a, _ in attempts)
    assert attempts[1][0].messages[-1]["content"].startswith("Your previous answer failed")
    with pytest.raises(qm.QwqError) as e0:
        client.complete("What is 2+2?", json_schema=schema, retries=0)
    assert len(e0.value.attempts) == 1


def test_the_magic_files_constrained_json_as_the_answer(llama, ip):
    ip.user_ns["S"] = JSON_SCHEMA
    cap = _cell(ip, "--json S -o ans", "What is 2+2?")
    c = ip.user_ns["_qwq"]
    assert ip.user_ns["ans"] == {"answer": 4} and c.content == llama.model.json_answer
    assert "still thinking" not in cap.stdout + cap.stderr
    ip.user_ns.pop("S", None)


# -- the magic in a real shell -------------------------------------------------------------
@pytest.fixture
def ip(llama):
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "qwq_magic")
    session.reset()
    shell.run_line_magic("qwq", f"use openai --base-url {llama.base_url} --model reasoner")
    yield shell
    session.reset()
    for k in ("_qwq", "ans"):
        shell.user_ns.pop(k, None)


def _cell(ip, line: str, cell: str):
    with capture_output() as cap:
        ip.run_cell_magic("qwq", line, cell)
    return cap


def test_magic_streams_the_reply_into_the_cell(llama, ip):
    cap = _cell(ip, "-o ans", "What is 2+2?")
    c = ip.user_ns["ans"]
    assert isinstance(c, qm.Completion) and c.finish_reason == "stop"
    assert _text(c).rstrip().endswith(llama.model.answer)
    final = cap.outputs[-1].data["text/html"]
    assert "The answer is four." in final


def test_magic_folds_reasoning_under_a_custom_name(llama, ip):
    cap = _cell(ip, "-o ans", "What is 2+2?")
    c = ip.user_ns["ans"]
    assert c.content == llama.model.answer
    final = cap.outputs[-1].data["text/html"]
    assert re.search(r"<details(?![^>]*\bopen\b)[^>]*>", final) and "Thought for" in final


def test_magic_says_the_answer_was_cut(llama, ip):
    m = llama.model
    cap = _cell(ip, f"-o ans --max-tokens {m.reasoning_tokens + 4}", "What is 2+2?")
    assert ip.user_ns["ans"].finish_reason == "length"
    text = cap.outputs[-1].data["text/plain"] + cap.stdout + cap.stderr
    assert re.search(r"max.?tokens|cut off|length", text, re.I)


# -- Continue (a teammate's fix) -----------------------------------------------
def test_continue_resumes_a_cut_off_answer(llama, qwq_client):
    m = llama.model
    c = qwq_client.complete("What is 2+2?", max_tokens=m.reasoning_tokens + 4)
    more = qwq_client.continue_(c, max_tokens=50)
    assert more.content == m.answer and more.finish_reason == "stop"
    assert more.reasoning.strip() == m.reasoning.strip()


# -- knowing the server --------------------------------------------------------------------
def test_detects_llama_cpp_python(llama):
    from qwq_magic.providers import servers

    servers.forget(llama.base_url)
    info = servers.detect(llama.base_url, "reasoner")
    assert info.kind == "llama-cpp-python" and info.version == "0.3.36"
    assert info.models == ("reasoner",) and info.streams_usage is False
    assert info.json_forms[0] == "json_object_schema"
    assert "llama-cpp-python server 0.3.36" in servers.describe(info)


def test_a_parameter_llama_cpp_python_ignores_is_refused(llama):
    from qwq_magic.errors import ParameterError
    from qwq_magic.params import validate
    from qwq_magic.providers import servers
    from qwq_magic.providers.generic import PARAMS as OPENAI_GENERIC

    table = servers.spec_table(servers.detect(llama.base_url, "reasoner"), OPENAI_GENERIC)
    with pytest.raises(ParameterError, match="chat_template_kwargs"):
        validate({"enable_thinking": False}, table, "openai (reasoner)")
    assert validate({"repetition_penalty": 1.1}, table, "x") == {"repeat_penalty": 1.1}


def test_client_refuses_enable_thinking_on_llama_cpp_python(llama, client):
    from qwq_magic.errors import ParameterError

    with pytest.raises(ParameterError, match="chat_template_kwargs"):
        client.complete("What is 2+2?", enable_thinking=False)


def test_qwq_use_says_what_server_it_found(llama):
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "qwq_magic")
    session.reset()
    try:
        with capture_output() as cap:
            shell.run_line_magic("qwq", f"use openai --base-url {llama.base_url} --model reasoner")
        text = cap.stdout + "".join(o.data.get("text/plain", "") for o in cap.outputs)
        assert "llama-cpp-python server 0.3.36" in text
    finally:
        session.reset()


def test_continue_from_inside_the_reasoning(llama, qwq_client):
    """Cut while thinking, continued: the same reasoning, then the answer — nothing repeated."""
    m = llama.model
    c = qwq_client.complete("What is 2+2?", max_tokens=5)
    assert c.finish_reason == "length" and not c.content
    more = qwq_client.continue_(c, max_tokens=60)
    assert more.reasoning.strip() == m.reasoning.strip() and more.content == m.answer
    assert more.finish_reason == "stop" and more.reasoning_complete


def test_qwq_continue_in_the_magic(llama):
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "qwq_magic")
    session.reset()
    try:
        with capture_output():
            shell.run_line_magic("qwq", f"use openai --base-url {llama.base_url} --model reasoner")
            shell.run_cell_magic("qwq", f"--max-tokens {llama.model.reasoning_tokens + 4}",
                                 "What is 2+2?")
        cut = shell.user_ns["_qwq"]
        assert cut.finish_reason == "length" and cut.content
        with capture_output() as cap:
            shell.run_line_magic("qwq", "continue --max-tokens 50 -o whole")
        whole = shell.user_ns["whole"]
        assert whole.content == llama.model.answer and shell.user_ns["_qwq"] is whole
        assert "cut off" not in "".join(str(o.data) for o in cap.outputs)
        with capture_output(), pytest.raises(qm.UsageError, match="not cut off"):
            shell.run_line_magic("qwq", "continue")
    finally:
        session.reset()


def test_panel_continue_resumes_the_cut_reply_in_place(llama, qwq_client):
    """The panel's Continue button: the cut reply goes on in place, one turn, nothing repeated."""
    import asyncio

    pytest.importorskip("anywidget")
    from qwq_magic.state import Session
    from qwq_magic.widgets import ChatPanel

    s = Session()
    panel = ChatPanel(session=s, client=qwq_client)
    s.params.update({"max_tokens": llama.model.reasoning_tokens + 4})
    cut = asyncio.run(panel.send_async("What is 2+2?"))
    assert cut.finish_reason == "length" and panel.messages[-1]["can_continue"]
    s.params.update({"max_tokens": 50})
    whole = asyncio.run(panel.continue_async())
    assert whole.content == llama.model.answer and whole.finish_reason == "stop"
    assert len(panel.messages) == 2 and not panel.messages[-1]["can_continue"]
    assert panel.conversation[-1] == {"role": "assistant", "content": llama.model.answer}
    assert panel.history == [whole]


def test_concurrent_calls_queue_on_a_one_at_a_time_server(llama, qwq_client, caplog):
    """llama-cpp-python answers one request at a time: concurrent calls wait their turn (no
    dropped connection, no retry) and all land whole."""
    import asyncio
    import logging

    async def three() -> list[qm.Completion]:
        return await asyncio.gather(*(qwq_client.acomplete("What is 2+2?") for _ in range(3)))

    with caplog.at_level(logging.INFO, logger="qwq_magic"):
        done = asyncio.run(three())
    assert [c.content for c in done] == [llama.model.answer] * 3
    assert not [r for r in caplog.records if "retry" in r.getMessage()]
