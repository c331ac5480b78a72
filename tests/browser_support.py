"""Helpers for the real-browser tests: Debian's chromium, a private JupyterLab, notebook cells.

JupyterLab runs on 127.0.0.1 with a random port and token and fresh config/settings/runtime
directories, so nothing from the developer's ``~/.jupyter`` leaks in. Cells are run through
JupyterLab's command registry (``window.jupyterapp``, exposed by
``--LabApp.expose_app_in_browser``) rather than by clicking toolbars, whose selectors drift.

With the ``notebook`` package installed, the same server also serves Notebook 7 at
``/notebooks/<path>`` (its server extension is enabled by its install, and loads next to
JupyterLab's); ``--JupyterNotebookApp.expose_app_in_browser`` gives it a ``window.jupyterapp``
with the same command registry and notebook widgets, so ``Notebook`` drives both front ends.

Playwright drives the system chromium through ``executable_path``: never ``playwright install``.
A missing chromium is a failure with a clear message, not a skip (CI installs it).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from typing import Any

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "browser"
DOCS_IMG = REPO / "docs" / "img"

CHROME_ARGS = [
    "--no-sandbox",  # CI containers run as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


def chromium_path() -> str:
    """The system chromium, or a test failure that says how to install it."""
    # (not QWQ_*: the repository's conftest.py clears those)
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):
        pytest.fail(
            f"chromium not found at {path!r}: the browser tests need Debian's chromium "
            "(apt-get install -y chromium) or CHROMIUM=/path/to/chrome. "
            "Deselect them with -m 'not browser'.",
            pytrace=False,
        )
    return path


def launch_browser(pw: Any) -> Any:
    return pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROME_ARGS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def artifact(name: str) -> pathlib.Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


def docs_screenshot(locator: Any, name: str) -> pathlib.Path:
    """Screenshot ``locator`` for the README: always into test-artifacts/browser/, and into
    docs/img/ when that file is missing or UPDATE_DOCS_IMG=1 (timings and ports differ on
    every run, so rewriting it each time would only churn the working tree)."""
    shot = artifact(name)
    locator.page.mouse.move(0, 0)  # no hover highlight
    locator.screenshot(path=shot, animations="disabled")
    target = DOCS_IMG / name
    if os.environ.get("UPDATE_DOCS_IMG") == "1" or not target.exists():
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)
    return shot


# -- JupyterLab ------------------------------------------------------------------------------
def _write_settings(settings: pathlib.Path) -> None:
    def put(ext: str, plugin: str, values: dict[str, Any]) -> None:
        d = settings / ext
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{plugin}.jupyterlab-settings").write_text(json.dumps(values))

    # no "receive official Jupyter news?" toast, no update check
    put("@jupyterlab/apputils-extension", "notification",
        {"fetchNews": "false", "checkForUpdates": False})
    # every cell stays in the DOM (no virtual scrolling / content-visibility tricks)
    put("@jupyterlab/notebook-extension", "tracker", {"windowingMode": "none"})


class JupyterLab:
    """A private ``jupyter lab`` process; ``url(path)`` adds the token."""

    def __init__(self, tmp: pathlib.Path) -> None:
        self.tmp = tmp
        self.root = tmp / "root"
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.log_path = tmp / "lab.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}?token={self.token}"

    def start(self, timeout: float = 90) -> JupyterLab:
        _write_settings(self.tmp / "settings")
        env = os.environ.copy()
        env.update({
            "JUPYTER_CONFIG_DIR": str(self.tmp / "config"),
            "JUPYTER_DATA_DIR": str(self.tmp / "data"),
            "JUPYTER_RUNTIME_DIR": str(self.tmp / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(self.tmp / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(self.tmp / "workspaces"),
            "IPYTHONDIR": str(self.tmp / "ipython"),
            "JUPYTER_PLATFORM_DIRS": "1",
        })
        # the kernel imports this checkout's qwq_magic (also without an editable install)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        cmd = [
            sys.executable, "-m", "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
            # Notebook 7 (the ``notebook`` package), served by this same server
            "--JupyterNotebookApp.expose_app_in_browser=True",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        status = self.url("api/status")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited:\n{self.log()}")
            try:
                with urllib.request.urlopen(status, timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"jupyter lab did not come up in {timeout} s:\n{self.log()}")

    def serves_notebook7(self) -> bool:
        """Whether Notebook 7's extension loaded (its file browser answers at ``/tree``)."""
        try:
            with urllib.request.urlopen(self.url("tree"), timeout=10) as r:
                return r.status == 200 and b"Jupyter Notebook" in r.read()
        except OSError:
            return False

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)  # our own process group only (start_new_session)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def write_notebook(self, name: str, sources: Sequence[str] = ()) -> str:
        import nbformat

        nb = nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_code_cell(s) for s in sources],
            metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}},
        )
        nbformat.write(nb, self.root / name)
        return name


