"""The ``qm.compare`` grid in a real JupyterLab (Debian chromium, Playwright): cells fill in as
the replies stream, and hostile model text stays inert. See browser_support.py for the setup."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser_support import (
    JupyterLab,
    Notebook,
    artifact,
    docs_screenshot,
    launch_browser,
    save_console,
)
from playwright.sync_api import expect, sync_playwright

from qwq_magic.testing import ProviderServer, Reply

pytestmark = pytest.mark.browser

EVIL_REASONING = ('Thinking about <img src=x onerror="window.__pwned=1"> and '
                  "<script>window.__pwned=2</script> carefully. ") * 6
EVIL_ANSWER = ('Here: <img src=x onerror="window.__pwned=3"> <script>window.__pwned=4</script> '
               "[click](javascript:window.__pwned=5) **done**")

# every state the grid's cells pass through, recorded at each DOM mutation of the output
RECORDER_JS = """(root) => {
    const rec = window.__qwqGrid = [];
    new MutationObserver(() => {
        const cells = [...root.querySelectorAll('.qwq-compare-cell')];
        if (cells.length) rec.push(cells.map((c) => [c.dataset.status,
            (c.querySelector('.qwq-answer')?.textContent || '').length]));
    }).observe(root, {subtree: true, childList: true, characterData: true, attributes: true});
}"""


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, list[str]]]:
    lab = JupyterLab(tmp_path_factory.mktemp("jupyterlab-compare")).start()
    console: list[str] = []
    try:
        with sync_playwright() as pw:
            browser = launch_browser(pw)
            ctx = browser.new_context(viewport={"width": 1200, "height": 900})
            pg = ctx.new_page()
            pg.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            pg.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            pg.on("dialog", lambda d: (console.append(f"dialog: {d.message}"), d.dismiss()))
            Notebook(pg).open(lab, lab.write_notebook("compare.ipynb", ["1 + 1"]))
            try:
                yield pg, console
            finally:
                save_console(console, "compare-console.log")
                ctx.close()
                browser.close()
    finally:
        lab.stop()
        artifact("compare-lab.log").write_text(lab.log())


def test_compare_grid_fills_in_live_and_keeps_hostile_text_inert(page: tuple[Any, list[str]],
                                                                 srv: ProviderServer) -> None:
    pg, console = page
    nb = Notebook(pg)
    srv.reset()
    srv.script(*[Reply(reasoning=EVIL_REASONING, content=EVIL_ANSWER, pace=0.02)
                 for _ in range(6)])
    nb.clear()
    nb.run_text("import qwq_magic as qm\nqm.session.reset()\n"
                f"_ = qm.session.use('openai', **{srv.client_kwargs('vllm')!r})")
    cell = nb.run("cmp = qm.compare('Repeat after me.', temperature=[0.2, 0.6, 1.0], runs=2, "
                  "concurrency=3, max_hz=8)", wait=False)
    out = cell.locator(".jp-OutputArea")
    grid = out.locator(".qwq-compare")
    expect(grid).to_be_visible(timeout=30_000)
    out.evaluate(RECORDER_JS)  # the output area: an update replaces the grid node
    cells = grid.locator(".qwq-compare-cell")
    expect(cells).to_have_count(6)
    expect(grid.locator(".qwq-compare-cell[data-status='streaming']").first).to_be_visible(
        timeout=15_000)
    pg.screenshot(path=artifact("compare-streaming.png"))
    expect(grid.locator(".qwq-compare-cell[data-status='complete']")).to_have_count(
        6, timeout=30_000)
    nb.wait_idle()
    expect(grid.locator(".qwq-compare-footer")).to_contain_text("Shortest answer")
    cell.screenshot(path=artifact("compare-grid.png"))

    # it filled in: some cells were done while others still streamed or waited their turn,
    # and an answer was seen partly written
    seq = pg.evaluate("() => window.__qwqGrid")
    assert any({"complete"} < {s for s, _ in snap} for snap in seq), seq[:3]
    assert any(s == "queued" for snap in seq for s, _ in snap) or any(
        s == "streaming" for snap in seq for s, _ in snap), seq[:3]
    final_len = seq[-1][0][1]
    assert any(0 < n < final_len for snap in seq for s, n in snap if s == "streaming"), seq[-3:]

    # hostile text is text: no element, no handler ran, markdown still rendered
    first = cells.first
    expect(first.locator(".qwq-reasoning-text")).to_contain_text(
        "<script>window.__pwned=2</script>")
    expect(first.locator(".qwq-answer")).to_contain_text('<img src=x onerror="window.__pwned=3">')
    expect(first.locator(".qwq-answer strong")).to_have_text("done")
    assert grid.locator("img, script, a[href^='javascript']").count() == 0
    assert pg.evaluate("() => typeof window.__pwned") == "undefined"
    assert not [c for c in console if c.startswith("dialog")]


SLOGANS = ["Fresh bread, every morning.", "Warm loaves, warm hearts.", "Crust you can trust.",
           "Rise and shine with us.", "Baked today, gone by noon.", "Good mornings start here."]


def test_compare_grid_with_a_plot_for_the_docs(page: tuple[Any, list[str]],
                                               srv: ProviderServer) -> None:
    pg, _console = page
    nb = Notebook(pg)
    srv.reset()
    srv.script(*[Reply(reasoning="A slogan for a bakery. Short and warm. " * (1 + 2 * (i // 2)),
                       content=f"**{s}**", pace=0.005) for i, s in enumerate(SLOGANS)])
    nb.clear()
    nb.run_text("import qwq_magic as qm\nqm.session.reset()\n"
                f"_ = qm.session.use('openai', **{srv.client_kwargs('vllm')!r})")
    cell = nb.run("cmp = qm.compare('Write a slogan for a bakery.', temperature=[0.2, 0.6, 1.0], "
                  "runs=2, concurrency=1)", timeout=60_000)
    grid = cell.locator(".jp-OutputArea .qwq-compare")
    expect(grid.locator(".qwq-compare-cell[data-status='complete']")).to_have_count(6)
    expect(grid.locator(".qwq-compare-cell .qwq-answer strong").first).to_have_text(SLOGANS[0])
    docs_screenshot(grid, "compare.png")
    plot = nb.run("cmp.plot()").locator(".jp-OutputArea img")
    expect(plot).to_be_visible(timeout=30_000)  # matplotlib's PNG, shown once
    assert plot.count() == 1


def test_tune_run_button_streams_into_the_bench(page: tuple[Any, list[str]],
                                               srv: ProviderServer) -> None:
    pg, _console = page
    nb = Notebook(pg)
    srv.reset()
    srv.script(Reply(reasoning="First try.", content="Fresh bread, every morning.", pace=0.01),
               Reply(reasoning="Second try.", content="Fresh <script>window.__pwned=9</script>"
                     " bread at dawn.", pace=0.01))
    nb.clear()
    nb.run_text("import qwq_magic as qm\nqm.session.reset()\n"
                f"_ = qm.session.use('openai', **{srv.client_kwargs('vllm')!r})")
    cell = nb.run("t = qm.tune('Write a slogan for a bakery.')\nt")
    bench = cell.locator(".qwq-tune")
    expect(bench).to_be_visible(timeout=30_000)
    expect(bench.locator(".qwq-params")).to_be_visible()  # the sliders
    nb.wait_comm_subshells()
    bench.locator(".qwq-tune-run").click()
    newest = bench.locator(".qwq-tune-reply[data-run='1'] .qwq-answer")
    expect(newest).to_contain_text("Fresh bread, every morning.", timeout=15_000)
    nb.run_text("qm.session.params.temperature = 1.1")
    bench.locator(".qwq-tune-run").click()
    expect(bench.locator(".qwq-tune-reply[data-run='2'] .qwq-answer")).to_contain_text(
        "bread at dawn.", timeout=15_000)
    expect(bench.locator(".qwq-tune-reply[data-run='1']")).to_be_visible()  # the previous one
    changes = bench.locator(".qwq-tune-changes")
    expect(changes).to_contain_text("temperature default → 1.1")
    expect(changes.locator("del").first).to_be_visible()
    expect(changes.locator("ins").first).to_be_visible()
    assert bench.locator("script, img").count() == 0
    assert pg.evaluate("() => typeof window.__pwned") == "undefined"
    bench.screenshot(path=artifact("tune.png"))
    assert [r.json.get("temperature") for r in srv.requests] == [None, 1.1]
