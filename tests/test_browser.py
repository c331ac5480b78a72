"""Real-browser end-to-end tests: JupyterLab in Debian's chromium, driven by Playwright.

One JupyterLab (and one kernel) per module. The local provider server runs in this pytest
process (a thread), so a test scripts the replies and reads the requests the kernel made; the
kernel reaches it over loopback. Each test starts from an empty notebook whose first cell
points ``qm.session`` at the server and unsets every sampling parameter.

The Notebook 7 tests open their own notebook (own page, own kernel) in Notebook 7, served by
the same server at ``/notebooks/<path>``.

Screenshots of each step go to ``test-artifacts/browser/``; the README's pictures to
``docs/img/panel.png`` and ``docs/img/magic.png``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from browser_support import (
    JupyterLab,
    Notebook,
    artifact,
    docs_screenshot,
    save_console,
)
from playwright.sync_api import expect

from qwq_magic.testing import ProviderServer, Reply

pytestmark = pytest.mark.browser

QUESTION = "Explain recursion in one paragraph, with a Python example."
REASONING = (
    "The user wants a short explanation of recursion. A recursive function solves a problem by "
    "calling itself on a smaller piece of the same problem, and it needs a base case so the "
    "calls stop. Factorial is the classic example: n! = n × (n − 1)!, and 0! = 1! = 1. "
    "I'll give one clear paragraph and a tiny function with a comment on the base case."
)
ANSWER = (
    "**Recursion** is when a function solves a problem by calling *itself* on a smaller "
    "version of the same problem, until it reaches a **base case** it can answer directly. "
    "Each call waits for the one below it, and the results combine on the way back up.\n\n"
    "```python\n"
    "def factorial(n: int) -> int:\n"
    "    if n <= 1:  # base case: stop here\n"
    "        return 1\n"
    "    return n * factorial(n - 1)\n"
    "\n"
    "print(factorial(5))  # 120\n"
    "```\n\n"
    "Without the base case the calls would never end (Python stops them with a "
    "`RecursionError`)."
)
CODE = ANSWER.split("```python\n")[1].split("```")[0]

EVIL_USER = "<img src=x onerror=alert(1)> <script>window.__pwned=1</script> hello"
EVIL_REASONING = ('Thinking about <img src=x onerror="window.__pwned=2"> and '
                  "<script>window.__pwned=3</script> while reasoning.")
EVIL_ANSWER = ('Here: <img src=x onerror="window.__pwned=2"> and '
               "<script>window.__pwned=3</script> and "
               "[click me](javascript:window.__pwned=4) **done**")

# Records the last assistant message's state at every DOM mutation of the panel, and the time
# of a click on Stop: the test then checks the sequence (open while thinking, answer growing,
# folded after), independent of polling intervals.
RECORDER_JS = """(root) => {
    const rec = window.__qwqRec = {snaps: [], stopClick: null};
    const snap = () => {
        const msgs = root.querySelectorAll('.qwq-messages > .qwq-msg.assistant');
        const m = msgs[msgs.length - 1];
        if (!m) return;
        const d = m.querySelector('.qwq-reasoning');
        rec.snaps.push({
            t: performance.now(), n: msgs.length, open: d.open, hidden: d.hidden,
            summary: m.querySelector('.qwq-summary').textContent,
            reasoning: m.querySelector('.qwq-reasoning-body').textContent.length,
            answer: m.querySelector('.qwq-answer').textContent.length,
            status: m.dataset.status, statusText: m.querySelector('.qwq-status').textContent,
        });
    };
    new MutationObserver(snap).observe(root, {subtree: true, childList: true,
                                              characterData: true, attributes: true});
    root.querySelector('.qwq-stop').addEventListener(
        'click', () => { rec.stopClick = performance.now(); }, {capture: true});
}"""


# -- fixtures --------------------------------------------------------------------------------


class LabPage:
    """The shared page: the notebook, plus what the page said (console, dialogs)."""

    def __init__(self, page: Any, ui: str = "lab") -> None:
        self.page = page
        self.nb = Notebook(page, ui=ui)
        self.console: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))

        def on_dialog(d: Any) -> None:
            self.dialogs.append(f"{d.type}: {d.message}")
            d.dismiss()

        page.on("dialog", on_dialog)


@pytest.fixture(scope="module")
def session(browser: Any, lab: JupyterLab) -> Iterator[LabPage]:
    ctx = browser.new_context(viewport={"width": 1100, "height": 900}, device_scale_factor=2)
    ctx.grant_permissions(["clipboard-read", "clipboard-write"],
                          origin=f"http://127.0.0.1:{lab.port}")
    s = LabPage(ctx.new_page())
    s.nb.open(lab, lab.write_notebook("chat.ipynb", ["1 + 1"]))
    try:
        yield s
    finally:
        save_console(s.console)
        ctx.close()


def use_provider(nb: Notebook, srv: ProviderServer) -> None:
    """Empty the notebook; its first cell points the kernel's ``qm.session`` at ``srv``."""
    nb.clear()
    # a fresh session (new client, no parameters set) for every test; see
    # test_panel_survives_messages_on_two_event_loops for why a shared client matters
    nb.run_text(
        "import qwq_magic as qm\n"
        "get_ipython().extension_manager.load_extension('qwq_magic')\n"
        "qm.session.reset()\n"
        f"_ = qm.session.use('openai', **{srv.client_kwargs('vllm')!r})"
    )


