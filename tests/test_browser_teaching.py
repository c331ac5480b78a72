"""Teaching in a real browser (#16): "Reveal reasoning" works in an untrusted saved notebook in
JupyterLab and Notebook 7, ``%qwq reveal`` redraws the session's hidden blocks in place, and a
live "Thinking…" at ``font_scale = 1.4`` stays readable at projector resolution (1280×720).

Screenshots go to ``test-artifacts/browser/`` (``teach-*.png``).
"""

from __future__ import annotations

import re
from typing import Any

import nbformat
import pytest
from browser_support import (
    JupyterLab,
    Notebook,
    artifact,
    save_console,
)
from playwright.sync_api import expect

from qwq_magic.testing import ProviderServer, Reply

pytestmark = [pytest.mark.browser, pytest.mark.kernel]

SECRET = "First I count the legs: a cat has four, a bird has two. <b>not bold</b>"
ANSWER = "A cat has **four** legs."




def open_notebook(page: Any, lab: JupyterLab, name: str, ui: str = "lab") -> Notebook:
    """Open ``name``; in JupyterLab in a workspace of its own, so the documents an earlier
    test opened (restored from the default workspace) never take the focus."""
    nb = Notebook(page, ui=ui)
    if ui != "lab":
        return nb.open(lab, name)
    page.goto(lab.url(f"lab/workspaces/{name.removesuffix('.ipynb')}/tree/{name}"))
    page.wait_for_function(
        "(name) => window.jupyterapp?.shell.currentWidget?.context?.path === name "
        "&& window.jupyterapp.shell.currentWidget.content?.model?.cells !== undefined",
        arg=name, timeout=90_000)
    nb.wait_idle(90_000)
    page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
    return nb


def _saved_lesson(lab: JupyterLab, srv: ProviderServer) -> str:
    """A notebook executed (nbclient) in class mode and saved: an untrusted file on disk."""
    from nbclient import NotebookClient

    srv.script(Reply(reasoning=SECRET, content=ANSWER))
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("%load_ext qwq_magic\n"
                                          f"%qwq use openai --base-url {srv.base_url('vllm')} "
                                          "--model qwq\n%qwq class on"),
                nbformat.v4.new_code_cell("%%qwq\nHow many legs has a cat?")]
    NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    nbformat.write(nb, lab.root / "saved_lesson.ipynb")
    return "saved_lesson.ipynb"


@pytest.mark.parametrize("ui", ["lab", "notebook7"])
def test_reveal_control_works_in_an_untrusted_saved_notebook(ui: str, browser: Any,
                                                              lab: JupyterLab,
                                                              srv: ProviderServer) -> None:
    name = _saved_lesson(lab, srv)
    ctx = browser.new_context(viewport={"width": 1100, "height": 800})
    console: list[str] = []
    page = ctx.new_page()
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    try:
        nb = open_notebook(page, lab, name, ui)
        trusted = page.evaluate(
            "() => window.jupyterapp.shell.currentWidget.content.model.cells.get(1).trusted")
        assert trusted is False  # nobody trusted it: no script would run
        out = nb.output(1)
        fold = out.locator("details.qwq-reveal")
        expect(fold).to_have_count(1, timeout=15_000)
        expect(fold).not_to_have_attribute("open", re.compile(".*"))
        expect(fold.locator("summary")).to_contain_text("Reveal reasoning")
        expect(fold.locator(".qwq-reasoning-text")).to_be_hidden()
        expect(out.locator(".qwq-answer strong")).to_have_text("four")
        page.screenshot(path=artifact(f"teach-reveal-closed-{ui}.png"))
        fold.locator("summary").click()
        expect(fold).to_have_attribute("open", "")
        expect(fold.locator(".qwq-reasoning-text")).to_be_visible()
        expect(fold.locator(".qwq-reasoning-text")).to_contain_text("<b>not bold</b>")
        assert out.locator("b").count() == 0  # model text stayed text
        page.screenshot(path=artifact(f"teach-reveal-open-{ui}.png"))
    finally:
        save_console(console, f"console-teach-{ui}.log")
        ctx.close()


