"""Unit tests for qwq_magic.structured (pure: no network)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from qwq_magic import structured as s
from qwq_magic.completion import Completion
from qwq_magic.errors import ConfigurationError, QwqError
from qwq_magic.events import ContentDelta, Finish, ReasoningDelta, Usage
from qwq_magic.providers import PRESETS

PEOPLE = {
    "type": "object",
    "properties": {
        "people": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "year": {"type": "integer"}},
                "required": ["name", "year"],
            },
        }
    },
    "required": ["people"],
}


class Person(BaseModel):
    name: str
    year: int


class People(BaseModel):
    people: list[Person]


def completion(content: str = "", reasoning: str = "", finish: str = "stop",
               max_tokens: int | None = None) -> Completion:
    c = Completion(params={"max_tokens": max_tokens} if max_tokens else {})
    if reasoning:
        c.add(ReasoningDelta(reasoning))
    if content:
        c.add(ContentDelta(content))
    c.add(Usage(completion_tokens=max_tokens))
    c.add(Finish(finish))  # type: ignore[arg-type]
    c.finish()
    return c


# -- schema inputs -------------------------------------------------------------------------------
def test_dict_schema() -> None:
    sc = s.resolve(PEOPLE)
    assert sc.json is PEOPLE and sc.model is None
    assert s.to_json_schema(PEOPLE) == PEOPLE


def test_pydantic_class_and_instance() -> None:
    sc = s.resolve(People)
    assert sc.model is People and sc.name == "People"
    assert sc.json["properties"]["people"]["type"] == "array"
    assert s.resolve(People(people=[])).model is People


def test_json_string_and_file(tmp_path: Path) -> None:
    text = json.dumps(PEOPLE)
    assert s.to_json_schema(text) == PEOPLE
    f = tmp_path / "people.json"
    f.write_text(text)
    assert s.to_json_schema(f) == PEOPLE
    sc = s.resolve(str(f))
    assert sc.json == PEOPLE and sc.name == "people"


def test_missing_file() -> None:
    with pytest.raises(ConfigurationError, match="Cannot read the schema file"):
        s.resolve("/nonexistent/dir/x.json")


def test_shorthand_types_and_descriptions() -> None:
    js = s.to_json_schema("name: the person's name, age int: years, score float, ok bool, city")
    props = js["properties"]
    assert props["name"] == {"type": "string", "description": "the person's name"}
    assert props["age"] == {"type": "integer", "description": "years"}
    assert props["score"] == {"type": "number"}
    assert props["ok"] == {"type": "boolean"}
    assert props["city"] == {"type": "string"}
    assert js["required"] == ["name", "age", "score", "ok", "city"]


def test_shorthand_newlines_allow_commas_in_descriptions() -> None:
    js = s.to_json_schema("name: full name, as written\nyear int")
    assert js["properties"]["name"]["description"] == "full name, as written"
    assert js["properties"]["year"]["type"] == "integer"


def test_multi() -> None:
    sc = s.resolve("name, year int", multi=True)
    items = sc.json["properties"]["items"]
    assert items["type"] == "array" and items["items"]["properties"]["year"]["type"] == "integer"
    assert s.validate({"items": [{"name": "a", "year": 1}]}, sc)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"type": "nonsense"}, "Invalid JSON Schema"),
        ({"type": "object", "properties": {"a": {"type": 5}}}, r"\$\.properties\.a\.type"),
        ('{"type": "object",', "not valid JSON"),
        ("[1, 2]", "Unknown type|Cannot read"),
        ("name strng", "Unknown type 'strng'"),
        ("", "empty"),
        (42, "Cannot use a int"),
    ],
)
def test_invalid_schema_refused(spec: Any, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        s.resolve(spec)


# -- wire forms ----------------------------------------------------------------------------------
MSGS = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Who?"}]


def test_wire_json_schema_openai_and_cloudflare() -> None:
    rf, msgs, ok = s.wire_form("json_schema", s.resolve(People), MSGS)
    assert rf == {"response_format": {"type": "json_schema", "json_schema": {
        "name": "People", "schema": s.resolve(People).json, "strict": False}}}
    assert msgs == MSGS and ok
    rf, _, ok = s.wire_form("json_schema", PEOPLE, MSGS, preset=PRESETS["cloudflare"])
    assert rf == {"response_format": {"type": "json_schema", "json_schema": PEOPLE}}
    assert not ok


def test_wire_guided_json() -> None:
    rf, msgs, ok = s.wire_form("guided_json", PEOPLE, MSGS, preset=PRESETS["cloudflare"])
    assert rf == {"guided_json": PEOPLE} and msgs == MSGS and not ok
    rf, _, ok = s.wire_form("vllm_guided_json", PEOPLE, MSGS)
    assert rf == {"guided_json": PEOPLE} and ok
    rf, _, ok = s.wire_form("structured_outputs", PEOPLE, MSGS)
    assert rf == {"structured_outputs": {"json": PEOPLE}} and ok


def test_wire_json_object_and_prompt() -> None:
    rf, msgs, ok = s.wire_form("json_object", PEOPLE, MSGS)
    assert rf == {"response_format": {"type": "json_object"}} and ok
    assert msgs[0]["content"].startswith("Be brief.\n\nReply with only a JSON value")
    assert json.dumps(PEOPLE) in msgs[0]["content"]
    assert MSGS[0]["content"] == "Be brief."  # input untouched
    rf, msgs, ok = s.wire_form("prompt", PEOPLE, [{"role": "user", "content": "Who?"}])
    assert rf is None and ok
    assert msgs[-1]["content"].startswith("Who?\n\nReply with only a JSON value")


def test_wire_unknown_mode() -> None:
    with pytest.raises(ConfigurationError, match="Unknown JSON mode"):
        s.wire_form("xml", PEOPLE, MSGS)


def test_wire_forms_land_in_request_body() -> None:
    from qwq_magic.client import Client

    c = Client("openai", base_url="http://localhost:1/v1", model="qwq")
    req = c.prepare("Who?", json_schema=People)
    assert req.body["response_format"]["json_schema"]["schema"]["title"] == "People"
    assert req.stream and req.json_mode == "json_schema"
    req = c.prepare("Who?", json_schema="name", json_mode="vllm_guided_json")
    assert req.body["guided_json"]["properties"] == {"name": {"type": "string"}}
    cf = Client("cloudflare", api_key="x" * 40, account_id="a" * 32)
    req = cf.prepare("Who?", json_schema=PEOPLE)
    assert req.body["guided_json"] == PEOPLE and not req.stream and req.body["stream"] is False
    req = cf.prepare("Who?", json_schema=PEOPLE, model="@cf/qwen/qwen3-30b-a3b-fp8")
    assert req.body["response_format"] == {"type": "json_schema", "json_schema": PEOPLE}


# -- extracting JSON -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1}',
        '```json\n{"a": 1}\n```',
        '```\n{"a": 1}\n```\nHope that helps!',
        'Sure! Here is the data:\n{"a": 1}\nLet me know.',
        '<think>maybe {"a": 2}?</think>\n{"a": 1}',
        'so the answer is {"a": 3}\n</think>\n\n{"a": 1}',
        'See [1] and {"x"} then {"a": 1}',
    ],
)
def test_extract_json(text: str) -> None:
    assert s.extract_json(text)[0] == {"a": 1}


def test_extract_nested_braces_in_strings() -> None:
    text = 'Result: {"code": "if (x) { return \\"}\\"; }", "list": [1, {"b": "]"}]} done'
    value, used = s.extract_json(text)
    assert value == {"code": 'if (x) { return "}"; }', "list": [1, {"b": "]"}]}
    assert used.startswith('{"code"') and used.endswith("]}")


def test_extract_fence_inside_a_string() -> None:
    assert s.extract_json('```json\n{"a": "```"}\n```')[0] == {"a": "```"}


def test_extract_prefers_outermost_array() -> None:
    assert s.extract_json('x [{"a": 1}, {"a": 2}] y')[0] == [{"a": 1}, {"a": 2}]


def test_extract_from_reasoning_last_value() -> None:
    value, _ = s.extract_json("", reasoning='draft {"a": 0} ... final {"a": 1}')
    assert value == {"a": 1}
    assert s.extract_json("Done.", reasoning='{"a": 1}')[0] == {"a": 1}


def test_extract_content_beats_reasoning() -> None:
    assert s.extract_json('{"a": 1}', reasoning='{"a": 2}')[0] == {"a": 1}


def test_invalid_json_position() -> None:
    with pytest.raises(s.InvalidJSONError) as ei:
        s.extract_json('Here:\n{"a": 1,\n "b": oops}')
    e = ei.value
    assert (e.line, e.col) == (3, 7)
    assert "not valid JSON" in str(e) and "line 3 col 7" in str(e) and "Here:" in str(e)
    assert e.raw.startswith("Here:")


def test_invalid_json_no_value_and_empty() -> None:
    with pytest.raises(s.InvalidJSONError, match="no JSON object or array"):
        s.extract_json("I cannot answer that.")
    with pytest.raises(s.InvalidJSONError, match="empty"):
        s.extract_json("")


def test_cut_off_value_is_not_mistaken_for_an_inner_one() -> None:
    with pytest.raises(s.InvalidJSONError, match="incomplete"):
        s.extract_json('{"people": [{"name": "a", "year": 1}, {"name": "b"')


# -- validation ----------------------------------------------------------------------------------
def test_validate_path() -> None:
    bad = {"people": [{"name": "a", "year": 1}, {"name": "b", "year": "1999"}]}
    with pytest.raises(s.SchemaValidationError) as ei:
        s.validate(bad, s.resolve(PEOPLE))
    assert ei.value.path == "$.people[1].year"
    assert "$.people[1].year" in str(ei.value) and "integer" in str(ei.value)


def test_validate_pydantic() -> None:
    sc = s.resolve(People)
    out = s.validate({"people": [{"name": "a", "year": 1}]}, sc)
    assert isinstance(out, People) and out.people[0].year == 1
    with pytest.raises(s.SchemaValidationError) as ei:
        s.validate({"people": [{"name": "a", "year": 1}, {"name": "b", "year": "x"}]}, sc)
    assert ei.value.path == "$.people[1].year"


def test_validate_odd_keys() -> None:
    sc = s.resolve({"type": "object", "properties": {"a b": {"type": "integer"}}})
    with pytest.raises(s.SchemaValidationError) as ei:
        s.validate({"a b": "x"}, sc)
    assert ei.value.path == '$["a b"]'


# -- parse_completion ----------------------------------------------------------------------------
def test_parse_completion_sets_data() -> None:
    c = completion('```json\n{"people": [{"name": "a", "year": 1}]}\n```')
    data = s.parse_completion(c, s.resolve(People))
    assert c.data is data and isinstance(data, People)


def test_parse_completion_truncated() -> None:
    c = completion('{"people": [{"name": "a", "ye', finish="length", max_tokens=64)
    with pytest.raises(s.TruncatedOutputError) as ei:
        s.parse_completion(c, s.resolve(PEOPLE))
    e = ei.value
    assert "cut off at max_tokens (64 tokens)" in str(e) and "--max-tokens" in str(e)
    assert e.completion is c and c.data is None and e.raw.startswith('{"people"')


def test_parse_completion_truncated_while_thinking() -> None:
    c = completion(reasoning="Let me think about", finish="length", max_tokens=32)
    with pytest.raises(s.TruncatedOutputError, match="still thinking"):
        s.parse_completion(c, s.resolve(PEOPLE))


def test_parse_completion_invalid_and_schema_errors_keep_completion() -> None:
    c = completion("no json here")
    with pytest.raises(s.InvalidJSONError) as ei:
        s.parse_completion(c, s.resolve(PEOPLE))
    assert ei.value.completion is c and c.data is None
    c = completion('{"people": [{"name": "a"}]}')
    with pytest.raises(s.SchemaValidationError) as ej:
        s.parse_completion(c, s.resolve(PEOPLE))
    assert ej.value.completion is c and c.data is None and ej.value.path == "$.people[0]"
    assert isinstance(ej.value, s.StructuredOutputError) and isinstance(ej.value, QwqError)


def test_parse_completion_from_reasoning() -> None:
    c = completion("", reasoning='{"people": []}')
    assert s.parse_completion(c, s.resolve(PEOPLE)) == {"people": []}


# -- partial preview -----------------------------------------------------------------------------
def test_partial_preview_grows() -> None:
    doc = 'Here:\n```json\n{"people": [{"name": "Ada", "year": 1815}]}\n```\nDone.'
    assert s.partial_preview("Here:") is None
    assert json.loads(s.partial_preview('Here: {"people": [{"na') or "") == {"people": [{}]}
    assert json.loads(s.partial_preview('{"people": [{"name": "Ad') or "") == {
        "people": [{"name": "Ad"}]}
    assert json.loads(s.partial_preview(doc) or "") == {"people": [{"name": "Ada", "year": 1815}]}
    assert s.partial_preview("<think>{") is None
    assert json.loads(s.partial_preview('say hi</think>\n{"b": 2') or "") == {"b": 2}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids,
                                                              max_size=4),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(max_size=6), json_values, max_size=4), st.booleans())
def test_partial_preview_every_prefix(value: dict[str, Any], fenced: bool) -> None:
    doc = json.dumps(value, ensure_ascii=False, indent=1 if fenced else None)
    if fenced:
        doc = f"Sure:\n```json\n{doc}\n```"
    for i in range(len(doc) + 1):
        out = s.partial_preview(doc[:i])
        if out is not None:
            json.loads(out)
    assert json.loads(s.partial_preview(doc) or "null") == value


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(max_size=6), json_values, max_size=4),
       st.sampled_from(["{}", "Sure:\n{}\nDone.", "```json\n{}\n```", "ok\n```\n{}\n```\nbye"]))
def test_extract_json_roundtrip(value: dict[str, Any], frame: str) -> None:
    assert s.extract_json(frame.format(json.dumps(value, ensure_ascii=False)))[0] == value


# -- dataframes ----------------------------------------------------------------------------------
def test_to_dataframe_shapes() -> None:
    df = s.to_dataframe([{"name": "a", "year": 1}, {"name": "b", "year": 2}])
    assert list(df.columns) == ["name", "year"] and len(df) == 2
    df = s.to_dataframe({"people": [{"name": "a", "year": 1}], "count": 1})
    assert df["name"].tolist() == ["a"]
    df = s.to_dataframe(People(people=[Person(name="a", year=1)]))
    assert df["year"].tolist() == [1]
    df = s.to_dataframe([Person(name="a", year=1)])
    assert df["name"].tolist() == ["a"]


@pytest.mark.parametrize("value", [{"a": 1}, {"a": [{"x": 1}], "b": [{"y": 2}]}, 3, [1, 2]])
def test_to_dataframe_refuses(value: Any) -> None:
    with pytest.raises(QwqError, match="Cannot make a table"):
        s.to_dataframe(value)


# -- run / arun with a fake client (the real server is tested elsewhere) -------------------------
class FakeStream:
    def __init__(self, reply: Any) -> None:
        self.reply = reply
        self.completion = Completion()

    def _play(self) -> list[Any]:
        if isinstance(self.reply, Exception):
            self.reply.completion = self.completion  # type: ignore[attr-defined]
            raise self.reply
        self.completion.add(ContentDelta(self.reply))
        self.completion.add(Finish("stop"))
        self.completion.finish()
        return []

    def __iter__(self) -> Any:
        return iter(self._play())

    def __aiter__(self) -> Any:
        self._events = iter(self._play())
        return self

    async def __anext__(self) -> Any:
        raise StopAsyncIteration


class FakeClient:
    def __init__(self, replies: list[Any], preset: str = "openai") -> None:
        from qwq_magic.providers import get_preset

        self.replies = replies
        self.preset = get_preset(preset)
        self.model = self.preset.default_model
        self.json_mode_memory: dict[str, str] = {}
        self.calls: list[tuple[Any, dict[str, Any]]] = []
        self.base_url = "http://127.0.0.1:9/v1"  # nothing listens: the server is "unknown"
        self.think = None

    def _auth_headers(self) -> dict[str, str]:
        return {}

    def _json_key(self, model: str) -> str:
        return f"x|{model}"

    def prepare(self, prompt: Any = None, **kw: Any) -> Any:
        from types import SimpleNamespace

        return SimpleNamespace(prompt=prompt, kw=kw, think=None)

    def stream(self, prompt: Any = None, request: Any = None, **kw: Any) -> FakeStream:
        if request is not None:  # a prepared request (structured.run sets its think mode)
            prompt, kw = request.prompt, request.kw
        self.calls.append((prompt, kw))
        return FakeStream(self.replies.pop(0))

    astream = stream


GOOD = '{"people": [{"name": "a", "year": 1}]}'


def test_run_retries_with_the_error() -> None:
    fc = FakeClient(['{"people": [{"name": "a"}]}', GOOD])
    c = s.run(fc, "Who?", json_schema=People, retries=1)  # type: ignore[arg-type]
    assert isinstance(c.data, People) and len(fc.calls) == 2
    msgs = fc.calls[1][0]
    assert msgs[-2]["role"] == "assistant"
    assert "failed validation" in msgs[-1]["content"] and "$.people[0]" in msgs[-1]["content"]


def test_run_out_of_retries_records_attempts() -> None:
    fc = FakeClient(["nope", "still nope"])
    with pytest.raises(s.InvalidJSONError) as ei:
        s.run(fc, "Who?", json_schema=PEOPLE, retries=1)  # type: ignore[arg-type]
    assert len(ei.value.attempts) == 2


def test_run_falls_back_on_400_and_remembers() -> None:
    from qwq_magic.errors import BadRequestError

    fc = FakeClient([BadRequestError("no json_schema", status=400),
                     BadRequestError("no json_object", status=400), GOOD])
    seen: list[int] = []
    c = s.run(fc, "Who?", json_schema=PEOPLE,  # type: ignore[arg-type]
              on_stream=lambda st, n: (seen.append(n), list(st)))
    assert c.data == json.loads(GOOD)
    assert [kw["json_mode"] for _, kw in fc.calls] == ["json_schema", "json_object", "prompt"]
    assert fc.json_mode_memory == {"x|qwq": "prompt"}
    assert seen == [0, 0, 0]


def test_run_no_fallback_on_hosted_preset() -> None:
    from qwq_magic.errors import BadRequestError

    fc = FakeClient([BadRequestError("bad", status=400)], preset="deepinfra")
    with pytest.raises(BadRequestError):
        s.run(fc, "Who?", json_schema=PEOPLE)  # type: ignore[arg-type]


def test_arun() -> None:
    import asyncio

    fc = FakeClient(["x", '{"name": "b"}'])
    c = asyncio.run(s.arun(fc, "Who?", json_schema="name", retries=1))  # type: ignore[arg-type]
    assert c.data == {"name": "b"} and len(fc.calls) == 2


def test_arun_async_on_stream() -> None:
    import asyncio

    fc = FakeClient(['{"name": "a"}'])
    seen: list[int] = []

    async def show(st: Any, n: int) -> None:
        seen.append(n)
        async for _ in st:
            pass

    c = asyncio.run(s.arun(fc, "Who?", json_schema="name",  # type: ignore[arg-type]
                           on_stream=show))
    assert c.data == {"name": "a"} and seen == [0]
