"""``qm.compare`` and ``%%qwq --compare`` against the local provider server (real HTTP)."""

from __future__ import annotations

import _thread
import json
import math
import re
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import qwq_magic as qm
from qwq_magic import comparison as cmpmod
from qwq_magic import session
from qwq_magic.comparison import CompareInterrupted, compare
from qwq_magic.testing import Reply

EVIL = ('Here <img src=x onerror="window.__pwned=1"> and <script>window.__pwned=2</script> '
        "**done**")


@pytest.fixture
def client(provider_server):
    c = qm.Client("openai", **provider_server.client_kwargs("vllm"))
    yield c
    c.close()


def wait_for(cond, what: str, limit: float = 20.0) -> None:
    """Poll a condition (a safety limit only: the tests assert states, never durations)."""
    end = time.monotonic() + limit
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


# -- a sweep: rows, errors, figures ------------------------------------------------------------
def test_sweep_makes_one_row_per_run_and_sends_each_setting(provider_server, client):
    cmp = compare("Write a slogan for a bakery.", temperature=[0.2, 0.6, 1.0], runs=2,
                  max_tokens=512, client=client, show="none")
    df = cmp.df
    assert len(df) == 6 and list(df["temperature"]) == [0.2, 0.2, 0.6, 0.6, 1.0, 1.0]
    assert list(df["run"]) == [1, 2, 1, 2, 1, 2]
    for col in ("answer", "reasoning", "reasoning_tokens", "answer_tokens", "seconds", "ttft",
                "cost", "finish_reason", "error"):
        assert col in df.columns, col
    assert (df["status"] == "complete").all() and df["error"].isna().all()
    assert (df["answer"].str.len() > 0).all() and (df["reasoning_tokens"] > 0).all()
    assert (df["finish_reason"] == "stop").all()
    sent = sorted((r.json["temperature"], r.json["max_tokens"]) for r in provider_server.requests)
    assert sent == [(0.2, 512)] * 2 + [(0.6, 512)] * 2 + [(1.0, 512)] * 2


def test_one_failing_run_is_a_row_and_a_cell_and_the_others_land(provider_server, client):
    provider_server.fault("status", code=401, times=1)
    shell = InteractiveShell.instance()
    with capture_output() as cap:
        cmp = compare("Say hi.", temperature=[0.2, 0.6, 1.0], runs=2, client=client,
                      show="rich")
    df = cmp.df
    failed = df[df["status"] == "error"]
    assert len(failed) == 1 and "authentication failed (HTTP 401)" in failed["error"].iloc[0]
    ok = df[df["status"] == "complete"]
    assert len(ok) == 5 and (ok["answer"].str.len() > 0).all()
    final = cap.outputs[-1].data["text/html"]
    cells = re.findall(r'<div class="qwq-compare-cell" data-status="(\w+)"', final)
    assert sorted(cells) == ["complete"] * 5 + ["error"]
    assert "authentication failed (HTTP 401)" in final
    assert "test-key" not in final and "test-key" not in cap.outputs[-1].data["text/plain"]
    assert shell.user_ns["_qwq_compare"] is cmp


def test_invalid_json_is_a_row_and_valid_fields_are_columns(provider_server, client):
    provider_server.script(
        Reply(reasoning="Ada.", content='{"name": "Ada", "year": 1815}'),
        Reply(reasoning="Hmm.", content="I am not JSON at all"),
        Reply(reasoning="Ada.", content='{"name": "Ada", "year": 1815}'),
    )
    schema = {"type": "object", "properties": {"name": {"type": "string"},
                                               "year": {"type": "integer"}},
              "required": ["name", "year"]}
    cmp = compare("Who wrote the first program?", runs=3, concurrency=1, json_schema=schema,
                  retries=0, client=client, show="none")
    df = cmp.df
    assert list(df["status"]) == ["complete", "error", "complete"]
    assert "not valid JSON" in df["error"].iloc[1]
    assert list(df["name"])[0::2] == ["Ada", "Ada"] and list(df["year"])[0::2] == [1815, 1815]
    assert df["answer"].iloc[1] == "I am not JSON at all"  # the raw text is kept
    assert "2/3 runs agree on year" in cmp.summary()


