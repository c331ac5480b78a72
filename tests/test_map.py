"""``qm.map`` against the local provider server over real HTTP: faults, resume, interrupt,
dry run, errors, the magic form, the adaptive limiter and the Dask path."""

from __future__ import annotations

import _thread
import asyncio
import pickle
import threading
import time

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import qwq_magic as qm
from qwq_magic import _checkpoint, session
from qwq_magic._concurrency import AIMD, AdaptiveLimiter
from qwq_magic.batch import INTERRUPTED, NOT_RUN, ClientConfig, MapEstimate
from qwq_magic.interpolate import InterpolationError
from qwq_magic.testing import Reply

MODEL = "Qwen/QwQ-32B-Preview"  # priced in the preset: costs are known


def reviews(n: int) -> pd.DataFrame:
    return pd.DataFrame({"text": [f"review number {i}" for i in range(n)],
                         "stars": [i % 5 + 1 for i in range(n)]},
                        index=pd.Index([f"r{i:03d}" for i in range(n)], name="id"))


def client(srv, **kw):
    return qm.Client("deepinfra", model=MODEL, **srv.client_kwargs("deepinfra"), **kw)


def chat_requests(srv) -> list:
    return [r for r in srv.requests if r.path.endswith("/chat/completions")]


def sent_prompts(srv) -> list[str]:
    return [r.json["messages"][-1]["content"] for r in chat_requests(srv)]


# -- results -------------------------------------------------------------------------------------
def test_one_row_per_input_row_aligned_with_the_index(provider_server):
    df = reviews(12)
    out = qm.map("Classify ({stars} stars): {text}", df, client=client(provider_server),
                 concurrency=4, max_tokens=500, temperature=0.6, progress=False)
    assert list(out.index) == list(df.index) and out.index.name == "id"
    assert list(out.columns) == ["answer", "reasoning", "reasoning_tokens", "answer_tokens",
                                 "cost", "finish_reason", "error"]
    assert out["error"].isna().all() and (out["finish_reason"] == "stop").all()
    assert out.loc["r007", "answer"].endswith("*Classify (3 stars): review number 7*")
    assert "review number 7" in out.loc["r007", "reasoning"]
    assert (out["cost"] > 0).all() and (out["reasoning_tokens"] > 0).all()
    assert (out["answer_tokens"] > 0).all()
    bodies = [r.json for r in chat_requests(provider_server)]
    assert len(bodies) == 12
    assert all(b["max_tokens"] == 500 and b["temperature"] == 0.6 for b in bodies)
    assert sorted(sent_prompts(provider_server)) == sorted(
        f"Classify ({s} stars): {t}" for t, s in zip(df["text"], df["stars"], strict=True))


def test_lists_of_strings_and_dicts(provider_server):
    c = client(provider_server)
    out = qm.map("Echo: {text}", ["a", "b", "c"], client=c, progress=False)
    assert list(out.index) == [0, 1, 2] and out["answer"].str.contains("Echo: b").sum() == 1
    out = qm.map("{q} / {row['with space']!r}", [{"q": "x", "with space": 1}], client=c,
                 progress=False)
    assert out.loc[0, "answer"].endswith("*x / 1*")


def test_json_schema_gives_one_column_per_field(provider_server):
    from pydantic import BaseModel

    class Label(BaseModel):
        label: str
        score: float

    srv = provider_server
    srv.script(Reply(match="review number 1", reasoning="Positive.",
                     content='{"label": "positive", "score": 0.9}'),
               Reply(match="review number 2", reasoning="Broken.", content='{"label": '))
    out = qm.map("Label: {text}", reviews(3), client=client(srv), json_schema=Label,
                 progress=False)
    assert list(out.columns[:3]) == ["label", "score", "raw"]
    assert out.loc["r001", "label"] == "positive" and out.loc["r001", "score"] == 0.9
    assert out.loc["r000", "label"] == "example" and out.loc["r000", "error"] is None
    # a reply that does not parse: its error in its row, its text kept in raw
    assert "InvalidJSONError" in out.loc["r002", "error"]
    assert out.loc["r002", "raw"] == '{"label": ' and out.loc["r002", "label"] is None


