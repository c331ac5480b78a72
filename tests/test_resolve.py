"""One resolver: the precedence rules, key scoping, and every front end agreeing on the choice.

The matrix at the end runs each environment through ``Client()``, the magic's client
(``session.client()``), ``%qwq params``, ``ChatPanel``, ``ParamsPanel`` and ``client_for``
(what ``compare``/``map`` use) and asserts they name the same provider, model and URL.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import qwq_magic as qm
from qwq_magic import session
from qwq_magic.errors import ConfigurationError, Secret
from qwq_magic.providers import PRESETS
from qwq_magic.resolve import client_for, resolve
from qwq_magic.state import Session

KEY_VARS = sorted({v for p in PRESETS.values() for v in p.key_env}
                  | {"QWQ_PROVIDER", "QWQ_MODEL", "QWQ_BASE_URL", "CLOUDFLARE_ACCOUNT_ID"})


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for v in KEY_VARS:
        monkeypatch.delenv(v, raising=False)
    session.reset()
    yield monkeypatch
    session.reset()


# -- precedence (pure: an explicit env mapping, no probe) ---------------------------------------
def test_arguments_beat_session_beat_environment() -> None:
    env = {"QWQ_PROVIDER": "deepinfra", "QWQ_MODEL": "Qwen/QwQ-32B-Preview",
           "DEEPINFRA_TOKEN": "tok-deepinfra-123"}
    c = resolve(env=env, probe=False)
    assert (c.provider, c.model) == ("deepinfra", "Qwen/QwQ-32B-Preview")
    assert c.sources["provider"] == "QWQ_PROVIDER" and c.sources["model"] == "QWQ_MODEL"
    assert c.api_key == Secret("tok-deepinfra-123") and c.sources["api_key"] == "DEEPINFRA_TOKEN"

    s = Session()
    s.provider = "cloudflare"  # %qwq use cloudflare
    c = resolve(session=s, env=env, probe=False)
    # QWQ_MODEL belongs to the provider QWQ_PROVIDER names, not to the session's choice
    assert (c.provider, c.model) == ("cloudflare", "@cf/qwen/qwq-32b")
    assert c.sources == {"provider": "session", "model": "default", "base_url": "default"}
    assert c.api_key is None  # DeepInfra's token never goes to Cloudflare

    c = resolve("aimlapi", model="alibaba/qwen3-32b", session=s, env=env, probe=False)
    assert (c.provider, c.model, c.sources["provider"]) == ("aimlapi", "alibaba/qwen3-32b",
                                                            "argument")


def test_session_model_and_url_belong_to_the_session_provider() -> None:
    s = Session()
    s.provider, s.model, s.base_url = "openai", "mine", "http://127.0.0.1:9/v1"
    assert resolve(session=s, env={}, probe=False).model == "mine"
    other = resolve("deepinfra", session=s, env={}, probe=False)  # %%qwq -p deepinfra
    assert (other.model, other.base_url) == ("Qwen/QwQ-32B", PRESETS["deepinfra"].base_url)


def test_nothing_named_finds_a_key_then_a_url_then_says_how() -> None:
    assert resolve(env={"AIMLAPI_KEY": "k-aiml-1234"}, probe=False).provider == "aimlapi"
    c = resolve(env={"QWQ_BASE_URL": "http://127.0.0.1:1/v1"}, probe=False)
    assert (c.provider, c.base_url, c.sources["provider"]) == (
        "openai", "http://127.0.0.1:1/v1", "QWQ_BASE_URL is set")
    with pytest.raises(ConfigurationError, match="No provider is configured"):
        resolve(env={}, probe=False)


def test_a_local_server_is_found_when_nothing_is_named(provider_server: Any) -> None:
    port = int(provider_server.root.rsplit(":", 1)[1])
    # the server's root answers /v1/models like a plain vLLM server
    c = resolve(env={}, probe=True, ports=[1, port])
    assert c.provider == "openai" and c.base_url == f"http://127.0.0.1:{port}/v1"
    assert c.sources["provider"] == "local server" and c.found


def test_qwq_api_key_is_scoped_to_the_provider_qwq_provider_names() -> None:
    env = {"QWQ_API_KEY": "sk-local-server-key", "DEEPINFRA_TOKEN": "tok-deepinfra-123",
           "QWQ_PROVIDER": "aimlapi"}
    assert resolve("deepinfra", env=env, probe=False).api_key == Secret("tok-deepinfra-123")
    assert resolve("aimlapi", env=env, probe=False).api_key == Secret("sk-local-server-key")
    assert resolve("openai", env=env, probe=False).api_key == Secret("sk-local-server-key")
    # unset QWQ_PROVIDER: the generic key stays with the generic server
    env.pop("QWQ_PROVIDER")
    env.pop("DEEPINFRA_TOKEN")
    assert resolve("deepinfra", env=env, probe=False).api_key is None
    assert resolve("openai", env=env, probe=False).api_key == Secret("sk-local-server-key")


@pytest.mark.parametrize("bad, what", [
    ("http://[::1", "not a valid URL"), ("ftp://x", "must start with http"),
    ("localhost:8000/v1", "must start with http"), ("http://", "no host")])
def test_bad_base_urls_are_named(bad: str, what: str) -> None:
    with pytest.raises(ConfigurationError, match=what):
        resolve("openai", base_url=bad, env={}, probe=False)


def test_a_key_that_cannot_be_a_header_is_refused_before_sending() -> None:
    with pytest.raises(ConfigurationError, match="non-ASCII") as ei:
        resolve("deepinfra", api_key="sk-ключ-123456", env={}, probe=False)
    assert "ключ" not in str(ei.value)


@pytest.mark.parametrize("kw, what", [
    ({"timeout": -1}, "timeout"), ({"timeout": float("nan")}, "timeout"), ({"timeout": 0}, "timeout"),
    ({"timeout": "abc"}, "timeout"), ({"max_retries": "x"}, "max_retries"),
    ({"max_retries": -2}, "max_retries")])
def test_bad_client_arguments_name_the_argument(kw: dict[str, Any], what: str) -> None:
    with pytest.raises(ConfigurationError, match=what):
        qm.Client("openai", base_url="http://127.0.0.1:1/v1", **kw)


def test_client_of_a_non_name_says_what_it_takes() -> None:
    with pytest.raises(ConfigurationError, match="provider name"):
        qm.Client(5)  # type: ignore[arg-type]


# -- every front end agrees ---------------------------------------------------------------------
def _magic_params_choice(ip: InteractiveShell) -> str:
    with capture_output() as cap:
        ip.run_line_magic("qwq", "params")
    return cap.stdout + "".join(str(o.data) for o in cap.outputs)


ENVS = [
    {"DEEPINFRA_TOKEN": "tok-deepinfra-123"},
    {"QWQ_PROVIDER": "deepinfra", "QWQ_MODEL": "Qwen/QwQ-32B-Preview", "DEEPINFRA_TOKEN": "t-1234"},
    {"AIMLAPI_KEY": "k-aiml-1234", "QWQ_MODEL": "alibaba/qwen3-32b"},
    {"CLOUDFLARE_API_TOKEN": "cf-token-1234", "CLOUDFLARE_ACCOUNT_ID": "acct"},
    {"QWQ_BASE_URL": "http://127.0.0.1:9/v1", "QWQ_MODEL": "served-name"},
]


@pytest.mark.parametrize("env", ENVS, ids=lambda e: "+".join(sorted(e)))
@pytest.mark.parametrize("use", [None, "cloudflare", "openai"])
def test_every_front_end_resolves_the_same_choice(clean_env: pytest.MonkeyPatch,
                                                  env: dict[str, str], use: str | None) -> None:
    pytest.importorskip("anywidget")
    from qwq_magic.widgets import ChatPanel, ParamsPanel

    for k, v in env.items():
        clean_env.setenv(k, v)
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "qwq_magic")
    session.autodetect = False
    if use:
        extra = " --base-url http://127.0.0.1:7/v1" if use == "openai" else ""
        ip.run_line_magic("qwq", f"use {use}{extra}")
    want = session.choice()
    seen = {
        "magic": session.client().choice,
        "client_for": client_for().choice,
        "ChatPanel": ChatPanel().binding.choice(),
        "ParamsPanel": ParamsPanel().binding.choice(),
    }
    if use is None:
        seen["Client()"] = qm.Client().choice
    for name, c in seen.items():
        assert (c.provider, c.model, c.base_url) == (want.provider, want.model, want.base_url), name
    panel = ChatPanel()
    assert panel.provider_label == want.label
    # %qwq params reads the same provider's table: its source column names the provider
    text = _magic_params_choice(ip)
    info = want.preset.model_info(want.model)
    if info.params.get("temperature") is not None and getattr(
            info.params["temperature"], "default", None) is not None:
        assert f"{want.provider} default" in text
    else:
        assert "server default" in text


def test_only_deepinfra_token_params_sliders_and_calls_all_say_deepinfra(
        clean_env: pytest.MonkeyPatch) -> None:
    """The issue's second symptom: a fresh kernel with only DEEPINFRA_TOKEN set."""
    from qwq_magic.widgets import ParamsPanel, controls_for

    clean_env.setenv("DEEPINFRA_TOKEN", "tok-deepinfra-123")
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "qwq_magic")
    text = _magic_params_choice(ip)
    assert "deepinfra default" in text and "server default" not in text.split("top_k")[1][:80]
    sliders = {c["name"]: c for c in controls_for(ParamsPanel().binding.choice())}
    assert sliders["top_k"]["range"] == PRESETS["deepinfra"].models["Qwen/QwQ-32B"].params[
        "top_k"].describe()
    assert session.client().provider == "deepinfra"