def test_reasoning_tokens_from_usage_when_the_provider_reports_them(provider_server):
    c = qm.Client("aimlapi", model="alibaba/qwen3-32b", **provider_server.client_kwargs("aimlapi"))
    provider_server.script(Reply(reasoning="one two three four", content="five six"))
    cmp = compare("Count.", enable_thinking=True, client=c, show="none")
    row = cmp.df.iloc[0]
    assert row["reasoning_tokens"] == 4 and not row["reasoning_counted"]
    assert row["answer_tokens"] == cmp.runs[0].completion.usage.completion_tokens - 4
    c.close()


def test_runs_really_run_concurrently_and_the_bound_holds(provider_server, client):
    provider_server.latency = 0.5
    cmp = compare("Hello.", temperature=[0.1, 0.2, 0.3, 0.4], runs=2, concurrency=4,
                  client=client, show="none")
    assert provider_server.max_in_flight >= 4
    assert (cmp.df["status"] == "complete").all()
    provider_server.reset()
    provider_server.latency = 0.3
    compare("Hello.", temperature=[0.1, 0.2, 0.3], runs=2, concurrency=2, client=client,
            show="none")
    assert provider_server.max_in_flight == 2


# -- validation before anything is sent ---------------------------------------------------------
def test_a_bad_value_refuses_the_whole_sweep_before_sending(provider_server):
    c = qm.Client("deepinfra", **provider_server.client_kwargs("deepinfra"))
    with pytest.raises(qm.ParameterError, match=r"temperature=7 is out of range.*nothing was "
                       "sent"):
        compare("Hi.", temperature=[0.5, 1.0, 7], runs=3, client=c, show="none")
    with pytest.raises(qm.ParameterError, match="top_k"):
        compare("Hi.", temperature=[0.5, 1.0], top_k=5000, client=c, show="none")
    assert provider_server.requests == []
    c.close()


def test_bad_arguments_are_short_errors_naming_the_problem(client, provider_server):
    with pytest.raises(TypeError, match="'temprature'"):
        compare("Hi.", temprature=[0.1, 0.2], client=client)
    with pytest.raises(qm.ParameterError, match="runs must be a whole number"):
        compare("Hi.", temperature=[0.1], runs=0, client=client)
    with pytest.raises(qm.ParameterError, match="concurrency"):
        compare("Hi.", temperature=[0.1], concurrency=1.5, client=client)
    with pytest.raises(qm.ParameterError, match=r"temperature=\[\] sweeps no values"):
        compare("Hi.", temperature=[], client=client)
    with pytest.raises(qm.ParameterError, match="max_runs=120"):
        compare("Hi.", temperature=[0.1 * i for i in range(12)], top_p=[0.5, 0.6, 0.7, 0.8,
                0.9], runs=2, client=client)
    with pytest.raises(qm.ConfigurationError, match="needs a prompt"):
        compare(temperature=[0.1], client=client)
    with pytest.raises(qm.MissingKeyError, match="DEEPINFRA_TOKEN"):
        compare("Hi.", temperature=[0.1], client=qm.Client("deepinfra"))
    assert provider_server.requests == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                                 st.integers(-5, 5), st.booleans(), st.text(max_size=3)),
                       max_size=5),
       runs=st.integers(1, 3))
def test_any_sweep_either_plans_every_run_or_refuses_cleanly(provider_server, values, runs):
    c = qm.Client("deepinfra", **provider_server.client_kwargs("deepinfra"))
    try:
        cmp = compare("Hi.", temperature=values, runs=runs, client=c, dry_run=True)
    except qm.ParameterError as e:
        assert "temperature" in str(e)
    else:
        ok = [v for v in values if not isinstance(v, (bool, str)) and math.isfinite(v)
              and 0 <= v <= 2]
        assert len(ok) == len(values) and len(cmp.runs) == len(values) * runs
    assert provider_server.requests == []