# -- faults --------------------------------------------------------------------------------------
def inject_one_by_one(srv, faults: list[dict]) -> threading.Thread:
    """The server stacks faults on one request; give each fault its own request by adding
    the next only once the previous one was taken."""

    def run() -> None:
        for f in faults:
            srv.fault(**f)
            while srv.state.faults:
                time.sleep(0.002)

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th


def test_fifty_rows_with_faults_each_row_done_or_with_its_error(provider_server):
    srv = provider_server
    srv.latency = 0.1  # the batch outlasts the injection of the faults
    faults = [*[{"kind": "status", "code": 500}] * 3, *[{"kind": "drop", "after": 4}] * 2,
              {"kind": "status", "code": 429, "retry_after": 0.05}]
    injector = inject_one_by_one(srv, faults)
    c = client(srv, max_retries=0)  # every fault reaches qm.map (the core's retries are off)
    out = qm.map("Classify: {text}", reviews(50), client=c, concurrency=8, progress=False)
    injector.join(timeout=10)
    assert not injector.is_alive() and not srv.state.faults  # every fault was served
    ok, bad = out[out["error"].isna()], out[out["error"].notna()]
    assert len(out) == 50 and len(bad) == 5 and len(ok) == 45
    assert ok["answer"].str.contains("local test server").all()
    assert bad["error"].str.contains("ServerError").sum() == 3
    dropped = bad[bad["error"].str.contains("StreamError")]
    assert len(dropped) == 2 and dropped["reasoning"].notna().all()  # the partial is kept
    # the 429 row was sent again after the server's Retry-After, and then succeeded
    assert len(chat_requests(srv)) == 51 and out.attrs["rate_limits"] == 1
    assert out.attrs["failed"] == 5 and not out.attrs["interrupted"]


def test_transient_faults_are_retried_by_the_core(provider_server):
    srv = provider_server
    srv.latency = 0.05
    injector = inject_one_by_one(srv, [{"kind": "status", "code": 503}] * 2
                                 + [{"kind": "status", "code": 429, "retry_after": 0}])
    out = qm.map("Classify: {text}", reviews(10), client=client(srv), concurrency=2,
                 progress=False)
    injector.join(timeout=10)
    assert out["error"].isna().all() and len(chat_requests(srv)) == 13


def test_on_error_skip_and_raise(provider_server):
    srv = provider_server
    c = client(srv, max_retries=0)
    srv.fault("status", code=500, times=2)
    out = qm.map("Classify: {text}", reviews(6), client=c, concurrency=1, on_error="skip",
                 progress=False)
    assert len(out) == 4 and out["error"].isna().all()
    srv.reset()
    srv.fault("status", code=400, message="bad input", times=1)
    with pytest.raises(qm.MapError) as ei:
        qm.map("Classify: {text}", reviews(6), client=c, concurrency=1, on_error="raise",
               progress=False)
    e = ei.value
    assert e.row == "r000" and "bad input" in str(e) and isinstance(e.__cause__, qm.APIError)
    assert len(e.result) == 6 and e.result["error"].notna().all()
    assert len(chat_requests(srv)) == 1  # stopped at the first failure


def test_rate_limits_lower_the_concurrency_and_the_bar_says_it_waits(provider_server):
    srv = provider_server
    srv.latency = 0.05
    srv.fault("status", code=429, retry_after=0.5, times=6)
    out = qm.map("Classify: {text}", reviews(24), client=client(srv, max_retries=0),
                 concurrency=8, progress=False)
    assert out["error"].isna().all()
    # one burst of 429s is one halving; the limit grows back as rows succeed
    assert out.attrs["rate_limits"] == 6 and out.attrs["lowest_concurrency"] == 4
    assert srv.max_in_flight <= 8


def test_concurrency_bounds_requests_in_flight(provider_server):
    srv = provider_server
    srv.latency = 0.1
    qm.map("Classify: {text}", reviews(12), client=client(srv), concurrency=3, progress=False)
    assert 1 < srv.max_in_flight <= 3


