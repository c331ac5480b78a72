"""The chat panel and the sliders, Python side: real HTTP to the local provider server, no kernel.

What the browser draws is tested elsewhere; here: the specs the sliders come from, the two-way
link to ``session.params``, and what the panel's synced traits hold during and after a reply.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

pytest.importorskip("anywidget")
pytest.importorskip("ipywidgets")

from qwq_magic.state import Session
from qwq_magic.testing import Reply
from qwq_magic.widgets import PRESETS, ChatPanel, ParamsPanel, controls_for
from qwq_magic.widgets.chat import LIVE_REASONING_CHARS
from qwq_magic.widgets.params import presets_for

REASONING = "The user says hi. I should greet them back, briefly and kindly."
ANSWER = "Hello! Here is `code` and a list:\n\n- one\n- **two**\n"


def by_name(controls: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in controls}


@pytest.fixture
def sess(provider_server: Any) -> Session:
    s = Session()
    s.use("openai", **provider_server.client_kwargs("vllm"))
    return s


@pytest.fixture
def no_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from qwq_magic.providers import PRESETS as PROVIDERS

    for var in ("QWQ_PROVIDER", "QWQ_BASE_URL", "QWQ_API_KEY", "QWQ_MODEL"):
        monkeypatch.delenv(var, raising=False)
    for p in PROVIDERS.values():
        for var in p.key_env:
            monkeypatch.delenv(var, raising=False)


def wire(panel: ChatPanel) -> list[dict[str, Any]]:
    """The state updates the panel sends to the front end, as sent (one dict per comm message)."""
    sent: list[dict[str, Any]] = []

    def record(msg: dict[str, Any], buffers: Any = None) -> None:
        if msg.get("method") == "update":
            sent.append(json.loads(json.dumps(msg["state"])))

    assert panel.comm is not None  # ipywidgets sends only through a comm (a DummyComm here)
    panel._send = record  # type: ignore[method-assign]
    return sent


def msg(panel: ChatPanel, content: dict[str, Any]) -> None:
    """A message as the front end sends it (``model.send(...)``), through ipywidgets' comm path."""
    panel._handle_msg({"content": {"data": {"method": "custom", "content": content}},
                       "buffers": []})


# -- controls_for ------------------------------------------------------------------------------
def test_cloudflare_qwq_controls_follow_the_workers_ai_schema() -> None:
    c = by_name(controls_for("cloudflare", "@cf/qwen/qwq-32b"))
    assert c["temperature"]["max"] == 5 and c["temperature"]["default"] == 0.15
    assert (c["top_k"]["min"], c["top_k"]["max"], c["top_k"]["kind"]) == (1, 50, "int")
    assert c["min_p"]["supported"] is False and "Workers AI" in c["min_p"]["reason"]
    assert c["enable_thinking"]["supported"] is False
    assert c["max_tokens"]["max"] == 24000 and c["max_tokens"]["default"] == 256
    assert c["seed"]["max"] == 2**31 - 1


def test_deepinfra_and_aimlapi_qwen3_tables_differ() -> None:
    di = by_name(controls_for("deepinfra", None))
    assert di["temperature"]["max"] == 2 and di["min_p"]["supported"]
    assert di["top_k"]["max"] == 999  # [0, 1000): the open end is excluded
    assert di["top_p"]["min"] > 0  # (0, 1]
    assert di["max_tokens"]["max"] == 131072  # the model's context
    assert di["stop"]["kind"] == "text" and di["stop"]["supported"]
    assert not di["enable_thinking"]["supported"]
    q3 = by_name(controls_for("aimlapi", "alibaba/qwen3-32b"))
    assert q3["enable_thinking"]["supported"] and q3["enable_thinking"]["kind"] == "bool"
    assert q3["thinking_budget"]["supported"] and q3["thinking_budget"]["kind"] == "int"
    assert not q3["top_k"]["supported"] and "qwen3-32b" in q3["top_k"]["reason"]
    for spec in controls_for("aimlapi", "alibaba/qwen3-32b"):
        if spec["supported"] and spec["kind"] in ("int", "float"):
            assert spec["min"] <= spec["initial"] <= spec["max"], spec