def test_models_systems_and_prompt_variants_multiply(provider_server, client):
    provider_server.add_model("qwq-b")
    cmp = compare(prompt=["Say A.", [{"role": "user", "content": "Say B."}]],
                  model=["qwq", "qwq-b"], system=["Be brief.", "Be <b>loud</b>."],
                  client=client, show="none")
    assert len(cmp.runs) == 8
    df = cmp.df
    assert set(df["prompt"]) == {"Say A.", "Say B."} and set(df["model"]) == {"qwq", "qwq-b"}
    seen = {(r.json["model"], r.json["messages"][0]["content"], r.json["messages"][-1]["content"])
            for r in provider_server.requests}
    assert len(seen) == 8
    html = cmp._bundle()["text/html"]
    assert "<b>loud</b>" not in html and "&lt;b&gt;loud&lt;/b&gt;" in html


# -- interrupt ---------------------------------------------------------------------------------
def test_interrupt_keeps_finished_and_partial_runs(provider_server, client):
    provider_server.script(
        Reply(match="fast", reasoning="quick", content="Fast answer."),
        Reply(match="fast", reasoning="quick", content="Fast answer."),
        *[Reply.long(2000, match="slow", pace=0.01) for _ in range(4)],
    )
    cmp = compare(prompt=["fast A", "fast B", "slow C", "slow D", "slow E", "slow F"],
                  concurrency=3, client=client, dry_run=True)
    by = {r.call["prompt"]: r for r in cmp.runs}

    def interrupt_when_ready() -> None:
        wait_for(lambda: by["fast A"].ok and by["fast B"].ok and all(
            by[k].completion is not None and by[k].completion.reasoning_events > 3
            for k in ("slow C", "slow D", "slow E")), "two finished, three streaming")
        _thread.interrupt_main()

    t = threading.Thread(target=interrupt_when_ready, daemon=True)
    t.start()
    with capture_output(), pytest.raises(CompareInterrupted) as info:
        cmp.run(show="rich")
    t.join()
    assert info.value.comparison is cmp and qm.Comparison.last is cmp
    assert "2 of 6 runs finished, 3 partial, 1 not started" in info.value.message
    assert info.value._render_traceback_() == [info.value.message]
    assert [by[k].status for k in ("fast A", "fast B")] == ["complete", "complete"]
    for k in ("slow C", "slow D", "slow E"):
        assert by[k].status == "interrupted" and by[k].completion.status == "interrupted"
        assert by[k].completion.reasoning  # the partial text is kept
    assert by["slow F"].status == "not run" and by["slow F"].completion is None
    df = cmp.df
    assert list(df["status"]).count("interrupted") == 3
    assert df.loc[df["prompt"] == "slow F", "error"].iloc[0] == "not run (interrupted)"


# -- the grid ----------------------------------------------------------------------------------
def test_grid_fills_in_live_and_keeps_untrusted_text_inert(provider_server, client):
    InteractiveShell.instance()  # the display goes through a real shell
    provider_server.script(*[Reply(reasoning="Let me <script>think</script> about it " * 20,
                                   content=EVIL, pace=0.003) for _ in range(4)])
    with capture_output() as cap:
        cmp = compare("Repeat.", temperature=[0.2, 0.6], runs=2, client=client, show="rich",
                      max_hz=50)
    htmls = [o.data["text/html"] for o in cap.outputs if "text/html" in o.data]
    assert len(htmls) >= 3
    states = [re.findall(r'data-status="(\w+)"', h) for h in htmls]
    assert states[0] == ["queued"] * 4 or "streaming" in states[0]
    assert any("streaming" in s for s in states), "no update while the replies streamed"
    assert states[-1] == ["complete"] * 4
    final = htmls[-1]
    assert final.count('class="qwq-compare-cell"') == 4
    assert "<script" not in final and "<img" not in final
    assert "&lt;script&gt;" in final and "<strong>done</strong>" in final
    assert "Thought for" in final and 'class="qwq-compare-footer"' in final
    # the grid was drawn live: the cell's result is a short line, not a second grid
    bundle = cmp._repr_mimebundle_()
    assert set(bundle) == {"text/plain"} and "4 complete" in bundle["text/plain"]


def test_terminal_prints_a_line_per_run_and_a_text_grid(provider_server, client, capsys):
    cmp = compare("Hi.", temperature=[0.2, 0.6], client=client, show="text")
    out = capsys.readouterr().out
    assert "[1/2]" in out and "[2/2]" in out
    assert "temperature=0.2" in out and "temperature=0.6" in out
    assert "Shortest answer" in out and str(cmp).splitlines()[0].startswith("setting")


