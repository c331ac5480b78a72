"""Per-provider parameter tables: refused before sending, with parameter, value, provider, range."""

from __future__ import annotations

import pytest

import qwq_magic as qm
from qwq_magic.errors import ParameterError
from qwq_magic.params import ParamSpec, SamplingParams, defaults_of, nest, normalize_names, validate
from qwq_magic.providers import PRESETS


def client(preset: str, **kw: object) -> qm.Client:
    return qm.Client(preset, api_key="k-123456789", account_id="acct", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("preset", "model", "param", "value", "allowed"),
    [
        ("cloudflare", None, "temperature", 5.5, "0–5"),
        ("cloudflare", None, "top_k", 51, "1–50"),
        ("cloudflare", None, "frequency_penalty", -0.5, "0–2"),
        ("deepinfra", None, "temperature", 2.1, "0–2"),
        ("deepinfra", None, "top_k", 1000, "[0, 1000)"),
        ("deepinfra", None, "repetition_penalty", 0.0, "0.01–5"),
        ("deepinfra", None, "top_p", 0, "(0, 1]"),
        ("aimlapi", None, "min_p", 1.0, "0.001–0.999"),
        ("aimlapi", "alibaba/qwen3-32b", "thinking_budget", 0, "≥ 1"),
        ("openai", None, "presence_penalty", 3, "-2–2"),
    ],
)
def test_out_of_range_names_everything(preset: str, model: str | None, param: str, value: float,
                                       allowed: str) -> None:
    c = client(preset, **({"model": model} if model else {}))
    kw = {param: value}
    if param == "thinking_budget":
        kw["enable_thinking"] = True
    with pytest.raises(ParameterError) as ei:
        c.prepare("hi", **kw)
    msg = str(ei.value)
    assert param in msg and preset in msg and allowed in msg
    assert ei.value.param == param and (ei.value.allowed or "").startswith(allowed)
    assert ei.value.value == value


@pytest.mark.parametrize(
    ("preset", "model", "param"),
    [
        ("cloudflare", None, "min_p"),
        ("cloudflare", None, "stop"),
        ("cloudflare", None, "enable_thinking"),
        ("deepinfra", None, "enable_thinking"),  # QwQ always thinks
        ("aimlapi", "alibaba/qwen3-32b", "top_k"),
        ("openai", None, "thinking_budget"),
        ("openai", None, "n"),
    ],
)
def test_unsupported_is_refused_not_dropped(preset: str, model: str | None, param: str) -> None:
    c = client(preset, **({"model": model} if model else {}))
    value = ["x"] if param == "stop" else True if param == "enable_thinking" else 2
    with pytest.raises(ParameterError, match=f"{param} is not supported by {preset}"):
        c.prepare("hi", **{param: value})


def test_stop_count_limits() -> None:
    with pytest.raises(ParameterError, match="at most 4"):
        client("aimlapi").prepare("hi", stop=list("abcde"))
    assert client("deepinfra").prepare("hi", stop=list("abcdefghijklmnop")).body["stop"] == list(
        "abcdefghijklmnop")
    with pytest.raises(ParameterError, match="at most 16"):
        client("deepinfra").prepare("hi", stop=list("abcdefghijklmnopq"))


def test_types_are_checked_and_gently_coerced() -> None:
    c = client("deepinfra")
    assert c.prepare("hi", max_tokens=512.0).body["max_tokens"] == 512
    assert c.prepare("hi", stop="END").body["stop"] == ["END"]
    with pytest.raises(ParameterError, match="integer"):
        c.prepare("hi", max_tokens=1.5)
    with pytest.raises(ParameterError):
        c.prepare("hi", temperature="hot")
    with pytest.raises(ParameterError):
        c.prepare("hi", temperature=True)
    with pytest.raises(ParameterError):
        c.prepare("hi", temperature=float("nan"))


def test_unknown_parameter_suggests() -> None:
    with pytest.raises(ParameterError, match="did you mean 'temperature'"):
        client("deepinfra").prepare("hi", temprature=0.5)


def test_aliases_and_wire_names() -> None:
    b = client("aimlapi", model="alibaba/qwen3-32b").prepare(
        "hi", max_completion_tokens=100, enable_thinking=True, thinking_budget=50).body
    assert b["max_completion_tokens"] == 100 and "max_tokens" not in b
    assert b["enable_thinking"] is True and b["thinking_budget"] == 50
    b = client("openai").prepare("hi", enable_thinking=False).body
    assert b["chat_template_kwargs"] == {"enable_thinking": False}
    with pytest.raises(ParameterError, match="given twice"):
        normalize_names({"max_tokens": 1, "max_completion_tokens": 2})


def test_thinking_budget_needs_thinking() -> None:
    with pytest.raises(ParameterError, match="enable_thinking=True"):
        client("aimlapi", model="alibaba/qwen3-32b").prepare("hi", thinking_budget=10)


def test_documented_defaults() -> None:
    cf = PRESETS["cloudflare"].model_info("@cf/qwen/qwq-32b").params
    assert defaults_of(cf) == {"temperature": 0.15, "max_tokens": 256}
    di = PRESETS["deepinfra"].model_info("Qwen/QwQ-32B").params
    assert defaults_of(di)["temperature"] == 1.0
    aq = PRESETS["aimlapi"].model_info("alibaba/qwen3-32b").params
    assert defaults_of(aq) == {"enable_thinking": False}


def test_unset_parameters_are_not_sent() -> None:
    b = client("cloudflare").prepare("hi").body
    assert set(b) == {"messages", "stream"}


def test_spec_describe_and_nest() -> None:
    assert ParamSpec(float, 0, 5).describe() == "0–5"
    assert ParamSpec(int, 1, None).describe() == "≥ 1 (integer)"
    assert ParamSpec(float, 0, None, min_open=True).describe() == "> 0"
    assert nest({"a.b": 1, "c": 2}) == {"a": {"b": 1}, "c": 2}
    assert validate({"temperature": 1}, {"temperature": ParamSpec(float, 0, 2)}, "x") == {
        "temperature": 1.0}


def test_session_params_are_read_live() -> None:
    from qwq_magic.state import Params

    p = Params()
    c = client("deepinfra", params=p)
    assert "temperature" not in c.prepare("hi").body
    p.update({"temperature": 0.6}, source="slider")
    assert c.prepare("hi").body["temperature"] == 0.6
    assert c.prepare("hi", temperature=0.2).body["temperature"] == 0.2  # per-call wins
    assert p.sources == {"temperature": "slider"}
    assert SamplingParams.from_kwargs(max_completion_tokens=5).max_tokens == 5