# -- resume --------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".sqlite", ".jsonl", ".parquet"])
def test_resume_sends_only_the_missing_rows(provider_server, tmp_path, suffix):
    srv = provider_server
    path = tmp_path / f"labels{suffix}"
    df = reviews(50)
    c = client(srv, max_retries=0)
    srv.fault("status", code=500, times=2)
    first = qm.map("Classify: {text}", df.iloc[:30], client=c, checkpoint=path, concurrency=4,
                   max_tokens=400, progress=False)
    assert first["error"].notna().sum() == 2 and len(chat_requests(srv)) == 30
    recs = _checkpoint.load(path)
    assert len(recs) == 30 and sum(r["status"] == "ok" for r in recs.values()) == 28
    srv.reset()
    out = qm.map("Classify: {text}", df, client=c, checkpoint=path, concurrency=4,
                 max_tokens=400, progress=False)
    # 20 new rows + the 2 that failed; the 28 finished rows come from the checkpoint
    assert len(chat_requests(srv)) == 22 and out["error"].isna().all()
    assert {f"Classify: review number {i}" for i in range(30, 50)} <= set(sent_prompts(srv))
    assert out.loc["r005", "answer"] == first.loc["r005", "answer"]
    srv.reset()
    again = qm.map("Classify: {text}", df, client=c, checkpoint=path, concurrency=4,
                   max_tokens=400, progress=False)
    assert chat_requests(srv) == [] and again.equals(out)
    # other parameters are another request: nothing is reused
    qm.map("Classify: {text}", df.iloc[:3], client=c, checkpoint=path, max_tokens=401,
           progress=False)
    assert len(chat_requests(srv)) == 3


def test_a_torn_jsonl_line_runs_that_row_again(provider_server, tmp_path):
    path = tmp_path / "labels.jsonl"
    c = client(provider_server)
    qm.map("Classify: {text}", reviews(4), client=c, checkpoint=path, progress=False)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])
    provider_server.reset()
    qm.map("Classify: {text}", reviews(4), client=c, checkpoint=path, progress=False)
    assert len(chat_requests(provider_server)) == 1


# -- interrupt -----------------------------------------------------------------------------------
def test_interrupt_keeps_finished_rows_returned_and_checkpointed(provider_server, tmp_path,
                                                                 capsys):
    srv = provider_server
    srv.latency = 0.15
    path = tmp_path / "run.sqlite"
    df = reviews(40)
    finished = threading.Event()

    def interrupt_after_five() -> None:
        while not finished.is_set():
            if path.exists() and len(_checkpoint.load(path)) >= 5:
                _thread.interrupt_main()  # KeyboardInterrupt in the calling thread
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=interrupt_after_five, daemon=True)
    watcher.start()
    try:
        out = qm.map("Classify: {text}", df, client=client(srv), checkpoint=path,
                     concurrency=2, progress=False)
    finally:
        finished.set()
        watcher.join()
    assert out.attrs["interrupted"] and len(out) == 40
    done = out[out["error"].isna()]
    kept = _checkpoint.load(path)
    assert 5 <= len(done) < 40 and len(kept) == len(done) == out.attrs["done"]
    assert done["answer"].str.contains("local test server").all()
    rest = out[out["error"].notna()]
    assert set(rest["error"]) <= {NOT_RUN, INTERRUPTED}
    assert "interrupted" in capsys.readouterr().out
    srv.reset()
    again = qm.map("Classify: {text}", df, client=client(srv), checkpoint=path, concurrency=4,
                   progress=False)
    assert again["error"].isna().all() and len(chat_requests(srv)) == 40 - len(done)


def test_cancelled_rows_keep_their_partial_reply():
    """The worker-side half of an interrupt, without signals: cancelling the run marks
    in-flight rows interrupted with what had arrived."""
    from qwq_magic.batch import _result

    c = qm.Completion(provider="x", model="m")
    c.add(qm.ReasoningDelta("half a thought"))
    c.finish("stopped")
    plan = _plan_for_tests()
    res = _result(c, plan, INTERRUPTED)
    assert res["reasoning"] == "half a thought" and res["error"] == INTERRUPTED