def test_plot_draws_every_run_as_a_point(provider_server, client):
    cmp = compare("Hi.", temperature=[0.2, 0.6, 1.0], runs=3, client=client, show="none")
    fig = cmp.plot()
    axes = fig.axes
    assert [a.get_title() for a in axes] == ["reasoning tokens", "answer tokens", "seconds"]
    for ax in axes:
        points = sum(len(coll.get_offsets()) for coll in ax.collections if coll.get_offsets()
                     is not None and hasattr(coll, "get_sizes"))
        assert points == 9
        assert [t.get_text() for t in ax.get_xticklabels()] == [
            "temperature=0.2", "temperature=0.6", "temperature=1"]


def test_importing_compare_stays_light():
    code = ("import sys, qwq_magic.comparison; "
            "print(sorted(m for m in ('matplotlib', 'pandas', 'httpx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out.replace("'", '"')) == []


# -- %%qwq --compare -----------------------------------------------------------------------------
@pytest.fixture
def ip(provider_server):
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "qwq_magic")
    session.reset()
    shell.run_line_magic("qwq", f"use openai --base-url {provider_server.base_url('vllm')} "
                         "--model qwq")
    yield shell
    session.reset()
    for k in ("_qwq_compare", "cmp", "Person"):
        shell.user_ns.pop(k, None)


def test_magic_compare_multiplies_flags_and_stores_the_comparison(ip, provider_server):
    ip.user_ns["topic"] = "bread"
    with capture_output() as cap:
        ip.run_cell_magic("qwq", "--compare temperature=0.2,0.6 --compare top_p=0.9,1 --runs 2 "
                          "--max-tokens 300 -o cmp", "A slogan about {topic}.")
    cmp = ip.user_ns["cmp"]
    assert isinstance(cmp, cmpmod.Comparison) and len(cmp.runs) == 8
    assert cmp.swept == ["temperature", "top_p"]
    bodies = [r.json for r in provider_server.requests]
    assert len(bodies) == 8 and {b["max_tokens"] for b in bodies} == {300}
    assert sorted({(b["temperature"], b["top_p"]) for b in bodies}) == [
        (0.2, 0.9), (0.2, 1), (0.6, 0.9), (0.6, 1)]
    assert all(b["messages"][-1]["content"] == "A slogan about bread." for b in bodies)
    final = cap.outputs[-1].data["text/html"]
    assert final.count('class="qwq-compare-cell"') == 8 and "top_p=0.9" in final


def test_magic_compare_dry_run_and_mistakes_send_nothing(ip, provider_server):
    with capture_output() as cap:
        ip.run_cell_magic("qwq", "--compare temperature=0.2,0.6 --dry-run", "Hi.")
    assert "2 requests (2 settings × 1), nothing sent" in cap.outputs[-1].data["text/plain"]
    for line, msg in [("--compare temperature", "expected NAME=V1,V2"),
                      ("--compare temperature=0.2,9", "temperature=9"),
                      ("--compare temprature=0.2", "temprature"),
                      ("--compare temperature=0.2 --temperature 0.3", "both swept"),
                      ("--compare temperature=0.2 --chat x", "--chat does not combine")]:
        with pytest.raises(qm.QwqError, match=msg) as info:
            ip.run_cell_magic("qwq", line, "Hi.")
        assert len(info.value._render_traceback_()) == 1  # one line, no traceback wall
    assert provider_server.requests == []


def test_magic_compare_with_json_schema_gives_field_columns(ip, provider_server):
    with capture_output():
        ip.run_cell_magic("qwq", "--compare temperature=0.2,0.6 --json 'name, year int' -o cmp",
                          "Name a pioneer.")
    df = ip.user_ns["cmp"].df
    assert {"name", "year"} <= set(df.columns) and (df["status"] == "complete").all()


def test_public_names_are_the_functions_even_after_the_modules_load():
    import qwq_magic.tuning as tuning

    assert qm.compare is cmpmod.compare and qm.Comparison is cmpmod.Comparison
    assert qm.tune is tuning.tune and qm.Tuner is tuning.Tuner


