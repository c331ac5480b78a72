"""Knowing the server: probes, classification, and the request adaptations that follow."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

import qwq_magic as qm
from qwq_magic.errors import ParameterError
from qwq_magic.params import validate
from qwq_magic.providers import get_preset
from qwq_magic.providers import servers as sv
from qwq_magic.providers.generic import PARAMS as OPENAI_GENERIC

ROOT = "http://srv:8000"


@pytest.fixture(autouse=True)
def _fresh():
    sv.forget()
    yield
    sv.forget()


def run_plan(answers: dict[str, Any], model: str | None = None) -> tuple[sv.ServerInfo, list]:
    """Drive the sans-I/O probe plan with canned answers keyed by path (missing: 404)."""
    plan = sv.probe_plan(f"{ROOT}/v1", model)
    asked = []
    try:
        probe = next(plan)
        while True:
            asked.append((probe.method, probe.path))
            obj = answers.get(probe.path)
            probe = plan.send((200, obj) if obj is not None else (404, {"detail": "Not Found"}))
    except StopIteration as stop:
        return stop.value, asked


def models(owner: str, mid: str = "qwq") -> dict[str, Any]:
    return {"object": "list", "data": [{"id": mid, "object": "model", "owned_by": owner}]}


QWQ_JINJA = ("{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n<think>\\n' }}"
             "{%- endif %}")
QWEN25_JINJA = "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"


@pytest.mark.parametrize(("answers", "kind", "version"), [
    ({"/models": models("llamacpp"), "/props": {"chat_template": QWQ_JINJA,
                                                "build_info": "b6510-703f9e32"}},
     "llama.cpp", "b6510-703f9e32"),
    ({"/models": models("me", "reasoner"), "/openapi.json": {
        "openapi": "3.1.0", "info": {"title": "🦙 llama.cpp Python API", "version": "0.3.36"}}},
     "llama-cpp-python", "0.3.36"),
    ({"/models": models("vllm"), "/version": {"version": "0.13.0"}}, "vllm", "0.13.0"),
    ({"/models": models("library", "qwq:32b"), "/api/version": {"version": "0.12.3"},
      "/api/show": {"template": "<|im_start|>assistant\n<think>\n", "capabilities":
                    ["completion", "thinking"]}}, "ollama", "0.12.3"),
    ({"/models": models("organization_owner"), "/api/v0/models": {"data": [
        {"id": "qwq-32b", "type": "llm", "arch": "qwen2", "state": "loaded"}]}},
     "lmstudio", None),
    ({"/models": models("sglang"), "/get_server_info": {
        "model_path": "Qwen/QwQ-32B", "tp_size": 1, "reasoning_parser": "deepseek-r1",
        "version": "0.5.4"}}, "sglang", "0.5.4"),
    ({"/models": models("Qwen/QwQ-32B"), "/info": {
        "model_id": "Qwen/QwQ-32B", "version": "3.3.6", "router": "text-generation-router"}},
     "tgi", "3.3.6"),
])
def test_each_server_is_recognised(answers, kind, version):
    info, _ = run_plan(answers)
    assert info.kind == kind and info.version == version
    assert info.models and info.base_url == f"{ROOT}/v1"


def test_owned_by_goes_straight_to_the_right_probe():
    _, asked = run_plan({"/models": models("me", "reasoner"), "/openapi.json": {
        "info": {"title": "🦙 llama.cpp Python API", "version": "0.3.36"}}})
    assert asked == [("GET", "/models"), ("GET", "/openapi.json")]


def test_nothing_answers_is_unknown_after_every_probe_once():
    info, asked = run_plan({})
    assert info.kind == "unknown" and info.json_forms == ("json_schema", "json_object")
    assert len(asked) == len(set(asked)) == 8


def test_a_bare_version_endpoint_elsewhere_is_not_vllm():
    # an unrelated app's /version with more fields must not be taken for vLLM
    info, _ = run_plan({"/version": {"version": "1.0", "name": "my-proxy"}})
    assert info.kind == "unknown"


def test_odd_shapes_are_not_trusted():
    info, _ = run_plan({"/props": {"chat_template": 5, "build_info": ["x"]}})
    assert info.kind == "llama.cpp" and info.chat_template is None and info.opens_think is None
    assert info.version is None


def test_template_says_whether_think_opens_in_the_prompt():
    assert sv.template_opens_think(QWQ_JINJA) is True
    assert sv.template_opens_think(QWEN25_JINJA) is False
    assert sv.template_opens_think(None) is None
    assert sv.make_info("llama.cpp", chat_template=QWQ_JINJA).opens_think
    assert sv.think_mode(sv.make_info("llama.cpp", chat_template=QWQ_JINJA)) == "open"
    assert sv.think_mode(sv.make_info("llama.cpp", chat_template=QWEN25_JINJA)) is None


def test_ollama_without_the_thinking_capability_does_not_open_think():
    info, _ = run_plan({"/models": models("library", "qwen2.5"), "/api/version": {
        "version": "0.12.3"}, "/api/show": {"template": "{{ .Prompt }}<think>",
                                            "capabilities": ["completion"]}})
    assert info.kind == "ollama" and info.opens_think is False


def test_vllm_uses_the_standard_form_and_its_reasoning_parser_frees_the_reasoning():
    for v in ("0.13.0", "0.8.5"):
        assert sv.make_info("vllm", version=v).json_forms == ("json_schema", "json_object")
    assert sv.make_info("vllm", reasoning_parser="deepseek_r1").grammar_from_start is False


# -- adapting parameters and bodies -----------------------------------------------------------
def test_renamed_parameter_goes_out_under_the_servers_name():
    info = sv.make_info("llama.cpp")
    wire = validate({"repetition_penalty": 1.1, "top_k": 20},
                    sv.spec_table(info, OPENAI_GENERIC), "openai (qwq)")
    assert wire == {"repeat_penalty": 1.1, "top_k": 20}


def test_a_parameter_the_server_ignores_is_refused_with_the_reason():
    table = sv.spec_table(sv.make_info("llama-cpp-python"), OPENAI_GENERIC)
    with pytest.raises(ParameterError) as e:
        validate({"enable_thinking": False}, table, "openai (reasoner)")
    msg = str(e.value)
    assert "enable_thinking" in msg and "chat_template_kwargs" in msg and e.value.param == (
        "enable_thinking")
    with pytest.raises(ParameterError, match="top_k"):
        validate({"top_k": 20}, sv.spec_table(sv.make_info("ollama"), OPENAI_GENERIC), "x")


def test_unknown_server_keeps_the_table():
    assert sv.spec_table(None, OPENAI_GENERIC) is OPENAI_GENERIC
    table = sv.spec_table(sv.make_info("unknown"), OPENAI_GENERIC)
    assert validate({"enable_thinking": False}, table, "x") == {
        "chat_template_kwargs.enable_thinking": False}


def test_ollama_thinking_switch_becomes_reasoning_effort():
    info = sv.make_info("ollama")
    wire = validate({"enable_thinking": False}, sv.spec_table(info, OPENAI_GENERIC), "x")
    assert wire == {"reasoning_effort": False}
    assert sv.adapt_body(info, {"reasoning_effort": False})["reasoning_effort"] == "none"
    assert sv.adapt_body(info, {"reasoning_effort": True})["reasoning_effort"] == "medium"


def test_stream_options_dropped_where_usage_is_never_streamed():
    body = {"model": "m", "stream": True, "stream_options": {"include_usage": True}}
    assert "stream_options" not in sv.adapt_body(sv.make_info("llama-cpp-python"), body)
    assert sv.adapt_body(sv.make_info("vllm"), body) == body
    assert "stream_options" in body  # the input is not modified


def test_json_modes_per_server_end_with_prompt():
    generic = get_preset("openai").model_info("qwq")
    assert sv.json_modes(sv.make_info("llama-cpp-python"), generic) == (
        "json_object_schema", "prompt")
    assert sv.json_modes(sv.make_info("tgi"), generic) == ("tgi_json", "prompt")
    assert sv.json_modes(None, generic) == ("json_schema", "json_object", "prompt")
    assert sv.wire_form("json_object_schema", {"type": "object"}, "r")[0] == {
        "response_format": {"type": "json_object", "schema": {"type": "object"}}}
    assert sv.wire_form("tgi_json", {"type": "object"}, "r")[0] == {
        "response_format": {"type": "json", "value": {"type": "object"}}}


def test_describe_says_what_was_found():
    text = sv.describe(sv.make_info("llama-cpp-python", version="0.3.36"))
    assert text.startswith("Server: llama-cpp-python server 0.3.36")
    assert "repetition_penalty is sent as repeat_penalty" in text
    assert "enable_thinking" in text and "no usage in its stream" in text
    assert "not recognised" in sv.describe(sv.make_info("unknown"))
    assert "opens <think>" in sv.describe(sv.make_info("llama.cpp", chat_template=QWQ_JINJA))


# -- against the local provider server (real HTTP) -----------------------------------------
class Counting(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return super().handle_request(request)


@pytest.mark.parametrize(("route", "kind", "version", "opens"), [
    ("llamacpp", "llama.cpp", "b6510-703f9e32", True),
    ("vllm", "vllm", "0.13.0", None),
    ("vllm-old", "vllm", "0.8.5", None),
    ("ollama", "ollama", "0.12.3", True),
    ("raw", "unknown", None, None),
])
def test_detects_the_test_servers_routes(provider_server, route, kind, version, opens):
    t = Counting()
    info = sv.detect(provider_server.base_url(route), "qwq", transport=t)
    assert (info.kind, info.version, info.opens_think) == (kind, version, opens)
    n = len(t.paths)
    assert n <= 3 or kind == "unknown"  # /models, its own probe, Ollama's /api/show
    again = sv.detect(provider_server.base_url(route), "qwq", transport=t)
    assert again is info and len(t.paths) == n  # cached: no second probe
    assert sv.cached(provider_server.base_url(route), "qwq") is info


async def test_async_detect_shares_the_cache(provider_server):
    url = provider_server.base_url("llamacpp")
    info = await sv.adetect(url, "qwq")
    assert info.kind == "llama.cpp" and sv.detect(url, "qwq") is info


def test_unreachable_server_is_unknown_not_an_error():
    info = sv.detect("http://127.0.0.1:9/v1")
    assert info.kind == "unknown"


def test_probes_send_the_clients_key_and_no_key_leaks_into_the_info(provider_server):
    t = Counting()
    info = sv.detect(provider_server.base_url("vllm"), headers={"Authorization": "Bearer sk-x"},
                     transport=t)
    assert "sk-x" not in repr(info) and "sk-x" not in sv.describe(info)


def test_detection_is_skipped_for_hosted_presets():
    assert sv.detects(get_preset("openai")) and not sv.detects(get_preset("deepinfra"))
    assert qm.Client("deepinfra", api_key="k").provider == "deepinfra"


# -- any answer at all ------------------------------------------------------------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["data", "id", "owned_by", "version", "info", "title", "model_id",
                         "chat_template", "template", "capabilities", "arch", "model_path",
                         "reasoning_parser", "build_info", "x"]), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0, 200, 404, 500]), _json), min_size=12,
                max_size=12))
def test_any_probe_answers_give_a_server_info(answers):
    plan = sv.probe_plan(f"{ROOT}/v1", None)
    probe = next(plan)
    try:
        for ans in answers:
            probe = plan.send(ans)
        pytest.fail(f"the plan asked more than {len(answers)} probes")
    except StopIteration as stop:
        info = stop.value
    assert isinstance(info, sv.ServerInfo) and info.kind in sv.TITLES
    assert sv.describe(info).startswith("Server:")
    assert probe is not None
