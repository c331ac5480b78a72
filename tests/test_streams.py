"""Streams from bytes: SSE line endings, caps, hostile chunks, the auto-mode split and
break-anywhere reconstruction — over real HTTP to the local provider server where feasible."""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import tracemalloc
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qwq_magic as qm
from qwq_magic._sse import MAX_LINE_BYTES, SSEDecoder, SSEError
from qwq_magic.completion import Completion
from qwq_magic.events import ContentDelta, ReasoningDelta, Reclassified
from qwq_magic.reasoning import ThinkSplitter, apply_events, split_text
from qwq_magic.testing import Reply

MB = 1024 * 1024


def client(srv: Any, model: str = "reasoner", **kw: Any) -> qm.Client:
    srv.add_model(model)
    return qm.Client("openai", base_url=srv.base_url("vllm"), model=model, max_retries=0, **kw)


def chunk(content: str | None = None, reasoning: str | None = None, finish: Any = None) -> str:
    delta: dict[str, Any] = {}
    if content is not None:
        delta["content"] = content
    if reasoning is not None:
        delta["reasoning_content"] = reasoning
    return json.dumps({"id": "x", "object": "chat.completion.chunk",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]},
                      ensure_ascii=False)


def sse(*payloads: str, nl: str = "\n", done: bool = True) -> bytes:
    lines = [f"data: {p}{nl}{nl}" for p in payloads]
    if done:
        lines.append(f"data: [DONE]{nl}{nl}")
    return "".join(lines).encode()


def raw(srv: Any, body: bytes, **opts: Any) -> None:
    srv.fault("raw", b64=base64.b64encode(body).decode(), **opts)


def collect(c: qm.Client, prompt: str = "hi") -> tuple[Completion, list[Any], BaseException | None]:
    s = c.stream(prompt)
    evs: list[Any] = []
    try:
        for ev in s:
            evs.append(ev)
    except qm.QwqError as e:
        assert e.completion is s.completion
        return s.completion, evs, e
    return s.completion, evs, None


# -- the SSE decoder on its own ------------------------------------------------------------------
def test_decoder_keeps_unicode_line_separators_inside_data() -> None:
    d = SSEDecoder()
    body = 'data: {"c": "a\u2028b\u2029c\u0085d"}\n\n'.encode()
    assert [json.loads(x) for _n, x in d.feed(body)] == [{"c": "a\u2028b\u2029c\u0085d"}]


def test_decoder_drops_a_leading_bom_even_cut_in_pieces() -> None:
    body = b"\xef\xbb\xbfdata: 1\n\ndata: 2\n\n"
    for i in range(len(body) + 1):
        d = SSEDecoder()
        got = d.feed(body[:i]) + d.feed(body[i:]) + d.close()
        assert [x for _n, x in got] == [b"1", b"2"], i


def test_decoder_caps_a_line_without_end() -> None:
    d = SSEDecoder(max_line=1000)
    d.feed(b"data: " + b"x" * 900)
    with pytest.raises(SSEError, match="without ending"):
        d.feed(b"x" * 200)