def _plan_for_tests():
    from qwq_magic.batch import _Plan

    return _Plan(template="{text}", system=None, params={}, model="m", schema=None,
                 schema_spec=None, fields=(), json_mode=None, retries=0, concurrency=1,
                 on_error="keep", checkpoint=None)


# -- cost first ----------------------------------------------------------------------------------
def test_dry_run_sends_nothing_and_estimates(provider_server, tmp_path):
    srv = provider_server
    c = client(srv)
    df = reviews(200)
    est = qm.map("Classify: {text}", df, client=c, dry_run=True, max_tokens=1000)
    assert isinstance(est, MapEstimate) and chat_requests(srv) == []
    assert est.requests == 200 and est.skipped == 0 and est.estimated
    chars = sum(len(f"Classify: {t}") for t in df["text"])
    assert chars // 4 < est.input_tokens < chars // 4 + 200 * 20
    assert est.output_tokens_max == 200_000
    info = c.preset.model_info(MODEL)
    assert est.cost_min == pytest.approx(est.input_tokens * info.price_in / 1e6)
    assert est.cost_max == pytest.approx(est.cost_min + 200_000 * info.price_out / 1e6)
    text = repr(est)
    assert "nothing sent" in text and "estimated" in text and "200" in text
    assert "<table>" in est._repr_html_()
    # with a checkpoint, finished rows are not counted again
    path = tmp_path / "c.sqlite"
    qm.map("Classify: {text}", df.iloc[:50], client=c, checkpoint=path, max_tokens=1000,
           progress=False)
    srv.reset()
    est = qm.map("Classify: {text}", df, client=c, dry_run=True, checkpoint=path,
                 max_tokens=1000)
    assert (est.requests, est.skipped) == (150, 50) and chat_requests(srv) == []


def test_dry_run_without_a_price_or_a_cap_says_so(provider_server):
    c = qm.Client("openai", **provider_server.client_kwargs("vllm"))
    est = qm.map("Q: {text}", ["a", "b"], client=c, dry_run=True)
    assert est.cost_max is None and est.max_tokens is None
    assert "unbounded" in repr(est) and "no price known" in repr(est)


# -- bad input -----------------------------------------------------------------------------------
def test_a_missing_column_fails_before_anything_is_sent(provider_server):
    with pytest.raises(InterpolationError, match=r"no column 'txt'.*Columns: text, stars"):
        qm.map("Classify: {txt}", reviews(5), client=client(provider_server))
    rows = [{"text": "a"}, {"body": "b"}]
    with pytest.raises(InterpolationError, match=r"no column 'text' \(row 1\)"):
        qm.map("Classify: {text}", rows, client=client(provider_server))
    assert chat_requests(provider_server) == []


def test_unknown_keywords_and_bad_options(provider_server):
    c = client(provider_server)
    with pytest.raises(TypeError, match=r"'temprature', 'foo'.*'temprature' → 'temperature'"):
        qm.map("{text}", ["a"], client=c, temprature=0.5, foo=1)
    with pytest.raises(TypeError, match="'concurency' → 'concurrency'"):
        qm.map("{text}", ["a"], client=c, concurency=2)
    with pytest.raises(qm.QwqError, match="on_error='ignore'"):
        qm.map("{text}", ["a"], client=c, on_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(qm.QwqError, match="concurrency=0"):
        qm.map("{text}", ["a"], client=c, concurrency=0)
    with pytest.raises(qm.ParameterError, match="temperature=7"):
        qm.map("{text}", ["a"], client=c, temperature=7)
    with pytest.raises(qm.QwqError, match=r"\.sqlite, \.jsonl or \.parquet"):
        qm.map("{text}", ["a"], client=c, checkpoint="run.csv")
    with pytest.raises(qm.QwqError, match="not int"):
        qm.map("{text}", 5, client=c)
    with pytest.raises(qm.QwqError, match="clash"):
        qm.map("{text}", ["a"], client=c, json_schema="label, error")
    assert chat_requests(provider_server) == []


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.integers(), max_size=4))
def test_any_keyword_is_a_parameter_or_a_type_error(kw):
    from qwq_magic.batch import _check_keywords
    from qwq_magic.params import ALIASES, PARAM_NAMES

    known = set(PARAM_NAMES) | set(ALIASES)
    if all(k.replace("-", "_") in known for k in kw):
        _check_keywords(kw)
    else:
        with pytest.raises(TypeError) as ei:
            _check_keywords(kw)
        assert all(repr(k) in str(ei.value) for k in kw if k.replace("-", "_") not in known)


