"""The hostile corpus in a real browser: every payload of ``tests/hostile.py`` (60 that try to
run script, load remote content or navigate, and 5 nested deep enough to hide what follows)
streamed as reasoning *and* answer, in both wire variants (a reasoning field; QwQ's inline
``…</think>``), split across chunks, through ``%%qwq`` and through the ChatPanel, in JupyterLab
and Debian's chromium. Then the notebook is saved, copied as a notebook from someone else
(no trust signature) and reopened: checked again.

Execution is detected in the page: every payload's script sets ``window.__pwned``; a
``dialog`` handler catches ``alert``; every request the page makes to ``evil.example`` is
counted; the DOM of the outputs and the panel is searched for script, frames, handlers and
``javascript:`` links. Reports ``hostile payloads tried: N, executed: 0``.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from _figures import figure
from browser_support import (
    JupyterLab,
    Notebook,
    artifact,
    save_console,
)
from hostile import DEEP, PAYLOADS
from playwright.sync_api import expect

from qwq_magic.testing import ProviderServer, Reply

pytestmark = pytest.mark.browser

CORPUS = PAYLOADS + DEEP
VARIANTS = ("field", "inline")
DANGER_JS = """() => {
    const roots = document.querySelectorAll('.jp-OutputArea, .qwq-panel');
    let bad = [];
    for (const r of roots) {
        for (const el of r.querySelectorAll('script, iframe, object, embed, base, meta, link, '
                + 'form, a[href^="javascript" i], a[href^="vbscript" i], a[href^="data:" i], '
                + 'img[src^="http" i], img[src^="//"], [onerror], [onload], [ontoggle]')) {
            bad.push(el.outerHTML.slice(0, 120));
        }
    }
    return bad;
}"""


class Watch:
    """What a page did that it must not: dialogs, requests to evil.example, page errors."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.remote: list[str] = []
        self.console: list[str] = []

        def on_dialog(d: Any) -> None:
            self.dialogs.append(f"{d.type}: {d.message}")
            d.dismiss()

        page.on("dialog", on_dialog)
        page.on("request", lambda r: "evil.example" in r.url and self.remote.append(r.url))
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))

    def executed(self) -> list[str]:
        out = [f"dialog {d}" for d in self.dialogs] + [f"loaded {u}" for u in self.remote]
        if self.page.evaluate("() => typeof window.__pwned") != "undefined":
            out.append("window.__pwned was set")
        out += [f"element {e}" for e in self.page.evaluate(DANGER_JS)]
        return out




def _script(srv: ProviderServer, where: str) -> None:
    for i, p in enumerate(CORPUS):
        for v in VARIANTS:
            srv.script(Reply(reasoning=p, content=p, reasoning_mode=v,  # type: ignore[arg-type]
                             chunk_size=1 + (i % 3), match=f"{where}-{i}-{v}."))


def test_hostile_corpus_executes_nothing_live_or_reopened_untrusted(
        srv: ProviderServer, lab: JupyterLab, browser: Any) -> None:
    (lab.root / "payloads.json").write_text(json.dumps(CORPUS))
    name = lab.write_notebook("hostile.ipynb", ["1 + 1"])
    ctx = browser.new_context(viewport={"width": 1100, "height": 900})
    page = ctx.new_page()
    watch = Watch(page)
    nb = Notebook(page).open(lab, name)
    tried = 0
    try:
        nb.clear()
        nb.run_text(
            "import json, qwq_magic as qm\n"
            "get_ipython().extension_manager.load_extension('qwq_magic')\n"
            f"_ = qm.session.use('openai', **{srv.client_kwargs('vllm')!r})\n"
            "P = json.load(open('payloads.json'))")
        _script(srv, "magic")
        # JupyterLab shows at most 50 outputs per cell (maxNumberOutputs): 33 per cell
        for v in VARIANTS:
            for lo in range(0, len(CORPUS), 33):
                hi = min(lo + 33, len(CORPUS))
                cell = nb.run(f"for i in range({lo}, {hi}):\n"
                              f"    get_ipython().run_cell_magic('qwq', '', f'magic-{{i}}-{v}.')",
                              timeout=300_000)
                expect(cell.locator(".qwq-footer")).to_have_count(hi - lo, timeout=60_000)
                tried += hi - lo
        _script(srv, "panel")
        nb.run("p = qm.ChatPanel()\np")
        panel = page.locator(".qwq-panel")
        expect(panel).to_be_visible(timeout=30_000)
        nb.run("for i in range(len(P)):\n"
               "    for v in ('field', 'inline'):\n"
               "        await p.send_async(f'panel-{i}-{v}.')",
               timeout=300_000)
        expect(panel.locator(".qwq-msg.assistant[data-status='complete']")).to_have_count(
            len(CORPUS) * 2, timeout=60_000)
        tried += len(CORPUS) * 2
        assert len(srv.requests) == tried  # every payload was asked for and streamed
        page.wait_for_timeout(500)  # an onerror or a load would have fired by now
        live = watch.executed()
        page.screenshot(path=artifact("hostile-live.png"))
        # save, then reopen as someone else's notebook: no trust signature
        page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
        path = lab.root / name
        for _ in range(200):
            if "magic-0-field" in path.read_text() and "qwq-footer" in path.read_text():
                break
            time.sleep(0.05)
        saved = json.loads(path.read_text())
        saved["metadata"].pop("signature", None)
        (lab.root / "reopened.ipynb").write_text(json.dumps(saved))
    finally:
        save_console(watch.console, "console-hostile.log")
    page2 = ctx.new_page()
    watch2 = Watch(page2)
    nb2 = Notebook(page2).open(lab, "reopened.ipynb")
    expect(page2.locator(".jp-OutputArea-output").first).to_be_visible(timeout=30_000)
    page2.wait_for_timeout(1000)
    assert page2.locator(".jp-OutputArea-output").count() >= len(CORPUS)  # outputs are shown
    reopened = watch2.executed()
    page2.screenshot(path=artifact("hostile-reopened.png"))
    # the detector itself works: a payload that does run is seen
    page2.evaluate("""() => { const d = document.createElement('div');
        d.className = 'jp-OutputArea';
        d.innerHTML = '<img src=x onerror="window.__pwned=1">';
        document.body.appendChild(d); }""")
    page2.wait_for_function("() => window.__pwned === 1", timeout=10_000)
    assert "window.__pwned was set" in watch2.executed()
    del nb2
    ctx.close()
    figure(f"hostile payloads tried: {tried} ({len(CORPUS)} payloads × 2 wire variants × magic "
           f"and panel, as reasoning and answer), executed: {len(live)}; after save and "
           f"reopen untrusted: executed: {len(reopened)}")
    assert live == [] and reopened == [], (live[:5], reopened[:5])