def test_presets_keep_only_supported_parameters() -> None:
    q3 = presets_for(controls_for("aimlapi", "alibaba/qwen3-32b"))
    assert "top_k" not in q3["QwQ recommended"]  # unsupported there
    assert q3["QwQ recommended"]["temperature"] == 0.6
    cf = presets_for(controls_for("cloudflare", None))
    assert cf["QwQ recommended"]["top_k"] == 40
    assert cf["near-deterministic"]["seed"] == 1  # clamped into Cloudflare's 1..
    assert set(PRESETS) >= set(cf)


# -- ParamsPanel -------------------------------------------------------------------------------
def test_params_panel_links_both_ways(sess: Session) -> None:
    pp = ParamsPanel(session=sess)
    pp.widget  # noqa: B018 - builds the sliders
    slider = pp.inputs["temperature"]
    sess.params.update({"temperature": 1.25}, source="%qwq set")
    assert slider.value == pytest.approx(1.25)
    assert sess.params.sources["temperature"] == "%qwq set"  # not echoed back by the slider
    slider.value = 0.4
    assert sess.params.temperature == pytest.approx(0.4)
    assert sess.params.sources["temperature"] == "slider"
    pp.resets["temperature"].click()
    assert sess.params.temperature is None
    pp.inputs["stop"].value = "END, ###"
    assert sess.params.stop == ["END", "###"]
    pp.close()


def test_params_panel_rebuilds_on_provider_switch(sess: Session, provider_server: Any) -> None:
    pp = ParamsPanel(session=sess)
    pp.widget  # noqa: B018
    assert pp.inputs["temperature"].max == 2
    assert not pp.inputs["min_p"].disabled
    sess.use("cloudflare", **provider_server.client_kwargs("cloudflare"))
    assert pp.inputs["temperature"].max == 5
    assert pp.inputs["min_p"].disabled
    assert "Workers AI" in pp.inputs["min_p"].tooltip
    sess.params.update({"top_k": 7})
    assert pp.inputs["top_k"].value == 7
    pp.close()


# -- ChatPanel: a reply -----------------------------------------------------------------------
async def test_send_async_streams_a_reply_into_messages(sess: Session, provider_server: Any) -> None:
    provider_server.script(Reply(reasoning=REASONING, content=ANSWER, pace=0.002))
    panel = ChatPanel(session=sess)
    seen_thinking = []
    panel.observe(lambda ch: ch["new"] and seen_thinking.append(ch["new"]["message"]["thinking"]),
                  names="live")
    c = await panel.send_async("hi")
    user, bot = panel.messages
    assert user == {"role": "user", "text": "hi"}
    assert bot["role"] == "assistant" and bot["status"] == "complete"
    assert "<strong>two</strong>" in bot["html"] and "<code>code</code>" in bot["html"]
    assert bot["reasoning"] == REASONING and bot["thinking"] is False
    assert bot["summary"].startswith("Thought for")
    assert bot["footer"]
    assert True in seen_thinking  # the reasoning block was open while thinking
    assert panel.streaming is False and panel.live == {}
    assert panel.last is c and sess.last is c and panel.history == [c]
    assert c.content == ANSWER


async def test_messages_change_twice_per_turn_and_live_is_coalesced(
        sess: Session, provider_server: Any) -> None:
    provider_server.script(Reply.long(1500, content="done", pace=0.0005),
                           Reply.long(600, content="again", pace=0.0005))
    panel = ChatPanel(session=sess)
    messages: list[list[dict[str, Any]]] = []
    live: list[dict[str, Any]] = []
    panel.observe(lambda ch: messages.append(ch["new"]), names="messages")

    def on_live(ch: dict[str, Any]) -> None:
        live.append(ch["new"])
        if ch["new"]:  # meanwhile messages keeps the placeholder at that index
            assert panel.messages[ch["new"]["index"]]["reasoning"] == ""

    panel.observe(on_live, names="live")
    t0 = time.monotonic()
    c = await panel.send_async("think long")
    duration = time.monotonic() - t0
    assert c.reasoning_events > 1000
    assert len(messages) == 2  # the turn starts, the turn ends
    start, end = messages
    assert start[0] == {"role": "user", "text": "think long"}
    assert start[1]["status"] == "streaming" and start[1]["reasoning"] == ""  # the placeholder
    assert end[1]["reasoning"] == c.reasoning and end[1]["status"] == "complete"
    assert 5 <= len(live) <= 30 * duration + 2, (len(live), duration)
    assert all(u["index"] == 1 and u["message"]["role"] == "assistant" for u in live[:-1])
    assert live[-1] == {} and panel.live == {}  # reset at the end

    live.clear()
    t0 = time.monotonic()
    await panel.send_async("more")
    duration = time.monotonic() - t0
    assert len(messages) == 4  # two more for the second turn
    assert [m["role"] for m in messages[2]] == ["user", "assistant"] * 2
    assert 2 <= len(live) <= 30 * duration + 2, (len(live), duration)
    assert all(u["index"] == 3 for u in live[:-1]) and live[-1] == {}