# -- one open notebook -----------------------------------------------------------------------
class Notebook:
    """The notebook open in ``page``: append cells, run them, find their outputs.

    ``ui="lab"`` opens it in JupyterLab, ``ui="notebook7"`` in Notebook 7; both expose the
    notebook panel as ``window.jupyterapp.shell.currentWidget``, so the rest is shared.
    """

    def __init__(self, page: Any, ui: str = "lab") -> None:
        if ui not in ("lab", "notebook7"):
            raise ValueError(f"unknown front end {ui!r}")
        self.page = page
        self.ui = ui

    def open(self, lab: JupyterLab, name: str, timeout: float = 90_000) -> Notebook:
        self.page.goto(lab.url(f"lab/tree/{name}" if self.ui == "lab" else f"notebooks/{name}"))
        self.page.wait_for_function(
            "() => window.jupyterapp?.shell.currentWidget?.content?.model?.cells !== undefined",
            timeout=timeout)
        self.wait_idle(timeout)
        if self.ui == "lab":
            # the file browser would squeeze the notebook: give the cells the whole width
            self.page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
        return self

    def app_name(self) -> str:
        """The front end's own name: "JupyterLab" or "Jupyter Notebook"."""
        return str(self.page.evaluate("() => window.jupyterapp.name"))

    def wait_idle(self, timeout: float = 30_000) -> None:
        self.page.wait_for_function(
            """() => {
                const k = window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel;
                return k && k.status === 'idle';
            }""",
            timeout=timeout)

    def count(self) -> int:
        return int(self.page.evaluate(
            "() => window.jupyterapp.shell.currentWidget.content.model.cells.length"))

    def clear(self) -> None:
        """Delete every cell (the kernel keeps its state)."""
        self.page.evaluate(
            """() => {
                const m = window.jupyterapp.shell.currentWidget.content.model.sharedModel;
                m.transact(() => m.deleteCellRange(0, m.cells.length));
            }""")

    def add(self, source: str) -> int:
        """Append a code cell; returns its index."""
        return int(self.page.evaluate(
            """(source) => {
                const m = window.jupyterapp.shell.currentWidget.content.model.sharedModel;
                const i = m.cells.length;
                m.insertCell(i, {cell_type: 'code', source});
                return i;
            }""",
            source))

    def cell(self, index: int) -> Any:
        return self.page.locator(".jp-Notebook .jp-Cell").nth(index)

    def output(self, index: int) -> Any:
        return self.cell(index).locator(".jp-OutputArea")

    def run_index(self, index: int, wait: bool = True, timeout: float = 30_000) -> Any:
        """Run cell ``index``; with ``wait`` until it finished and the kernel is idle."""
        js = """async ([i, wait]) => {
            const app = window.jupyterapp;
            const nb = app.shell.currentWidget;
            nb.content.activeCellIndex = i;
            const done = app.commands.execute('notebook:run-cell');
            if (wait) await done;
        }"""
        self.page.evaluate(js, [index, wait])
        if wait:
            self.wait_idle(timeout)
        return self.cell(index)

    def run(self, source: str, wait: bool = True, timeout: float = 30_000) -> Any:
        """Append a code cell with ``source``, run it; returns the cell's locator."""
        return self.run_index(self.add(source), wait=wait, timeout=timeout)

    def run_text(self, source: str, timeout: float = 30_000) -> str:
        """Run ``source`` and return the text of its output area (errors fail the test)."""
        cell = self.run(source, timeout=timeout)
        out = cell.locator(".jp-OutputArea")
        text = out.inner_text() if out.count() else ""
        # JupyterLab renders error outputs (and stderr) with this MIME type
        stderr = cell.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        if any(re.search(r"Error|Traceback", t) for t in stderr.all_inner_texts()):
            raise AssertionError(f"cell failed:\n{source}\n---\n{text}")
        return text

    def wait_comm_subshells(self, timeout_ms: int = 10_000) -> list[str | None]:
        """Wait until every widget comm's kernel subshell is up; returns their ids.

        JupyterLab >= 4.4 (``commsOverSubshells``, default ``perCommTarget``) sends a comm's
        messages to the main shell until the comm's subshell is created, then to the subshell
        (its own thread and asyncio loop in ipykernel 7). Waiting here makes that choice
        deterministic. Uses the kernel connection's private ``_comms`` map; an empty list when
        the kernel has no subshells or the map is gone.
        """
        return list(self.page.evaluate(
            """async (timeout) => {
                const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
                if (!k.supportsSubshells || !(k._comms instanceof Map)) return [];
                const comms = [...k._comms.values()];
                const later = new Promise((r) => setTimeout(r, timeout));
                await Promise.race([
                    Promise.all(comms.map((c) => c.subshellStarted ?? Promise.resolve())),
                    later]);
                return comms.map((c) => c.subshellId ?? null);
            }""",
            timeout_ms))

    def set_theme(self, theme: str) -> None:
        self.page.evaluate(
            "async (theme) => { await window.jupyterapp.commands.execute("
            "'apputils:change-theme', {theme}); }",
            theme)
        self.page.wait_for_function(
            "(theme) => document.body.dataset.jpThemeName === theme", arg=theme,
            timeout=15_000)
        # JupyterLab shows its splash screen while the theme's CSS loads
        self.page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=15_000)


def save_console(lines: list[str], name: str = "console.log") -> None:
    with contextlib.suppress(OSError):
        artifact(name).write_text("\n".join(lines))