def test_qwq_reveal_redraws_hidden_blocks_in_place(browser: Any, lab: JupyterLab,
                                                   srv: ProviderServer) -> None:
    srv.reset()
    srv.script(Reply(reasoning=SECRET, content=ANSWER), Reply(reasoning="Second secret.",
                                                              content="Second answer."))
    ctx = browser.new_context(viewport={"width": 1100, "height": 900})
    page = ctx.new_page()
    try:
        nb = open_notebook(page, lab, lab.write_notebook("reveal.ipynb", ["1 + 1"]))
        nb.run_text("%load_ext qwq_magic\n"
                    f"%qwq use openai --base-url {srv.base_url('vllm')} --model qwq\n"
                    "%qwq class on")
        first = nb.run("%%qwq\nHow many legs has a cat?")
        second = nb.run("%%qwq --hide-reasoning\nAnd a bird?")
        for cell in (first, second):
            expect(cell.locator("details.qwq-reveal")).to_have_count(1, timeout=15_000)
            expect(cell.locator("details.qwq-reasoning")).to_have_count(0)
        nb.run("%qwq reveal")
        for cell in (first, second):
            out = cell.locator(".jp-OutputArea")
            expect(out.locator("details.qwq-reasoning summary")).to_contain_text(
                "Thought for", timeout=10_000)
            expect(out.locator("details.qwq-reveal")).to_have_count(0)
        expect(first.locator(".qwq-reasoning-text")).to_contain_text("count the legs",
                                                                     use_inner_text=False)
        page.screenshot(path=artifact("teach-revealed.png"))
    finally:
        ctx.close()


def test_thinking_is_readable_at_projector_resolution(browser: Any, lab: JupyterLab,
                                                      srv: ProviderServer) -> None:
    srv.reset()
    srv.script(Reply(reasoning="Let me think about this carefully, step by step. " * 60,
                     content="Done.", pace=0.03))
    ctx = browser.new_context(viewport={"width": 1280, "height": 720}, device_scale_factor=1)
    page = ctx.new_page()
    try:
        nb = open_notebook(page, lab, lab.write_notebook("projector.ipynb", ["1 + 1"]))
        nb.run_text("%load_ext qwq_magic\n"
                    f"%qwq use openai --base-url {srv.base_url('vllm')} --model qwq\n"
                    "%config QwqMagics.font_scale = 1.4")
        cell = nb.run("%%qwq\nExplain why the sky is blue.", wait=False)
        live = cell.locator("details.qwq-reasoning[open]")
        expect(live.locator("summary")).to_contain_text("Thinking", timeout=15_000)
        expect(live.locator(".qwq-reasoning-text")).to_contain_text("step by step")
        page.screenshot(path=artifact("teach-projector-thinking.png"))
        # the live output is redrawn ~10 times a second: measure inside one frame, in-page,
        # and again if the element was replaced mid-measurement (a detached node reads "")
        measure = """(c) => { const d = c.querySelector('details.qwq-reasoning[open]');
            if (!d) return null;
            return {summary: parseFloat(getComputedStyle(d.querySelector('summary')).fontSize),
                    text: parseFloat(getComputedStyle(
                        d.querySelector('.qwq-reasoning-text')).fontSize),
                    base: parseFloat(getComputedStyle(
                        document.querySelector('.jp-RenderedHTMLCommon')
                        || document.body).fontSize)}; }"""
        sizes: Any = None
        for _ in range(50):
            sizes = cell.evaluate(measure)
            if sizes and sizes["summary"] == sizes["summary"] and sizes["text"] == sizes["text"]:
                break  # (NaN != NaN)
            page.wait_for_timeout(50)
        # JupyterLab's 14 px content text × 1.4 × 0.9 (the fold's own size): ≥ 17 px on a
        # 1280×720 projector, where the default (12.6 px) is hard to read from the back
        assert sizes["summary"] >= 17 and sizes["text"] >= 17, sizes
        nb.wait_idle(60_000)
    finally:
        ctx.close()


def test_the_panels_saved_copy_hides_where_the_panel_runs(browser: Any, lab: JupyterLab,
                                                         srv: ProviderServer) -> None:
    srv.reset()
    srv.script(Reply(reasoning="Greeting.", content="Hello, **class**!"))
    ctx = browser.new_context(viewport={"width": 1100, "height": 900})
    page = ctx.new_page()
    try:
        nb = open_notebook(page, lab, lab.write_notebook("panel_copy.ipynb", ["1 + 1"]))
        nb.run_text("import qwq_magic as qm\n"
                    f"_ = qm.session.use('openai', base_url={srv.base_url('vllm')!r}, "
                    "model='qwq')")
        cell = nb.run("p = qm.ChatPanel()\np")
        expect(cell.locator(".qwq-panel")).to_be_visible(timeout=30_000)
        nb.run_text("c = await p.send_async('Good morning!')")
        copy = cell.locator(".qwq-panel-saved")
        expect(copy).to_have_count(1)
        expect(copy).to_contain_text("Good morning!", use_inner_text=False)  # kept fresh…
        expect(copy).to_be_hidden()  # …but the live panel is what shows
        expect(cell.locator(".qwq-panel .qwq-answer strong")).to_have_text("class")
        cell.screenshot(path=artifact("teach-panel-live.png"))
    finally:
        ctx.close()