async def test_live_updates_do_not_grow_with_the_conversation(
        sess: Session, provider_server: Any) -> None:
    """What one streaming update sends is the same with 1 or 20 earlier turns."""
    panel = ChatPanel(session=sess)
    sent = wire(panel)

    async def long_turn() -> list[dict[str, Any]]:
        provider_server.script(Reply.long(1200, content="ok", pace=0.0005))
        start = len(sent)
        c = await panel.send_async("think")
        assert len(c.reasoning) > LIVE_REASONING_CHARS + 1  # the live tail is full
        updates = sent[start:]
        # the whole conversation travels twice: when the turn starts and when it ends
        first, last = [u for u in updates if "messages" in u]
        assert first["messages"][-1]["reasoning"] == ""  # the placeholder
        assert last["messages"][-1]["reasoning"] == c.reasoning
        assert last["live"] == {}  # in the same comm message as the final messages
        streaming = [u for u in updates if u.get("live")]
        assert len(streaming) >= 3 and all(set(u) == {"live"} for u in streaming)
        return streaming

    await panel.send_async("warm up")
    one = await long_turn()  # 1 earlier turn
    for i in range(18):
        await panel.send_async(f"filler {i}")
    twenty = await long_turn()  # 20 earlier turns
    assert len(panel.messages) == 42 and twenty[0]["live"]["index"] == 41

    def size(u: dict[str, Any]) -> int:
        return len(json.dumps(u))

    biggest_one, biggest_twenty = max(map(size, one)), max(map(size, twenty))
    assert abs(biggest_twenty - biggest_one) <= 40, (biggest_one, biggest_twenty)
    assert biggest_one < 2 * LIVE_REASONING_CHARS  # one message with its bounded tail
    assert size({"live": panel.live}) == size({"live": {}})
    # …while the conversation it no longer re-sends has grown well past that
    assert len(json.dumps(panel.messages)) > 2 * biggest_twenty