# -- qm.tune -----------------------------------------------------------------------------------
@pytest.fixture
def fresh_params():
    session.reset()
    yield session.params
    session.reset()


def test_tune_shows_the_newest_beside_the_previous_with_what_changed(provider_server, client,
                                                                     fresh_params):
    provider_server.script(
        Reply(reasoning="Warm and short.", content="Fresh bread every morning."),
        Reply(reasoning="Bolder now.", content="Fresh <script>x()</script> bread at dawn!"),
    )
    t = qm.tune("Write a slogan for a bakery.", client=client)
    assert t.widget is not None  # built: sliders for this client's ranges, Run, auto-run
    fresh_params.update({"temperature": 0.6})
    t.button.click()
    t.wait()
    fresh_params.update({"temperature": 1.2, "top_p": 0.9})
    first = t.run(wait=True)
    assert first is t.runs[-1] and len(t.runs) == 2
    assert [r.json.get("temperature") for r in provider_server.requests] == [0.6, 1.2]
    assert t.changes()[:2] == ["temperature 0.6 → 1.2", "top_p default → 0.9"]
    diff = t.diff.value
    assert re.search(r"<del[^>]*>[^<]*every[^<]*</del>", diff)
    assert re.search(r"<ins[^>]*>[^<]*dawn!</ins>", diff)
    assert "<script>" not in diff and "&lt;script&gt;" in diff
    assert 'data-run="2"' in t.newest.value and 'data-run="1"' in t.previous.value
    assert "<script>" not in t.newest.value
    assert "temperature=1.2" in t.history.value
    t.close()


def test_tune_auto_runs_on_release_keeps_the_last_few_and_refuses_bad_values(
        provider_server, fresh_params):
    c = qm.Client("deepinfra", **provider_server.client_kwargs("deepinfra"))
    t = qm.tune("Hi.", client=c, keep=2, auto_run=True)
    t.widget  # noqa: B018  (build the widget: auto-run follows the sliders)
    for temp in (0.2, 0.4, 0.8):
        fresh_params.update({"temperature": temp})
        t.wait()
    assert [r.params["temperature"] for r in t.runs] == [0.4, 0.8]  # keep=2
    assert [r.json["temperature"] for r in provider_server.requests] == [0.2, 0.4, 0.8]
    t.auto.value = False
    fresh_params.update({"temperature": 7.0})  # out of range for DeepInfra (0–2)
    t.button.click()
    t.wait()
    assert "temperature=7 is out of range" in t.status.value
    assert len(provider_server.requests) == 3  # nothing sent
    with pytest.raises(qm.ParameterError):
        t.run(wait=True)
    with pytest.raises(TypeError, match="'temperature'"):
        qm.tune("Hi.", client=c, temperature=0.5)
    t.close()
    c.close()


@given(old=st.text(max_size=60), new=st.text(max_size=60))
def test_word_diff_keeps_every_word_and_escapes_it(old, new):
    from html import unescape

    from qwq_magic.tuning import word_diff

    html = word_diff(old, new)
    kept = re.sub(r"<del[^>]*>.*?</del>", "", html, flags=re.S)
    assert unescape(re.sub(r"</?ins[^>]*>", "", kept)) == new
    assert "<" not in re.sub(r"</?(ins|del)[^>]*>", "", html)


def test_a_recorded_sweep_replays_each_run_its_own_take(provider_server, tmp_path):
    path = tmp_path / "sweep.jsonl"
    provider_server.script(*[Reply(reasoning=f"Take {i}.", content=f"Slogan {i}.")
                             for i in range(6)])
    rec = qm.Client("openai", cassette=path, mode="record",
                    **provider_server.client_kwargs("vllm"))
    live = compare("Slogan?", temperature=[0.2, 0.9], runs=3, concurrency=1, client=rec,
                   show="none")
    assert len(provider_server.requests) == 6
    assert sorted(live.df["answer"]) == [f"Slogan {i}." for i in range(6)]
    replay = qm.Client("openai", model="qwq", cassette=path, mode="replay")  # no server
    again = compare("Slogan?", temperature=[0.2, 0.9], runs=3, concurrency=1, client=replay,
                    show="none")
    assert list(again.df["answer"]) == list(live.df["answer"])
    assert len(provider_server.requests) == 6 and all(c.replayed for c in again.completions)


