"""Rendering of completions: HTML/Markdown/plain bundles, escaping, incremental Markdown,
bounded live renders, throttled live display, terminal streaming."""

from __future__ import annotations

import contextlib
import io
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qwq_magic.completion import Completion
from qwq_magic.display import (
    TRUNCATED_MSG,
    LiveDisplay,
    TerminalStream,
    footer_text,
    render_bundle,
    render_markdown,
    render_markdown_full,
    summary_text,
)
from qwq_magic.events import ContentDelta, Finish, ReasoningDelta, ToolCallDelta, Usage

XSS = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>"]


def make(reasoning: str = "", content: str = "", **kw: object) -> Completion:
    c = Completion(provider="test", model="qwq-32b", **kw)  # type: ignore[arg-type]
    c.timings.start = time.perf_counter()
    if reasoning:
        c.add(ReasoningDelta(reasoning))
    if content:
        c.add(ContentDelta(content))
    return c


def outside_fences(md: str) -> str:
    """Markdown text minus fenced code blocks (which every renderer shows literally)."""
    return re.sub(r"^(`{3,})[^\n]*\n.*?^\1$", "", md, flags=re.S | re.M)


def details_tag(html: str) -> str:
    m = re.search(r"<details[^>]*>", html)
    assert m, html
    return m.group(0)


# -- reasoning block ---------------------------------------------------------------------------
def test_details_open_while_thinking_then_closed() -> None:
    c = make("Let me think about this.")
    html = render_bundle(c)["text/html"]
    tag = details_tag(html)
    assert 'class="qwq-reasoning"' in tag and " open" in tag
    assert "Thinking… 1 token · " in html
    assert "Let me think about this." in html
    assert 'class="qwq-reasoning-text"' in html and "white-space: pre-wrap" in html

    c.add(ReasoningDelta(" More."))
    assert "Thinking… 2 tokens" in summary_text(c)

    c.add(ContentDelta("The answer is 42."))
    html = render_bundle(c)["text/html"]
    assert " open" not in details_tag(html)
    assert "Thought for " in html and "2 tokens" in html
    assert "<p>The answer is 42.</p>" in html

    c.finish("complete")
    html = render_bundle(c)["text/html"]
    assert " open" not in details_tag(html)
    assert re.search(r"Thought for \d+\.\d s · 2 tokens", html)


def test_summary_uses_usage_reasoning_tokens_when_known() -> None:
    c = make("a", "b")
    c.add(Usage(prompt_tokens=5, completion_tokens=1300, reasoning_tokens=1234))
    c.finish()
    assert summary_text(c).endswith("1,234 tokens")


def test_closed_when_stream_ends_during_reasoning() -> None:
    c = make("thinking...")
    c.finish("interrupted")
    assert " open" not in details_tag(render_bundle(c)["text/html"])


def test_hide_reasoning() -> None:
    c = make("secret thoughts", "answer")
    b = render_bundle(c, hide_reasoning=True)
    assert "secret thoughts" not in b["text/html"]
    assert "<details" not in b["text/html"]
    assert "secret" not in b["text/markdown"] and "secret" not in b["text/plain"]
    assert "answer" in b["text/html"]


# -- untrusted output ----------------------------------------------------------------------------
@pytest.mark.parametrize("finished", [False, True])
@pytest.mark.parametrize("payload", XSS)
def test_html_in_content_and_reasoning_is_escaped(payload: str, finished: bool) -> None:
    c = make(f"thinking {payload} more", f"Answer {payload}\n\n- item {payload}\n")
    if finished:
        c.finish()
    b = render_bundle(c)
    html = b["text/html"]
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;" in html or "&lt;img" in html
    md = b["text/markdown"]
    assert "<script" not in md and "<img" not in md
    assert html.count("&lt;") >= 2  # both the reasoning and the answer


@pytest.mark.parametrize("payload", XSS)
def test_escaped_in_raw_preview_note_and_error(payload: str) -> None:
    c = make("r", payload)
    c.finish("error", RuntimeError(payload))
    for b in (render_bundle(c, raw=True, note=payload), render_bundle(c, preview=payload)):
        assert "<script" not in b["text/html"] and "<img" not in b["text/html"]
        md = outside_fences(b["text/markdown"])
        assert "<script" not in md and "<img" not in md
        assert "```" not in md


def test_markdown_mime_keeps_code_literal_but_escapes_prose() -> None:
    c = make("", "Use `a<b` here <b>bold</b>\n\n```html\n<div>x</div>\n```\n")
    md = render_bundle(c)["text/markdown"]
    assert "`a<b`" in md
    assert "&lt;b&gt;bold&lt;/b&gt;" in md
    assert "```html\n<div>x</div>\n```" in md


# -- answer rendering ----------------------------------------------------------------------------
def test_code_fence_is_highlighted_with_inline_styles() -> None:
    c = make("", "Here:\n\n```python\ndef f(x):\n    return x + 1\n```\n")
    html = render_bundle(c)["text/html"]
    assert re.search(r"<code[^>]*class=\"language-python\"", html)
    assert re.search(r'<span style="[^"]+">def</span>', html)