events_text = st.lists(st.text(st.characters(codec="utf-8", exclude_characters="\r\n"),
                               max_size=30), min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(events_text, st.sampled_from(["\n", "\r\n", "\r"]), st.booleans(),
       st.lists(st.integers(0, 10_000), max_size=10))
def test_decoder_any_line_ending_any_cut(datas: list[str], nl: str, bom: bool,
                                         cuts: list[int]) -> None:
    """Every way of cutting the bytes gives the same events, whatever the line ending."""
    body = (b"\xef\xbb\xbf" if bom else b"") + "".join(
        f": comment{nl}data: {x}{nl}{nl}" for x in datas).encode()
    d = SSEDecoder()
    got = []
    prev = 0
    for c in [*sorted(min(c, len(body)) for c in cuts), len(body)]:
        got += d.feed(body[prev:c])
        prev = c
    got += d.close()
    assert [x.decode() for _n, x in got] == datas


# -- over the server: line endings, BOM, separators ------------------------------------------------
@pytest.mark.parametrize("nl", ["\n", "\r\n", "\r"])
def test_server_stream_with_separators_bom_and_any_line_ending(provider_server, nl):
    srv = provider_server
    text = "one\u2028two\u2029three\u0085four é€😀"
    body = b"\xef\xbb\xbf" + sse(chunk(reasoning="think"), chunk(content=text),
                                 chunk(finish="stop"), nl=nl)
    raw(srv, body, size=7)  # 7-byte writes: multi-byte characters cut across reads
    with client(srv) as c:
        comp, _evs, err = collect(c)
    assert err is None
    assert comp.reasoning == "think" and comp.content == text


# -- caps: memory stays bounded ---------------------------------------------------------------
def _peak_during(fn: Any) -> tuple[int, Any]:
    gc.collect()
    tracemalloc.start()
    try:
        result = fn()
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


def test_a_64_mb_line_without_newline_is_capped(provider_server):
    srv = provider_server
    raw(srv, b"data: " + b"x" * 65536, repeat=1024)  # ~64 MiB, never a newline
    with client(srv) as c:
        peak, (comp, _evs, err) = _peak_during(lambda: collect(c))
    assert isinstance(err, qm.StreamError)
    assert f"{MAX_LINE_BYTES // MB} MiB" in str(err)
    assert comp.status == "error"
    assert peak < 3 * MAX_LINE_BYTES  # not 64 MiB plus copies


def test_a_64_mb_error_body_is_capped(provider_server):
    srv = provider_server
    raw(srv, b"y" * 65536, head='{"error": {"message": "', repeat=1024, status=500,
        content_type="application/json")  # 64 MiB
    with client(srv) as c:
        peak, (_comp, _evs, err) = _peak_during(lambda: collect(c))
    assert isinstance(err, qm.ServerError) and "HTTP 500" in str(err)
    assert peak < 16 * MB


# -- hostile chunks: a documented StreamError, the partial reply kept ---------------------------
HOSTILE = {
    "number": "1",
    "null": "null",
    "list": "[]",
    "string": '"text"',
    "finish_reason object": '{"choices": [{"delta": {}, "finish_reason": {"a": 1}}]}',
    "choices dict": '{"choices": {"0": {"delta": {"content": "x"}}}}',
    "choice a string": '{"choices": ["x"]}',
    "delta a list": '{"choices": [{"delta": ["x"]}]}',
    "usage a number": '{"choices": [], "usage": 5}',
    "tool_calls a dict": '{"choices": [{"delta": {"tool_calls": {"a": 1}}}]}',
    "tool call a string": '{"choices": [{"delta": {"tool_calls": ["x"]}}]}',
    "nested brackets": "[" * 100_000 + "]" * 100_000,
    "nested objects": '{"a":' * 100_000 + "1" + "}" * 100_000,
    "not json": "{oops",
    "invalid utf-8": '{"choices": [{"delta": {"content": "\xff"}}]}',
}


@pytest.mark.parametrize("payload", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_chunk_gives_stream_error_with_partial(provider_server, payload):
    srv = provider_server
    data = payload.encode().replace("\xff".encode(), b"\xff")  # a raw invalid byte
    raw(srv, sse(chunk(content="Hello <"), done=False) + b"data: " + data + b"\n\n"
        + b"data: [DONE]\n\n")
    with client(srv) as c:
        comp, _evs, err = collect(c)
    assert isinstance(err, qm.StreamError), err
    assert comp.content == "Hello <"  # the held-back "<" too
    assert comp.status == "error" and comp.error is err
    assert len(str(err)) < 600


def test_hostile_chunk_async(provider_server):
    srv = provider_server
    raw(srv, sse(chunk(content="Hi </thi"), "null"))

    async def go() -> tuple[Completion, BaseException | None]:
        async with client(srv) as c:
            s = c.astream("hi")
            try:
                async for _ in s:
                    pass
            except qm.StreamError as e:
                return s.completion, e
            return s.completion, None

    comp, err = asyncio.run(go())
    assert isinstance(err, qm.StreamError) and comp.content == "Hi </thi"


# -- the auto-mode split: </think> with no <think> -------------------------------------------
def test_custom_model_name_close_without_open_moves_answer_into_reasoning(provider_server):
    srv = provider_server
    srv.script(Reply(reasoning="Let me think. 2+2=4.", content="**4**",
                     reasoning_mode="inline"))
    with client(srv, model="reasoner") as c:
        comp, evs, err = collect(c)
    assert err is None
    assert (comp.reasoning.strip(), comp.content) == ("Let me think. 2+2=4.", "**4**")
    recl = [e for e in evs if isinstance(e, Reclassified)]
    assert len(recl) == 1
    before = "".join(e.text for e in evs[:evs.index(recl[0])] if isinstance(e, ContentDelta))
    assert recl[0].text == before and before  # exactly the answer text sent so far
    assert comp.reasoning_complete and comp.timings.reasoning_end is not None


def test_second_close_stays_answer(provider_server):
    srv = provider_server
    raw(srv, sse(chunk(content="r1"), chunk(content="</think>\n\nA "), chunk(content="</think> B"),
                 chunk(finish="stop")))
    with client(srv) as c:
        comp, _evs, err = collect(c)
    assert err is None and (comp.reasoning, comp.content) == ("r1", "A </think> B")


# -- held-back characters are kept on every end -------------------------------------------------
@pytest.mark.parametrize("model", ["qwq", "reasoner"])
@pytest.mark.parametrize("held", ["<", "</", "</thi", "</think"])
def test_held_characters_survive_a_dropped_connection(provider_server, model, held):
    srv = provider_server
    body = sse(chunk(content="thinking " + held), done=False)
    raw(srv, body + b"data: {\"choi", cut=len(body) + 8)
    with client(srv, model=model) as c:
        comp, _evs, err = collect(c)
    assert isinstance(err, qm.StreamError)
    assert comp.reasoning + comp.content == "thinking " + held


@pytest.mark.parametrize("model", ["qwq", "reasoner"])
def test_held_characters_survive_a_stop(provider_server, model):
    srv = provider_server
    srv.script(Reply(content="a < b " * 30, reasoning_mode="none", pace=0.001))
    with client(srv, model=model) as c:
        s = c.stream("hi")
        seen = ""
        for ev in s:
            seen += ev.text if isinstance(ev, (ContentDelta, ReasoningDelta)) else ""
            if seen == "a ":
                break  # " <" arrived: the splitter sent " " on and holds "<"
        s.close()
    comp = s.completion
    assert comp.status == "stopped"
    assert comp.reasoning + comp.content == "a <"


# -- break anywhere: every character received is in the partial Completion -----------------------
FUZZ = {"network": 0, "in-process": 0, "chars": 0}


@pytest.fixture(scope="module", autouse=True)
def _fuzz_figures():
    yield
    if FUZZ["network"] or FUZZ["in-process"]:
        from _figures import figure

        figure(f"fuzz: {FUZZ['network'] + FUZZ['in-process']} break-anywhere cases "
               f"({FUZZ['network']} over the network), characters compared: {FUZZ['chars']:,}")


pieces = st.lists(st.sampled_from(["a", " ", "<", "</think>", "<think>", "</thi", "\n", "é",
                                   "😀", "\u2028", "<b>", "\u0085"]), min_size=1, max_size=12)


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(pieces.map("".join), min_size=1, max_size=10), st.integers(0, 10**6),
       st.sampled_from(["qwq", "reasoner"]), st.booleans())
def test_break_anywhere_keeps_every_character(provider_server, deltas, cut, model, fielded):
    srv = provider_server
    srv.reset()
    payloads = [chunk(reasoning=d) if fielded and i == 0 else chunk(content=d)
                for i, d in enumerate(deltas)]
    body = sse(*payloads, chunk(finish="stop"))
    cut = cut % (len(body) + 1)
    raw(srv, body, cut=cut, size=max(1, cut // 3 or 1))
    # what the client can have received: the events whose blank line arrived
    got = body[:cut]
    n_done = got.count(b"\n\n")
    with client(srv, model=model) as c:
        comp, _evs, err = collect(c)
    if cut == len(body):
        assert err is None
    else:
        assert isinstance(err, qm.StreamError), err
    received = deltas[:min(n_done, len(deltas))]
    mode = "open" if model == "qwq" else "auto"
    if fielded:
        # a reasoning field first: the same events through the splitter alone
        sp, out = ThinkSplitter(mode), []  # type: ignore[var-annotated]
        for i, d in enumerate(received):
            sp.process(ReasoningDelta(d) if i == 0 else ContentDelta(d), out)
        sp.flush(out)
        assert (comp.reasoning, comp.content) == apply_events(out)
    else:
        assert (comp.reasoning, comp.content) == split_text("".join(received), mode)
    FUZZ["network"] += 1
    FUZZ["chars"] += len(comp.reasoning) + len(comp.content)


# -- the Completion holds its text once -----------------------------------------------------------
def test_finished_completion_joins_its_pieces(provider_server):
    srv = provider_server
    srv.script(Reply.long(3000, content="done " * 500))
    with client(srv, model="qwq") as c:
        comp = c.complete("hi")
    assert len(comp.reasoning_pieces) == 1 and len(comp.content_pieces) == 1
    assert comp.reasoning_events >= 3000 and comp.content.startswith("done")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=20), max_size=30), st.integers(0, 400), st.booleans())