# -- in a real kernel: the cell blocks, stays interruptible, keeps the comparison ---------------
@pytest.mark.kernel
def test_interrupting_a_kernel_keeps_the_comparison_and_stops_run_all(provider_server):
    import queue

    from jupyter_client.manager import start_new_kernel

    srv = provider_server
    srv.script(*[Reply.long(4000, pace=0.003) for _ in range(4)])
    km, kc = start_new_kernel(kernel_name="python3")

    def collect(msg_id: str) -> tuple[dict, list[dict]]:
        from kernel_support import collect as collect_reply

        return collect_reply(kc, msg_id, 30)

    try:
        setup = kc.execute(f"%load_ext qwq_magic\n%qwq use openai --base-url "
                           f"{srv.base_url('vllm')} --model qwq")
        assert collect(setup)[0]["content"]["status"] == "ok"
        sweep = kc.execute("%%qwq --compare temperature=0.2,0.6 --runs 2 --max-tokens 8000 "
                           "-o cmp\nThink for a long time.")
        queued = kc.execute("ran_after = True")
        seen: list[dict] = []
        end = time.monotonic() + 20
        while time.monotonic() < end:  # until the grid shows reasoning streaming in
            try:
                m = kc.get_iopub_msg(timeout=0.1)
            except queue.Empty:
                continue
            seen.append(m)
            counts = re.findall(r"Thinking… (\d+) tokens", str(m["content"]))
            if m["msg_type"] == "update_display_data" and any(int(n) >= 20 for n in counts):
                break
        km.interrupt_kernel()
        reply, iopub = collect(sweep)
        iopub = [m for m in seen if m["parent_header"].get("msg_id") == sweep] + iopub
        assert reply["content"]["ename"] == "CompareInterrupted"
        tb = reply["content"]["traceback"]
        assert len(tb) == 1 and "in _qwq_compare" in tb[0] and "partial" in tb[0]
        updates = [m for m in iopub if m["msg_type"] in ("display_data", "update_display_data")]
        last = updates[-1]["content"]["data"]["text/html"]
        assert 'data-state="interrupted"' in last and 'data-status="interrupted"' in last
        assert collect(queued)[0]["content"]["status"] == "aborted"  # Run All stopped
        check = kc.execute("print(cmp is _qwq_compare, sorted(set(cmp.df.status)), "
                           "any(r.completion.reasoning_events >= 20 for r in cmp.runs), "
                           "'ran_after' in dir())")
        _, out = collect(check)
        text = "".join(m["content"].get("text", "") for m in out if m["msg_type"] == "stream")
        assert text.strip() == "True ['interrupted'] True False", text
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


@pytest.mark.parametrize(("preset", "route", "model"), [
    ("cloudflare", "cloudflare", None), ("deepinfra", "deepinfra", None),
    ("aimlapi", "aimlapi", "alibaba/qwen3-32b"), ("openai", "ollama", None),
    ("openai", "llamacpp", None), ("openai", "openrouter", None)])
def test_every_preset_sweeps(provider_server, preset, route, model):
    kw = provider_server.client_kwargs(route)
    if model:
        kw["model"] = model
    c = qm.Client(preset, **kw)
    cmp = compare("Hi.", temperature=[0.2, 0.6], max_tokens=400, client=c, show="none")
    df = cmp.df
    assert list(df["status"]) == ["complete", "complete"], df["error"].tolist()
    assert (df["answer"].str.len() > 0).all()
    assert sorted(r.json.get("temperature") for r in provider_server.requests) == [0.2, 0.6]
    c.close()


async def test_arun_sends_on_the_callers_loop(provider_server, client):
    cmp = compare("Hi.", temperature=[0.2, 0.6], runs=2, client=client, dry_run=True)
    assert cmp.state == "planned" and provider_server.requests == []
    await cmp.arun()
    assert cmp.state == "done" and [r.status for r in cmp.runs] == ["complete"] * 4
    with pytest.raises(qm.QwqError, match="already run"):
        cmp.run()