def test_unknown_language_falls_back_to_escaped_text() -> None:
    c = make("", "```nosuchlang\na < b && <tag>\n```\n")
    html = render_bundle(c)["text/html"]
    assert "a &lt; b &amp;&amp; &lt;tag&gt;" in html
    assert "<span" not in html.split('class="qwq-answer"')[1].split("</pre>")[0]


def test_raw_mode_gives_pre() -> None:
    c = make("", "# Title\n\n*not emphasised* <b>x</b>")
    html = render_bundle(c, raw=True)["text/html"]
    assert '<pre class="qwq-answer"' in html
    assert "# Title" in html and "*not emphasised*" in html and "&lt;b&gt;x" in html
    assert "<h1>" not in html and "<em>" not in html


def test_preview_is_shown_as_json_pre() -> None:
    c = make("", '{"a": [1, 2')
    html = render_bundle(c, preview='{\n  "a": [\n    1,\n    2')["text/html"]
    assert '<pre class="qwq-json"' in html and '"a": [' in html.replace("&quot;", '"')


def test_three_mime_types_present() -> None:
    c = make("hmm", "**yes**")
    c.finish()
    b = render_bundle(c)
    assert set(b) == {"text/html", "text/markdown", "text/plain"}
    assert b["text/html"].startswith('<div class="qwq-output"')
    assert "<strong>yes</strong>" in b["text/html"]
    assert b["text/markdown"].startswith("<details><summary>Thought for")
    assert "</details>" in b["text/markdown"] and "**yes**" in b["text/markdown"]
    assert b["text/plain"].startswith("[thought for ")
    assert "**yes**" in b["text/plain"]


def test_plain_while_thinking_shows_tail() -> None:
    c = make("x" * 1000 + "THE END")
    plain = render_bundle(c)["text/plain"]
    assert plain.startswith("[thinking] …x") and "THE END\nqwq-32b" in plain
    assert len(plain) < 600


def test_progress_line_while_waiting_and_hidden_thinking() -> None:
    c = make()
    b = render_bundle(c)
    assert "Waiting for the model…" in b["text/html"] and "Waiting" in b["text/plain"]
    c.add(ReasoningDelta("hidden"))
    b = render_bundle(c, hide_reasoning=True)
    assert "Thinking… 1 token" in b["text/html"] and "hidden" not in b["text/html"]
    c.add(ContentDelta("ok"))
    c.finish()
    b = render_bundle(c, hide_reasoning=True)
    assert "Thinking" not in b["text/html"] and "Waiting" not in b["text/html"]


def test_tool_calls_are_listed_escaped() -> None:
    c = make()
    c.add(ToolCallDelta(0, "call_1", "get_weather", '{"city": "<Paris>"'))
    c.add(ToolCallDelta(0, arguments="}"))
    c.finish()
    b = render_bundle(c)
    assert "get_weather" in b["text/html"] and "&lt;Paris&gt;" in b["text/html"]
    assert 'get_weather({"city": "<Paris>"})' in b["text/plain"]


# -- banners and footer ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        ("interrupted", None, "⏹ interrupted — partial output kept"),
        ("stopped", None, "⏹ stopped"),
        ("error", ConnectionError("server went away"), "⚠ server went away"),
    ],
)
def test_status_banners(status: str, error: BaseException | None, expected: str) -> None:
    c = make("r", "partial answ")
    c.finish(status, error)  # type: ignore[arg-type]
    b = render_bundle(c)
    assert expected in b["text/html"]
    assert expected in b["text/markdown"]
    assert expected in b["text/plain"]
    assert "partial answ" in b["text/html"]  # partial output kept


def test_no_banner_when_complete() -> None:
    c = make("r", "ok")
    c.finish()
    html = render_bundle(c)["text/html"]
    assert "⏹" not in html and "⚠" not in html


def test_truncated_reasoning_banner() -> None:
    c = make("still thinking about it")
    c.add(Finish("length"))
    c.finish()
    b = render_bundle(c)
    assert c.reasoning_truncated
    assert "raise --max-tokens (e.g. --max-tokens 4096)" in TRUNCATED_MSG
    for mime in ("text/html", "text/plain"):
        assert "Thinking used up max_tokens before an answer" in b[mime]


def test_note_and_replay_badge() -> None:
    c = make("", "ok", replayed=True)
    c.finish()
    b = render_bundle(c, note="saved to <out.json>")
    assert "saved to &lt;out.json&gt;" in b["text/html"]
    assert "↻ replay" in b["text/html"] and "qwq-replay" in b["text/html"]
    assert "↻ replay" in footer_text(c)