TEMPLATE_PARTS = st.sampled_from(["{a}", "{b!r}", "{a:>5}", "{row['a']}", "{ b }", "{1, 2}",
                                  "{\"k\": 1}", "$x^{a}$", "\\frac{a}{b}", "`{a}`", "{{a}}",
                                  "}}", "{", "}", " text ", "\n```\n{a}\n```\n", "é"])


@given(st.lists(TEMPLATE_PARTS, max_size=8), st.text(max_size=5), st.integers())
def test_filling_rows_matches_the_magic_interpolation(parts, a, b):
    from qwq_magic.batch import _fill_all
    from qwq_magic.interpolate import interpolate

    template = "".join(parts) or "x"
    row = {"a": a, "b": b}
    want = interpolate(template, {**row, "row": row})
    assert _fill_all(template, [row], [0]) == [want]


# -- the limiter ---------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_aimd_halves_once_per_burst_and_grows_back_slowly():
    clk = Clock()
    a = AIMD(16, clock=clk)
    assert a.on_rate_limit(2.0) == 2.0 and a.limit == 8 and a.waiting() == 2.0
    a.on_rate_limit(2.0)  # the same burst: requests sent under the old limit
    assert a.limit == 8 and a.decreases == 1 and a.rate_limits == 2
    clk.t += 3
    assert a.waiting() == 0
    a.on_rate_limit(None)
    assert a.limit == 4 and a.waiting() == 1.0  # no Retry-After: a default pause
    for _ in range(4):
        a.on_success()
    assert a.limit == 5  # one more after `limit` successes in a row
    for _ in range(200):
        a.on_success()
    assert a.limit == 16 and a.lowest == 4


