"""The magic in a real Jupyter kernel: nbclient runs a notebook; SIGINT interrupts a stream."""

from __future__ import annotations

import queue
import re
import time

import nbformat
import pytest
from jupyter_client.manager import start_new_kernel
from kernel_support import collect
from nbclient import NotebookClient

from qwq_magic.testing import Reply

pytestmark = pytest.mark.kernel


def _nb(*cells: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    return nb


def test_notebook_runs_streams_and_saves_the_final_state(provider_server):
    srv = provider_server
    srv.script(Reply(reasoning="Cats are mammals. " * 50, content="**Cats** purr.", pace=0.001),
               Reply(reasoning="More.", content="They also nap."))
    nb = _nb(
        "%load_ext qwq_magic",
        f"%qwq use openai --base-url {srv.base_url('vllm')} --model qwq",
        "topic = 'cats'",
        "%%qwq -o ans --chat\nTell me about {topic}.",
        "%%qwq --chat\nAnd more?",
        "print(ans.status, ans.content, len(ans.reasoning) > 0, _qwq.content)",
    )
    NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    magic_out = nb.cells[3].outputs
    # a saved notebook keeps only the final bundle of the display handle
    finals = [o for o in magic_out if o.output_type == "display_data"]
    assert len(finals) == 1
    html = finals[0].data["text/html"]
    assert "Thought for" in html and not re.search(r"<details[^>]*\bopen\b", html)
    assert "<strong>Cats</strong> purr." in html
    assert nb.cells[5].outputs[0].text.strip() == "complete **Cats** purr. True They also nap."
    sent = srv.requests[-1].json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[0]["content"] == "Tell me about cats."


def _collect(kc, msg_id: str, timeout: float = 30) -> tuple[dict, list[dict]]:
    return collect(kc, msg_id, timeout)


def test_interrupt_keeps_partial_and_stops_run_all(provider_server):
    srv = provider_server
    srv.script(Reply.long(5000, pace=0.003))
    km, kc = start_new_kernel(kernel_name="python3")
    try:
        setup = kc.execute(f"%load_ext qwq_magic\n%qwq use openai --base-url "
                           f"{srv.base_url('vllm')} --model qwq")
        reply, _ = _collect(kc, setup)
        assert reply["content"]["status"] == "ok"
        long_id = kc.execute("%%qwq -o partial --max-tokens 8000\nThink for a long time.")
        queued_id = kc.execute("ran_after = True")  # Run All: the next cell is queued
        # wait until the stream is visibly under way, then interrupt (SIGINT)
        seen: list[dict] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                m = kc.get_iopub_msg(timeout=0.1)
            except queue.Empty:
                continue
            seen.append(m)
            if m["msg_type"] == "update_display_data" and "Thinking" in str(m["content"]):
                break
        time.sleep(0.3)
        km.interrupt_kernel()
        reply, iopub = _collect(kc, long_id)
        iopub = [m for m in seen if m["parent_header"].get("msg_id") == long_id] + iopub
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "QwqInterrupted"
        tb = reply["content"]["traceback"]
        assert len(tb) == 1 and "partial reply is in _qwq" in tb[0]
        # the last display update shows the partial text marked "interrupted"
        updates = [m for m in iopub if m["msg_type"] in ("display_data", "update_display_data")]
        assert "interrupted" in updates[-1]["content"]["data"]["text/html"]
        queued, _ = _collect(kc, queued_id)
        assert queued["content"]["status"] == "aborted"  # Run All stopped at that cell
        check = kc.execute("print(_qwq.status, partial is _qwq, len(_qwq.reasoning) > 100, "
                           "'ran_after' in dir())")
        _, out = _collect(kc, check)
        text = "".join(m["content"].get("text", "") for m in out if m["msg_type"] == "stream")
        assert text.strip() == "interrupted True True False"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_the_key_never_reaches_outputs_errors_or_the_saved_notebook(provider_server, monkeypatch,
                                                                     tmp_path):
    srv = provider_server
    secret = "sk-live-SECRET0123456789abcdef"
    monkeypatch.setenv("DEEPINFRA_TOKEN", secret)
    srv.fault("status", code=401, echo_auth=True, route="deepinfra")  # the key comes back
    nb = _nb(
        "%load_ext qwq_magic",
        f"%qwq use deepinfra --base-url {srv.base_url('deepinfra')}",
        "%%qwq\nfirst try",  # 401 whose body echoes "Bearer sk-live-…"
        "%%qwq --dry-run --temperature 0.6\nshow me the request",
        "%qwq params",
        "%qwq providers",
        "import qwq_magic as qm\nc = qm.session.client()\nprint(repr(c), c.__dict__)",
        "try:\n    c.complete('x', max_tokens=-1)\nexcept Exception as e:\n    print(repr(e))",
        "print(repr(_qwq), _qwq.messages, _qwq.params)",
        "import logging; logging.getLogger().setLevel(logging.DEBUG)",
        "%%qwq -o again\nsecond try",  # the server refuses this key too: a plain 401
        "print(again.status, repr(again), repr(qm.session), qm.session.__dict__)",
    )
    NotebookClient(nb, timeout=60, kernel_name="python3", allow_errors=True).execute()
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, path)
    saved = path.read_text()
    assert "AuthenticationError" in saved and "DEEPINFRA_TOKEN" in saved  # the error is there
    assert "Bearer sk-" in saved  # …masked: the dry run shows "Bearer sk-…ef"
    assert "SECRET0123456789" not in saved
    assert nb.cells[-1].outputs[0].text.startswith("error")
