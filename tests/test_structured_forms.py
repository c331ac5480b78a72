"""Reasoning-aware guided JSON against the local provider server: the form each server
enforces, a grammar from the first token is the answer, think-first, the repair attempt."""

from __future__ import annotations

import pytest

import qwq_magic as qm
from qwq_magic.errors import ConfigurationError
from qwq_magic.providers import servers
from qwq_magic.testing import Reply

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"},
                                           "year": {"type": "integer"}},
          "required": ["name", "year"]}
GOOD = '{"name": "Ada Lovelace", "year": 1815}'


@pytest.fixture(autouse=True)
def _fresh():
    servers.forget()
    yield
    servers.forget()


def client(srv, route, **kw):
    preset = route if route in ("cloudflare", "deepinfra", "aimlapi") else "openai"
    return qm.Client(preset, **{**srv.client_kwargs(route), **kw})


def test_grammar_from_the_first_token_is_the_answer_not_reasoning(provider_server):
    """Workers AI QwQ: the template opens <think>, guided_json constrains from the first token:
    the JSON is the answer (no 'still thinking'), whatever the splitter would have guessed."""
    srv = provider_server
    srv.script(Reply(content=GOOD, reasoning_mode="none"))
    c = client(srv, "cloudflare").complete("Who?", json_schema=SCHEMA)
    assert c.content == GOOD and c.reasoning == "" and c.data["year"] == 1815
    assert "guided_json" in srv.requests[-1].json


def test_the_same_reply_without_the_rule_would_be_filed_as_reasoning(provider_server):
    # the control: a plain QwQ reply with no </think> stays reasoning (truncated thinking)
    srv = provider_server
    srv.script(Reply(content=GOOD, reasoning_mode="none"))
    c = client(srv, "cloudflare").complete("Who?", max_tokens=100)
    assert c.reasoning == GOOD and c.content == ""


def test_detected_llama_cpp_gets_a_form_it_enforces(provider_server):
    srv = provider_server
    srv.script(Reply(content=GOOD, reasoning_mode="none"))
    c = client(srv, "llamacpp").complete("Who?", json_schema=SCHEMA)
    rf = srv.requests[-1].json["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["schema"] == SCHEMA
    assert c.content == GOOD and c.reasoning == ""  # its template opens <think>; still answer


def test_think_first_reasons_freely_then_constrains(provider_server):
    srv = provider_server
    srv.script(Reply(reasoning="Ada Lovelace, born 1815.", content="It was Ada Lovelace."),
               Reply(content=GOOD, reasoning_mode="none"))
    c = client(srv, "vllm").complete("Who?", json_schema=SCHEMA, think_first=True)
    first, second = srv.requests[-2].json, srv.requests[-1].json
    assert "response_format" not in first and second["response_format"]["type"] == "json_schema"
    assert second["messages"][-2] == {"role": "assistant", "content": "It was Ada Lovelace."}
    assert c.data == {"name": "Ada Lovelace", "year": 1815}
    assert c.reasoning == "Ada Lovelace, born 1815." and c.content == GOOD


def test_think_first_auto_is_two_phase_only_where_the_grammar_starts_at_once(provider_server):
    srv = provider_server
    srv.script(Reply(reasoning="thinking", content="Ada."), Reply(content=GOOD,
                                                                  reasoning_mode="none"))
    c = client(srv, "cloudflare").complete("Who?", json_schema=SCHEMA, think_first="auto")
    assert len(srv.requests) == 2 and c.reasoning.strip() == "thinking"
    srv.reset()
    srv.script(Reply(reasoning="thinking", content=GOOD))
    c = client(srv, "vllm").complete("Who?", json_schema=SCHEMA, think_first="auto")
    assert len(srv.requests) == 1 and c.reasoning == "thinking"  # reasoning field, then JSON


def test_one_repair_attempt_by_default_each_attempt_kept(provider_server):
    srv = provider_server
    srv.script(Reply(reasoning="r", content='{"name": "Ada"}'), Reply(reasoning="r",
                                                                       content=GOOD))
    c = client(srv, "vllm").complete("Who?", json_schema=SCHEMA)
    assert c.data["year"] == 1815 and len(srv.requests) == 2
    assert [a.content for a in c.attempts] == ['{"name": "Ada"}']
    assert "failed validation" in srv.requests[-1].json["messages"][-1]["content"]


def test_repair_attempts_are_configurable(provider_server):
    srv = provider_server
    srv.script(*[Reply(reasoning="r", content='{"name": "Ada"}')] * 3)
    with pytest.raises(qm.SchemaValidationError) as e:
        client(srv, "vllm").complete("Who?", json_schema=SCHEMA, retries=2)
    assert len(e.value.attempts) == 3 and len(srv.requests) == 3


def test_what_worked_is_remembered_per_server(provider_server):
    srv = provider_server
    cl = client(srv, "vllm", max_retries=0)
    srv.fault("reject_json_schema", code=400, times=None, forms=("json_schema",))
    srv.script(Reply(content=GOOD), Reply(content=GOOD))
    cl.complete("x", json_schema=SCHEMA)
    cl.complete("y", json_schema=SCHEMA)
    forms = [(r.json.get("response_format") or {}).get("type") for r in srv.requests]
    assert forms == ["json_schema", "json_object", "json_object"]


@pytest.mark.parametrize(("kw", "words"), [
    ({"retries": -1}, "retries=-1"), ({"retries": "two"}, "whole number"),
    ({"think_first": "yes"}, "think_first"), ({"json_mode": "xml"}, "Unknown JSON mode"),
])
def test_bad_options_are_one_clear_error(provider_server, kw, words):
    with pytest.raises(ConfigurationError, match=words):
        client(provider_server, "vllm").complete("x", json_schema=SCHEMA, **kw)
    assert provider_server.requests == []


def test_every_mode_has_a_described_wire_form():
    from qwq_magic import structured

    assert set(structured.MODES) == set(servers.JSON_FORMS)
    for mode in structured.MODES:
        fields, _, _ = structured.wire_form(mode, SCHEMA, [{"role": "user", "content": "x"}])
        assert mode == "prompt" or fields