def test_tail_and_chars_match_the_text(parts: list[str], n: int, read_first: bool) -> None:
    c = Completion()
    for p in parts:
        c.add(ReasoningDelta(p))
        c.add(ContentDelta(p))
        if read_first:
            _ = c.reasoning  # joining on read changes nothing visible
    text = "".join(parts)
    assert c.tail("reasoning", n) == (text[-n:] if n else "")
    assert c.tail("content", n) == (text[-n:] if n else "")
    assert c.chars("reasoning") == len(text) == len(c.reasoning)


# -- through %%qwq: the partial reply lands in _qwq --------------------------------------------
@pytest.mark.parametrize("payload", ["1", "[]", '{"choices": {"0": 1}}', "[" * 100_000])
def test_magic_keeps_the_partial_reply_of_a_hostile_stream(provider_server, payload):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    from qwq_magic import session

    srv = provider_server
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "qwq_magic")
    session.reset()
    try:
        ip.run_line_magic("qwq", f"use openai --base-url {srv.base_url('vllm')} --model qwq")
        ip.user_ns.pop("_qwq", None)
        raw(srv, sse(chunk(content="Partial thought </thi"), done=False)
            + f"data: {payload}\n\n".encode())
        with capture_output():
            res = ip.run_cell("%%qwq\nhello")
        c = ip.user_ns.get("_qwq")
        assert isinstance(c, Completion)
        assert c.reasoning == "Partial thought </thi" and c.status == "error"
        err = res.error_in_exec
        assert err is None or isinstance(err, qm.QwqError), repr(err)
    finally:
        session.reset()
        ip.user_ns.pop("_qwq", None)


