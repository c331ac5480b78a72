"""The bad-input table: every wrong argument, flag, command, schema, path or object gets a short
error that names the problem — and nothing is sent.

Each entry is tried for real: ``Client(...)`` and ``complete(...)`` against the local provider
server, ``%%qwq`` / ``%qwq`` in a real IPython ``InteractiveShell``, ``ChatPanel.set_param`` on a
real panel. An entry passes when

* the error is a :class:`qm.QwqError` (a ``TypeError`` only for a keyword that does not exist),
* its message names the argument (every word listed for the entry appears in it),
* no request reached the server (it was refused before anything streamed),
* in the magic, what the user sees is one line: no traceback from our code.

The module reports ``bad inputs: N, unclear errors: 0`` (tests/_figures.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pydantic
import pytest
from _figures import figure
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import qwq_magic as qm
from qwq_magic import session
from qwq_magic.testing import API_KEY

RESULTS: dict[str, bool] = {}


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    unclear = sorted(k for k, ok in RESULTS.items() if not ok)
    figure(f"bad inputs: {len(RESULTS)}, unclear errors: {len(unclear)}"
           + (f" ({', '.join(unclear[:10])})" if unclear else ""))


# -- hostile objects for {var} ------------------------------------------------------------------
class RaisingStr:
    def __str__(self) -> str:
        raise RuntimeError("boom in __str__")


class RaisingFormat:
    def __format__(self, spec: str) -> str:
        raise ValueError("boom in __format__")


class RaisingProperty:
    @property
    def name(self) -> str:
        raise RuntimeError("boom in a property")


class RaisingGetattr:
    def __getattr__(self, name: str) -> Any:
        raise KeyError(name)


class RaisingReprLLM:
    def _repr_llm_(self) -> str:
        raise RuntimeError("boom in _repr_llm_")


class ReprLLMNotStr:
    def _repr_llm_(self) -> Any:
        return 42


class RaisingRepr:
    def __repr__(self) -> str:
        raise RuntimeError("boom in __repr__")


class Opaque:
    pass


class Arbitrary(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)
    thing: Opaque


def _deep_schema(n: int) -> dict[str, Any]:
    s: dict[str, Any] = {"type": "string"}
    for _ in range(n):
        s = {"type": "object", "properties": {"a": s}}
    return s


def _deep_list_schema(n: int) -> dict[str, Any]:
    s: dict[str, Any] = {"type": "string"}
    for _ in range(n):
        s = {"type": "array", "items": s}
    return s


# -- the table ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    id: str
    where: str  # "client" | "complete" | "magic" | "panel"
    arg: Any  # client/complete: kwargs (with "prompt" for complete); magic: (line, cell);
    #           panel: (name, value)
    names: tuple[str, ...]  # words the message must contain (case-insensitive)
    exc: type[BaseException] = qm.QwqError


def C(id: str, names: str, **kw: Any) -> Entry:
    return Entry(id, "client", kw, tuple(names.split("|")))


def P(id: str, names: str, prompt: Any = "hi", **kw: Any) -> Entry:
    return Entry(id, "complete", {"prompt": prompt, **kw}, tuple(names.split("|")))


def M(id: str, names: str, line: str, cell: str | None = "Say hi.") -> Entry:
    return Entry(id, "magic", (line, cell), tuple(names.split("|")))


def W(id: str, names: str, name: str, value: Any) -> Entry:
    return Entry(id, "panel", (name, value), tuple(names.split("|")))


NAN, INF = math.nan, math.inf
TABLE: list[Entry] = [
    # Client(...)
    C("client-preset-int", "provider", preset=5),
    C("client-preset-list", "provider", preset=["deepinfra"]),
    C("client-preset-unknown", "bogus", preset="bogus"),
    C("client-url-ipv6-open", "base_url", base_url="http://[::1"),
    C("client-url-ftp", "base_url", base_url="ftp://example.com/v1"),
    C("client-url-no-scheme", "base_url", base_url="localhost:8000/v1"),
    C("client-url-no-host", "base_url", base_url="http:///v1"),
    C("client-url-int", "base_url", base_url=8000),
    C("client-model-int", "model", model=5),
    C("client-model-list", "model", model=["qwq"]),
    C("client-timeout-abc", "timeout", timeout="abc"),
    C("client-timeout-neg", "timeout", timeout=-1),
    C("client-timeout-nan", "timeout", timeout=NAN),
    C("client-timeout-inf", "timeout", timeout=INF),
    C("client-timeout-zero", "timeout", timeout=0),
    C("client-timeout-bool", "timeout", timeout=True),
    C("client-retries-str", "max_retries", max_retries="x"),
    C("client-retries-neg", "max_retries", max_retries=-1),
    C("client-retries-float", "max_retries", max_retries=1.5),
    C("client-retry-wait-inf", "max_retry_wait", max_retry_wait=INF),
    C("client-retry-wait-neg", "max_retry_wait", max_retry_wait=-5),
    C("client-key-int", "api_key", api_key=12345),
    C("client-key-non-ascii", "api key|non-ascii", api_key="sk-ключ-123456"),
    C("client-key-newline", "api key|line break", api_key="sk-abc\ndef"),
    C("client-account-int", "account_id", preset="cloudflare", account_id=5, api_key="k"),
    C("client-think", "think", think="sometimes"),
    C("client-headers-list", "headers", headers=[("X", "1")]),
    C("client-http-client", "http_client", http_client="httpx"),
    Entry("client-unknown-keyword", "client", {"tempreature": 0.6}, ("tempreature",), TypeError),
    # complete(...)
    P("prompt-empty", "prompt|empty", prompt=""),
    P("prompt-blank", "prompt|empty", prompt="  \n\t "),
    P("prompt-none", "prompt|empty", prompt=None),
    P("prompt-int", "prompt|int", prompt=5),
    P("prompt-bytes", "prompt|bytes", prompt=b"hi"),
    P("prompt-dict", "prompt|dict", prompt={"role": "user", "content": "hi"}),
    P("prompt-empty-list", "prompt|empty", prompt=[]),
    P("prompt-message-not-dict", "message", prompt=["hi"]),
    P("prompt-message-no-role", "role", prompt=[{"content": "hi"}]),
    P("prompt-message-bad-role", "role|wizard", prompt=[{"role": "wizard", "content": "hi"}]),
    P("prompt-system-only", "prompt|empty", prompt=[{"role": "system", "content": "x"}]),
    P("system-int", "system", system=5),
    P("system-and-message", "system", prompt=[{"role": "system", "content": "a"},
                                              {"role": "user", "content": "b"}], system="c"),
    P("history-str", "history", history="earlier"),
    P("history-bad-role", "role", history=[{"role": "robot", "content": "x"}]),
    P("model-int", "model", model=5),
    P("tools-str", "tools", tools="get_weather"),
    P("tools-list-of-str", "tools", tools=["get_weather"]),
    P("extra-body-str", "extra_body", extra_body="x=1"),
    P("temperature-abc", "temperature", temperature="abc"),
    P("temperature-nan", "temperature", temperature=NAN),
    P("temperature-inf", "temperature", temperature=INF),
    P("temperature-neg", "temperature", temperature=-1),
    P("temperature-high", "temperature", temperature=9),
    P("temperature-bool", "temperature", temperature=True),
    P("temperature-list", "temperature", temperature=[0.6]),
    P("top-p-high", "top_p", top_p=2),
    P("top-p-nan", "top_p", top_p=NAN),
    P("top-k-neg", "top_k", top_k=-5),
    P("top-k-float", "top_k", top_k=1.5),
    P("min-p-high", "min_p", min_p=3),
    P("max-tokens-neg", "max_tokens", max_tokens=-1),
    P("max-tokens-zero", "max_tokens", max_tokens=0),
    P("max-tokens-float", "max_tokens", max_tokens=1.5),
    P("max-tokens-str", "max_tokens", max_tokens="abc"),
    P("seed-str", "seed", seed="abc"),
    P("stop-int", "stop", stop=5),
    P("stop-list-int", "stop", stop=[1, 2]),
    P("presence-penalty-high", "presence_penalty", presence_penalty=10),
    P("unknown-param", "bogus_param", bogus_param=1),
    # schemas (refused before anything streams)
    P("schema-int", "schema", json_schema=5),
    P("schema-bad-json", "schema|json", json_schema="{not json"),
    P("schema-bad-type", "schema|type", json_schema={"type": "bogus"}),
    P("schema-dangling-ref", "$ref|#/$defs/nope", json_schema={"$ref": "#/$defs/nope"}),
    P("schema-dangling-nested-ref", "$ref|#/definitions/Item", json_schema={
        "type": "object", "properties": {"x": {"$ref": "#/definitions/Item"}}}),
    P("schema-remote-ref", "$ref|evil.example", json_schema={
        "$ref": "https://evil.example/schema.json"}),
    P("schema-1000-deep", "schema|deep", json_schema=_deep_schema(1000)),
    P("schema-1000-deep-array", "schema|deep", json_schema=_deep_list_schema(1000)),
    P("schema-pydantic-arbitrary", "Arbitrary|thing", json_schema=Arbitrary),
    P("schema-shorthand-type", "type|colour", json_schema="name, colour rgb"),
    P("schema-missing-file", "schema file|nope.json", json_schema="/nonexistent/nope.json"),
    P("json-mode-bogus", "json mode|bogus", json_schema={"type": "object"}, json_mode="bogus"),
    P("retries-neg", "retries", json_schema={"type": "object"}, retries=-1),
    P("retries-str", "retries", json_schema={"type": "object"}, retries="x"),
    # %%qwq flags
    M("flag-max-tokens-abc", "max-tokens|abc", "--max-tokens abc"),
    M("flag-max-tokens-float", "max-tokens|1.5", "--max-tokens 1.5"),
    M("flag-max-tokens-zero", "max_tokens", "--max-tokens 0"),
    M("flag-max-tokens-neg", "max_tokens", "--max-tokens -5"),
    M("flag-temperature-nan", "temperature", "--temperature nan"),
    M("flag-temperature-inf", "temperature", "--temperature inf"),
    M("flag-temperature-neg", "temperature", "--temperature -1"),
    M("flag-temperature-word", "temperature|hot", "--temperature hot"),
    M("flag-temperature-missing", "temperature", "--temperature"),
    M("flag-top-p-high", "top_p", "--top-p 2"),
    M("flag-top-k-float", "top-k", "--top-k 1.5"),
    M("flag-seed-word", "seed", "--seed x"),
    M("flag-timeout", "--timeout", "--timeout -1"),
    M("flag-unknown", "--bogus", "--bogus 1"),
    M("flag-out-not-identifier", "-o|1bad", "-o 1bad"),
    M("flag-json-no-variable", "--json|schema_typo", "--json schema_typo"),
    M("flag-json-bad-json", "schema|json", "--json '{\"type\": '"),
    M("flag-json-dangling-ref", "$ref", "--json '{\"$ref\": \"#/$defs/x\"}'"),
    M("flag-json-mode", "json mode|bogus", "--json 'name str' --json-mode bogus"),
    M("flag-df-without-json", "--df|--json", "--df"),
    M("flag-new-without-chat", "--new|--chat", "--new"),
    M("flag-retries-word", "retries", "--json 'name str' --retries x"),
    M("flag-on-error", "on-error|bogus", "--map rows --on-error bogus"),
    M("flag-map-no-variable", "--map|nosuchtable", "--map nosuchtable"),
    M("flag-concurrency-zero", "concurrency", "--map rows --concurrency 0"),
    M("flag-compare-no-values", "compare|temperature", "--compare temperature="),
    M("flag-compare-unknown", "compare|bogus", "--compare bogus=1,2"),
    M("flag-runs-zero", "runs", "--compare temperature=0.2,0.6 --runs 0"),
    M("flag-base-url", "base_url", "--base-url ftp://x"),
    M("flag-provider", "bogus", "--provider bogus"),
    M("flag-quote", "parse", "--system 'unclosed"),
    M("cell-empty", "prompt|empty", "", "   \n"),
    M("cell-words-on-line", "unexpected", "hello there", "Say hi."),
    # {var} objects
    M("var-undefined", "{undefined_name}", "", "Tell me about {undefined_name}."),
    M("var-raising-str", "{bad_str}", "", "Tell me about {bad_str}."),
    M("var-raising-format", "{bad_format}", "", "Tell me about {bad_format}."),
    M("var-raising-property", "{bad_prop.name}", "", "Tell me about {bad_prop.name}."),
    M("var-raising-getattr", "{bad_getattr.x}", "", "Tell me about {bad_getattr.x}."),
    M("var-raising-repr-llm", "{bad_llm}", "", "Tell me about {bad_llm}."),
    M("var-raising-repr", "{bad_repr!r}", "", "Tell me about {bad_repr!r}."),
    M("var-missing-key", "{d['nope']}", "", "Tell me about {d['nope']}."),
    M("var-missing-index", "{lst[9]}", "", "Tell me about {lst[9]}."),
    M("var-bad-spec", "{n:zz}", "", "Count {n:zz}."),
    # %qwq commands
    M("use-no-provider", "provider", "use", None),
    M("use-unknown", "bogus", "use bogus", None),
    M("use-bad-url", "base_url", "use openai --base-url http://[::1", None),
    M("use-timeout-neg", "timeout", "use openai --timeout -1", None),
    M("use-timeout-nan", "timeout", "use openai --timeout nan", None),
    M("use-timeout-zero", "timeout", "use openai --timeout 0", None),
    M("use-timeout-word", "timeout", "use openai --timeout soon", None),
    M("use-key-env-unset", "NO_SUCH_KEY_VAR", "use deepinfra --key-env NO_SUCH_KEY_VAR", None),
    M("set-nothing", "name=value", "set", None),
    M("set-no-equals", "temperature", "set temperature", None),
    M("set-temperature-word", "temperature", "set temperature=hot", None),
    M("set-temperature-high", "temperature", "set temperature=9", None),
    M("set-temperature-nan", "temperature", "set temperature=nan", None),
    M("set-max-tokens-neg", "max_tokens", "set max_tokens=-1", None),
    M("set-unknown", "bogus", "set bogus=1", None),
    M("set-no-provider-word", "temperature", "!noprovider set temperature=hot", None),
    M("set-no-provider-list", "max_tokens", "!noprovider set max_tokens=[1]", None),
    M("use-no-provider-then-set", "top_k", "!noprovider set top_k=abc", None),
    M("record-unwritable", "record|not a folder", "record {notdir}/rec.jsonl", None),
    M("record-directory", "record|directory", "record {tmpdir}", None),
    M("record-no-path", "path", "record", None),
    M("replay-missing", "no recording", "replay /nonexistent/none.jsonl", None),
    M("reset-unknown", "nosuchchat", "reset nosuchchat", None),
    M("history-unknown", "nosuchchat", "history nosuchchat", None),
    M("budget-word", "budget", "budget lots", None),
    M("budget-neg", "budget", "budget -1", None),
    M("command-typo", "did you mean", "histroy", None),
    # ChatPanel.set_param
    W("panel-temperature-high", "temperature", "temperature", 9),
    W("panel-temperature-neg", "temperature", "temperature", -1),
    W("panel-temperature-nan", "temperature", "temperature", NAN),
    W("panel-temperature-word", "temperature", "temperature", "hot"),
    W("panel-top-p-high", "top_p", "top_p", 2),
    W("panel-max-tokens-zero", "max_tokens", "max_tokens", 0),
    W("panel-max-tokens-float", "max_tokens", "max_tokens", 1.5),
    W("panel-top-k-word", "top_k", "top_k", "many"),
    W("panel-unknown", "bogus", "bogus", 1),
]


def test_the_table_is_big_enough() -> None:
    assert len(TABLE) >= 100
    assert len({e.id for e in TABLE}) == len(TABLE)


def _names_ok(msg: str, names: tuple[str, ...]) -> bool:
    low = msg.lower()
    return all(n.lower() in low for n in names)


# -- runners --------------------------------------------------------------------------------------
@pytest.fixture
def ip(tmp_path: Any) -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "qwq_magic")
    shell.run_line_magic("config", "QwqMagics.autodetect = False")
    session.reset()
    notdir = tmp_path / "a-file"
    notdir.write_text("x")
    shell.user_ns.update(
        bad_str=RaisingStr(), bad_format=RaisingFormat(), bad_prop=RaisingProperty(),
        bad_getattr=RaisingGetattr(), bad_llm=RaisingReprLLM(), llm_int=ReprLLMNotStr(),
        bad_repr=RaisingRepr(), d={"a": 1}, lst=[1, 2], n=3, rows=[{"text": "a"}],
        _notdir=str(notdir), _tmpdir=str(tmp_path))
    yield shell
    session.stop_recording()
    session.reset()
    shell.run_line_magic("config", "QwqMagics.autodetect = True")


def _run_magic(ip: InteractiveShell, srv: Any, line: str, cell: str | None
               ) -> tuple[BaseException | None, str]:
    if line.startswith("!noprovider "):
        line = line.removeprefix("!noprovider ")
    else:
        ip.run_line_magic("qwq", f"use openai --base-url {srv.base_url('vllm')} --model qwq")
    line = line.replace("{notdir}", ip.user_ns["_notdir"]).replace("{tmpdir}", ip.user_ns["_tmpdir"])
    src = f"%%qwq {line}\n{cell}" if cell is not None else f"%qwq {line}"
    with capture_output() as cap:
        res = ip.run_cell(src)
    return res.error_in_exec or res.error_before_exec, cap.stdout + cap.stderr


@pytest.mark.parametrize("entry", TABLE, ids=[e.id for e in TABLE])
def test_bad_input_gets_an_error_naming_it(entry: Entry, provider_server: Any,
                                           ip: InteractiveShell) -> None:
    srv = provider_server
    err: BaseException | None = None
    shown = ""
    RESULTS[entry.id] = False
    if entry.where in ("client", "complete"):
        kw = dict(entry.arg)
        base = srv.client_kwargs("vllm")
        try:
            if entry.where == "client":
                preset = kw.pop("preset", "openai")
                if preset != "openai":
                    base = {}
                qm.Client(preset, **{**base, **kw})
            else:
                prompt = kw.pop("prompt")
                qm.Client("openai", **base).complete(prompt, **kw)
        except BaseException as e:
            err = e
        shown = str(err)
    elif entry.where == "magic":
        line, cell = entry.arg
        err, out = _run_magic(ip, srv, line, cell)
        assert "Traceback" not in out, f"a traceback was shown:\n{out}"
        lines = [x for x in out.splitlines() if x.strip()]
        err_lines = [x for x in lines if type(err).__name__ in x]
        assert len(err_lines) == 1, f"not one error line:\n{out}"
        shown = str(err)
    else:
        name, value = entry.arg
        from qwq_magic.state import Session
        from qwq_magic.widgets import ChatPanel

        sess = Session()
        panel = ChatPanel(sess, client=qm.Client("openai", **srv.client_kwargs("vllm")))
        before = sess.params.as_dict()
        panel.set_param(name, value)
        shown = panel.notice
        assert sess.params.as_dict() == before, "a refused value was kept"
        assert shown and _names_ok(shown, entry.names), f"notice: {shown!r}"
        panel.close()
        RESULTS[entry.id] = True
        return
    assert err is not None, "accepted without an error"
    assert isinstance(err, entry.exc), f"{type(err).__name__}: {err}"
    assert _names_ok(shown, entry.names), f"the message does not name {entry.names}: {shown!r}"
    assert "\n  File " not in shown and "Traceback" not in shown
    assert not srv.requests, "a request was sent"
    assert API_KEY not in shown
    RESULTS[entry.id] = True


def test_an_unwritable_recording_fails_before_streaming_and_python_api_too(
        provider_server: Any, tmp_path: Any) -> None:
    """Recording to a path that cannot be written is refused at once; nothing is streamed and
    lost (through the Python API: ``Client(cassette=…, mode='record')``)."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(qm.QwqError, match="Cannot record"):
        qm.Client("openai", **provider_server.client_kwargs("vllm"),
                  cassette=str(blocker / "rec.jsonl"), mode="record")
    assert provider_server.requests == []
    # a writable path still records (the check leaves nothing behind)
    ok = tmp_path / "sub" / "rec.jsonl"
    c = qm.Client("openai", **provider_server.client_kwargs("vllm"), cassette=str(ok),
                  mode="record")
    assert not list(ok.parent.glob("*.tmp"))
    assert str(c.complete("hi")) and ok.exists()