@pytest.fixture
def nb(session: LabPage, srv: ProviderServer) -> Iterator[Notebook]:
    """An empty notebook whose kernel talks to the (reset) provider server."""
    srv.reset()
    session.dialogs.clear()
    use_provider(session.nb, srv)
    yield session.nb
    assert session.dialogs == [], f"a dialog opened: {session.dialogs}"


def open_panel(nb: Notebook) -> Any:
    """Run ``p = qm.ChatPanel(); p``; returns that cell's panel view."""
    cell = nb.run("p = qm.ChatPanel()\np")
    panel = cell.locator(".qwq-panel")
    expect(panel).to_be_visible(timeout=30_000)
    expect(panel.locator(".qwq-provider")).to_contain_text("127.0.0.1")
    # which kernel thread handles the panel's messages depends on whether the browser already
    # knows the widget subshell: wait for it, so every run takes the same path
    nb.wait_comm_subshells()
    panel.evaluate(RECORDER_JS)
    return panel


def ask(panel: Any, text: str) -> None:
    """Send ``text`` and wait until its assistant message exists, so a following
    ``wait_done`` waits for this turn and not the previous one (already complete)."""
    replies = panel.locator(".qwq-messages > .qwq-msg.assistant")
    before = replies.count()
    box = panel.locator(".qwq-input")
    box.fill(text)
    box.press("Enter")
    expect(replies).to_have_count(before + 1, timeout=10_000)


def snaps(page: Any, n: int) -> list[dict[str, Any]]:
    """Recorded states of the ``n``-th assistant message (1-based)."""
    return [s for s in page.evaluate("() => window.__qwqRec.snaps") if s["n"] == n]


def last_assistant(panel: Any) -> Any:
    return panel.locator(".qwq-messages > .qwq-msg.assistant").last


def wait_done(panel: Any, timeout: float = 20_000) -> Any:
    msg = last_assistant(panel)
    expect(msg).to_have_attribute("data-status", re.compile("complete|stopped|error"),
                                  timeout=timeout)
    expect(panel.locator(".qwq-stop")).to_be_disabled()
    return msg


