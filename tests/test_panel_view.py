"""JS tests of the chat panel's view (``qwq_magic/widgets/static/panel.js``) in chromium,
without Jupyter or a kernel.

The ESM is imported as is by a small page (served through Playwright's request routing, no
network) and its ``render({model, el})`` gets a fake anywidget model: ``get``/``set`` (``set``
fires ``change:NAME`` like Backbone), ``on``/``off``, ``save_changes`` and ``send`` (recorded in
``model.sent``), and ``setAll`` (several traits from one comm message: all set, then one
``change:NAME`` per trait in the given order). The control specs come from Python (``controls_for``) so the view sees the
same shapes the widget syncs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from browser_support import REPO, artifact, launch_browser
from playwright.sync_api import expect, sync_playwright

from qwq_magic.completion import Completion
from qwq_magic.events import ContentDelta, Finish, ReasoningDelta
from qwq_magic.widgets import controls_for
from qwq_magic.widgets.chat import assistant_message
from qwq_magic.widgets.params import presets_for

pytestmark = pytest.mark.browser

ORIGIN = "http://qwq-view.test"
EVIL = '<img src=x onerror="window.__pwned=1"> <script>window.__pwned=2</script>'

HARNESS = """<!doctype html>
<html><head><meta charset="utf-8"><link rel="stylesheet" href="panel.css"></head>
<body><div id="root"></div>
<script type="module">
import panel from "./panel.js";

class FakeModel {
  constructor(state) { this.state = {...state}; this.handlers = {}; this.sent = []; this.saved = 0; }
  get(name) { return this.state[name]; }
  set(name, value) {
    this.state[name] = value;
    for (const cb of [...(this.handlers[`change:${name}`] || [])]) cb();
  }
  setAll(pairs) {
    for (const [name, value] of pairs) this.state[name] = value;
    for (const [name] of pairs) {
      for (const cb of [...(this.handlers[`change:${name}`] || [])]) cb();
    }
  }
  save_changes() { this.saved += 1; }
  on(event, cb) { (this.handlers[event] ||= []).push(cb); }
  off(event, cb) {
    const list = this.handlers[event] || [];
    this.handlers[event] = cb ? list.filter((x) => x !== cb) : [];
  }
  send(msg) { this.sent.push(msg); }
  listeners() { return Object.values(this.handlers).reduce((n, l) => n + l.length, 0); }
}