@given(st.lists(st.one_of(st.none(), st.floats(0, 5)), max_size=60), st.integers(1, 64))
def test_aimd_limit_stays_between_one_and_the_ceiling(events, ceiling):
    clk = Clock()
    a = AIMD(ceiling, clock=clk)
    for e in events:
        clk.t += 1.0
        before = a.limit
        if e is None:
            a.on_success()
            assert a.limit in (before, before + 1)
        else:
            a.on_rate_limit(e)
            assert a.limit in (before, max(1, before // 2))
        assert 1 <= a.limit <= ceiling


def test_adaptive_limiter_admits_at_most_limit_and_pauses():
    async def main() -> tuple[int, int]:
        lim = AdaptiveLimiter(4)
        peak = 0

        async def job() -> None:
            nonlocal peak
            async with lim:
                peak = max(peak, lim.in_flight)
                await asyncio.sleep(0.01)
                lim.success()

        await asyncio.gather(*(job() for _ in range(20)))
        first = peak
        lim.rate_limited(0.05)
        assert lim.limit == 2 and lim.waiting() > 0 and "paused" in repr(lim)
        peak = 0
        await asyncio.gather(*(job() for _ in range(6)))
        return first, peak

    first, after = asyncio.run(main())
    assert first == 4 and after <= 3


def test_progress_postfix_mentions_the_rate_limit_wait():
    from qwq_magic.batch import _Stats

    s = _Stats(total=10, done=3, failed=1, tokens=300, cost=0.012)
    s.limiter = AdaptiveLimiter(8)
    s.limiter.rate_limited(30)
    text = s.postfix()
    assert "failed 1" in text and "tok/s" in text and "$0.0120" in text
    assert "waiting 30 s on a rate limit (concurrency 4/8)" in text


def test_the_progress_bar_shows_rows_failures_and_spend(provider_server, capsys):
    provider_server.fault("status", code=500, times=1)
    qm.map("Classify: {text}", reviews(5), client=client(provider_server, max_retries=0),
           concurrency=1)
    err = capsys.readouterr().err
    assert "qm.map" in err and "5/5" in err and "failed 1" in err and "tok/s" in err


# -- client as configuration ----------------------------------------------------------------------
def test_client_config_pickles_without_showing_the_key(provider_server, monkeypatch):
    monkeypatch.delenv("DEEPINFRA_TOKEN", raising=False)
    c = qm.Client("deepinfra", model=MODEL, base_url=provider_server.base_url("deepinfra"),
                  api_key="test-key")  # the key the local server accepts
    cfg = ClientConfig.from_client(c)
    back = pickle.loads(pickle.dumps(cfg))
    assert back == cfg and back.api_key is not None
    assert "test-key" not in repr(back) + str(back) + repr(back.api_key)
    assert back.build().complete("hi").status == "complete"
    monkeypatch.setenv("DEEPINFRA_TOKEN", "test-key")  # the workers' environment has it
    assert ClientConfig.from_client(c).api_key is None


# -- the magic form ------------------------------------------------------------------------------
@pytest.fixture
def ip(provider_server):
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "qwq_magic")
    session.reset()
    shell.run_line_magic("qwq", f"use deepinfra --base-url "
                         f"{provider_server.base_url('deepinfra')} --model {MODEL}")
    session.client_kwargs["api_key"] = "test-key"
    yield shell
    session.reset()
    for k in ("df", "out", "labels"):
        shell.user_ns.pop(k, None)


def test_magic_map_runs_the_cell_over_the_dataframe(ip, provider_server, tmp_path):
    ip.user_ns["df"] = reviews(6)
    ip.user_ns["labels"] = "positive, negative"
    path = tmp_path / "m.jsonl"
    with capture_output():
        ip.run_cell_magic("qwq", f"--map df -o out --concurrency 3 --checkpoint {path} "
                          "--max-tokens 300", "Label as {labels}: {text}")
    out = ip.user_ns["out"]
    assert list(out.index) == list(ip.user_ns["df"].index) and out["error"].isna().all()
    assert "Label as positive, negative: review number 4" in sent_prompts(provider_server)
    assert all(r.json["max_tokens"] == 300 for r in chat_requests(provider_server))
    provider_server.reset()
    with capture_output() as cap:
        ip.run_cell_magic("qwq", "--map df --dry-run --max-tokens 300",
                          "Label as {labels}: {text}")
    assert chat_requests(provider_server) == []
    assert "nothing sent" in cap.outputs[0].data["text/plain"]


def test_magic_map_errors_are_one_line(ip, provider_server):
    with pytest.raises(qm.QwqError, match="no variable 'nope'"):
        ip.run_cell_magic("qwq", "--map nope", "x {text}")
    ip.user_ns["df"] = reviews(2)
    with pytest.raises(qm.QwqError, match="--chat"):
        ip.run_cell_magic("qwq", "--map df --chat", "x {text}")
    with pytest.raises(InterpolationError, match="no column 'body'"):
        ip.run_cell_magic("qwq", "--map df", "x {body}")
    assert chat_requests(provider_server) == []


# -- Dask ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as dc:
        yield dc


def test_dask_dataframe_runs_partition_by_partition_on_two_workers(provider_server, tmp_path,
                                                                   dask_client):
    import dask.dataframe as dd

    srv = provider_server
    df = reviews(24)
    ddf = dd.from_pandas(df, npartitions=4)
    path = tmp_path / "dask.sqlite"
    c = client(srv)
    lazy = qm.map("Classify: {text}", ddf, client=c, checkpoint=path, concurrency=3,
                  max_tokens=300)
    assert isinstance(lazy, dd.DataFrame) and chat_requests(srv) == []  # lazy until computed
    assert list(lazy.columns) == ["answer", "reasoning", "reasoning_tokens", "answer_tokens",
                                  "cost", "finish_reason", "error"]
    out = lazy.compute()
    assert list(out.index) == list(df.index) and out["error"].isna().all()
    assert out.loc["r009", "answer"].endswith("*Classify: review number 9*")
    assert len(chat_requests(srv)) == 24
    workers = {w["id"] for w in dask_client.scheduler_info()["workers"].values()}
    assert len(workers) == 2
    assert len(_checkpoint.load(path)) == 24  # each partition wrote its own side file
    assert len(list(tmp_path.glob("dask.part*.sqlite"))) == 4
    srv.reset()
    again = qm.map("Classify: {text}", ddf, client=c, checkpoint=path, max_tokens=300).compute()
    assert chat_requests(srv) == [] and again["answer"].equals(out["answer"])
    # the same checkpoint resumes a plain pandas run too
    local = qm.map("Classify: {text}", df, client=c, checkpoint=path, max_tokens=300,
                   progress=False)
    assert chat_requests(srv) == [] and local["answer"].equals(out["answer"])
    est = qm.map("Classify: {text}", ddf, client=c, checkpoint=path, dry_run=True,
                 max_tokens=300)
    assert (est.rows, est.requests, est.skipped) == (24, 0, 24)


# -- a real kernel -------------------------------------------------------------------------------
@pytest.mark.kernel
def test_kernel_interrupt_keeps_finished_rows_stops_run_all_and_resumes(provider_server,
                                                                       tmp_path):
    import queue

    from jupyter_client.manager import start_new_kernel

    srv = provider_server
    srv.latency = 0.2
    path = tmp_path / "k.sqlite"
    cell = (f"%%qwq --map df -o out --concurrency 2 --checkpoint {path}\n"
            "Classify: {text}")

    def wait_reply(kc, msg_id: str) -> dict:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                m = kc.get_shell_msg(timeout=0.2)
            except queue.Empty:
                continue
            if m["parent_header"].get("msg_id") == msg_id:
                return m["content"]
        raise AssertionError("no execute_reply")

    def printed(kc, code: str) -> str:
        msg_id = kc.execute(code)
        wait_reply(kc, msg_id)
        out = []
        while True:
            try:
                m = kc.get_iopub_msg(timeout=0.5)
            except queue.Empty:
                break
            if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "stream":
                out.append(m["content"]["text"])
        return "".join(out).strip()

    km, kc = start_new_kernel(kernel_name="python3")
    try:
        setup = kc.execute(
            "%load_ext qwq_magic\n"
            f"%qwq use openai --base-url {srv.base_url('vllm')} --model qwq\n"
            "import pandas as pd\n"
            "df = pd.DataFrame({'text': [f'review {i}' for i in range(30)]})")
        assert wait_reply(kc, setup)["status"] == "ok"
        run_id = kc.execute(cell)
        queued_id = kc.execute("ran_after = True")  # Run All: the next cell is queued
        deadline = time.monotonic() + 30
        while not (path.exists() and len(_checkpoint.load(path)) >= 4):
            assert time.monotonic() < deadline, "the batch did not start"
            time.sleep(0.05)
        km.interrupt_kernel()
        reply = wait_reply(kc, run_id)
        assert reply["status"] == "error" and reply["ename"] == "QwqInterrupted"
        assert len(reply["traceback"]) == 1 and "rows finished and kept (-o out)" in \
            reply["traceback"][0]
        assert wait_reply(kc, queued_id)["status"] == "aborted"
        done = int(printed(kc, "print(out['error'].isna().sum())"))
        assert 4 <= done < 30 and len(_checkpoint.load(path)) == done
        assert printed(kc, "print(out.attrs['interrupted'], 'ran_after' in dir())") == \
            "True False"
        srv.reset()
        again = kc.execute(cell)
        assert wait_reply(kc, again)["status"] == "ok"
        assert len(chat_requests(srv)) == 30 - done
        assert printed(kc, "print(out['error'].isna().all(), len(out))") == "True 30"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_qm_map_is_public_but_star_import_keeps_the_builtin():
    ns: dict = {}
    exec("from qwq_magic import *", ns)
    assert "map" not in ns and "MapEstimate" in ns
    assert "map" in dir(qm) and qm.map.__module__ == "qwq_magic.batch"