# -- the chat panel --------------------------------------------------------------------------
def test_panel_streams_reasoning_then_answer_and_folds(nb: Notebook, srv: ProviderServer) -> None:
    page = nb.page
    srv.script(Reply(reasoning=REASONING, content=ANSWER, pace=0.02))
    panel = open_panel(nb)
    expect(panel.locator(".qwq-stop")).to_be_disabled()
    ask(panel, QUESTION)

    msg = last_assistant(panel)
    expect(panel.locator(".qwq-msg.user .qwq-user-text")).to_have_text(QUESTION)
    # while thinking: the reasoning block is open and the summary counts
    expect(msg.locator(".qwq-reasoning[open]")).to_be_visible(timeout=10_000)
    expect(msg.locator(".qwq-summary")).to_contain_text("Thinking")
    expect(panel.locator(".qwq-stop")).to_be_enabled()
    expect(panel.locator(".qwq-send")).to_be_disabled()
    page.screenshot(path=artifact("01-panel-thinking.png"))

    msg = wait_done(panel)
    expect(msg).to_have_attribute("data-status", "complete")
    details = msg.locator(".qwq-reasoning")
    expect(details).not_to_have_attribute("open", re.compile(".*"))
    expect(msg.locator(".qwq-summary")).to_contain_text("Thought for")
    expect(msg.locator(".qwq-reasoning-body")).to_have_text(REASONING)
    expect(msg.locator(".qwq-answer strong").first).to_have_text("Recursion")
    expect(msg.locator(".qwq-answer pre code")).to_contain_text("def factorial(n: int)")
    expect(msg.locator(".qwq-answer pre .qwq-copy")).to_have_count(1)
    expect(msg.locator(".qwq-footer")).to_contain_text("tokens")
    expect(panel.locator(".qwq-send")).to_be_enabled()

    # the recorded sequence: open while only reasoning arrived, the answer grew in several
    # steps while streaming, and the block folded once the answer started
    seq = snaps(page, 1)
    final_len = seq[-1]["answer"]
    assert any(s["open"] and s["reasoning"] > 0 and s["answer"] == 0 for s in seq), seq[:5]
    growing = {s["answer"] for s in seq if s["status"] == "streaming" and s["answer"] > 0}
    assert len(growing) >= 3 and min(growing) < final_len, sorted(growing)
    assert all(not s["open"] for s in seq if s["answer"] > 0), "open after the answer started"

    # the copy button copies the code block
    copy = msg.locator(".qwq-answer .qwq-copy")
    copy.click()
    expect(copy).to_have_text("copied")
    assert page.evaluate("() => navigator.clipboard.readText()").strip() == CODE.strip()

    # a user's click reopens the folded reasoning, and it stays open
    msg.locator(".qwq-summary").click()
    expect(details).to_have_attribute("open", "")

    body = srv.requests[-1].json
    assert body["stream"] is True and body["messages"][-1] == {"role": "user", "content": QUESTION}
    msg.locator(".qwq-summary").click()  # fold again for the picture
    expect(details).not_to_have_attribute("open", re.compile(".*"))

    # README picture: a finished conversation, folded reasoning, code block, Sampling open
    panel.locator(".qwq-sampling > summary").click()
    expect(panel.locator(".qwq-control[data-name=temperature]")).to_be_visible()
    docs_screenshot(panel, "panel.png")