window.mount = (state) => {
  const el = document.getElementById("root");
  el.replaceChildren();
  window.model = new FakeModel(state);
  window.cleanup = panel.render({ model: window.model, el });
  return true;
};
window.harnessReady = true;
</script></body></html>"""

CONTROLS = controls_for("openai", "qwq")
PRESETS = presets_for(CONTROLS)


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "text": text}


def assistant(**kw: Any) -> dict[str, Any]:
    msg = {"role": "assistant", "text": "", "html": "", "reasoning": "", "thinking": False,
           "summary": "", "footer": "", "status": "complete", "error": "", "truncated": False}
    msg.update(kw)
    if "notice" not in kw:  # the status line as Python words it (the view never words one)
        msg["notice"], msg["notice_kind"] = worded(msg)
    return msg


def worded(msg: dict[str, Any]) -> tuple[str, str]:
    """(notice, notice_kind) that ``assistant_message`` gives a reply in this state."""
    c = Completion(model="qwq")
    if msg["reasoning"]:
        c.add(ReasoningDelta(msg["reasoning"]))
    if msg["html"]:
        c.add(ContentDelta("answer"))
    if msg["truncated"]:
        c.add(Finish("length"))
    if msg["status"] != "streaming":
        c.finish(msg["status"], RuntimeError(msg["error"]) if msg["error"] else None)
    out = assistant_message(c, msg["status"] != "streaming")
    return out["notice"], out["notice_kind"]


def done(n: int) -> dict[str, Any]:
    return assistant(html=f"<p>answer <strong>{n}</strong></p>", reasoning=f"thinking {n}",
                     summary="Thought for 1.0 s · 3 tokens", footer="3 tokens")


def conversation(n: int) -> list[dict[str, Any]]:
    """``n`` finished turns: user, assistant, user, assistant, …"""
    out: list[dict[str, Any]] = []
    for i in range(n):
        out += [user(f"question {i}"), done(i)]
    return out


# -- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def context() -> Iterator[Any]:
    files = {
        "/index.html": (HARNESS, "text/html"),
        "/panel.js": ((REPO / "qwq_magic" / "widgets" / "static" / "panel.js").read_text(), "text/javascript"),
        "/panel.css": ((REPO / "qwq_magic" / "widgets" / "static" / "panel.css").read_text(), "text/css"),
    }

    def serve(route: Any) -> None:
        path = route.request.url[len(ORIGIN):].split("?")[0]
        if path in files:
            body, ctype = files[path]
            route.fulfill(status=200, body=body, content_type=ctype)
        else:
            route.fulfill(status=404, body="not found")

    with sync_playwright() as pw:
        browser = launch_browser(pw)
        ctx = browser.new_context(viewport={"width": 900, "height": 800})
        ctx.route(f"{ORIGIN}/**", serve)
        try:
            yield ctx
        finally:
            browser.close()


@pytest.fixture
def page(context: Any) -> Iterator[Any]:
    page = context.new_page()
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{ORIGIN}/index.html")
    page.wait_for_function("() => window.harnessReady === true", timeout=10_000)
    yield page
    assert errors == [], errors
    assert dialogs == [], dialogs
    page.close()


def mount(page: Any, **state: Any) -> Any:
    full = {"messages": [], "live": {}, "streaming": False, "provider_label": "openai · qwq",
            "controls": CONTROLS, "values": {}, "presets": PRESETS, "notice": ""}
    full.update(state)
    page.evaluate("(state) => window.mount(state)", full)
    return page.locator(".qwq-panel")


def put(page: Any, name: str, value: Any) -> None:
    """What a sync from the kernel does: set the trait, fire ``change:name``."""
    page.evaluate("([name, value]) => window.model.set(name, value)", [name, value])


def put_all(page: Any, *pairs: tuple[str, Any]) -> None:
    """One comm message carrying several traits: all set first, then their change events."""
    page.evaluate("(pairs) => window.model.setAll(pairs)", [list(p) for p in pairs])


def live(index: int, **kw: Any) -> dict[str, Any]:
    return {"index": index, "message": assistant(status="streaming", **kw)}


def sent(page: Any) -> list[dict[str, Any]]:
    return list(page.evaluate("() => window.model.sent"))


def tick(page: Any) -> None:
    """Let queued events run (``<details>`` fires ``toggle`` asynchronously)."""
    page.evaluate("() => new Promise((r) => setTimeout(r, 0))")


# -- rendering -------------------------------------------------------------------------------
def test_renders_every_message_in_order(page: Any) -> None:
    panel = mount(page, messages=conversation(3))
    msgs = panel.locator(".qwq-messages > .qwq-msg")
    expect(msgs).to_have_count(6)
    assert panel.locator(".qwq-msg.user .qwq-user-text").all_text_contents() == [
        "question 0", "question 1", "question 2"]
    assert panel.locator(".qwq-msg.assistant .qwq-answer strong").all_text_contents() == [
        "0", "1", "2"]
    expect(panel.locator(".qwq-msg.assistant .qwq-footer").first).to_have_text("3 tokens")
    expect(panel.locator(".qwq-provider")).to_have_text("openai · qwq")
    expect(panel.locator(".qwq-messages")).not_to_have_class("qwq-messages empty")
    page.screenshot(path=artifact("view-conversation.png"))

    put(page, "messages", [])  # New chat
    expect(msgs).to_have_count(0)
    expect(panel.locator(".qwq-messages")).to_have_class("qwq-messages empty")


def test_updating_the_last_message_keeps_the_other_nodes(page: Any) -> None:
    panel = mount(page, messages=[*conversation(2), user("q"), assistant(status="streaming")])
    # tag every node, and a node inside an older answer (re-rendered HTML would lose it)
    page.evaluate("""() => {
        document.querySelectorAll('.qwq-msg').forEach((el, i) => { el.__tag = i; });
        document.querySelector('.qwq-msg.assistant .qwq-answer strong').__tag = 'inner';
        window.__before = [...document.querySelectorAll('.qwq-msg')];
    }""")
    grown = [*conversation(2), user("q")]
    for n in range(1, 6):
        put(page, "messages", [*grown, assistant(status="streaming", reasoning="r" * n,
                                                 thinking=True, summary=f"Thinking… {n}")])
    put(page, "messages", [*grown, assistant(html="<p>final <em>answer</em></p>",
                                             reasoning="rrrrr", summary="Thought for 1 s")])
    same = page.evaluate("""() => {
        const now = [...document.querySelectorAll('.qwq-msg')];
        return {
            count: now.length,
            identical: now.every((el, i) => el === window.__before[i] && el.__tag === i),
            inner: document.querySelector('.qwq-msg.assistant .qwq-answer strong').__tag,
        };
    }""")
    assert same == {"count": 6, "identical": True, "inner": "inner"}
    expect(panel.locator(".qwq-msg.assistant").last.locator(".qwq-answer em")).to_have_text(
        "answer")

    # appending a turn keeps the existing nodes too
    put(page, "messages", [*grown, done(9), user("next"), assistant(status="streaming")])
    kept = page.evaluate("""() => {
        const now = [...document.querySelectorAll('.qwq-msg')];
        return now.length === 8 && window.__before.every((el, i) => now[i] === el);
    }""")
    assert kept
    expect(panel.locator(".qwq-msg").last.locator(".qwq-status")).to_have_text(
        re.compile(r"^Waiting for the model…"))


def test_a_changed_older_message_is_redrawn(page: Any) -> None:
    panel = mount(page, messages=conversation(2))
    msgs = conversation(2)
    msgs[1] = assistant(html="<p>rewritten</p>", reasoning="thinking 0", summary="s")
    put(page, "messages", msgs)
    expect(panel.locator(".qwq-msg.assistant").first.locator(".qwq-answer")).to_have_text(
        "rewritten")
    # a different list (another role at the same place) replaces the nodes
    put(page, "messages", [assistant(html="<p>only</p>")])
    expect(panel.locator(".qwq-msg")).to_have_count(1)
    expect(panel.locator(".qwq-msg.assistant .qwq-answer")).to_have_text("only")


def test_html_is_inserted_but_reasoning_and_user_text_are_text(page: Any) -> None:
    panel = mount(page, messages=[
        user(f"look: {EVIL}"),
        assistant(html="<p><strong>safe</strong> answer</p>", reasoning=f"hmm {EVIL}",
                  summary=f"Thought {EVIL}", footer=f"foot {EVIL}", status="error",
                  error=f"bad {EVIL}"),
    ])
    page.wait_for_timeout(200)  # an onerror handler would have run by now
    expect(panel.locator(".qwq-user-text")).to_have_text(f"look: {EVIL}")
    expect(panel.locator(".qwq-reasoning-body")).to_have_text(f"hmm {EVIL}")
    expect(panel.locator(".qwq-summary")).to_have_text(f"Thought {EVIL}")
    expect(panel.locator(".qwq-footer")).to_have_text(f"foot {EVIL}")
    expect(panel.locator(".qwq-status")).to_have_text(f"⚠ bad {EVIL}")
    expect(panel.locator(".qwq-answer strong")).to_have_text("safe")
    assert page.evaluate("() => document.querySelectorAll('#root img, #root script').length") == 0
    assert page.evaluate("() => typeof window.__pwned") == "undefined"
    # the provider label and the notice are text too
    put(page, "provider_label", f"p {EVIL}")
    put(page, "notice", f"n {EVIL}")
    expect(panel.locator(".qwq-provider")).to_have_text(f"p {EVIL}")
    expect(panel.locator(".qwq-notice")).to_have_text(f"n {EVIL}")
    assert page.evaluate("() => document.querySelectorAll('#root img, #root script').length") == 0


def test_status_lines(page: Any) -> None:
    panel = mount(page, messages=[user("q"), assistant(status="streaming")])
    status = panel.locator(".qwq-msg.assistant .qwq-status")
    expect(status).to_have_text(re.compile(r"^Waiting for the model… \d+\.\d s$"))
    cases = [
        (assistant(status="stopped", reasoning="part"), "⏹ stopped — partial output kept"),
        (assistant(status="interrupted", reasoning="p"), "⏹ interrupted — partial output kept"),
        (assistant(status="error", error="HTTP 500"), "⚠ HTTP 500"),
        (assistant(status="complete", reasoning="long", truncated=True),
         "Thinking used up max_tokens before an answer; raise max_tokens under Sampling "
         "(or lower the thinking budget) and ask again."),
        (assistant(status="complete", reasoning="r", html="<p>The ans</p>", truncated=True),
         "✂ The answer was cut off by max_tokens; raise max_tokens under Sampling and ask "
         "again."),
        (assistant(status="complete", notice="Python's words <b>x</b>", notice_kind="note"),
         "Python's words <b>x</b>"),
    ]
    for msg, text in cases:
        put(page, "messages", [user("q"), msg])
        expect(status).to_have_text(text)
        expect(panel.locator(".qwq-msg.assistant")).to_have_attribute("data-status",
                                                                      msg["status"])
    expect(status).not_to_have_class("qwq-status error")
    put(page, "messages", [user("q"), assistant(status="error", error="boom")])
    expect(status).to_have_class("qwq-status error")
    put(page, "messages", [user("q"), assistant(html="<p>ok</p>")])
    expect(status).to_be_hidden()


def test_provider_label_and_notice(page: Any) -> None:
    panel = mount(page, provider_label="")
    expect(panel.locator(".qwq-provider")).to_have_text("no provider configured")
    expect(panel.locator(".qwq-notice")).to_be_hidden()
    put(page, "notice", "A reply is still streaming: stop it first.")
    expect(panel.locator(".qwq-notice")).to_have_text("A reply is still streaming: stop it first.")
    put(page, "notice", "")
    expect(panel.locator(".qwq-notice")).to_be_hidden()


# -- input -----------------------------------------------------------------------------------
def test_enter_sends_and_shift_enter_makes_a_new_line(page: Any) -> None:
    panel = mount(page)
    box = panel.locator(".qwq-input")
    box.fill("first line")
    box.press("Shift+Enter")
    box.press_sequentially("second line")
    assert sent(page) == []
    expect(box).to_have_value("first line\nsecond line")
    box.press("Enter")
    assert sent(page) == [{"type": "send", "text": "first line\nsecond line"}]
    expect(box).to_have_value("")

    box.fill("   ")
    box.press("Enter")  # blank: nothing sent
    box.fill("via the button")
    panel.locator(".qwq-send").click()
    assert sent(page)[1:] == [{"type": "send", "text": "via the button"}]

    put(page, "streaming", True)  # while a reply streams, Enter keeps the text
    box.fill("too early")
    box.press("Enter")
    assert len(sent(page)) == 2
    expect(box).to_have_value("too early")


def test_keys_in_the_input_do_not_reach_the_page(page: Any) -> None:
    panel = mount(page)
    page.evaluate("() => { window.__keys = 0;"
                  " document.addEventListener('keydown', () => window.__keys++); }")
    panel.locator(".qwq-input").press_sequentially("ab")
    assert page.evaluate("() => window.__keys") == 0  # JupyterLab's shortcuts stay out


def test_stop_is_enabled_only_while_streaming(page: Any) -> None:
    panel = mount(page)
    stop, send = panel.locator(".qwq-stop"), panel.locator(".qwq-send")
    expect(stop).to_be_disabled()
    expect(send).to_be_enabled()
    put(page, "streaming", True)
    expect(stop).to_be_enabled()
    expect(send).to_be_disabled()
    expect(panel).to_have_class("qwq-panel streaming")
    stop.click()
    assert sent(page) == [{"type": "stop"}]
    put(page, "streaming", False)
    expect(stop).to_be_disabled()
    expect(send).to_be_enabled()
    panel.locator(".qwq-new").click()
    assert sent(page)[-1] == {"type": "new"}


# -- sampling controls -----------------------------------------------------------------------
def test_controls_send_param_messages(page: Any) -> None:
    panel = mount(page)
    panel.locator(".qwq-sampling > summary").click()
    rows = panel.locator(".qwq-control")
    expect(rows).to_have_count(len(CONTROLS))

    temp = panel.locator(".qwq-control[data-name=temperature]")
    # the generic preset documents no default: "server default", not an invented number
    expect(temp.locator(".qwq-readout")).to_have_text("server default")
    expect(temp.locator(".qwq-reset")).to_be_hidden()
    temp.locator("input").fill("1.3")
    expect(temp.locator(".qwq-readout")).to_have_text("1.30")
    assert sent(page)[-1] == {"type": "param", "name": "temperature", "value": 1.3}

    panel.locator(".qwq-control[data-name=top_k] input").fill("40")
    assert sent(page)[-1] == {"type": "param", "name": "top_k", "value": 40}
    panel.locator(".qwq-control[data-name=enable_thinking] input").check()
    assert sent(page)[-1] == {"type": "param", "name": "enable_thinking", "value": True}
    seed = panel.locator(".qwq-control[data-name=seed] input")
    expect(seed).to_have_attribute("type", "number")
    seed.fill("1234")
    seed.press("Tab")
    assert sent(page)[-1] == {"type": "param", "name": "seed", "value": 1234}
    stop_words = panel.locator(".qwq-control[data-name=stop] input")
    stop_words.fill("END, STOP")
    stop_words.press("Tab")
    assert sent(page)[-1] == {"type": "param", "name": "stop", "value": "END, STOP"}

    unsupported = panel.locator(".qwq-control[data-name=thinking_budget]")
    expect(unsupported).to_have_class("qwq-control unsupported")
    expect(unsupported.locator("input")).to_be_disabled()
    expect(unsupported.locator(".qwq-readout")).to_have_text("n/a")


def test_values_from_the_kernel_move_the_controls(page: Any) -> None:
    panel = mount(page)
    panel.locator(".qwq-sampling > summary").click()
    temp = panel.locator(".qwq-control[data-name=temperature]")
    put(page, "values", {"temperature": 0.25, "seed": 7, "stop": "END"})
    expect(temp.locator(".qwq-readout")).to_have_text("0.25")
    expect(temp.locator("input")).to_have_value("0.25")
    expect(temp).not_to_have_class("qwq-control unset")
    expect(panel.locator(".qwq-control[data-name=seed] input")).to_have_value("7")
    expect(panel.locator(".qwq-control[data-name=stop] input")).to_have_value("END")
    # ↺ default asks the kernel to unset; the kernel's answer moves the slider back
    temp.locator(".qwq-reset").click()
    assert sent(page)[-1] == {"type": "param", "name": "temperature", "value": None}
    put(page, "values", {"temperature": None})
    expect(temp.locator(".qwq-readout")).to_have_text("server default")
    expect(temp).to_have_class("qwq-control unset")


def test_presets_and_all_defaults(page: Any) -> None:
    panel = mount(page)
    panel.locator(".qwq-sampling > summary").click()
    names = panel.locator(".qwq-preset").all_text_contents()
    assert names == [*PRESETS, "all defaults"]
    panel.locator(".qwq-preset", has_text="QwQ recommended").click()
    panel.locator(".qwq-preset", has_text="all defaults").click()
    assert sent(page) == [{"type": "preset", "name": "QwQ recommended"},
                          {"type": "reset_params"}]
    # new controls (another provider) redraw the section
    put(page, "controls", CONTROLS[:2])
    expect(panel.locator(".qwq-control")).to_have_count(2)


# -- code blocks and reasoning ---------------------------------------------------------------
CODE_HTML = ('<p>two blocks</p><pre><code class="language-python">print(1)\n</code></pre>'
             '<pre><code>echo 2\n</code></pre>')


def test_one_copy_button_per_code_block(page: Any) -> None:
    panel = mount(page, messages=[user("q"), assistant(html=CODE_HTML)])
    answer = panel.locator(".qwq-answer")
    expect(answer.locator("pre > .qwq-copy")).to_have_count(2)
    put(page, "messages", [user("q"), assistant(html=CODE_HTML + "<pre><code>three\n</code></pre>",
                                                footer="done")])
    expect(answer.locator("pre > .qwq-copy")).to_have_count(3)
    put(page, "messages", [user("q"), assistant(html=CODE_HTML + "<pre><code>three\n</code></pre>",
                                                footer="done again")])
    expect(answer.locator("pre > .qwq-copy")).to_have_count(3)  # no duplicates on redraw
    button = answer.locator("pre > .qwq-copy").first
    button.click()
    expect(button).to_have_text("copied")
    expect(button).to_have_text("copy", timeout=3_000)


def test_reasoning_is_open_while_thinking_and_folds_after(page: Any) -> None:
    def turn(**kw: Any) -> list[dict[str, Any]]:
        return [user("q"), assistant(**kw)]

    panel = mount(page, messages=turn(status="streaming"))
    details = panel.locator(".qwq-reasoning")
    expect(details).to_be_hidden()  # no reasoning yet
    put(page, "messages", turn(status="streaming", reasoning="Let me", thinking=True,
                               summary="Thinking… 2 tokens"))
    expect(details).to_be_visible()
    expect(details).to_have_attribute("open", "")
    expect(panel.locator(".qwq-summary")).to_have_text("Thinking… 2 tokens")
    put(page, "messages", turn(status="streaming", reasoning="Let me see", thinking=True,
                               summary="Thinking… 3 tokens"))
    expect(details).to_have_attribute("open", "")
    # the answer starts: folded
    put(page, "messages", turn(status="streaming", reasoning="Let me see", html="<p>A</p>",
                               summary="Thought for 1.0 s"))
    expect(details).not_to_have_attribute("open", "")
    put(page, "messages", turn(reasoning="Let me see", html="<p>A.</p>", footer="5 tokens",
                               summary="Thought for 1.0 s"))
    expect(details).not_to_have_attribute("open", "")
    expect(panel.locator(".qwq-summary")).to_have_text("Thought for 1.0 s")


def test_the_users_toggle_survives_updates(page: Any) -> None:
    def turn(**kw: Any) -> list[dict[str, Any]]:
        return [user("q"), assistant(**kw)]

    panel = mount(page, messages=turn(status="streaming", reasoning="a", thinking=True,
                                      summary="Thinking…"))
    details, summary = panel.locator(".qwq-reasoning"), panel.locator(".qwq-summary")
    expect(details).to_have_attribute("open", "")
    tick(page)
    summary.click()  # the user closes it while the model thinks
    tick(page)
    for n in range(2, 5):
        put(page, "messages", turn(status="streaming", reasoning="a" * n, thinking=True,
                                   summary=f"Thinking… {n}"))
        expect(details).not_to_have_attribute("open", "")
    # thinking ends: folded (still closed); then the user opens it to read
    put(page, "messages", turn(status="streaming", reasoning="aaaa", html="<p>x</p>",
                               summary="Thought"))
    tick(page)
    summary.click()
    tick(page)
    expect(details).to_have_attribute("open", "")
    for footer in ("", "1 token", "2 tokens"):
        put(page, "messages", turn(reasoning="aaaa", html="<p>x y</p>", footer=footer,
                                   summary="Thought"))
        expect(details).to_have_attribute("open", "")
    # the user's choice on an older message survives a new turn being appended
    put(page, "messages", [*turn(reasoning="aaaa", html="<p>x y</p>", footer="2 tokens",
                                 summary="Thought"),
                           user("again"), assistant(status="streaming")])
    expect(details.first).to_have_attribute("open", "")


def test_cleanup_removes_the_listeners(page: Any) -> None:
    panel = mount(page, messages=conversation(1))
    assert page.evaluate("() => window.model.listeners()") > 0
    page.evaluate("() => window.cleanup()")
    assert page.evaluate("() => window.model.listeners()") == 0
    put(page, "messages", conversation(3))
    expect(panel.locator(".qwq-msg")).to_have_count(2)  # no longer listening
    artifact("view-sent.json").write_text(json.dumps(sent(page)))


# -- the streaming message: `live` -------------------------------------------------------------
STREAMING = [*conversation(2), user("q"), assistant(status="streaming")]  # placeholder at 5


def tag_nodes(page: Any) -> None:
    """Tag every message node and a node inside an older answer; count DOM mutations outside
    the streaming (last) message."""
    page.evaluate("""() => {
        const nodes = [...document.querySelectorAll('.qwq-msg')];
        nodes.forEach((el, i) => { el.__tag = i; });
        document.querySelector('.qwq-msg.assistant .qwq-answer strong').__tag = 'inner';
        window.__before = nodes;
        window.__outside = [];
        const last = nodes[nodes.length - 1];
        window.__observer = new MutationObserver((records) => {
            for (const r of records) {
                if (!last.contains(r.target)) window.__outside.push(r.target.className || r.type);
            }
        });
        window.__observer.observe(document.querySelector('.qwq-messages'),
            {subtree: true, childList: true, characterData: true, attributes: true});
    }""")


def nodes_kept(page: Any) -> dict[str, Any]:
    tick(page)  # MutationObserver records are delivered asynchronously
    return dict(page.evaluate("""() => {
        const now = [...document.querySelectorAll('.qwq-msg')];
        return {
            count: now.length,
            identical: now.every((el, i) => el === window.__before[i] && el.__tag === i),
            inner: document.querySelector('.qwq-msg.assistant .qwq-answer strong').__tag,
            outside: window.__outside,
        };
    }"""))


def test_a_live_update_redraws_only_its_message(page: Any) -> None:
    panel = mount(page, messages=STREAMING)
    tag_nodes(page)
    last = panel.locator(".qwq-msg").last
    for n in range(1, 6):
        put(page, "live", live(5, reasoning="r" * n, thinking=True, summary=f"Thinking… {n}"))
        expect(last.locator(".qwq-reasoning-body")).to_have_text("r" * n)
        expect(last.locator(".qwq-summary")).to_have_text(f"Thinking… {n}")
    put(page, "live", live(5, reasoning="rrrrr", html="<p>partial <em>answer</em></p>",
                           summary="Thought for 1 s"))
    expect(last.locator(".qwq-answer em")).to_have_text("answer")
    expect(last.locator(".qwq-status")).to_be_hidden()
    assert nodes_kept(page) == {"count": 6, "identical": True, "inner": "inner", "outside": []}
    # messages itself was never touched: it still holds the placeholder
    assert page.evaluate("() => window.model.get('messages')[5].reasoning") == ""

    # a live state for a finished message (stale, or wrong) draws nothing
    put(page, "live", live(1, html="<p>hijack</p>"))
    put(page, "live", live(99, html="<p>out of range</p>"))
    put(page, "live", {"index": 5})
    put(page, "live", {})
    expect(panel.locator(".qwq-msg.assistant").first.locator(".qwq-answer")).to_have_text(
        "answer 0")
    expect(last.locator(".qwq-answer")).to_have_text("partial answer")
    assert nodes_kept(page)["outside"] == []


def test_a_dropped_live_update_heals_on_the_next(page: Any) -> None:
    panel = mount(page, messages=[user("q"), assistant(status="streaming")])
    bot = panel.locator(".qwq-msg.assistant")
    expect(bot.locator(".qwq-status")).to_have_text(re.compile(r"^Waiting for the model…"))
    put(page, "live", live(1, reasoning="a", thinking=True, summary="Thinking… 1"))
    expect(bot.locator(".qwq-reasoning")).to_have_attribute("open", "")
    # update 2 (reasoning "a b", thinking) never arrives; update 3 carries the whole state
    put(page, "live", live(1, reasoning="a b c", html="<p>A</p>", summary="Thought for 1 s"))
    expect(bot.locator(".qwq-reasoning-body")).to_have_text("a b c")
    expect(bot.locator(".qwq-summary")).to_have_text("Thought for 1 s")
    expect(bot.locator(".qwq-answer")).to_have_text("A")
    expect(bot.locator(".qwq-reasoning")).not_to_have_attribute("open", "")  # thinking ended
    expect(bot.locator(".qwq-status")).to_be_hidden()
    expect(bot).to_have_class("qwq-msg assistant streaming")

    # a view opened mid-stream draws the live state at once, not the placeholder
    panel = mount(page, messages=[user("q"), assistant(status="streaming")],
                  live=live(1, reasoning="midway", thinking=True, summary="Thinking… 9"))
    bot = panel.locator(".qwq-msg.assistant")
    expect(bot.locator(".qwq-reasoning-body")).to_have_text("midway")
    expect(bot.locator(".qwq-reasoning")).to_have_attribute("open", "")
    expect(bot.locator(".qwq-status")).to_be_hidden()


@pytest.mark.parametrize("first", ["messages", "live"])
def test_the_final_messages_replace_the_live_state(page: Any, first: str) -> None:
    panel = mount(page, messages=STREAMING)
    tag_nodes(page)
    last = panel.locator(".qwq-msg").last
    put(page, "live", live(5, reasoning="…" + "x" * 40, html="<p>streamed</p>",
                           summary="Thinking… 40"))
    expect(last.locator(".qwq-answer")).to_have_text("streamed")
    final = [*STREAMING[:5], assistant(reasoning="x" * 5000, html="<p>final <b>answer</b></p>",
                                       summary="Thought for 2 s", footer="5,000 tokens")]
    # one comm message with both traits, its change events in either order
    pairs = [("messages", final), ("live", {})]
    put_all(page, *(pairs if first == "messages" else pairs[::-1]))
    expect(last.locator(".qwq-answer")).to_have_text("final answer")
    expect(last.locator(".qwq-footer")).to_have_text("5,000 tokens")
    expect(last).to_have_attribute("data-status", "complete")
    expect(last).to_have_class("qwq-msg assistant")  # no longer streaming
    assert len(last.locator(".qwq-reasoning-body").text_content() or "") == 5000
    assert nodes_kept(page) == {"count": 6, "identical": True, "inner": "inner", "outside": []}

    # a live state arriving after the final messages (stale) does not draw over it
    put(page, "live", live(5, reasoning="stale", html="<p>stale</p>"))
    expect(last.locator(".qwq-answer")).to_have_text("final answer")
    expect(last.locator(".qwq-footer")).to_have_text("5,000 tokens")

    # the final messages wins even when the live reset never arrives
    panel = mount(page, messages=STREAMING)
    put(page, "live", live(5, reasoning="r", html="<p>streamed</p>"))
    put(page, "messages", final)
    last = panel.locator(".qwq-msg").last
    expect(last.locator(".qwq-answer")).to_have_text("final answer")
    expect(last).to_have_attribute("data-status", "complete")


def test_the_users_toggle_survives_live_updates(page: Any) -> None:
    panel = mount(page, messages=[user("q"), assistant(status="streaming")])
    details, summary = panel.locator(".qwq-reasoning"), panel.locator(".qwq-summary")
    put(page, "live", live(1, reasoning="a", thinking=True, summary="Thinking…"))
    expect(details).to_have_attribute("open", "")
    tick(page)
    summary.click()  # the user closes it while the model thinks
    tick(page)
    for n in range(2, 5):
        put(page, "live", live(1, reasoning="a" * n, thinking=True, summary=f"Thinking… {n}"))
        expect(details).not_to_have_attribute("open", "")
    # thinking ends: folded; then the user opens it to read while the answer streams
    put(page, "live", live(1, reasoning="aaaa", html="<p>x</p>", summary="Thought"))
    tick(page)
    summary.click()
    tick(page)
    expect(details).to_have_attribute("open", "")
    put(page, "live", live(1, reasoning="aaaa", html="<p>x y</p>", summary="Thought"))
    expect(details).to_have_attribute("open", "")
    # the reply ends (final messages + live reset): still open
    final = [user("q"), assistant(reasoning="aaaa", html="<p>x y.</p>", footer="4 tokens",
                                  summary="Thought")]
    put_all(page, ("live", {}), ("messages", final))
    expect(panel.locator(".qwq-answer")).to_have_text("x y.")
    expect(details).to_have_attribute("open", "")
    # a new turn starts and streams: the older message keeps the user's choice
    put(page, "messages", [*final, user("again"), assistant(status="streaming")])
    put(page, "live", live(3, reasoning="b", thinking=True, summary="Thinking…"))
    expect(details.first).to_have_attribute("open", "")
    expect(details.last).to_have_attribute("open", "")


def test_arrow_keys_move_a_focused_slider_and_continue_is_offered_when_cut(page: Any) -> None:
    panel = mount(page)
    panel.locator(".qwq-sampling > summary").click()
    temp = panel.locator(".qwq-control[data-name=temperature] input")
    temp.focus()
    before = float(temp.input_value())
    page.keyboard.press("ArrowRight")
    assert float(temp.input_value()) > before
    cut = {"role": "assistant", "text": "", "html": "<p>The answer</p>", "reasoning": "r",
           "thinking": False, "summary": "Thought for 1.0 s", "footer": "f", "status": "complete",
           "notice": "✂ cut off", "notice_kind": "warn", "error": "", "truncated": False,
           "can_continue": True}
    put(page, "messages", [{"role": "user", "text": "q"}, cut])
    button = panel.locator(".qwq-continue")
    expect(button).to_be_visible()
    button.click()
    assert sent(page)[-1] == {"type": "continue"}
    put(page, "messages", [{"role": "user", "text": "q"}, {**cut, "can_continue": False}])
    expect(button).to_be_hidden()