async def test_final_message_completes_the_last_live_one(
        sess: Session, provider_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import qwq_magic.widgets.chat as chat

    monkeypatch.setattr(chat, "FLUSH_HZ", 1e9)  # push on every event: the last live is the end
    provider_server.script(Reply.long(1500, content=ANSWER))
    panel = ChatPanel(session=sess)
    last: list[dict[str, Any]] = []
    panel.observe(lambda ch: ch["new"] and last.append(ch["new"]), names="live")
    c = await panel.send_async("hi")
    final, streamed = panel.messages[-1], last[-1]["message"]
    assert last[-1]["index"] == len(panel.messages) - 1
    assert final["html"] == streamed["html"] and "<strong>two</strong>" in final["html"]
    assert streamed["reasoning"] == "…" + c.reasoning[-LIVE_REASONING_CHARS:]  # the tail
    assert final["reasoning"] == c.reasoning  # the whole reasoning, once, at the end
    assert final["footer"] and not streamed["footer"]
    assert final["status"] == "complete" and panel.live == {}


async def test_live_reasoning_is_bounded(sess: Session, provider_server: Any) -> None:
    provider_server.script(Reply.long(3000, content="ok", pace=0.0005))
    panel = ChatPanel(session=sess)
    longest = [0]

    def watch(ch: dict[str, Any]) -> None:
        m = ch["new"].get("message") or {}
        if m.get("status") == "streaming":
            longest[0] = max(longest[0], len(m.get("reasoning", "")))

    panel.observe(watch, names="live")
    c = await panel.send_async("go")
    assert len(c.reasoning) > 4001
    assert 0 < longest[0] <= 4001


async def test_stop_keeps_the_partial_reply(sess: Session, provider_server: Any) -> None:
    provider_server.script(Reply.long(2000, content="never shown", pace=0.005))
    panel = ChatPanel(session=sess)
    task = panel.send("think for a while")
    assert task is not None and panel.busy
    await asyncio.sleep(0.3)
    for _ in range(200):  # on a loaded machine the first tokens may take longer
        if panel.live.get("message", {}).get("reasoning"):
            break
        await asyncio.sleep(0.05)
    t_stop = time.monotonic()
    panel.stop()
    c = await task
    stop_latency = time.monotonic() - t_stop
    print(f"stop → task done: {stop_latency * 1000:.1f} ms")
    bot = panel.messages[-1]
    assert bot["status"] == "stopped" and c.status == "stopped"
    assert c.reasoning and bot["reasoning"] == c.reasoning
    assert "never shown" not in c.content
    assert panel.streaming is False and not panel.busy and panel.live == {}
    assert sess.last is c


async def test_model_html_is_escaped(sess: Session, provider_server: Any) -> None:
    evil = "<script>alert(1)</script> and <img src=x onerror=alert(1)> [x](javascript:alert(1))"
    provider_server.script(Reply(reasoning="<b>r</b>", content=evil))
    panel = ChatPanel(session=sess)
    await panel.send_async("hi")
    html = panel.messages[-1]["html"]
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;" in html and "&lt;img" in html
    assert 'href="javascript:' not in html
    assert panel.messages[-1]["reasoning"] == "<b>r</b>"  # plain text: the view uses textContent


async def test_error_shows_one_line_and_keeps_partial(sess: Session, provider_server: Any) -> None:
    provider_server.script(Reply.long(200, content="x", pace=0.001))
    provider_server.fault("drop", after=20)
    panel = ChatPanel(session=sess)
    c = await panel.send_async("hi")
    bot = panel.messages[-1]
    assert bot["status"] == "error" and c.status == "error"
    assert bot["error"] and "\n" not in bot["error"]
    assert c.reasoning  # what arrived is kept
    assert panel.streaming is False


# -- ChatPanel: parameters ---------------------------------------------------------------------
async def test_param_message_reaches_the_next_request(sess: Session, provider_server: Any) -> None:
    panel = ChatPanel(session=sess)
    msg(panel, {"type": "param", "name": "temperature", "value": 1.3})
    assert sess.params.temperature == pytest.approx(1.3)
    assert sess.params.sources["temperature"] == "panel"
    assert panel.values["temperature"] == pytest.approx(1.3)
    msg(panel, {"type": "param", "name": "top_k", "value": 12.0})
    assert sess.params.top_k == 12
    await panel.send_async("hi")
    body = provider_server.requests[-1].json
    assert body["temperature"] == pytest.approx(1.3) and body["top_k"] == 12
    msg(panel, {"type": "param", "name": "temperature", "value": None})
    assert sess.params.temperature is None and panel.values["temperature"] is None
    await panel.send_async("again")
    assert "temperature" not in provider_server.requests[-1].json


def test_session_params_move_the_panel_values(sess: Session) -> None:
    panel = ChatPanel(session=sess)
    sess.params.update({"temperature": 0.2, "stop": ["END"]}, source="%qwq set")
    assert panel.values["temperature"] == pytest.approx(0.2)
    assert panel.values["stop"] == "END"
    msg(panel, {"type": "preset", "name": "QwQ recommended"})
    assert (sess.params.temperature, sess.params.top_p, sess.params.top_k) == (0.6, 0.95, 40)


def test_unsupported_param_is_refused_with_a_notice(sess: Session, provider_server: Any) -> None:
    sess.use("cloudflare", **provider_server.client_kwargs("cloudflare"))
    panel = ChatPanel(session=sess)
    assert panel.provider_label.startswith("cloudflare · @cf/qwen/qwq-32b")
    assert by_name(panel.controls)["temperature"]["max"] == 5
    msg(panel, {"type": "param", "name": "min_p", "value": 0.1})
    assert sess.params.min_p is None and "min_p" in panel.notice


# -- ChatPanel: the conversation ---------------------------------------------------------------
async def test_conversation_excludes_reasoning_and_new_chat_clears(
        sess: Session, provider_server: Any) -> None:
    provider_server.script(Reply(reasoning="secret thoughts", content="first answer"),
                           Reply(reasoning="more thoughts", content="second answer"))
    panel = ChatPanel(session=sess)
    await panel.send_async("one")
    await panel.send_async("two")
    assert panel.conversation == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "second answer"},
    ]
    sent = provider_server.requests[-1].json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert all("thoughts" not in str(m) for m in sent)
    msg(panel, {"type": "new"})
    assert panel.messages == [] and panel.conversation == []
    await panel.send_async("three")
    assert len(provider_server.requests[-1].json["messages"]) == 1


