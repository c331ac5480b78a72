"""Execute the tutorial notebooks offline, from their recordings, into docs/tutorials/.

    .venv/bin/python scripts/docs_notebooks.py        # every notebook in notebooks/
    .venv/bin/python scripts/docs_notebooks.py quickstart

Each notebook runs in a fresh kernel with ``notebooks/`` as its working directory, so its
``%qwq replay recordings/NAME.jsonl`` line streams the recorded replies: no key, no network.
Provider variables are removed from the kernel's environment (a replay can never turn into a
live call) and ``QWQ_REPLAY_SPEED=0`` replays at once. A cell that raises fails the build,
except the cells tagged ``raises-exception`` (the tutorials' deliberate error examples).
The executed copies are written to docs/tutorials/ (git-ignored) for mkdocs-jupyter.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "notebooks"
OUT = ROOT / "docs" / "tutorials"
PROVIDER_VARS = ("QWQ_", "DEEPINFRA_", "AIMLAPI_", "CLOUDFLARE_", "OPENAI_")
# links between notebooks (`[x](reasoning.ipynb)`) point at the tutorial's page on the site
_NB_LINK = re.compile(r"\]\((?!\w+:)([\w-]+)\.ipynb(#[^)\s]*)?\)")
# links from a notebook to a docs page (`[x](../docs/batch.md)`, right on GitHub) point at the
# page on the site (tutorials/<name>/ is two levels below the site's root)
_DOC_LINK = re.compile(r"\]\(\.\./docs/([\w-]+)\.md(#[^)\s]*)?\)")
_HEADING = re.compile(r"^(#{1,6} .*)$", re.M)


def for_the_site(nb: nbformat.NotebookNode) -> None:
    """Markdown as mkdocs-jupyter needs it: page links, and headings without code spans (its
    table of contents drops code from a heading's slug while the heading's id keeps it)."""
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        src = _NB_LINK.sub(lambda m: f"](../{m.group(1)}/{m.group(2) or ''})", cell.source)
        src = _DOC_LINK.sub(lambda m: f"](../../{m.group(1)}/{m.group(2) or ''})", src)
        cell.source = _HEADING.sub(lambda m: m.group(1).replace("`", ""), src)


def offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(PROVIDER_VARS)}
    env["QWQ_REPLAY_SPEED"] = "0"
    return env


def execute(name: str) -> float:
    src = SRC / f"{name}.ipynb"
    nb = nbformat.read(src, as_version=4)
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(offline_env())  # the kernel inherits this process's environment
    t0 = time.perf_counter()
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3",
                       resources={"metadata": {"path": str(SRC)}}).execute()
    except CellExecutionError as e:
        first = str(e).strip().splitlines()[-1] if str(e).strip() else "a cell raised"
        sys.exit(f"docs: {src.relative_to(ROOT)} failed to execute: {first}")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    for_the_site(nb)
    OUT.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, OUT / src.name)
    return time.perf_counter() - t0


def main(names: list[str]) -> None:
    names = names or sorted(p.stem for p in SRC.glob("*.ipynb"))
    for name in names:
        if not (SRC / f"{name}.ipynb").exists():
            sys.exit(f"docs: no notebook notebooks/{name}.ipynb")
        print(f"docs: executed {name}.ipynb from its recording in {execute(name):.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
