"""Teaching with reasoning models (#16): recordings that keep every reply, a notebook as its own
recording, reveal on cue, export, panels that survive saving, a larger text size.

Real parts: HTTP over loopback to the provider test server, the magics in a real IPython
``InteractiveShell``, notebooks in a real kernel (nbclient) saved and converted by nbconvert.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import nbformat
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import qwq_magic as qm
from qwq_magic import session, teaching
from qwq_magic.cassette import (
    Cassette,
    CassetteExhaustedError,
    CassetteMissError,
    Pacer,
    from_notebook,
    timeline_from_provenance,
)
from qwq_magic.events import ContentDelta, ReasoningDelta
from qwq_magic.testing import Reply

JOKES = ["Why did the cat sit on the laptop? To keep an eye on the mouse.",
         "A cat walks into a bar. It orders nothing: it knocked the glass over.",
         "What do you call a pile of kittens? A meowtain."]


def client(srv: Any, path: Path, mode: str = "record", **kw: Any) -> qm.Client:
    return qm.Client("openai", cassette=Cassette(path, mode=mode, **kw),
                     **srv.client_kwargs("vllm"))


@pytest.fixture
def ip():
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "qwq_magic")
    session.reset()
    teaching.set_class_mode(False)
    teaching.forget_chat()
    teaching._hidden.clear()
    yield shell
    session.reset()
    teaching.set_class_mode(False)
    teaching._hidden.clear()
    shell.run_line_magic("config", "QwqMagics.font_scale = 1.0")
    shell.run_line_magic("config", "QwqMagics.hide_reasoning = False")


@pytest.fixture
def srv(provider_server, ip):
    ip.run_line_magic("qwq", f"use openai --base-url {provider_server.base_url('vllm')} "
                      "--model qwq")
    return provider_server


def run(ip, line: str, cell: str):
    with capture_output() as cap:
        ip.run_cell_magic("qwq", line, cell)
    return cap


# -- recordings keep every reply ------------------------------------------------------------
def test_recorded_thrice_replays_in_recorded_order_then_cycles(provider_server, tmp_path):
    path = tmp_path / "jokes.jsonl"
    provider_server.script(*(Reply(reasoning=f"joke {i}", content=j) for i, j in enumerate(JOKES)))
    rec = client(provider_server, path)
    live = [rec.complete("Tell me a joke.", temperature=1.0).content for _ in JOKES]
    assert live == JOKES
    assert len(path.read_text().splitlines()) == 3  # one line per reply
    sent = len(provider_server.requests)
    replay = qm.Client("openai", model="qwq", cassette=Cassette(path, speed=0))
    again = [replay.complete("Tell me a joke.", temperature=1.0).content for _ in range(4)]
    assert again == [*JOKES, JOKES[0]]  # in order, then from the first again
    assert len(provider_server.requests) == sent  # nothing sent
    strict = qm.Client("openai", model="qwq",
                       cassette=Cassette(path, speed=0, exhausted="raise"))
    assert [strict.complete("Tell me a joke.", temperature=1.0).content for _ in JOKES] == JOKES
    with pytest.raises(CassetteExhaustedError, match="All 3 recorded replies"):
        strict.complete("Tell me a joke.", temperature=1.0)


def test_recording_appends_and_never_rewrites(provider_server, tmp_path):
    path = tmp_path / "lesson.jsonl"
    provider_server.script(Reply(reasoning="r", content="first"), Reply(reasoning="r", content="second"),
                           Reply(reasoning="r", content="third"))
    client(provider_server, path).complete("Q1")
    first = path.read_bytes()
    client(provider_server, path).complete("Q1")  # a new session recording into the same file
    client(provider_server, path).complete("Q2")
    data = path.read_bytes()
    assert data.startswith(first) and data.count(b"\n") == 3
    replay = qm.Client("openai", model="qwq", cassette=Cassette(path, speed=0))
    assert [replay.complete("Q1").content, replay.complete("Q1").content,
            replay.complete("Q2").content] == ["first", "second", "third"]
    client(provider_server, path, new=True)  # --new starts afresh
    assert not path.exists()


def test_old_files_with_more_takes_still_load(tmp_path):
    path = tmp_path / "old.jsonl"
    req = {"provider": "openai", "model": "qwq", "params": {},
           "messages": [{"role": "user", "content": "hi"}], "schema": None}
    from qwq_magic.cassette import request_key

    line = {"key": request_key(req), "request": req, "events": [[0.1, "c", "one"]],
            "more": [[[0.1, "c", "two"]]]}
    path.write_text(json.dumps(line) + "\n")
    replay = qm.Client("openai", model="qwq", cassette=Cassette(path, speed=0))
    assert [replay.complete("hi").content for _ in range(3)] == ["one", "two", "one"]


def test_a_miss_says_what_differs_from_the_nearest_recording(provider_server, tmp_path):
    path = tmp_path / "m.jsonl"
    provider_server.script(Reply(reasoning="r", content="a"), Reply(reasoning="r", content="b"))
    rec = client(provider_server, path)
    rec.complete("Tell me a joke about cats.", temperature=0.6)
    rec.complete("Explain photosynthesis in one line.", temperature=0.6)
    replay = qm.Client("openai", model="qwq", cassette=Cassette(path, speed=0))
    with pytest.raises(CassetteMissError) as e:
        replay.complete("Tell me a joke about cats.", temperature=0.7)
    msg = str(e.value)
    detail = msg.split("differs in ", 1)[1].split("\n", 1)[0]
    assert detail == "temperature: asked 0.7, recorded 0.6."  # the prompt matched: not named
    with pytest.raises(CassetteMissError) as e:
        replay.complete("Tell me a joke about dogs.", temperature=0.6)
    assert "the prompt: asked 'dogs.' where the recording has 'cats.'" in str(e.value)
    other = qm.Client("openai", model="qwq-2", cassette=Cassette(path, speed=0))
    with pytest.raises(CassetteMissError, match="model: asked 'qwq-2', recorded 'qwq'"):
        other.complete("Tell me a joke about cats.", temperature=0.6)


async def test_async_replay_plays_the_same_timeline(provider_server, tmp_path):
    path = tmp_path / "a.jsonl"
    provider_server.script(Reply(reasoning="r1", content="one"), Reply(reasoning="r2",
                                                                       content="two"))
    rec = client(provider_server, path)
    for _ in range(2):
        await rec.acomplete("again")
    replay = qm.Client("openai", model="qwq", cassette=Cassette(path, speed=0))
    got = [(c.reasoning, c.content, c.replayed)
           for c in [await replay.acomplete("again"), replay.complete("again")]]
    assert got == [("r1", "one", True), ("r2", "two", True)]


def test_pause_holds_a_replay_until_resume(provider_server, tmp_path):
    path = tmp_path / "p.jsonl"
    provider_server.script(Reply(reasoning="r", content="paused answer"))
    client(provider_server, path).complete("hold on")
    cas = Cassette(path, speed=0)
    cas.pause()
    assert Pacer(cas).remaining(0.0) > 0  # paused: even an instant replay waits
    replay = qm.Client("openai", model="qwq", cassette=cas)
    got: list[str] = []
    started, done = threading.Event(), threading.Event()

    def consume() -> None:
        stream = replay.stream("hold on")
        started.set()
        for ev in stream:
            got.append(type(ev).__name__)
        done.set()

    th = threading.Thread(target=consume, daemon=True)
    th.start()
    assert started.wait(10)
    assert not done.wait(0.3) and got == []  # nothing played while paused
    cas.resume()
    assert done.wait(10) and "ContentDelta" in got
    th.join(5)


@settings(max_examples=40, deadline=None)
@given(reasoning=st.text(max_size=300), content=st.text(max_size=300),
       ttft=st.floats(0, 5), think=st.floats(0, 20), extra=st.floats(0, 20))
def test_a_provenance_timeline_keeps_every_character_in_time_order(reasoning, content, ttft,
                                                                   think, extra):
    prov = {"reply": {"reasoning": reasoning, "content": content, "finish_reason": "stop"},
            "timings": {"ttft": ttft, "reasoning": think, "total": ttft + think + extra},
            "usage": {"completion_tokens": 5, "counted": False}}
    tl = timeline_from_provenance(prov)
    times = [t for t, _ in tl]
    assert times == sorted(times) and all(t >= 0 for t in times)
    assert "".join(e.text for _, e in tl if isinstance(e, ReasoningDelta)) == reasoning
    assert "".join(e.text for _, e in tl if isinstance(e, ContentDelta)) == content


# -- a notebook is its own recording --------------------------------------------------------
LESSON_CELLS = ["Tell me a joke.", "Tell me a joke.", "Why is the sky blue?"]


def _execute_lesson(srv: Any, path: Path) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%load_ext qwq_magic"),
                nbformat.v4.new_code_cell(
                    f"%qwq use openai --base-url {srv.base_url('vllm')} --model qwq")]
    nb.cells += [nbformat.v4.new_code_cell(f"%%qwq --temperature 0.9\n{p}")
                 for p in LESSON_CELLS]
    NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    nbformat.write(nb, path)
    return nb


@pytest.mark.kernel
def test_a_saved_notebook_replays_its_own_replies_in_order(provider_server, ip, tmp_path):
    srv = provider_server
    srv.script(Reply(reasoning="A pun.", content=JOKES[0], pace=0.002),
               Reply(reasoning="Another.", content=JOKES[1]),
               Reply(reasoning="Rayleigh scattering.", content="Blue light scatters more."))
    path = tmp_path / "lesson.ipynb"
    _execute_lesson(srv, path)
    sent = len(srv.requests)
    srv.script(Reply(reasoning="r", content="a live answer: the replay went to the network"))
    ip.run_line_magic("qwq", "use openai --base-url http://127.0.0.1:9/v1 --model qwq")
    with capture_output() as cap:
        ip.run_line_magic("qwq", f"replay {path} --speed 0")
    assert "3 replies" in cap.stdout + str(cap.outputs[0].data)
    answers = []
    for prompt in LESSON_CELLS:
        run(ip, "--temperature 0.9", prompt)
        c = ip.user_ns["_qwq"]
        answers.append((c.reasoning, c.content, c.replayed))
    assert answers == [("A pun.", JOKES[0], True), ("Another.", JOKES[1], True),
                       ("Rayleigh scattering.", "Blue light scatters more.", True)]
    assert len(srv.requests) == sent
    # the original timing: the recorded seconds, whatever the replay speed
    saved = json.loads(path.read_text())["cells"][2]["outputs"][-1]["metadata"]["qwq_magic"]
    assert c.timings.total_s == pytest.approx(
        json.loads(path.read_text())["cells"][4]["outputs"][-1]["metadata"]["qwq_magic"]
        ["timings"]["total"], abs=0.01)
    assert saved["request"]["prompt"] == "Tell me a joke."
    # a prompt the notebook never asked: the miss names the prompt
    with pytest.raises(CassetteMissError, match="the prompt: asked"):
        ip.run_cell_magic("qwq", "--temperature 0.9", "Tell me a riddle.")
    # the Python spelling, with pause/resume on the session's cassette
    cas = session.replay_notebook(str(path), speed=0)
    assert cas is session.cassette and cas.takes == 3
    session.cassette.pause()
    session.cassette.resume()
    run(ip, "--temperature 0.9", "Tell me a joke.")
    assert ip.user_ns["_qwq"].content == JOKES[0]
    # qm.map's workers rebuild the client from its config: the notebook's replies go with it
    from qwq_magic.batch import ClientConfig

    worker = ClientConfig.from_client(session.client()).build()
    assert worker.complete("Why is the sky blue?", temperature=0.9).content == (
        "Blue light scatters more.")


def test_replay_of_a_notebook_without_replies_says_so(ip, tmp_path):
    path = tmp_path / "empty.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), path)
    with pytest.raises(qm.QwqError, match="holds no recorded replies"):
        from_notebook(path)
    with pytest.raises(qm.QwqError, match="No notebook at"):
        ip.run_line_magic("qwq", f"replay {tmp_path / 'missing.ipynb'}")
    with pytest.raises(qm.QwqError, match="is a notebook: it can only be replayed"):
        ip.run_line_magic("qwq", f"record {path}")
    with pytest.raises(qm.QwqError, match="--pause/--resume acts on the replay in progress"):
        ip.run_line_magic("qwq", "replay --pause")


# -- reveal -------------------------------------------------------------------------------
def test_class_mode_hides_reasoning_behind_a_reveal_fold_and_reveal_redraws_in_place(ip, srv):
    srv.script(Reply(reasoning="Secret steps <b>1</b>", content="Answer one."),
               Reply(reasoning="More secret steps", content="Answer two."),
               Reply(reasoning="Shown steps", content="Answer three."))
    with capture_output():
        ip.run_line_magic("qwq", "class on")
    a = run(ip, "", "Q1").outputs[-1]
    b = run(ip, "", "Q2").outputs[-1]
    shown = run(ip, "--show-reasoning", "Q3").outputs[-1]
    for out in (a, b):
        html = out.data["text/html"]
        assert '<details class="qwq-reveal"' in html and "Reveal reasoning" in html
        assert "<details class=\"qwq-reveal\" style=\"margin: 0 0 0.5em 0\" open" not in html
        assert "Reveal reasoning" in out.data["text/markdown"]
    assert "Secret steps &lt;b&gt;1&lt;/b&gt;" in a.data["text/html"]  # escaped, inert
    assert "Reveal reasoning" not in shown.data["text/html"]
    assert teaching.hidden_count() == 2
    with capture_output() as cap:
        ip.run_line_magic("qwq", "reveal")
    updates = [o for o in cap.outputs if o.update]
    assert len(updates) == 2
    ids = {o.transient["display_id"] for o in updates}
    assert ids == {a.transient["display_id"], b.transient["display_id"]}
    for o in updates:
        assert "Reveal reasoning" not in o.data["text/html"] and "Thought for" in o.data[
            "text/html"]
        assert o.metadata["qwq_magic"]["reply"]["reasoning"]  # provenance kept
    assert teaching.hidden_count() == 0
    with capture_output():
        ip.run_line_magic("qwq", "class off")
    assert "Reveal reasoning" not in run(ip, "", "Q4").outputs[-1].data["text/html"]


def test_bad_class_and_reveal_words_are_short_errors(ip):
    with pytest.raises(qm.QwqError, match="say on or off"):
        ip.run_line_magic("qwq", "class maybe")
    with pytest.raises(qm.QwqError, match="takes no arguments"):
        ip.run_line_magic("qwq", "reveal now")


# -- export -------------------------------------------------------------------------------
HOSTILE = '<script>alert("pwn")</script> <img src=x onerror=alert(1)>'


def test_export_round_trip_md_json_cells(ip, srv, tmp_path):
    teaching._chats.clear()  # earlier tests' conversations and panels: "the only one" is this
    teaching._last_panel = None
    srv.script(Reply(reasoning="Think " + HOSTILE, content="**Bold** answer " + HOSTILE),
               Reply(reasoning="Second thought", content="Second answer"))
    run(ip, "--chat tutor", "First question?")
    run(ip, "--chat tutor", "Second question?")
    replies = teaching._chats["tutor"]
    with capture_output():
        ip.run_line_magic("qwq", f"export tutor --to json -o {tmp_path / 'c.json'}")
    turns = teaching.load(tmp_path / "c.json")
    assert [(t.user, t.reasoning, t.answer) for t in turns] == [
        ("First question?", c.reasoning, c.content) for c in replies[:1]] + [
        ("Second question?", replies[1].reasoning, replies[1].content)]
    data = json.loads((tmp_path / "c.json").read_text())
    assert [m["role"] for m in data["messages"]] == ["user", "assistant"] * 2
    assert data["messages"][1]["reasoning"] == replies[0].reasoning
    assert data["messages"][1]["usage"]["completion_tokens"] > 0
    assert teaching.to_json(turns) == data  # export → load → export is the same
    md = teaching.export("tutor", "md")
    assert md.count("<details>") == 2 and "**Bold** answer" in md
    assert "<script" not in md and "<img" not in md
    cells_path = tmp_path / "handout.ipynb"
    with capture_output():
        ip.run_line_magic("qwq", f"export --to cells -o {cells_path}")  # the only conversation
    nb = nbformat.read(cells_path, as_version=4)
    nbformat.validate(nb)
    assert [c.cell_type for c in nb.cells] == ["markdown", "markdown"]
    assert "Second answer" in nb.cells[1].source
    ip.rl_next_input = None
    with capture_output() as cap:  # a kernel sends this as a set_next_input payload
        ip.run_line_magic("qwq", "export tutor --to cells")
    text, ip.rl_next_input = ip.rl_next_input, None
    assert text.startswith("%%markdown\n") and "Second answer" in text and "First question?" in text
    assert "Inserted a %%markdown cell" in str(cap.outputs[-1].data)


def test_export_errors_name_the_problem(ip):
    with pytest.raises(qm.QwqError, match="No conversation 'nope'"):
        ip.run_line_magic("qwq", "export nope --to md")
    with pytest.raises(qm.QwqError, match="invalid choice"):
        ip.run_line_magic("qwq", "export x --to pdf")
    with pytest.raises(qm.QwqError, match="Not an exported qwq_magic conversation"):
        teaching.load('{"messages": []}')


# -- the panel: export and a saved-notebook copy ------------------------------------------
async def test_panel_export_and_fallback_html_are_inert(provider_server):
    pytest.importorskip("anywidget")
    from qwq_magic.state import Session

    sess = Session()
    sess.use("openai", **provider_server.client_kwargs("vllm"))
    provider_server.script(Reply(reasoning="Reason " + HOSTILE, content="Hi " + HOSTILE))
    panel = qm.ChatPanel(session=sess, font_scale=1.4)
    await panel.send_async("Hello?")
    html = panel.fallback_html()
    assert "Hello?" in html and "Reason &lt;script&gt;" in html and "font-size: 1.4em" in html
    assert "<script" not in html and "<img" not in html
    assert "<details" in html and "<details open" not in html
    turns = teaching.load(panel.export("json"))
    assert [(t.user, t.answer) for t in turns] == [("Hello?", panel.last.content)]
    assert "<details>" in panel.export("md")
    assert set(panel._saved_bundle()) == {"text/html", "text/plain"}
    panel.close()


@pytest.mark.kernel
def test_a_saved_panel_notebook_shows_the_conversation_in_nbconvert_html(provider_server,
                                                                        tmp_path):
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    srv = provider_server
    srv.script(Reply(reasoning="The user greets me " + HOSTILE,
                     content="Hello **class**! " + HOSTILE))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import qwq_magic as qm\n"
        f"qm.session.use('openai', base_url={srv.base_url('vllm')!r}, model='qwq')\n"
        "panel = qm.ChatPanel()\npanel"),
        nbformat.v4.new_code_cell("c = await panel.send_async('Good morning!')\nprint(c.status)")]
    NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    path = tmp_path / "panel.ipynb"
    nbformat.write(nb, path)
    saved = nbformat.read(path, as_version=4)
    widget, copy = saved.cells[0].outputs
    assert "application/vnd.jupyter.widget-view+json" in widget.data  # Jupyter: the live panel
    assert "text/html" not in widget.data  # (else GitHub would show the copy twice)
    assert "Good morning!" in copy.data["text/html"]  # updated when the turn ended
    assert "Good morning!" in copy.data["text/plain"]
    for state in (True, False):  # with nbclient's saved widget state, and without (Lab's default)
        if not state:
            saved.metadata.pop("widgets", None)
        body, _ = HTMLExporter().from_notebook_node(saved)
        start = body.index('class="qwq-panel-saved"')
        shown = body[start:body.index("</div></div>", start)]  # the copy as the page shows it
        assert "Good morning!" in shown and "Hello <strong>class</strong>!" in shown
        assert "The user greets me" in shown and "<details" in shown
        assert "&lt;script&gt;" in shown and "<script" not in shown and "<img" not in shown
        # the saved widget state is JSON in a data block (never parsed as HTML, its
        # "</script" escaped); everything else on the page has no tag from model text
        assert 'alert("pwn")</script>' not in body
        page = re.sub(r'<script type="application/vnd\.jupyter\.widget-(state|view)\+json">'
                      r".*?</script>", "", body, flags=re.S)
        assert "<script>alert" not in page and "<img src=x" not in page
        assert page.count("&lt;script&gt;alert") >= 2  # shown as text: reasoning and answer


# -- presenter comfort ------------------------------------------------------------------------
def test_font_scale_reaches_the_magic_output(ip, srv, caplog):
    srv.script(Reply(reasoning="r", content="Big text."))
    ip.run_line_magic("config", "QwqMagics.font_scale = 1.4")
    outs = run(ip, "", "Q").outputs
    assert all("font-size: 1.4em" in o.data["text/html"] for o in outs)
    ip.run_line_magic("config", "QwqMagics.font_scale = 9")  # %config logs, keeps the value
    assert "should not be greater than 4.0" in caplog.text
    from qwq_magic.display import font_scale

    assert font_scale() == 1.4
    pytest.importorskip("anywidget")
    panel = qm.ChatPanel()  # a new panel takes the configured size
    try:
        assert panel.font_scale == 1.4 and "font-size: 1.4em" in panel.fallback_html()
    finally:
        panel.close()


def test_hide_reasoning_config_leaves_it_out_but_reveal_still_redraws_it(ip, srv):
    srv.script(Reply(reasoning="PRIVATE STEPS", content="Shown."),
               Reply(reasoning="FLAGGED STEPS", content="Also shown."))
    ip.run_line_magic("config", "QwqMagics.hide_reasoning = True")
    out = run(ip, "", "Q").outputs[-1]
    assert "PRIVATE STEPS" not in str(out.data) and "Reveal reasoning" not in str(out.data)
    flagged = run(ip, "--hide-reasoning", "Q2").outputs[-1]  # the flag: behind a reveal fold
    assert "Reveal reasoning" in flagged.data["text/html"]
    with capture_output() as cap:
        ip.run_line_magic("qwq", "reveal")
    revealed = {o.transient["display_id"]: o.data["text/html"] for o in cap.outputs if o.update}
    assert "PRIVATE STEPS" in revealed[out.transient["display_id"]]
    assert "FLAGGED STEPS" in revealed[flagged.transient["display_id"]]
