"""The run log, the session's cost and its budget cap: real HTTP to the local provider server,
a real SQLite file, the magics in a real InteractiveShell, the panel's send_async."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import qwq_magic as qm
from qwq_magic import budget, runlog, session
from qwq_magic.cassette import normalized_request, request_key
from qwq_magic.completion import Completion
from qwq_magic.events import ContentDelta, Finish, ReasoningDelta, Usage
from qwq_magic.testing import Reply

REASONING = "The user asks for a haiku. Five, seven, five."
ANSWER = "Soft paws on the sill <b>bold</b>"


# -- fixtures --------------------------------------------------------------------------------
def _forget_problems() -> None:
    runlog._writer.problems.clear()
    runlog._writer._reported.clear()
    runlog._writer.pending.clear()


@pytest.fixture
def db(tmp_path: Path) -> Any:
    """A fresh run log for this test; budget and tally cleared."""
    path = tmp_path / "runs" / "log.db"
    runlog.flush()
    runlog.configure(path=path, enabled=True)
    budget.set_cap(None)
    budget.tally.clear()
    _forget_problems()
    yield path
    runlog.flush()
    runlog._writer.close()  # closes its connections (the next row restarts it)
    runlog.configure()
    budget.set_cap(None)
    budget.tally.clear()
    _forget_problems()


def rows(path: Path) -> list[dict[str, Any]]:
    assert runlog.flush()
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM runs ORDER BY id")]
    finally:
        conn.close()


def client(srv: Any, route: str, preset: str | None = None, **kw: Any) -> qm.Client:
    preset = preset or {"cloudflare": "cloudflare", "deepinfra": "deepinfra",
                        "aimlapi": "aimlapi"}.get(route, "openai")
    return qm.Client(preset, **{**srv.client_kwargs(route), **kw})


@pytest.fixture
def ip(db: Path) -> Any:
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "qwq_magic")
    session.reset()
    yield shell
    session.reset()
    shell.run_line_magic("config", "QwqMagics.log = True")
    shell.run_line_magic("config", "QwqMagics.log_path = None")
    shell.user_ns.pop("_qwq", None)


# -- one row per reply, from every front end -------------------------------------------------
def test_api_row_has_every_field(db: Path, provider_server: Any) -> None:
    srv = provider_server
    srv.script(Reply(reasoning=REASONING, content=ANSWER))
    c = client(srv, "deepinfra").complete("Write a haiku", system="Be brief.", temperature=0.6,
                                          max_tokens=512)
    [r] = rows(db)
    assert r["source"] == "api" and r["provider"] == "deepinfra" and r["model"] == "Qwen/QwQ-32B"
    assert r["host"] == f"127.0.0.1:{srv.port}"
    assert json.loads(r["messages"]) == [{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": "Write a haiku"}]
    assert r["prompt"] == "Write a haiku"
    assert json.loads(r["params"]) == {"temperature": 0.6, "max_tokens": 512}
    assert r["reasoning"] == c.reasoning == REASONING and r["answer"] == ANSWER
    assert r["status"] == "complete" and r["finish_reason"] == "stop" and r["error"] is None
    assert (r["prompt_tokens"], r["completion_tokens"]) == (c.usage.prompt_tokens,
                                                             c.usage.completion_tokens)
    assert r["usage_counted"] == 0
    assert r["cost"] == pytest.approx(c.cost) and r["cost_kind"] == "reported"  # estimated_cost
    assert r["ttft_s"] is not None and r["total_s"] >= r["ttft_s"]
    assert r["end_time"] >= r["time"] and r["version"] == qm.__version__
    assert r["session"] == runlog.SESSION_ID and r["replayed"] == 0
    req = client(srv, "deepinfra").prepare("Write a haiku", system="Be brief.", temperature=0.6,
                                           max_tokens=512)
    assert r["request_key"] == request_key(normalized_request(req))
    # the table is versioned for later migrations
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (
        str(runlog.SCHEMA_VERSION),)
    conn.close()


async def test_async_api_rows_and_labels(db: Path, provider_server: Any) -> None:
    c = client(provider_server, "vllm")
    await c.acomplete("first")
    with runlog.source("compare"):
        await c.acomplete("second")
        with runlog.source("map"):  # the innermost label wins
            async for _ in c.astream("third"):
                pass
    await c.acomplete("fourth")  # the label ended with its block
    assert [(r["prompt"], r["source"]) for r in rows(db)] == [
        ("first", "api"), ("second", "compare"), ("third", "map"), ("fourth", "api")]


def test_magic_row_and_provenance_in_the_output_metadata(ip: Any, db: Path,
                                                         provider_server: Any) -> None:
    srv = provider_server
    ip.run_line_magic("qwq", f"use openai --base-url {srv.base_url('vllm')} --model qwq")
    srv.script(Reply(reasoning=REASONING, content=ANSWER))
    with capture_output() as cap:
        ip.run_cell_magic("qwq", "--temperature 0.6 --max-tokens 999", "Write a haiku")
    [r] = rows(db)
    assert r["source"] == "magic" and r["answer"] == ANSWER
    meta = cap.outputs[-1].metadata["qwq_magic"]
    json.dumps(meta)  # plain JSON: it is saved in the notebook
    c = ip.user_ns["_qwq"]
    assert meta["log_id"] == r["uid"] and meta["version"] == qm.__version__
    assert meta["request"]["provider"] == "openai" and meta["request"]["model"] == "qwq"
    assert meta["request"]["host"] == f"127.0.0.1:{srv.port}"
    assert meta["request"]["params"] == {"temperature": 0.6, "max_tokens": 999}
    assert meta["request"]["messages"]["count"] == 1
    assert meta["request"]["key"] == r["request_key"]  # what a replay of this cell matches
    assert meta["reply"] == {"reasoning": REASONING, "content": ANSWER, "status": "complete",
                             "finish_reason": "stop"}
    assert meta["usage"]["completion_tokens"] == c.usage.completion_tokens
    assert meta["usage"]["counted"] is False
    assert meta["timings"]["total"] >= meta["timings"]["ttft"] >= 0
    assert meta["time"].endswith("Z")


async def test_panel_rows(db: Path, provider_server: Any) -> None:
    pytest.importorskip("anywidget")
    from qwq_magic.state import Session
    from qwq_magic.widgets import ChatPanel

    s = Session()
    s.use("openai", **provider_server.client_kwargs("vllm"))
    panel = ChatPanel(session=s)
    provider_server.script(Reply(reasoning=REASONING, content=ANSWER))
    c = await panel.send_async("hi from the panel")
    assert c.status == "complete"
    [r] = rows(db)
    assert r["source"] == "panel" and r["prompt"] == "hi from the panel" and r["answer"] == ANSWER
    assert runlog.current_source() == "api"  # the label did not leak out of the panel


def test_structured_output_logs_the_data_and_validation_errors(db: Path,
                                                               provider_server: Any) -> None:
    srv = provider_server
    schema = {"type": "object", "properties": {"name": {"type": "string"}},
              "required": ["name"]}
    c = client(srv, "vllm").complete("A name", json_schema=schema)
    srv.script(Reply(content="not json at all"), Reply(content='{"name": "Ada"}'))
    client(srv, "vllm").complete("Another", json_schema=schema, retries=1)
    r1, bad, good = rows(db)
    assert json.loads(r1["data"]) == c.data and json.loads(r1["json_schema"]) == c.schema
    assert r1["json_mode"] == "json_schema"
    assert bad["data"] is None and "InvalidJSONError" in bad["error"]
    assert json.loads(good["data"]) == {"name": "Ada"} and good["error"] is None


def test_broken_stream_keeps_what_arrived_with_counted_usage(db: Path,
                                                             provider_server: Any) -> None:
    srv = provider_server
    srv.script(Reply.long(60, content="never seen"))
    srv.fault("drop", after=20)
    with pytest.raises(qm.StreamError) as ei:
        client(srv, "vllm").complete("long one")
    [r] = rows(db)
    assert r["status"] == "error" and "StreamError" in r["error"]
    assert r["reasoning"] == ei.value.completion.reasoning and r["reasoning"]
    assert r["usage_counted"] == 1 and r["completion_tokens"] == ei.value.completion.reasoning_events
    assert r["cost"] is None and r["cost_kind"] is None  # no prices for a local server


def test_stopped_stream_is_logged_as_stopped(db: Path, provider_server: Any) -> None:
    provider_server.script(Reply.long(200))
    with client(provider_server, "vllm").stream("stop me") as s:
        for i, _ in enumerate(s):
            if i == 5:
                break
    [r] = rows(db)
    assert r["status"] == "stopped" and r["usage_counted"] == 1


def test_replayed_replies_are_labelled_and_free(db: Path, provider_server: Any,
                                                tmp_path: Path) -> None:
    cas = tmp_path / "lesson.jsonl"
    live = client(provider_server, "deepinfra", cassette=cas, mode="record").complete("2+2?")
    spent = budget.spent()
    assert spent == pytest.approx(live.cost)
    budget.set_cap(spent)  # spent: live calls are refused, replays still play
    with pytest.raises(qm.BudgetExceededError):
        client(provider_server, "deepinfra").complete("2+2?")
    replay = qm.Client("deepinfra", cassette=cas, mode="replay").complete("2+2?")
    assert replay.replayed and replay.content == live.content
    r_live, r_replay = rows(db)
    assert r_live["source"] == "api" and r_replay["source"] == "replay"
    assert r_replay["replayed"] == 1 and r_replay["request_key"] == r_live["request_key"]
    assert budget.spent() == spent  # a replay costs nothing


# -- reading it back ---------------------------------------------------------------------------
def test_history_dataframe_filters_and_types(db: Path, provider_server: Any) -> None:
    srv = provider_server
    srv.script(Reply(content="apples are red"), Reply(content="bananas are yellow"),
               Reply(content="cherries"))
    client(srv, "deepinfra").complete("fruit one")
    with runlog.source("map"):
        client(srv, "vllm").complete("fruit two")
    client(srv, "cloudflare").complete("fruit three", max_tokens=2000)
    df = qm.history()
    assert list(df["prompt"]) == ["fruit one", "fruit two", "fruit three"]  # oldest first
    import pandas as pd

    assert isinstance(df["time"].dtype, pd.DatetimeTZDtype)
    for col in ("prompt_tokens", "completion_tokens", "cost", "ttft_s", "total_s"):
        assert pd.api.types.is_numeric_dtype(df[col]), col
    assert df["params"].iloc[2] == {"max_tokens": 2000}
    assert list(qm.history(limit=2)["prompt"]) == ["fruit two", "fruit three"]
    assert list(qm.history(search="BANANAS")["prompt"]) == ["fruit two"]
    assert list(qm.history(model="qwq-32b")["provider"]) == ["deepinfra", "cloudflare"]
    assert list(qm.history(source="map")["prompt"]) == ["fruit two"]
    assert len(qm.history(since="1h")) == 3 and len(qm.history(since="today")) == 3
    assert qm.history(since="2999-01-01").empty
    assert qm.history(search="100%_literal").empty  # LIKE wildcards are literal
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    assert df.plot(x="time", y="completion_tokens") is not None


@pytest.mark.parametrize("kw, match", [
    ({"limit": 0}, "limit= takes a positive whole number"),
    ({"limit": "ten"}, "limit= takes a positive whole number"),
    ({"since": "last tuesday"}, "since= takes a datetime"),
    ({"since": 12}, "since= takes a datetime"),
    ({"model": 3}, "model= takes text"),
])
def test_history_refuses_bad_arguments(db: Path, kw: dict[str, Any], match: str) -> None:
    with pytest.raises(qm.QwqError, match=match):
        qm.history(**kw)


def test_history_without_a_log_is_empty(db: Path) -> None:
    df = qm.history()
    assert df.empty and "prompt" in df.columns


def test_history_magic_shows_a_compact_escaped_table(ip: Any, db: Path,
                                                     provider_server: Any) -> None:
    srv = provider_server
    ip.run_line_magic("qwq", f"use openai --base-url {srv.base_url('vllm')} --model qwq")
    srv.script(Reply(reasoning="r", content="<img src=x onerror=alert(1)> first"),
               Reply(reasoning="r", content="second"), Reply(reasoning="r", content="third"))
    for p in ("one", "two", "three"):
        with capture_output():
            ip.run_cell_magic("qwq", "", f"prompt {p}")
    with capture_output() as cap:
        ip.run_line_magic("qwq", "history 2")
    out = cap.outputs[-1].data
    assert "prompt two" in out["text/plain"] and "prompt three" in out["text/plain"]
    assert "prompt one" not in out["text/plain"]
    with capture_output() as cap:
        ip.run_line_magic("qwq", "history --search onerror")
    html = cap.outputs[-1].data["text/html"]
    assert "prompt one" in html and "<img" not in html and "&lt;img src=x" in html
    with pytest.raises(qm.QwqError, match="no conversation 'tutor'"):
        ip.run_line_magic("qwq", "history tutor")  # a name still means a conversation


# -- cost -------------------------------------------------------------------------------------
def test_cost_totals_by_provider_and_model_with_labels(ip: Any, db: Path,
                                                       provider_server: Any) -> None:
    srv = provider_server
    a = client(srv, "deepinfra").complete("priced by DeepInfra")
    b = client(srv, "cloudflare").complete("priced from the preset")
    client(srv, "vllm").complete("no price")
    assert a.cost_is_estimate is False and b.cost_is_estimate is True
    assert budget.spent() == pytest.approx(a.cost + b.cost)
    with capture_output() as cap:
        ip.run_line_magic("qwq", "cost")
    text = cap.outputs[-1].data["text/plain"]

    def line(scope: str, provider: str) -> str:
        [ln] = [ln for ln in text.splitlines()
                if ln.startswith(scope) and ln[len(scope):].split()[0] == provider]
        return ln

    assert "priced by the provider" in line("session", "deepinfra")
    assert "estimated from preset prices" in line("session", "cloudflare")
    assert "≈" in line("session", "cloudflare")
    assert "no price (counted $0)" in line("session", "openai")
    assert line("today", "deepinfra") and line("all time", "deepinfra")
    assert line("session", "total")
    from qwq_magic.logview import cost_report

    report = cost_report()
    for scope in ("session", "today", "all time"):
        lines_ = report[scope]
        assert lines_ is not None
        assert sum(x.cost for x in lines_.values()) == pytest.approx(a.cost + b.cost)
        assert sum(x.unknown for x in lines_.values()) == 1


# -- no key is ever stored ---------------------------------------------------------------------
CANARIES = {
    "DEEPINFRA_TOKEN": "canary-deepinfra-7f3a9b2c",
    "AIMLAPI_KEY": "canary-aimlapi-51d0e8aa",
    "CLOUDFLARE_API_TOKEN": "canary-cloudflare-93bc11fe",
    "QWQ_API_KEY": "canary-qwq-0c4e77d1",
}


def test_no_key_reaches_the_database_file(ip: Any, db: Path, provider_server: Any,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    srv = provider_server
    for var, value in CANARIES.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", "acct123")
    everything = " ".join(CANARIES.values())
    # a keyless local server gets QWQ_API_KEY (and a prompt that quotes every key)
    local = qm.Client("openai", base_url=srv.base_url("vllm"), model="qwq")
    local.complete(f"my keys are {everything}")
    # a server that echoes the Authorization header in its 401
    srv.fault("status", code=401, echo_auth=True)
    with pytest.raises(qm.AuthenticationError):
        local.complete("again")
    # hosted presets with the canary keys: refused, with the error logged
    for preset in ("deepinfra", "aimlapi", "cloudflare"):
        with pytest.raises(qm.AuthenticationError):
            qm.Client(preset, base_url=srv.base_url(preset)).complete("hello")
    # the magic, through the shell
    ip.run_line_magic("qwq", f"use openai --base-url {srv.base_url('vllm')} --model qwq")
    with capture_output() as cap:
        ip.run_cell_magic("qwq", "", f"keys: {everything}")
    assert "Authorization: Bearer" in "".join(r["error"] or "" for r in rows(db))
    assert len(rows(db)) == 6
    runlog._writer.close()
    blobs = b"".join(p.read_bytes() for p in db.parent.iterdir())
    meta = json.dumps(cap.outputs[-1].metadata).encode()
    for value in CANARIES.values():
        assert value.encode() not in blobs, value
        assert value.encode() not in meta, value
    cells = json.dumps(qm.history(limit=None).astype(str).values.tolist())
    for value in CANARIES.values():
        assert value not in cells


# -- a database that cannot be written never fails a call -------------------------------------
def test_locked_database_does_not_fail_a_call(db: Path, provider_server: Any,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runlog, "BUSY_TIMEOUT", 0.2)
    c = client(provider_server, "vllm")
    c.complete("before the lock")
    assert len(rows(db)) == 1
    runlog._writer.close()  # reconnects with the short timeout
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.warns(RuntimeWarning, match="locked by another program"):
            a = c.complete("while locked 1")
            b = c.complete("while locked 2")
            assert a.status == b.status == "complete"
            assert runlog.flush()
        probs = runlog.problems()
        assert len(probs) == 1 and "locked" in probs[0]  # reported once
        assert len(runlog._writer.pending) == 2
    finally:
        other.execute("ROLLBACK")
        other.close()
    c.complete("after the lock")
    assert [r["prompt"] for r in rows(db)] == [
        "before the lock", "while locked 1", "while locked 2", "after the lock"]
    assert len(runlog.problems()) == 1


def test_unwritable_path_is_reported_once(db: Path, provider_server: Any,
                                          tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    runlog.configure(path=blocker / "log.db")
    c = client(provider_server, "vllm")
    with pytest.warns(RuntimeWarning, match="not writable"):
        assert c.complete("one").status == "complete"
        assert c.complete("two").status == "complete"
        assert runlog.flush()
    assert len(runlog.problems()) == 1 and "not writable" in runlog.problems()[0]


def test_a_newer_schema_is_left_alone(db: Path, provider_server: Any) -> None:
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute("INSERT INTO meta VALUES ('schema_version', '99')")
    conn.commit()
    conn.close()
    with pytest.warns(RuntimeWarning, match="newer qwq_magic"):
        assert client(provider_server, "vllm").complete("hi").status == "complete"
        assert runlog.flush()
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT name FROM sqlite_master WHERE name='runs'").fetchone() is None
    conn.close()


# -- turning it off, moving it ----------------------------------------------------------------
def test_log_off_and_log_path(ip: Any, db: Path, provider_server: Any, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    srv = provider_server
    runlog.configure()  # no Python override: the environment and %config decide
    monkeypatch.setenv("QWQ_LOG_PATH", str(db))
    c = client(srv, "vllm")
    monkeypatch.setenv("QWQ_LOG", "0")
    c.complete("not logged (env)")
    assert not db.exists()
    monkeypatch.delenv("QWQ_LOG")
    ip.run_line_magic("config", "QwqMagics.log = False")
    c.complete("not logged (config)")
    assert runlog.flush() and not db.exists()
    assert budget.tally.replies == 2  # spend is still counted: the budget works with the log off
    ip.run_line_magic("config", "QwqMagics.log = True")
    other = tmp_path / "elsewhere.db"
    ip.run_line_magic("config", f"QwqMagics.log_path = {str(other)!r}")
    c.complete("logged elsewhere")
    assert [r["prompt"] for r in rows(other)] == ["logged elsewhere"]
    ip.run_line_magic("config", "QwqMagics.log_path = None")
    c.complete("logged via QWQ_LOG_PATH")
    assert [r["prompt"] for r in rows(db)] == ["logged via QWQ_LOG_PATH"]


def test_default_path_is_in_the_user_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    import platformdirs

    runlog.configure()
    monkeypatch.delenv("QWQ_LOG_PATH", raising=False)
    assert runlog.log_path() == platformdirs.user_data_path("qwq-magic") / "log.db"


def test_source_labels_are_checked() -> None:
    with pytest.raises(qm.QwqError, match="short label"):
        runlog.source("")


# -- the budget ------------------------------------------------------------------------------
def test_budget_stops_every_front_end_before_sending(ip: Any, db: Path,
                                                     provider_server: Any) -> None:
    srv = provider_server
    c = client(srv, "deepinfra")
    first = c.complete("costs something")
    with capture_output() as cap:
        ip.run_line_magic("qwq", f"budget {first.cost / 2}")
    assert "of its" in cap.outputs[-1].data["text/plain"]
    assert session.budget == pytest.approx(first.cost / 2)
    sent = len(srv.requests)
    with pytest.raises(qm.BudgetExceededError, match=r"spent \$0\.0000\d\d of its \$0\.0000\d\d"
                       ) as ei:
        c.complete("refused")
    assert ei.value.spent == pytest.approx(first.cost) and ei.value.cap == session.budget
    ip.run_line_magic("qwq", f"use deepinfra --base-url {srv.base_url('deepinfra')}")
    session.client_kwargs["api_key"] = "test-key"
    with pytest.raises(qm.BudgetExceededError, match="Budget reached"):
        ip.run_cell_magic("qwq", "", "refused too")
    assert len(srv.requests) == sent  # nothing reached the server
    assert len(rows(db)) == 1  # refusals are not replies
    ip.run_line_magic("qwq", "budget off")
    assert session.budget is None
    assert c.complete("allowed again").status == "complete"


async def test_budget_stops_the_panel_and_async_calls(db: Path, provider_server: Any) -> None:
    pytest.importorskip("anywidget")
    from qwq_magic.state import Session
    from qwq_magic.widgets import ChatPanel

    srv = provider_server
    c = client(srv, "deepinfra")
    await c.acomplete("costs something")
    session.budget = 0.0
    with pytest.raises(qm.BudgetExceededError):
        await c.acomplete("refused")
    s = Session()
    s.use("openai", **srv.client_kwargs("vllm"))
    panel = ChatPanel(session=s)
    sent = len(srv.requests)
    reply = await panel.send_async("refused in the panel")
    assert isinstance(reply.error, qm.BudgetExceededError)
    assert "Budget reached" in panel.messages[-1]["error"]
    assert len(srv.requests) == sent


def test_budget_stops_a_batch_midway_keeping_finished_rows(db: Path,
                                                           provider_server: Any) -> None:
    srv = provider_server
    c = client(srv, "deepinfra")
    session.budget = "$0.000012"  # about two replies of the test server's prices
    done, refused = [], None
    with runlog.source("map"):
        for i in range(6):
            try:
                done.append(c.complete(f"item {i}"))
            except qm.BudgetExceededError as e:
                refused = e
                break
    assert refused is not None and 1 <= len(done) < 6
    logged = rows(db)
    assert [r["prompt"] for r in logged] == [f"item {i}" for i in range(len(done))]
    assert {r["source"] for r in logged} == {"map"}
    assert sum(r["cost"] for r in logged) >= 0.000012 > sum(r["cost"] for r in logged[:-1])


@pytest.mark.parametrize("bad", ["lots", -1, float("nan"), True, [1]])
def test_bad_budget_values_are_refused(bad: Any) -> None:
    with pytest.raises(qm.QwqError, match="budget must be"):
        session.budget = bad
    assert session.budget is None


def test_unknown_cost_counts_zero(db: Path, provider_server: Any) -> None:
    session.budget = 0.000001
    c = client(provider_server, "vllm")  # a local server: no prices
    for i in range(3):
        c.complete(f"free {i}")
    assert budget.spent() == 0 and budget.tally.snapshot()[("openai", "qwq")].unknown == 3


# -- arbitrary text round-trips ------------------------------------------------------------------
def _completion(prompt: str, reasoning: str, content: str) -> Completion:
    c = Completion(provider="openai", model="qwq", messages=[{"role": "user", "content": prompt}],
                   params={"temperature": 0.6})
    for ev in (ReasoningDelta(reasoning), ContentDelta(content), Usage(3, 4), Finish("stop")):
        c.add(ev)
    c.finish("complete")
    return c


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prompt=st.text(min_size=1), reasoning=st.text(), content=st.text())
def test_any_text_round_trips(db: Path, prompt: str, reasoning: str, content: str) -> None:
    c = _completion(prompt, reasoning, content)
    runlog.after_reply(c)
    uid = c.__dict__["_qwq_log"]["id"]
    runlog.flush()
    conn = sqlite3.connect(db)
    got = conn.execute("SELECT prompt, reasoning, answer, messages FROM runs WHERE uid = ?",
                       (uid,)).fetchone()
    conn.close()
    assert got[:3] == (prompt, reasoning, content)
    assert json.loads(got[3]) == [{"role": "user", "content": prompt}]
    assert json.dumps(runlog.provenance(c))  # and the metadata is always JSON


def test_a_lone_surrogate_is_kept_not_dropped(db: Path) -> None:
    c = _completion("hi", "", "bad \ud800 text")
    runlog.after_reply(c)
    [r] = rows(db)
    assert r["answer"] == "bad \\ud800 text" and runlog.problems() == []


# -- in a real kernel: the saved notebook says what produced each answer ------------------------
@pytest.mark.kernel
def test_saved_notebook_carries_provenance_and_the_log_knows_the_notebook(
        provider_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    srv = provider_server
    srv.script(Reply(reasoning=REASONING, content=ANSWER))
    path = tmp_path / "kernel-log.db"
    monkeypatch.setenv("QWQ_LOG_PATH", str(path))
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/teacher/lesson.ipynb")  # as Jupyter Server sets
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in (
        "%load_ext qwq_magic",
        f"%qwq use openai --base-url {srv.base_url('vllm')} --model qwq",
        "%%qwq --temperature 0.6\nWrite a haiku.",
        "import qwq_magic as qm\nh = qm.history()\nprint(len(h), h.notebook.iloc[-1], h.source.iloc[-1])",
    )]
    NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    [out] = [o for o in nb.cells[2].outputs if o.output_type == "display_data"]
    meta = out.metadata["qwq_magic"]
    assert meta["request"]["params"] == {"temperature": 0.6}
    assert meta["reply"]["content"] == ANSWER and meta["reply"]["reasoning"] == REASONING
    assert nb.cells[3].outputs[0].text.strip() == "1 /home/teacher/lesson.ipynb magic"
    nbformat.writes(nb)  # the metadata survives saving
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT uid FROM runs").fetchall() == [(meta["log_id"],)]
    conn.close()
