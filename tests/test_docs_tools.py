"""The docs build's own tools: the offline link checker, the notebook rewrite for the site, and
the reST-to-Markdown docstring pass (the full build runs in CI via scripts/docs.sh)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def _load(path: str):
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


check_links = _load("scripts/check_links.py")
docs_notebooks = _load("scripts/docs_notebooks.py")


def _site(tmp_path: Path, pages: dict[str, str]) -> Path:
    for name, html in pages.items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(html)
    return tmp_path


def test_link_checker_finds_missing_pages_and_anchors(tmp_path):
    site = _site(tmp_path, {
        "index.html": '<a href="guide/">ok</a> <a href="guide/#setup">ok</a> '
                      '<a href="gone/">missing</a> <a href="guide/#nope">bad anchor</a> '
                      '<img src="img/a.png"> <a href="https://example.org">ext</a> '
                      '<a href="#top">self</a><h1 id="top">t</h1>',
        "guide/index.html": '<h2 id="setup">Setup</h2><a href="/index.html#top">root</a>'
                            '<a href="../index.html">up</a>',
    })
    broken, internal, external = check_links.check(site)
    assert sorted(broken) == ["index.html: gone/ (no such file)",
                              "index.html: guide/#nope (no #nope on that page)",
                              "index.html: img/a.png (no such file)"]
    assert internal == 8 and external == 1


def test_notebook_links_and_headings_for_the_site():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(
        "# Quickstart: `%%qwq` in one minute\n\nNext: [reasoning](reasoning.ipynb) · "
        "[x](chat_panel.ipynb#stop) · [web](https://x.org/a.ipynb) · `code` stays"),
        nbformat.v4.new_code_cell("print('[a](b.ipynb)')")]
    docs_notebooks.for_the_site(nb)
    md = nb.cells[0].source
    assert md.startswith("# Quickstart: %%qwq in one minute\n")
    assert "[reasoning](../reasoning/)" in md and "[x](../chat_panel/#stop)" in md
    assert "(https://x.org/a.ipynb)" in md and "`code` stays" in md
    assert nb.cells[1].source == "print('[a](b.ipynb)')"


def test_docstrings_become_markdown():
    rst = _load("docs/_ext/rst_docstrings.py")
    out = rst.to_markdown("A client.\n\n>>> c = Client()\n>>> c.complete('x')\n\n"
                          "See :class:`Completion` and :meth:`~qwq_magic.Client.stream`.")
    assert "```pycon\n>>> c = Client()\n>>> c.complete('x')\n```" in out
    assert "See `Completion` and `qwq_magic.Client.stream`." in out
