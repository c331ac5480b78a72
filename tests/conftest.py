"""Fixtures the browser test modules share (each module gets its own server, JupyterLab and
chromium: module scope). Other test modules that define a fixture of the same name use theirs."""

from __future__ import annotations

from typing import Any

import pytest
from browser_support import JupyterLab, artifact, launch_browser


@pytest.fixture(scope="module")
def srv() -> Any:
    """The local provider server, one per test module."""
    from qwq_magic.testing import ProviderServer

    with ProviderServer() as s:
        yield s


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Any:
    """A JupyterLab server per test module; its log is kept as an artifact
    (``lab.log``, or ``lab-<name>.log`` for ``test_browser_<name>.py``)."""
    tag = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_browser").strip("_")
    server = JupyterLab(tmp_path_factory.mktemp(f"jupyterlab-{tag or 'main'}")).start()
    try:
        yield server
    finally:
        server.stop()
        artifact(f"lab-{tag}.log" if tag else "lab.log").write_text(server.log())


@pytest.fixture(scope="module")
def browser() -> Any:
    """Debian's chromium through Playwright, one per test module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = launch_browser(pw)
        try:
            yield b
        finally:
            b.close()