def test_footer_tokens_speed_ttft_cost() -> None:
    c = make("r", "answer", price_in=1.0, price_out=2.0)
    c.add(Usage(prompt_tokens=10, completion_tokens=20, total_tokens=30))
    c.timings.start = c.timings.first_token - 0.42  # type: ignore[operator]
    c.timings.end = c.timings.first_token + 2.0  # type: ignore[operator]
    c.finish()
    foot = footer_text(c)
    assert foot.startswith("qwq-32b · ")
    assert "10 → 20 tokens" in foot
    assert "10.0 tok/s" in foot
    assert "first token 0.42 s" in foot
    assert "≈$0.000050" in foot  # 10*1 + 20*2 per million, estimated from prices
    b = render_bundle(c)
    assert 'class="qwq-footer"' in b["text/html"] and "10 → 20 tokens" in b["text/html"]
    assert f"*{foot}*" in b["text/markdown"]
    assert b["text/plain"].rstrip().endswith(foot)


def test_footer_provider_cost_is_not_an_estimate_and_missing_parts_omitted() -> None:
    c = Completion(model="m")
    c.add(ContentDelta("x"))
    c.add(Usage(prompt_tokens=3, completion_tokens=4, cost_usd=0.000123))
    assert footer_text(c).endswith("$0.000123")
    assert "≈" not in footer_text(c)
    assert "first token" not in footer_text(c)  # no request start recorded
    bare = Completion()
    assert footer_text(bare) == ""
    assert 'class="qwq-footer"' not in render_bundle(bare)["text/html"]


# -- incremental Markdown --------------------------------------------------------------------------
ANSWER = """# Plan

First paragraph with *emphasis* and `code`.
It continues on a second line.

```python
def f(x):

    # a blank line above, inside the fence

    return x * 2
```

- item one
- item two

  continued item two

Inline ```x``` is a code span, not a fence.

1. first, with code:

   ```bash
   echo one

   echo two
   ```

2. second

3. third after a blank line

> a quote
> on two lines

| a | b |
|---|---|
| 1 | 2 |

~~~
tilde fence

~~~

    indented code

    still indented code

Final words <b>not bold</b>.
"""


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=200), st.data())
def test_incremental_markdown_equals_full_render(sizes: list[int], data: st.DataObject) -> None:
    key = object()  # a fresh cache slot per example
    pos = 0
    i = 0
    while pos < len(ANSWER):
        pos = min(len(ANSWER), pos + sizes[i % len(sizes)])
        i += 1
        prefix = ANSWER[:pos]
        if data.draw(st.booleans()) or pos == len(ANSWER):
            assert render_markdown(prefix, key=key) == render_markdown_full(prefix)


def test_incremental_markdown_through_render_bundle() -> None:
    c = make()
    for ch in ANSWER:
        c.add(ContentDelta(ch))
        if len(c.content_pieces) % 7 == 0:
            render_bundle(c)
    c.finish()
    html = render_bundle(c)["text/html"]
    assert render_markdown_full(ANSWER) in html


def test_incremental_markdown_renders_stable_blocks_once() -> None:
    from qwq_magic import display

    key = object()
    for n in range(0, len(ANSWER) + 1, 3):
        render_markdown(ANSWER[:n], key=key)
    st = display._STATES[key]
    assert len(st.html) >= 5  # many blocks were frozen along the way
    assert len(ANSWER) - st.stable < 60  # only the last block stays live
    assert "".join(st.html) == render_markdown_full(ANSWER[: st.stable])


def test_incremental_markdown_restarts_when_text_changes() -> None:
    key = object()
    assert render_markdown("one\n\ntwo\n\nthree", key=key) == render_markdown_full(
        "one\n\ntwo\n\nthree")
    other = "different\n\n```\nx\n\ny\n```\n"
    assert render_markdown(other, key=key) == render_markdown_full(other)


def test_reference_links_defined_later() -> None:
    text = "See [the docs][d].\n\nMore text.\n\n[d]: https://example.com\n"
    key = object()
    for n in range(1, len(text) + 1):
        assert render_markdown(text[:n], key=key) == render_markdown_full(text[:n])


# -- bounded live renders ----------------------------------------------------------------------------
def test_live_reasoning_is_bounded_but_final_is_complete() -> None:
    c = make()
    c.add(ReasoningDelta("START-MARKER "))
    for i in range(10_000):
        c.add(ReasoningDelta(f"step {i:05d} is fine. "))  # 200k+ characters
    c.add(ReasoningDelta("END-MARKER"))
    assert len(c.reasoning) > 200_000
    b = render_bundle(c)
    assert len(b["text/html"]) < 20_000
    assert len(b["text/markdown"]) < 20_000 and len(b["text/plain"]) < 2_000
    assert "END-MARKER" in b["text/html"] and "START-MARKER" not in b["text/html"]
    assert "…" in b["text/html"]
    c.finish("complete")
    final = render_bundle(c)["text/html"]
    assert "START-MARKER" in final and "END-MARKER" in final and "step 05000 is fine." in final