def test_use_cloudflare_sends_and_shows_cloudflare_model(clean_env: pytest.MonkeyPatch,
                                                         provider_server: Any) -> None:
    """The issue's first symptom, against the server: %qwq use cloudflare with
    QWQ_PROVIDER=deepinfra QWQ_MODEL=… set sends and shows Cloudflare's model."""
    from qwq_magic.widgets import ChatPanel

    clean_env.setenv("QWQ_PROVIDER", "deepinfra")
    clean_env.setenv("QWQ_MODEL", "Qwen/QwQ-32B-Preview")
    kw = provider_server.client_kwargs("cloudflare")
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "qwq_magic")
    with capture_output():
        ip.run_line_magic("qwq", f"use cloudflare --base-url {kw['base_url']} --account-id "
                          f"{kw['account_id']}")
    session.client_kwargs["api_key"] = Secret(kw["api_key"])
    session._close_clients()
    with capture_output():
        ip.run_cell_magic("qwq", "--max-tokens 100", "Hi")
    assert provider_server.requests[-1].path.endswith("/ai/run/@cf/qwen/qwq-32b")
    assert ChatPanel().provider_label.startswith("cloudflare · @cf/qwen/qwq-32b")


def test_chat_panel_talks_to_the_client_it_is_given(clean_env: pytest.MonkeyPatch,
                                                    provider_server: Any) -> None:
    pytest.importorskip("anywidget")
    from qwq_magic.widgets import ChatPanel

    session.use("openai", **provider_server.client_kwargs("vllm"))
    mine = qm.Client("aimlapi", **provider_server.client_kwargs("aimlapi"))
    panel = ChatPanel(client=mine)
    assert panel.provider_label.startswith("aimlapi · Qwen/QwQ-32B")
    c = asyncio.run(panel.send_async("hello"))
    assert c.status == "complete" and c.provider == "aimlapi"
    assert provider_server.requests[-1].route == "aimlapi"
    by_kw = ChatPanel(provider="openai", **{k: v for k, v in provider_server.client_kwargs(
        "ollama").items()})
    asyncio.run(by_kw.send_async("hello"))
    assert provider_server.requests[-1].route == "ollama"


@pytest.mark.parametrize("cls", ["ChatPanel", "ParamsPanel"])
def test_panels_refuse_unknown_keywords_and_both_kinds_of_choice(cls: str) -> None:
    pytest.importorskip("anywidget")
    import qwq_magic.widgets as w

    panel_cls = getattr(w, cls)
    with pytest.raises(TypeError, match="no_such_option"):
        panel_cls(no_such_option=1)
    c = qm.Client("openai", base_url="http://127.0.0.1:1/v1")
    with pytest.raises(TypeError, match="not both"):
        panel_cls(client=c, model="x")
    with pytest.raises(TypeError, match=r"qwq_magic\.Client"):
        panel_cls(client="deepinfra")


def test_client_for_takes_a_client_or_keywords() -> None:
    c = qm.Client("openai", base_url="http://127.0.0.1:1/v1")
    assert client_for(c) is c
    with pytest.raises(TypeError, match="not both"):
        client_for(c, provider="deepinfra")
    s = Session()
    got = client_for(provider="openai", base_url="http://127.0.0.1:2/v1", model="m", session=s)
    assert (got.provider, got.model, got.base_url) == ("openai", "m", "http://127.0.0.1:2/v1")