def test_stop_mid_stream_keeps_the_partial_reply(nb: Notebook, srv: ProviderServer,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    page = nb.page
    long = Reply.long(4000, content="never shown", pace=0.003)
    srv.script(long)
    panel = open_panel(nb)
    ask(panel, "Think about this for a long time.")
    msg = last_assistant(panel)
    expect(msg.locator(".qwq-reasoning[open]")).to_be_visible(timeout=10_000)
    page.wait_for_function(
        "() => document.querySelector('.qwq-msg.assistant .qwq-reasoning-body')"
        ".textContent.length > 400", timeout=10_000)
    stop = panel.locator(".qwq-stop")
    expect(stop).to_be_enabled()
    t0 = time.monotonic()
    stop.click()
    expect(msg.locator(".qwq-status")).to_contain_text("stopped", ignore_case=True, timeout=5_000)
    wall = time.monotonic() - t0

    rec = page.evaluate("() => window.__qwqRec")
    stopped = [s["t"] for s in rec["snaps"] if s["status"] == "stopped"]
    assert rec["stopClick"] is not None and stopped, rec["snaps"][-3:]
    latency = (stopped[0] - rec["stopClick"]) / 1000
    with capsys.disabled():
        print(f"\n[browser] Stop latency: click -> 'Stopped' shown {latency * 1000:.0f} ms "
              f"(Playwright wall clock {wall * 1000:.0f} ms)")
    artifact("stop-latency.txt").write_text(f"{latency:.3f}\n")
    assert 0 <= latency < 5, latency

    expect(msg).to_have_attribute("data-status", "stopped")
    expect(stop).to_be_disabled()
    expect(panel.locator(".qwq-send")).to_be_enabled()
    partial = msg.locator(".qwq-reasoning-body").text_content() or ""
    assert partial.strip(), "the partial reasoning vanished"
    assert long.reasoning.startswith(partial) and len(partial) < len(long.reasoning)
    expect(msg.locator(".qwq-answer")).to_have_text("")
    expect(msg.locator(".qwq-summary")).not_to_contain_text("Thinking…")
    page.screenshot(path=artifact("03-panel-stopped.png"))

    # the kernel agrees; the stopped turn stays in the history the model gets, saying no
    # answer came (#12: a stopped turn must not vanish from the conversation)
    out = nb.run_text("print(p.last.status, len(p.last.reasoning) > 0, p.conversation)")
    assert "stopped True [{'role': 'user'" in out and "stopped before it answered" in out, out
    # the panel still works after a stop
    srv.script(Reply(reasoning="Short.", content="Back again.", pace=0.005))
    ask(panel, "still there?")
    msg = wait_done(panel)
    expect(msg.locator(".qwq-answer")).to_have_text("Back again.")
    assert srv.requests[-1].json["messages"][-1]["content"] == "still there?"


def test_panel_survives_messages_on_two_event_loops(nb: Notebook, srv: ProviderServer) -> None:
    panel = open_panel(nb)
    # this JupyterLab/ipykernel pair delivers comm messages on a subshell thread: the case
    # this test exists for (if that ever changes, the test still checks replies work)
    nb.wait_comm_subshells()
    # a slider move: handled on the main thread; the panel's reply to it is published under
    # the browser's subshell-tagged header, so ipykernel routes later messages to the subshell
    panel.locator(".qwq-sampling > summary").click()
    panel.locator(".qwq-control[data-name=temperature] input").fill("0.7")
    ask(panel, "from the browser")
    wait_done(panel)
    out = nb.run_text(
        "import asyncio\n"
        "print('browser reply on the main loop:', p.task.get_loop() is asyncio.get_running_loop())\n"
        "c = await p.send('from Python, on the main loop')\n"
        "print(c.status, c.error)")
    print(out)
    assert "complete None" in out, out


def test_redisplayed_panel_shows_the_same_conversation(nb: Notebook, srv: ProviderServer) -> None:
    """Re-displaying the panel shows the same conversation, and both views stay in sync."""
    srv.script(Reply(reasoning=REASONING, content=ANSWER, pace=0.001))
    first = open_panel(nb)
    ask(first, QUESTION)
    wait_done(first)
    msgs = first.locator(".qwq-messages > .qwq-msg")
    expect(msgs).to_have_count(2)
    answer = last_assistant(first).locator(".qwq-answer").inner_text()
    assert "Recursion" in answer

    # a new cell with just `p`: a second view of the same widget model
    second = nb.run("p").locator(".qwq-panel")
    expect(second).to_be_visible(timeout=30_000)
    expect(nb.page.locator(".qwq-panel")).to_have_count(2)
    expect(second.locator(".qwq-messages > .qwq-msg")).to_have_count(2)
    expect(second.locator(".qwq-msg.user .qwq-user-text")).to_have_text(QUESTION)
    again = last_assistant(second)
    expect(again).to_have_attribute("data-status", "complete")
    assert again.locator(".qwq-answer").inner_text() == answer
    expect(again.locator(".qwq-answer pre code")).to_contain_text("def factorial(n: int)")
    expect(again.locator(".qwq-reasoning")).not_to_have_attribute("open", re.compile(".*"))
    expect(again.locator(".qwq-summary")).to_contain_text("Thought for")
    expect(again.locator(".qwq-reasoning-body")).to_have_text(REASONING)
    expect(second.locator(".qwq-provider")).to_contain_text("127.0.0.1")
    second.scroll_into_view_if_needed()
    nb.page.screenshot(path=artifact("06-panel-redisplayed.png"))

    # sending from the second view: the kernel keeps the history, and the first view follows
    follow_up = "And without recursion?"
    srv.script(Reply(reasoning="Use a loop instead.", content="Use a **loop**.", pace=0.005))
    ask(second, follow_up)
    wait_done(second)
    expect(last_assistant(second).locator(".qwq-answer")).to_have_text("Use a loop.")
    for view in (first, second):
        expect(view.locator(".qwq-messages > .qwq-msg")).to_have_count(4)
        expect(view.locator(".qwq-msg.user .qwq-user-text").last).to_have_text(follow_up)
        expect(last_assistant(view)).to_have_attribute("data-status", "complete")
        expect(last_assistant(view).locator(".qwq-answer")).to_have_text("Use a loop.")
        expect(view.locator(".qwq-stop")).to_be_disabled()
        expect(view.locator(".qwq-send")).to_be_enabled()
    sent = srv.requests[-1].json["messages"]
    assert [m["role"] for m in sent[-3:]] == ["user", "assistant", "user"], sent
    assert sent[-3]["content"] == QUESTION and sent[-1]["content"] == follow_up


def test_slider_value_reaches_the_next_request(nb: Notebook, srv: ProviderServer) -> None:
    page = nb.page
    panel = open_panel(nb)
    panel.locator(".qwq-sampling > summary").click()
    row = panel.locator(".qwq-control[data-name=temperature]")
    expect(row).to_be_visible()
    expect(row.locator(".qwq-readout")).to_contain_text("default")
    row.locator("input").fill("1.3")  # sets the value, fires input and change
    expect(row.locator(".qwq-readout")).to_have_text("1.30")
    expect(row).not_to_have_class(re.compile(r"\bunset\b"))

    srv.script(Reply(reasoning="Warm.", content="Sampled hot.", pace=0.005))
    ask(panel, "Say something at temperature 1.3")
    wait_done(panel)
    assert srv.requests[-1].json["temperature"] == 1.3
    page.screenshot(path=artifact("04-slider.png"))

    # Python → slider: %qwq set moves the readout and the range input
    nb.run("%qwq set temperature=0.25")
    expect(row.locator(".qwq-readout")).to_have_text("0.25")
    expect(row.locator("input")).to_have_value("0.25")
    # ↺ default unsets it: the next request carries no temperature
    row.locator(".qwq-reset").click()
    expect(row.locator(".qwq-readout")).to_contain_text("default")
    srv.script(Reply(reasoning="Plain.", content="Default sampling.", pace=0.005))
    ask(panel, "And now with the provider's default?")
    wait_done(panel)
    assert "temperature" not in srv.requests[-1].json


def test_untrusted_text_stays_text_in_the_panel(nb: Notebook, srv: ProviderServer,
                                                session: LabPage) -> None:
    page = nb.page
    srv.script(Reply(reasoning=EVIL_REASONING, content=EVIL_ANSWER, pace=0.005))
    panel = open_panel(nb)
    ask(panel, EVIL_USER)
    msg = wait_done(panel)
    page.wait_for_timeout(300)  # an onerror would fire by now

    expect(panel.locator(".qwq-msg.user .qwq-user-text")).to_have_text(EVIL_USER)
    expect(msg.locator(".qwq-reasoning-body")).to_have_text(EVIL_REASONING)
    expect(msg.locator(".qwq-answer")).to_contain_text('<img src=x onerror="window.__pwned=2">')
    expect(msg.locator(".qwq-answer")).to_contain_text("<script>window.__pwned=3</script>")
    expect(msg.locator(".qwq-answer strong")).to_have_text("done")
    assert page.evaluate(
        "() => document.querySelectorAll('.qwq-panel img, .qwq-panel script').length") == 0
    assert page.evaluate(
        "() => document.querySelectorAll('.qwq-panel a[href^=\"javascript\"]').length") == 0
    assert page.evaluate("() => typeof window.__pwned") == "undefined"
    assert session.dialogs == []
    assert srv.requests[-1].json["messages"][-1]["content"] == EVIL_USER
    page.screenshot(path=artifact("05-panel-untrusted.png"))


# -- the magic -------------------------------------------------------------------------------
def check_magic_streams_and_folds(nb: Notebook, srv: ProviderServer) -> Any:
    """Run ``%%qwq`` in ``nb``: the reasoning block is open while thinking, then folds under
    the rendered answer, and its summary still toggles it. Returns the cell."""
    srv.script(Reply(reasoning=REASONING, content=ANSWER, pace=0.02))
    cell = nb.run(f"%%qwq\n{QUESTION}", wait=False)
    out = cell.locator(".jp-OutputArea")
    expect(out.locator("details.qwq-reasoning[open]")).to_be_visible(timeout=15_000)
    expect(out.locator("details.qwq-reasoning summary")).to_contain_text("Thinking")
    nb.wait_idle(30_000)
    expect(out.locator(".qwq-footer")).to_contain_text("tokens", timeout=10_000)
    details = out.locator("details.qwq-reasoning")
    expect(details).to_have_count(1)
    expect(details).not_to_have_attribute("open", re.compile(".*"))
    expect(details.locator("summary")).to_contain_text("Thought for")
    expect(out.locator(".qwq-answer strong").first).to_have_text("Recursion")
    expect(out.locator(".qwq-answer pre")).to_contain_text("def factorial(n: int)")
    assert srv.requests[-1].json["messages"][-1]["content"] == QUESTION
    details.locator("summary").click()
    expect(details).to_have_attribute("open", "")
    details.locator("summary").click()
    expect(details).not_to_have_attribute("open", re.compile(".*"))
    return cell


def test_magic_streams_and_folds_the_reasoning(nb: Notebook, srv: ProviderServer) -> None:
    page = nb.page
    cell = check_magic_streams_and_folds(nb, srv)

    page.evaluate("() => window.jupyterapp.shell.currentWidget.content.activeCellIndex = 0")
    docs_screenshot(cell, "magic.png")


def test_magic_keeps_untrusted_html_as_text(nb: Notebook, srv: ProviderServer,
                                            session: LabPage) -> None:
    page = nb.page
    srv.script(Reply(reasoning=EVIL_REASONING, content=EVIL_ANSWER, pace=0.002))
    cell = nb.run("%%qwq\nRepeat after me: <img src=x onerror=alert(1)> <script>alert(2)</script>")
    out = cell.locator(".jp-OutputArea")
    expect(out.locator(".qwq-footer")).to_be_visible(timeout=10_000)
    page.wait_for_timeout(300)
    expect(out.locator(".qwq-reasoning-text")).to_contain_text("<script>window.__pwned=3</script>")
    expect(out.locator(".qwq-answer")).to_contain_text('<img src=x onerror="window.__pwned=2">')
    expect(out.locator(".qwq-answer strong")).to_have_text("done")
    assert out.locator("img, script, a[href^='javascript']").count() == 0
    assert page.evaluate("() => typeof window.__pwned") == "undefined"
    assert session.dialogs == []
    cell.screenshot(path=artifact("07-magic-untrusted.png"))


# -- themes ----------------------------------------------------------------------------------
# WCAG contrast ratio of every visible element with its own text against the colour behind it
CONTRAST_JS = """(root) => {
    const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
    const lin = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    const lum = ([r, g, b]) => 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
    const behind = (el) => {
        for (let e = el; e; e = e.parentElement) {
            const c = rgb(getComputedStyle(e).backgroundColor);
            if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3);
        }
        return [255, 255, 255];
    };
    const out = {};
    for (const el of root.querySelectorAll('*')) {
        const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
        if (!own || el.closest('[hidden]') || !el.getClientRects().length) continue;
        if (el.matches('textarea, input')) continue;
        const a = lum(rgb(getComputedStyle(el).color)), b = lum(behind(el));
        const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
        const kind = el.closest('pre') ? 'code' : 'text';
        const key = `${kind}: ${el.textContent.trim().slice(0, 24)}`;
        out[key] = Math.min(out[key] ?? 99, Math.round(ratio * 100) / 100);
    }
    return out;
}"""


def _luminance(css_color: str) -> float:
    r, g, b = (int(x) for x in re.findall(r"\d+", css_color)[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


def unreadable(ratios: dict[str, float]) -> dict[str, float]:
    """Text under WCAG AA (4.5:1); highlighted code tokens under 3:1."""
    return {k: r for k, r in ratios.items() if r < (3.0 if k.startswith("code") else 4.5)}


@pytest.fixture
def dark_panel(nb: Notebook, srv: ProviderServer) -> Iterator[tuple[Any, str]]:
    """A finished conversation in the panel, shown in JupyterLab Dark; yields (panel, light bg)."""
    srv.script(Reply(reasoning=REASONING, content=ANSWER, pace=0.001))
    panel = open_panel(nb)
    ask(panel, QUESTION)
    wait_done(panel)
    light = panel.evaluate("(el) => getComputedStyle(el).backgroundColor")
    assert unreadable(panel.evaluate(CONTRAST_JS)) == {}, "hard to read in the light theme"
    try:
        nb.set_theme("JupyterLab Dark")
        nb.page.wait_for_function(
            "(before) => getComputedStyle(document.querySelector('.qwq-panel'))"
            ".backgroundColor !== before", arg=light, timeout=10_000)
        yield panel, light
    finally:
        nb.set_theme("JupyterLab Light")
    expect(panel).to_have_css("background-color", light)


def test_panel_follows_the_jupyterlab_theme(dark_panel: tuple[Any, str]) -> None:
    panel, light = dark_panel
    dark = panel.evaluate("(el) => getComputedStyle(el).backgroundColor")
    fg = panel.evaluate("(el) => getComputedStyle(el).color")
    artifact("theme-colors.json").write_text(json.dumps({"light": light, "dark": dark}))
    assert _luminance(light) > 0.8 and _luminance(dark) < 0.3, (light, dark)
    assert _luminance(fg) > 0.6, fg  # light text on the dark panel
    panel.page.mouse.move(0, 0)
    panel.screenshot(path=artifact("panel-dark.png"))


def test_panel_text_is_readable_in_the_dark_theme(dark_panel: tuple[Any, str]) -> None:
    panel, _light = dark_panel
    ratios = panel.evaluate(CONTRAST_JS)
    artifact("contrast-dark.json").write_text(json.dumps(ratios, indent=1))
    assert unreadable(ratios) == {}


# -- Notebook 7 ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nb7_session(browser: Any, lab: JupyterLab) -> Iterator[LabPage]:
    """A notebook open in Notebook 7 (own page, own kernel), served by the module's server."""
    assert lab.serves_notebook7(), (
        "Notebook 7 is not served next to JupyterLab: pip install 'notebook>=7'\n" + lab.log())
    ctx = browser.new_context(viewport={"width": 1100, "height": 900}, device_scale_factor=2)
    s = LabPage(ctx.new_page(), ui="notebook7")
    s.nb.open(lab, lab.write_notebook("notebook7.ipynb", ["1 + 1"]))
    assert s.nb.app_name() == "Jupyter Notebook"
    try:
        yield s
    finally:
        save_console(s.console, "console-notebook7.log")
        ctx.close()


@pytest.fixture
def nb7(nb7_session: LabPage, srv: ProviderServer) -> Iterator[Notebook]:
    srv.reset()
    nb7_session.dialogs.clear()
    use_provider(nb7_session.nb, srv)
    yield nb7_session.nb
    assert nb7_session.dialogs == [], f"a dialog opened: {nb7_session.dialogs}"


def test_notebook7_panel_streams_and_folds(nb7: Notebook, srv: ProviderServer) -> None:
    page = nb7.page
    assert "/notebooks/" in page.url
    srv.script(Reply(reasoning=REASONING, content=ANSWER, pace=0.02))
    panel = open_panel(nb7)
    ask(panel, QUESTION)

    msg = last_assistant(panel)
    expect(panel.locator(".qwq-msg.user .qwq-user-text")).to_have_text(QUESTION)
    expect(msg.locator(".qwq-reasoning[open]")).to_be_visible(timeout=10_000)
    expect(msg.locator(".qwq-summary")).to_contain_text("Thinking")
    expect(panel.locator(".qwq-stop")).to_be_enabled()

    msg = wait_done(panel)
    expect(msg).to_have_attribute("data-status", "complete")
    expect(msg.locator(".qwq-reasoning")).not_to_have_attribute("open", re.compile(".*"))
    expect(msg.locator(".qwq-summary")).to_contain_text("Thought for")
    expect(msg.locator(".qwq-reasoning-body")).to_have_text(REASONING)
    expect(msg.locator(".qwq-answer strong").first).to_have_text("Recursion")
    expect(msg.locator(".qwq-answer pre code")).to_contain_text("def factorial(n: int)")
    expect(msg.locator(".qwq-footer")).to_contain_text("tokens")
    # it streamed: the answer grew in several steps, and the reasoning folded once it started
    seq = snaps(page, 1)
    growing = {s["answer"] for s in seq if s["status"] == "streaming" and s["answer"] > 0}
    assert len(growing) >= 3, sorted(growing)
    assert any(s["open"] and s["answer"] == 0 for s in seq), seq[:5]
    assert all(not s["open"] for s in seq if s["answer"] > 0), "open after the answer started"
    assert srv.requests[-1].json["messages"][-1] == {"role": "user", "content": QUESTION}
    page.mouse.move(0, 0)
    page.screenshot(path=artifact("notebook7-panel.png"))


def test_notebook7_magic_streams_and_folds(nb7: Notebook, srv: ProviderServer) -> None:
    cell = check_magic_streams_and_folds(nb7, srv)
    cell.screenshot(path=artifact("notebook7-magic.png"))