def test_streaming_render_cost_does_not_blow_up() -> None:
    """Many updates of a long reply stay fast (no quadratic re-rendering)."""
    c = make()
    t0 = time.perf_counter()
    for i in range(3000):
        c.add(ReasoningDelta(f"thought {i} "))
        if i % 10 == 0:
            render_bundle(c)
    para = "Some words in a sentence, **bold** and `code`. " * 4
    for i in range(1500):
        c.add(ContentDelta(para if i % 5 else "\n\n"))
        if i % 10 == 0:
            render_bundle(c)
    assert time.perf_counter() - t0 < 20  # ~0.5 s here; quadratic takes far longer


# -- LiveDisplay -------------------------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_live_display_throttles_and_always_finishes() -> None:
    clock = FakeClock()
    published: list[tuple[dict[str, str], bool]] = []
    live = LiveDisplay(max_hz=20, publish=lambda b, first: published.append((b, first)),
                       clock=clock)
    c = make()
    results = []
    for i in range(5000):
        clock.t = i * 10.0 / 5000
        c.add(ReasoningDelta("x") if i < 2500 else ContentDelta("y"))
        results.append(live.update(c))
    n_live = len(published)
    assert results[0] is True
    assert 150 <= n_live <= 201
    assert n_live == sum(results) == live.n_updates
    c.finish()
    live.finish(c, note="done")
    assert len(published) == n_live + 1 == live.n_updates
    assert [first for _, first in published].count(True) == 1 and published[0][1] is True
    final = published[-1][0]
    assert "done" in final["text/html"] and " open" not in details_tag(final["text/html"])


def test_live_display_force_and_finish_without_updates() -> None:
    clock = FakeClock()
    published: list[bool] = []
    live = LiveDisplay(publish=lambda b, first: published.append(first), clock=clock)
    c = make("r")
    assert live.update(c)
    assert not live.update(c)
    assert live.update(c, force=True)
    clock.t = 1.0
    assert live.update(c)
    assert published == [True, False, False]

    other: list[bool] = []
    live2 = LiveDisplay(publish=lambda b, first: other.append(first), clock=clock)
    live2.finish(c)
    assert other == [True] and live2.n_updates == 1