def test_cassette_round_trips_reclassified() -> None:
    from qwq_magic.cassette import decode, encode

    assert decode(encode(Reclassified("so far"))) == Reclassified("so far")


# -- the call core fed bytes directly: arbitrary chunks never escape as anything but StreamError --
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["choices", "delta", "content", "reasoning_content", "finish_reason",
                         "usage", "tool_calls", "function", "index", "error", "response",
                         "result", "success", "message", "0"]), inner, max_size=4),
    max_leaves=12)


def _call(model: str = "qwq", preset: str = "openai") -> Any:
    from qwq_magic._call import Call, CallRules

    c = qm.Client(preset, base_url="http://127.0.0.1:9/v1", model=model, api_key="k",
                  account_id="a")
    return Call(c.prepare("hi"), CallRules())


@settings(max_examples=1500, deadline=None)
@given(st.lists(json_values, min_size=1, max_size=4), st.sampled_from(["openai", "cloudflare"]))
def test_arbitrary_json_chunks_give_events_or_stream_error(objs: list[Any], preset: str) -> None:
    call = _call("reasoner", preset)
    body = b"".join(b"data: " + json.dumps(o).encode() + b"\n\n" for o in objs)
    try:
        call.feed_bytes(body)
        call.end()
    except qm.StreamError as e:
        assert e.completion is call.completion and call.completion.status == "error"


@settings(max_examples=500, deadline=None)
@given(st.lists(pieces.map("".join), min_size=1, max_size=10), st.data(),
       st.sampled_from(["qwq", "reasoner"]))
def test_cut_anywhere_then_flush_keeps_every_character(deltas: list[str], data: Any,
                                                      model: str) -> None:
    body = sse(*[chunk(content=d) for d in deltas], chunk(finish="stop"))
    cut = data.draw(st.integers(0, len(body)))
    call = _call(model)
    for i in range(0, cut, 5):
        call.feed_bytes(body[i:min(i + 5, cut)])
    call.flush_held()  # what every end does (Stream._live's finally)
    n_done = body[:cut].count(b"\n\n")
    received = "".join(deltas[:min(n_done, len(deltas))])
    c = call.completion
    assert (c.reasoning, c.content) == split_text(received, "open" if model == "qwq" else "auto")
    FUZZ["in-process"] += 1
    FUZZ["chars"] += len(c.reasoning) + len(c.content)