async def test_send_message_from_js_schedules_a_task(sess: Session, provider_server: Any) -> None:
    panel = ChatPanel(session=sess)
    msg(panel, {"type": "send", "text": "hello"})  # returns at once
    assert panel.busy and panel.streaming
    c = await panel.task  # type: ignore[misc]
    assert c.status == "complete" and panel.messages[-1]["html"]
    msg(panel, {"type": "send", "text": "   "})  # blank: nothing happens
    assert not panel.busy and len(panel.messages) == 2


@pytest.mark.usefixtures("no_provider_env")
async def test_missing_provider_shows_an_error_message() -> None:
    panel = ChatPanel(session=Session())
    c = await panel.send_async("hi")
    bot = panel.messages[-1]
    assert c.status == "error" and bot["status"] == "error" and bot["error"]
    assert panel.streaming is False


def test_view_assets_carry_the_class_names_tests_select() -> None:
    from qwq_magic.widgets.chat import _static

    js = _static("panel.js").read_text(encoding="utf-8")
    css = _static("panel.css").read_text(encoding="utf-8")
    assert "export default" in str(ChatPanel._esm)
    for cls in ("qwq-panel", "qwq-msg", "qwq-reasoning", "qwq-answer", "qwq-footer", "qwq-input",
                "qwq-send", "qwq-stop", "qwq-new", "qwq-control", "qwq-status"):
        assert cls in js and f".{cls}" in css, cls
    assert "innerHTML = msg.html" in js and js.count("innerHTML =") == 1  # only Python's HTML


def test_params_panel_presets_and_switches(provider_server: Any) -> None:
    s = Session()
    s.use("aimlapi", model="alibaba/qwen3-32b", **provider_server.client_kwargs("aimlapi"))
    pp = ParamsPanel(session=s)
    pp.widget  # noqa: B018
    assert "top_k" not in pp.resets  # unsupported: disabled, nothing to reset
    assert pp.inputs["top_k"].disabled
    pp.inputs["enable_thinking"].value = True
    assert s.params.enable_thinking is True and s.params.sources["enable_thinking"] == "slider"
    buttons = {b.description: b for b in pp.widget.children[1].children}
    buttons["QwQ recommended"].click()
    assert (s.params.temperature, s.params.top_p, s.params.top_k) == (0.6, 0.95, None)
    assert pp.inputs["temperature"].value == pytest.approx(0.6)
    buttons["↺ all defaults"].click()
    assert s.params.as_dict() == {}
    pp.close()


@pytest.mark.usefixtures("no_provider_env")
def test_label_says_when_no_provider_is_configured() -> None:
    panel = ChatPanel(session=Session())
    assert "no provider configured" in panel.provider_label
    assert panel.controls  # the generic table still draws


async def test_new_chat_while_streaming_stops_and_stays_empty(
        sess: Session, provider_server: Any) -> None:
    provider_server.script(Reply.long(2000, content="late", pace=0.005))
    panel = ChatPanel(session=sess)
    task = panel.send("long one")
    assert task is not None
    await asyncio.sleep(0.2)
    assert panel.live["index"] == 1 and panel.live["message"]["reasoning"]
    assert panel.messages[1]["reasoning"] == ""  # the placeholder, while live streams
    msg(panel, {"type": "new"})
    assert panel.live == {}
    c = await task
    assert c.status == "stopped"
    assert panel.messages == [] and panel.conversation == [] and not panel.streaming
    assert panel.live == {}  # the stopped reply from the old chat draws nothing
    assert panel.last is c  # still in history and session.last