def test_live_display_default_publish_uses_ipython_display(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython.display

    calls: list[tuple[str, dict[str, str]]] = []

    class Handle:
        def update(self, obj: dict[str, str], **kw: object) -> None:
            assert kw == {"raw": True}
            calls.append(("update", obj))

    def fake_display(obj: dict[str, str], **kw: object) -> Handle:
        assert kw == {"raw": True, "display_id": True}
        calls.append(("display", obj))
        return Handle()

    monkeypatch.setattr(IPython.display, "display", fake_display)
    live = LiveDisplay()
    c = make("r", "a")
    live.update(c)
    c.finish()
    live.finish(c)
    assert [k for k, _ in calls] == ["display", "update"]
    assert set(calls[-1][1]) == {"text/html", "text/markdown", "text/plain"}


# -- TerminalStream ----------------------------------------------------------------------------------
def test_terminal_stream_reasoning_then_answer() -> None:
    out = io.StringIO()
    ts = TerminalStream(out=out)
    c = make()
    events = [ReasoningDelta("Let me "), ReasoningDelta("think."), ContentDelta("The "),
              ContentDelta("answer."), Usage(prompt_tokens=1, completion_tokens=2)]
    for ev in events:
        c.add(ev)
        ts.on_event(ev)
    c.finish()
    ts.finish(c, note="a note")
    text = out.getvalue()
    assert "\x1b[" not in text  # StringIO is not a tty
    assert text.startswith("Thinking…\nLet me think.\n\nThe answer.\n")
    assert footer_text(c) in text and "1 → 2 tokens" in text
    assert text.rstrip().endswith("a note")


def test_terminal_stream_tty_dim_hidden_and_banner() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    ts = TerminalStream(out=out)
    ts.on_event(ReasoningDelta("hmm"))
    assert "\x1b[2mhmm\x1b[0m" in out.getvalue()

    out2 = io.StringIO()
    ts2 = TerminalStream(out=out2, hide_reasoning=True)
    c = make()
    for ev in (ReasoningDelta("secret"), ContentDelta("part")):
        c.add(ev)
        ts2.on_event(ev)
    c.finish("interrupted")
    ts2.finish(c)
    text = out2.getvalue()
    assert "secret" not in text and "Thinking" not in text
    assert text.startswith("part\n") and "⏹ interrupted — partial output kept" in text


def test_terminal_stream_prints_answer_not_streamed() -> None:
    out = io.StringIO()
    c = make("", "replayed answer", replayed=True)
    c.finish()
    TerminalStream(out=out).finish(c)
    assert out.getvalue().startswith("replayed answer\n") and "↻ replay" in out.getvalue()


# -- hostile output through every serialiser ---------------------------------------------------
from hostile import DEEP, MARK, PAYLOADS, check_html  # noqa: E402

from qwq_magic.display import live_bundle, printable  # noqa: E402


def _permissive_markdown(text: str) -> str:
    """A renderer that trusts its input: raw HTML on and every link allowed (the worst viewer a
    saved notebook's text/markdown may meet)."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    md.validateLink = lambda url: True  # type: ignore[method-assign]
    return str(md.render(text))


def test_the_hostile_corpus_is_big_enough() -> None:
    assert len(PAYLOADS) >= 50 and len(set(PAYLOADS)) == len(PAYLOADS)


@pytest.mark.parametrize("where", ["answer", "reasoning"])
@pytest.mark.parametrize("payload", PAYLOADS)
def test_hostile_payload_in_every_copy(payload: str, where: str) -> None:
    c = make(payload if where == "reasoning" else "thinking",
             payload if where == "answer" else "the answer")
    live = live_bundle(c)
    assert check_html(live["text/html"]) == [], live["text/html"]
    c.finish()
    b = render_bundle(c)
    assert check_html(b["text/html"]) == [], b["text/html"]
    shown = _permissive_markdown(b["text/markdown"])
    assert check_html(shown) == [], (b["text/markdown"], shown)
    assert "\x1b" not in b["text/plain"]
    if where == "answer":  # nothing the model sent is lost from the plain copy
        assert printable(payload) in b["text/plain"]
        assert printable(payload) in render_bundle(c, raw=True)["text/plain"]
        raw_md = _permissive_markdown(render_bundle(c, raw=True)["text/markdown"])
        assert check_html(raw_md) == [], raw_md
    out = io.StringIO()
    ts = TerminalStream(out=out)
    for ev in (ReasoningDelta(payload), ContentDelta(payload)):
        ts.on_event(ev)
    ts.finish(c)
    assert "\x1b" not in out.getvalue() and printable(payload) in out.getvalue()


@pytest.mark.parametrize("payload", PAYLOADS)
def test_hostile_payload_in_the_panel_message(payload: str) -> None:
    from qwq_magic.widgets.chat import assistant_message

    c = make(payload, payload)
    for final in (False, True):
        if final:
            c.finish("error", RuntimeError(payload))
        msg = assistant_message(c, final)
        assert check_html(msg["html"]) == [], msg["html"]
        assert MARK in msg["reasoning"] or "onerror" not in payload  # text, shown as text


def test_markdown_copy_keeps_code_where_every_renderer_agrees() -> None:
    from qwq_magic._markdown import markdown_copy

    src = ("Use `a<b` and ``x `<y>` z``.\n\n```html\n<div>x</div>\n```\n\n"
           "    <indented>\n\n- item `<li-code>`\n\n  ```\n  <nested>\n  ```\n")
    out = markdown_copy(src)
    assert "`a<b`" in out and "``x `<y>` z``" in out and "```html\n<div>x</div>\n```" in out
    assert "    <indented>" in out  # a top-level indented code block
    assert "`<li-code>`" in out  # a one-line code span, even in a list
    assert "&lt;nested&gt;" in out  # a fence inside a list: not every renderer agrees
    shown = _permissive_markdown(out)
    assert "<div>" not in shown and "&lt;div&gt;x&lt;/div&gt;" in shown  # code shows as code


def test_unsafe_links_are_plain_text_in_html_and_markdown() -> None:
    for payload in ("[go](javascript:alert(1))", "[go](java&#115;cript:alert(1))",
                    "[go](data:text/html,x)", "[go](vbscript:x)"):
        c = make("", payload)
        c.finish()
        b = render_bundle(c)
        assert "<a " not in b["text/html"].split('class="qwq-answer"')[1], b["text/html"]
        assert "<a " not in _permissive_markdown(b["text/markdown"])
        assert "go" in b["text/html"]  # the text stays
    c = make("", "[ok](https://example.com/a?b=1)")
    c.finish()
    html = render_bundle(c)["text/html"]
    assert 'href="https://example.com/a?b=1"' in html and 'rel="noopener noreferrer nofollow"' in html


def test_remote_images_are_links_naming_the_host_unless_allowed() -> None:
    c = make("", "See ![a chart](https://img.example.org/c.png?q=SECRET) here.")
    c.finish()
    b = render_bundle(c)
    assert "<img" not in b["text/html"]
    assert "🖼 a chart (img.example.org)" in b["text/html"]
    assert 'href="https://img.example.org/c.png?q=SECRET"' in b["text/html"]
    assert "<img" not in _permissive_markdown(b["text/markdown"])
    allowed = render_bundle(c, remote_images=True)
    assert '<img src="https://img.example.org/c.png?q=SECRET"' in allowed["text/html"]
    assert 'referrerpolicy="no-referrer"' in allowed["text/html"]
    assert "<img" in _permissive_markdown(allowed["text/markdown"])
    assert check_html(allowed["text/html"], remote_images=True) == []


def test_remote_images_follow_the_magics_config() -> None:
    from IPython.core.interactiveshell import InteractiveShell

    from qwq_magic.display import remote_images_allowed

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "qwq_magic")
    try:
        assert remote_images_allowed() is False
        ip.run_line_magic("config", "QwqMagics.remote_images = True")
        assert remote_images_allowed() is True
        c = make("", "![x](https://img.example.org/y.png)")
        c.finish()
        assert "<img" in render_bundle(c)["text/html"]
    finally:
        ip.run_line_magic("config", "QwqMagics.remote_images = False")
    assert remote_images_allowed() is False


@pytest.mark.parametrize("text", DEEP)
def test_deep_nesting_keeps_the_rest_of_the_answer(text: str) -> None:
    marker = text.rsplit("AFTER-", 1)[1].split()[0]
    c = make("", text)
    c.finish()
    html = render_bundle(c)["text/html"]
    assert "AFTER-" + marker in html
    assert "deep" in html or "level" in html or "x" in html
    assert "AFTER-" + marker in render_markdown_full(text)


# -- one view: wording shared by every front end ---------------------------------------------
def test_cut_off_while_thinking_and_while_answering_say_which_and_what_to_do() -> None:
    from qwq_magic.view import view_of

    thinking = make("still thinking")
    thinking.add(Finish("length"))
    thinking.finish()
    answering = make("thought", "The answer")
    answering.add(Finish("length"))
    answering.finish()
    for c, words in ((thinking, "Thinking used up max_tokens"),
                     (answering, "The answer was cut off by max_tokens")):
        b = render_bundle(c)
        for mime in ("text/html", "text/markdown", "text/plain"):
            text = b[mime].replace("\\", "")  # Markdown escapes max\_tokens
            assert words in text and "%qwq continue" in text, mime
        panel = view_of(c, surface="panel").status_line[1]
        assert words in panel and "under Sampling" in panel
    done = make("t", "The answer.")
    done.add(Finish("stop"))
    done.finish()
    assert "cut off" not in render_bundle(done)["text/plain"]


def test_counted_usage_is_labelled_and_absurd_rates_are_not_shown() -> None:
    c = make("a b", "c d e")
    c.add(ReasoningDelta("f"))
    c.timings.end = c.timings.start + 2.0
    c.timings.first_token = c.timings.start + 0.5
    c.finish()
    foot = footer_text(c)
    assert "~3 tokens (counted)" in foot or "~4 tokens (counted)" in foot
    assert "~" in foot.split("tok/s")[0].rsplit("·", 1)[-1]  # the rate is counted too
    instant = make("", "all at once")  # a non-streaming reply: first token = end
    instant.add(Usage(prompt_tokens=3, completion_tokens=500))
    instant.timings.end = instant.timings.first_token
    instant.finish()
    assert "tok/s" not in footer_text(instant) and "3 → 500 tokens" in footer_text(instant)


def test_waiting_and_stall_lines_move_with_the_clock() -> None:
    from qwq_magic.view import progress_text

    c = make()
    c.timings.start = 100.0
    assert progress_text(c, now=101.25) == "Waiting for the model… 1.2 s"
    assert progress_text(c, now=103.0) == "Waiting for the model… 3.0 s"
    c.add(ContentDelta("partial"))
    assert progress_text(c, idle=0.2) == ""
    assert progress_text(c, idle=2.5) == "No new tokens for 2.5 s…"
    c.finish("error", RuntimeError("x"))
    assert progress_text(c, idle=9) == ""


def test_throttle_paces_thinking_and_caps_bytes_per_second() -> None:
    from qwq_magic.view import Throttle

    clock = FakeClock()
    th = Throttle(20, thinking_hz=10, max_bytes_per_s=10_000, overhead=0, clock=clock)
    assert th.due() and th.due(thinking=True)
    th.sent(100)
    clock.t = 0.06
    assert th.due() and not th.due(thinking=True)  # 1/20 s passed, not 1/10 s
    clock.t = 0.11
    assert th.due(thinking=True)
    th.sent(5_000)  # a big update: the next waits 0.5 s whatever the rate
    clock.t = 0.11 + 0.3
    assert not th.due()
    clock.t = 0.11 + 0.51
    assert th.due()


def test_the_clock_ticks_while_waiting_and_never_in_the_final_output() -> None:
    clock = FakeClock()
    published: list[dict[str, str]] = []
    live = LiveDisplay(publish=lambda b, first: published.append(b), clock=clock, tick=None)
    c = make()
    c.timings.start = time.perf_counter() - 0.0
    live.update(c, force=True)
    assert "Waiting for the model…" in published[-1]["text/html"]
    clock.t = 0.2
    assert live.tick() and len(published) == 1  # redrawn only after a quiet TICK_S
    clock.t = 0.6
    c.timings.start -= 2.0  # two seconds pass for the request
    assert live.tick() and len(published) == 2
    assert re.search(r"Waiting for the model… [2-9]\.\d s", published[-1]["text/html"])
    c.add(ContentDelta("first"))
    clock.t = 0.7
    live.update(c)
    clock.t = 2.0
    live.tick()
    assert "No new tokens for" in published[-1]["text/html"]  # a stall after the first token
    c.finish("error", RuntimeError("boom"))
    live.finish(c)
    assert not live.tick()  # over: nothing more to tick
    final = published[-1]
    for mime in final:
        assert "Waiting" not in final[mime] and "No new tokens" not in final[mime]
    assert "⚠ boom" in final["text/html"]


def test_the_ticker_thread_redraws_a_stalled_display_and_stops() -> None:
    import threading

    seen = threading.Event()
    published: list[dict[str, str]] = []

    def publish(b: dict[str, str], first: bool) -> None:
        published.append(b)
        if len(published) >= 3:
            seen.set()

    live = LiveDisplay(publish=publish, tick=0.02)
    c = make()
    live.update(c, force=True)
    assert seen.wait(10), "the clock never redrew"
    assert live._ticker is not None and live._ticker.running
    c.finish("complete")
    live.finish(c)
    assert not live._ticker.running


def test_reclassified_answer_moves_into_the_fold_everywhere() -> None:
    """A ``</think>`` with no opening tag turns the answer so far into reasoning mid-stream."""
    from qwq_magic.widgets.chat import assistant_message

    c = make()
    for piece in ("Let me see. ", "**Two** and two\n\n", "is four."):
        c.add(ContentDelta(piece))
    before = live_bundle(c)["text/html"]
    assert "<strong>Two</strong>" in before and "qwq-reasoning" not in before
    assert assistant_message(c, False)["html"]
    # what the splitter does: the content so far becomes reasoning, the answer starts afresh
    from qwq_magic.events import Reclassified

    c.add(Reclassified(c.content))
    after = live_bundle(c)["text/html"]
    assert 'class="qwq-answer"' not in after and "**Two** and two" in after
    assert " open" not in details_tag(after) and "Thought for" in after
    msg = assistant_message(c, False)
    assert msg["html"] == "" and "**Two**" in msg["reasoning"] and not msg["thinking"]
    c.add(ContentDelta("Four."))
    c.finish()
    final = render_bundle(c)
    assert "<p>Four.</p>" in final["text/html"] and "Let me see." in final["text/html"]
    assert final["text/plain"].endswith("Four.\nqwq-32b · ~4 tokens (counted)") or \
        "Four." in final["text/plain"]


def test_incremental_markdown_restarts_when_the_text_shrinks() -> None:
    key = object()
    long_text = "# Title\n\nfirst para\n\nsecond para\n\nthird"
    render_markdown(long_text, key=key)
    for shorter in ("# Title\n\nfirst", "other", ""):
        assert render_markdown(shorter, key=key) == render_markdown_full(shorter)


def test_live_updates_are_small_whatever_the_reasoning_length() -> None:
    c = make()
    for i in range(20_000):
        c.add(ReasoningDelta(f"thought {i}, " + ("\n" if i % 9 == 0 else "")))
    b = live_bundle(c)
    assert len(b["text/html"]) < 2_000 and len(b["text/markdown"]) < 120
    assert len(b["text/plain"]) < 120 and "thought 19999" in b["text/html"]
    c.finish()
    final = render_bundle(c)
    assert "thought 0," in final["text/html"] and "thought 19999" in final["text/html"]
    # the reasoning is stored once: the Markdown copy keeps its two ends only
    assert len(final["text/markdown"]) < 1_000 and "characters\\]" in final["text/markdown"]


# -- the magic: no stale "Waiting…" block in any finished output -------------------------------
@pytest.fixture
def shell(provider_server):  # type: ignore[no-untyped-def]
    from IPython.core.interactiveshell import InteractiveShell

    from qwq_magic import session

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "qwq_magic")
    session.reset()
    ip.run_line_magic("qwq", f"use openai --base-url {provider_server.base_url('vllm')} "
                      "--model qwq")
    yield ip
    session.reset()
    ip.user_ns.pop("_qwq", None)


def _last_per_display(outputs: list) -> dict[str, dict[str, str]]:  # type: ignore[type-arg]
    last: dict[str, dict[str, str]] = {}
    for i, o in enumerate(outputs):
        did = (o.transient or {}).get("display_id") or f"plain-{i}"
        last[did] = o.data
    return last


@pytest.mark.parametrize("case", ["json_fallback", "error_first", "stream", "replay_instant"])
def test_no_output_keeps_a_waiting_line(shell, provider_server, case: str,  # type: ignore[no-untyped-def]
                                        tmp_path) -> None:
    from IPython.utils.capture import capture_output

    from qwq_magic.errors import QwqError
    from qwq_magic.testing import Reply

    srv = provider_server
    srv.latency = 0.7  # the clock has time to tick before anything arrives
    line, cell = "", "Who?"
    if case == "json_fallback":  # the first wire form is refused before any token
        srv.fault("reject_json_schema", code=400, times=None, forms=("json_schema",))
        srv.script(Reply(reasoning="r", content='{"name": "Ada", "year": 1815}'))
        line = "--json 'name, year int'"
    elif case == "error_first":
        srv.fault("status", code=400, message="bad request, nothing streamed")
    elif case == "stream":
        srv.script(Reply(reasoning="Hmm " * 30, content="**Done.**", pace=0.002))
    else:
        shell.run_line_magic("qwq", f"record {tmp_path / 'c.jsonl'}")
        srv.script(Reply(reasoning="Short think.", content="Recorded."))
        with capture_output():
            shell.run_cell_magic("qwq", "", cell)
        shell.run_line_magic("qwq", f"replay {tmp_path / 'c.jsonl'} --speed 0")
    with capture_output() as cap:
        try:
            shell.run_cell_magic("qwq", line, cell)
        except QwqError:
            assert case == "error_first", cap.outputs[-1].data["text/plain"]
        n = len(cap.outputs)
        time.sleep(1.2)  # a clock left running would publish again
        assert len(cap.outputs) == n, "the clock kept ticking after the cell ended"
    waiting = [o for o in cap.outputs if "Waiting for the model" in o.data.get("text/html", "")]
    if case != "replay_instant":
        assert waiting, "the output says it is waiting while it waits"
    for did, data in _last_per_display(cap.outputs).items():
        for mime, text in data.items():
            assert "Waiting for the model" not in text, (case, did, mime)
    if case == "json_fallback":
        assert len(_last_per_display(cap.outputs)) == 1  # the refused attempt left no block
    if case == "error_first":
        assert any("bad request" in d.get("text/html", "")
                   for d in _last_per_display(cap.outputs).values())
    shell.run_line_magic("qwq", "live")


@pytest.mark.kernel
def test_the_clock_moves_in_a_real_kernel_while_the_server_is_slow(provider_server) -> None:
    """Ticks published from the clock's thread reach the cell (right parent) and stop at the
    end; the final output says nothing about waiting."""
    import queue

    from jupyter_client.manager import start_new_kernel

    srv = provider_server
    srv.latency = 2.5
    km, kc = start_new_kernel(kernel_name="python3")
    try:
        kc.execute_interactive(f"%load_ext qwq_magic\n%qwq use openai --base-url "
                               f"{srv.base_url('vllm')} --model qwq", timeout=60)
        msgs: list[dict] = []
        reply = kc.execute_interactive("%%qwq\nAre you there?", timeout=60,
                                       output_hook=msgs.append)
        assert reply["content"]["status"] == "ok"
        shown = [m["content"]["data"]["text/html"] for m in msgs
                 if m["msg_type"] in ("display_data", "update_display_data")]
        waits = sorted({float(x) for h in shown
                        for x in re.findall(r"Waiting for the model… (\d+\.\d) s", h)})
        assert len(waits) >= 3, waits  # 0.0 s, then the clock's ticks
        assert "Waiting" not in shown[-1] and "Thought for" in shown[-1]
        with contextlib.suppress(queue.Empty):  # nothing more after the cell: the clock stopped
            while True:
                m = kc.get_iopub_msg(timeout=1.0)
                assert m["msg_type"] not in ("display_data", "update_display_data"), m
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_terminal_waiting_clock_ticks_on_a_tty_and_is_erased() -> None:
    import threading

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    ts = TerminalStream(out=out, tick=0.02)
    c = make()
    ts.start(c)
    deadline = threading.Event()
    for _ in range(500):
        if out.getvalue().count("Waiting for the model…") >= 2:
            break
        deadline.wait(0.01)
    assert out.getvalue().count("Waiting for the model…") >= 2
    c.add(ContentDelta("hello"))
    ts.on_event(ContentDelta("hello"))
    c.finish()
    ts.finish(c)
    text = out.getvalue()
    assert text.rindex("\r\x1b[K") < text.index("hello")  # the line is erased first
    assert "Waiting" not in text[text.index("hello"):]
    plain = io.StringIO()  # not a tty: no clock, no escape codes
    TerminalStream(out=plain, tick=0.02).start(make())
    assert plain.getvalue() == ""


def test_terminal_says_when_printed_text_was_reasoning() -> None:
    from dataclasses import dataclass

    @dataclass
    class Reclassified:  # the perf teammate's event: text moved from answer to reasoning
        text: str

    out = io.StringIO()
    ts = TerminalStream(out=out)
    for ev in (ContentDelta("Let me think"), Reclassified("Let me think"), ContentDelta("42.")):
        ts.on_event(ev)
    assert "Let me think\n[the text above was the model's reasoning]\n\n" in out.getvalue()
    assert out.getvalue().rstrip().endswith("42.")


def test_incremental_markdown_copy_equals_the_one_shot_copy() -> None:
    from hostile import PAYLOADS as _P

    from qwq_magic._markdown import markdown_copy

    text = ANSWER + "\n\n" + "\n\n".join(_P[:30]) + "\n"
    key = object()
    for n in range(0, len(text) + 1, 7):
        assert markdown_copy(text[:n], key=key) == markdown_copy(text[:n]), n
    assert markdown_copy(text, key=key) == markdown_copy(text)
