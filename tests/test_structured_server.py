"""Guided JSON end to end: the client and ``%%qwq --json`` against the local provider server."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from pydantic import BaseModel

import qwq_magic as qm
from qwq_magic import session
from qwq_magic.testing import Reply

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"},
                                           "year": {"type": "integer"}},
          "required": ["name", "year"]}
GOOD = '{"name": "Ada Lovelace", "year": 1815}'


class Person(BaseModel):
    name: str
    year: int


def client(srv, route, **kw):
    preset = route if route in ("cloudflare", "deepinfra", "aimlapi") else "openai"
    return qm.Client(preset, **{**srv.client_kwargs(route), **kw})


@pytest.mark.parametrize(("route", "field"), [
    ("deepinfra", "response_format"), ("aimlapi", "response_format"),
    ("vllm", "response_format"), ("cloudflare", "guided_json"), ("ollama", "response_format"),
])
def test_each_dialect_sends_its_wire_form_and_validates(provider_server, route, field):
    srv = provider_server
    srv.script(Reply(reasoning="Ada was born in 1815.", content=GOOD))
    c = client(srv, route).complete("Who wrote the first program?", json_schema=SCHEMA,
                                    max_tokens=2000)
    assert c.data == {"name": "Ada Lovelace", "year": 1815}
    body = srv.requests[-1].json
    assert field in body
    if field == "response_format":
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["schema"] == SCHEMA
    else:  # Workers AI: guided_json, and JSON mode does not stream
        assert body["guided_json"] == SCHEMA and body["stream"] is False


def test_pydantic_class_gives_an_instance(provider_server):
    srv = provider_server
    srv.script(Reply(reasoning="thinking", content=f"Here you go:\n```json\n{GOOD}\n```\nDone."))
    c = client(srv, "vllm").complete("who?", json_schema=Person)
    assert isinstance(c.data, Person) and c.data.year == 1815


def test_json_recovered_from_the_reasoning_field(provider_server):
    srv = provider_server
    srv.script(Reply(reasoning=GOOD, content="", reasoning_mode="reasoning_only"))
    c = client(srv, "vllm").complete("who?", json_schema=SCHEMA)
    assert c.data["name"] == "Ada Lovelace"


def test_inline_think_is_stripped_before_parsing(provider_server):
    srv = provider_server
    srv.script(Reply(reasoning="I think {not json} here", content=GOOD,
                     reasoning_mode="inline_open"))
    c = client(srv, "raw").complete("who?", json_schema=SCHEMA, model="Qwen/Qwen3-32B")
    assert c.data == json.loads(GOOD)


def test_three_failures_are_three_clear_errors(provider_server):
    srv = provider_server
    cl = client(srv, "vllm")
    srv.script(Reply(reasoning="r", content='{"name": "Ada", "year": }'))
    with pytest.raises(qm.InvalidJSONError, match="not valid JSON") as ei:
        cl.complete("x", json_schema=SCHEMA, retries=0)
    assert ei.value.raw and ei.value.completion.data is None
    assert ei.value.completion.content == '{"name": "Ada", "year": }'
    srv.script(Reply(reasoning="r", content='{"name": "Ada", "year": "eighteen"}'))
    with pytest.raises(qm.SchemaValidationError, match=r"\$\.year") as ei2:
        cl.complete("x", json_schema=SCHEMA, retries=0)
    assert ei2.value.completion.data is None
    srv.script(Reply(reasoning="r", content='{"name": "Ada Lovelace, the first programmer", '
                                            '"year": 1815}'))
    with pytest.raises(qm.TruncatedOutputError, match="max_tokens") as ei3:
        cl.complete("x", json_schema=SCHEMA, max_tokens=6)
    assert ei3.value.completion.finish_reason == "length"


def test_retries_re_ask_with_the_error(provider_server):
    srv = provider_server
    srv.script(Reply(reasoning="r", content='{"name": "Ada"}'),
               Reply(reasoning="r", content=GOOD))
    c = client(srv, "vllm").complete("x", json_schema=SCHEMA, retries=1)
    assert c.data["year"] == 1815
    retry_msgs = srv.requests[-1].json["messages"]
    assert retry_msgs[1] == {"role": "assistant", "content": '{"name": "Ada"}'}
    assert "failed validation" in retry_msgs[2]["content"] and "year" in retry_msgs[2]["content"]


def test_generic_server_rejecting_json_schema_falls_back_and_remembers(provider_server):
    srv = provider_server
    srv.fault("reject_json_schema", code=500, times=None, forms=("json_schema",))
    cl = client(srv, "vllm", max_retries=0)
    srv.script(Reply(reasoning="r", content=GOOD), Reply(reasoning="r", content=GOOD))
    c = cl.complete("x", json_schema=SCHEMA)
    assert c.data["year"] == 1815
    forms = [(r.json.get("response_format") or {}).get("type") for r in srv.requests]
    assert forms == ["json_schema", "json_object"]
    cl.complete("again", json_schema=SCHEMA)  # remembered: straight to what worked
    assert srv.requests[-1].json["response_format"]["type"] == "json_object"
    # a server that refuses every wire form still gets the schema in the prompt
    srv.reset()
    srv.fault("reject_json_schema", code=400, times=None,
              forms=("json_schema", "json_object", "guided_json"))
    cl2 = client(srv, "vllm", max_retries=0)
    srv.script(Reply(reasoning="r", content=GOOD))
    c2 = cl2.complete("x", json_schema=SCHEMA, model="qwq-other")
    assert c2.data["name"] == "Ada Lovelace"
    last = srv.requests[-1].json
    assert "response_format" not in last and "guided_json" not in last
    assert '"year"' in last["messages"][-1]["content"]


# -- the magic ---------------------------------------------------------------------------------
@pytest.fixture
def ip(provider_server):
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "qwq_magic")
    session.reset()
    shell.run_line_magic("qwq", f"use openai --base-url {provider_server.base_url('vllm')} "
                         "--model qwq")
    shell.user_ns["Person"] = Person
    yield shell
    session.reset()
    for k in ("people", "person", "_qwq"):
        shell.user_ns.pop(k, None)


def test_magic_json_into_a_dataframe(ip, provider_server):
    srv = provider_server
    rows = [{"name": "Ada Lovelace", "year": 1815}, {"name": "Alan Turing", "year": 1912}]
    srv.script(Reply(reasoning="Listing pioneers.", content=json.dumps({"items": rows},
                                                                       indent=1), pace=0.002))
    with capture_output() as cap:
        ip.run_cell_magic("qwq", "--json Person -o people --df", "Two computing pioneers.")
    df = ip.user_ns["people"]
    assert isinstance(df, pd.DataFrame) and list(df.columns) == ["name", "year"]
    assert df["year"].tolist() == [1815, 1912]
    sent = srv.requests[-1].json["response_format"]["json_schema"]["schema"]
    assert sent["properties"]["items"]["type"] == "array"
    # the live preview shows the JSON growing, pretty-printed, under the folded reasoning
    previews = [o.data["text/html"] for o in cap.outputs if "qwq-json" in o.data["text/html"]]
    assert previews and "Ada Lovelace" in previews[-1]


def test_magic_pydantic_and_shorthand(ip, provider_server):
    srv = provider_server
    srv.script(Reply(reasoning="r", content=GOOD), Reply(reasoning="r", content=GOOD))
    with capture_output():
        ip.run_cell_magic("qwq", "--json Person -o person", "Who?")
    assert isinstance(ip.user_ns["person"], Person)
    with capture_output():
        ip.run_cell_magic("qwq", "--json 'name, year int' -o person", "Who?")
    assert ip.user_ns["person"] == {"name": "Ada Lovelace", "year": 1815}


@pytest.mark.parametrize(("content", "error", "words"), [
    ('{"name": "Ada", "year": }', qm.InvalidJSONError, "not valid JSON"),
    ('{"name": "Ada", "year": "x"}', qm.SchemaValidationError, "$.year"),
])
def test_magic_failures_are_named_and_var_untouched(ip, provider_server, content, error, words):
    srv = provider_server
    ip.user_ns["person"] = "before"
    srv.script(Reply(reasoning="r", content=content))
    with capture_output(), pytest.raises(error) as ei:
        ip.run_cell_magic("qwq", "--json Person -o person --retries 0", "Who?")
    assert words in str(ei.value) and len(ei.value._render_traceback_()) == 1
    assert ip.user_ns["person"] == "before"  # never silently set to something wrong
    assert ip.user_ns["_qwq"].content == content  # the raw text stays reachable


def test_magic_retries_show_each_attempt(ip, provider_server):
    srv = provider_server
    srv.script(Reply(reasoning="r", content='{"name": "Ada"}'), Reply(reasoning="r",
                                                                       content=GOOD))
    with capture_output() as cap:
        ip.run_cell_magic("qwq", "--json Person -o person --retries 2", "Who?")
    assert ip.user_ns["person"].year == 1815
    assert any("retry 1" in o.data["text/html"] for o in cap.outputs)


def test_invalid_schema_refused_before_sending(ip, provider_server):
    with pytest.raises(qm.ConfigurationError, match="schema"):
        ip.run_cell_magic("qwq", "--json '{\"type\": 5}' -o x", "Who?")
    with pytest.raises(qm.ConfigurationError, match="Unknown type"):
        ip.run_cell_magic("qwq", "--json 'name, year integerish' -o x", "Who?")
    assert provider_server.requests == []
