"""The canary suite: a distinct canary key in every key variable, servers that echo the key
back (in the 401 body and code, as careless real ones do), and a search of every place a key
could end up: outputs and tracebacks in every ``%xmode`` (magic and Python API), DEBUG logs of
qwq_magic, httpx and httpcore, recordings (``%qwq record``), the run log's file bytes, the chat
panel's widget state, and a notebook run in a real kernel and saved to disk.

A canary is "found" when the whole key or any 8 characters of its random part appear. The
module reports ``keys planted: N, found: 0`` (tests/_figures.py).
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import secrets
from collections.abc import Iterator
from typing import Any

import nbformat
import pytest
from _figures import figure
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import qwq_magic as qm
from qwq_magic import runlog, session
from qwq_magic.testing import Reply

#: every variable a key is read from
VARS = ("DEEPINFRA_TOKEN", "DEEPINFRA_API_KEY", "AIMLAPI_KEY", "AIML_API_KEY",
        "CLOUDFLARE_API_TOKEN", "CLOUDFLARE_AUTH_TOKEN", "QWQ_API_KEY")
#: (preset, server route, the variable whose key it sends)
PATHS = [("deepinfra", "deepinfra", "DEEPINFRA_TOKEN"),
         ("deepinfra", "deepinfra", "DEEPINFRA_API_KEY"),
         ("aimlapi", "aimlapi", "AIMLAPI_KEY"),
         ("aimlapi", "aimlapi", "AIML_API_KEY"),
         ("cloudflare", "cloudflare", "CLOUDFLARE_API_TOKEN"),
         ("cloudflare", "cloudflare", "CLOUDFLARE_AUTH_TOKEN"),
         ("openai", "deepinfra", "QWQ_API_KEY")]  # a generic server that checks (and echoes)
XMODES = ("Plain", "Context", "Verbose", "Minimal")
RUN = secrets.token_hex(4)  # fresh canaries per run: nothing stale can match
CANARIES = {v: f"sk-cnry{RUN}{secrets.token_hex(10)}" for v in VARS}
STATS = {"searched": 0, "found": 0}


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    figure(f"keys planted: {len(CANARIES)} (one per key variable), places searched: "
           f"{STATS['searched']}, found: {STATS['found']}")


def leaks(text: str | bytes, where: str) -> list[str]:
    """The canaries (or 8-character pieces of their random part) in ``text``."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    STATS["searched"] += 1
    found = []
    for var, key in CANARIES.items():
        core = key[len("sk-cnry") + len(RUN):]
        if key in text or any(core[i:i + 8] in text for i in range(len(core) - 7)):
            found.append(f"{var} in {where}")
    STATS["found"] += len(found)
    return found


@pytest.fixture
def canaries(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for v, k in CANARIES.items():
        monkeypatch.setenv(v, k)
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", "acct123")
    return CANARIES


@pytest.fixture
def ip(canaries: dict[str, str]) -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "qwq_magic")
    session.reset()
    yield shell
    session.stop_recording()
    session.reset()
    shell.run_line_magic("xmode", "Context")


@pytest.fixture
def echo(provider_server: Any) -> Any:
    """A server that refuses every canary and echoes it back (body and code), both ways."""
    provider_server.echo_auth = True
    return provider_server


@pytest.fixture
def debug_logs() -> Iterator[list[str]]:
    """Every record of every logger at DEBUG, formatted as a handler would write it."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    h = Keep(logging.DEBUG)
    h.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s %(args)s"))
    root = logging.getLogger()
    old = root.level
    root.addHandler(h)
    root.setLevel(logging.DEBUG)
    names = ("qwq_magic", "httpx", "httpcore")
    levels = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.DEBUG)
    yield lines
    root.removeHandler(h)
    root.setLevel(old)
    for n, lv in levels.items():
        logging.getLogger(n).setLevel(lv)


def _kw(srv: Any, route: str, preset: str) -> dict[str, Any]:
    kw = srv.client_kwargs(route)
    kw.pop("api_key")
    if preset == "openai":
        kw["model"] = "Qwen/QwQ-32B"
    return kw


def _run(ip: InteractiveShell, src: str) -> str:
    with capture_output() as cap:
        ip.run_cell(src)
    return cap.stdout + cap.stderr + "".join(json.dumps(o.data) for o in cap.outputs)


# -- Python API and magic, every xmode, DEBUG logs ----------------------------------------------
@pytest.mark.parametrize("preset, route, var", PATHS, ids=[p[2] for p in PATHS])
def test_python_api_tracebacks_in_every_xmode_and_debug_logs(
        ip: InteractiveShell, echo: Any, debug_logs: list[str], preset: str, route: str,
        var: str) -> None:
    ip.user_ns.update(qm=qm, KW=_kw(echo, route, preset), VAR=var)
    found: list[str] = []
    for i, xmode in enumerate(XMODES):
        if i % 2:  # the other kind of echo: an injected 401 that echoes the header
            echo.fault("status", code=401, echo_auth=True)
        ip.run_line_magic("xmode", xmode)
        out = _run(ip, "from qwq_magic.resolve import key_from_env\n"
                       f"c = qm.Client({preset!r}, api_key=key_from_env(VAR), **KW)\n"
                       "print(repr(c), vars(c), c.choice)\n"
                       "c.complete('hi')")
        assert "AuthenticationError" in out, out[-2000:]
        found += leaks(out, f"{xmode} traceback")
        # async, and the stream API, too
        out = _run(ip, "import asyncio\n"
                       "async def go():\n"
                       "    async for _ in c.astream('hi'):\n"
                       "        pass\n"
                       "asyncio.run(go())")
        found += leaks(out, f"{xmode} async traceback")
    assert any(r.startswith("httpcore") for r in debug_logs)  # DEBUG was captured
    found += leaks("\n".join(debug_logs), "DEBUG logs")
    assert found == []


@pytest.mark.parametrize("preset, route, var", PATHS, ids=[p[2] for p in PATHS])
def test_magic_outputs_and_tracebacks_in_every_xmode(
        ip: InteractiveShell, echo: Any, debug_logs: list[str], preset: str, route: str,
        var: str) -> None:
    kw = _kw(echo, route, preset)
    extra = f" --model {kw['model']}" if "model" in kw else ""
    extra += f" --account-id {kw['account_id']}" if "account_id" in kw else ""
    found: list[str] = []
    out = _run(ip, f"%qwq use {preset} --base-url {kw['base_url']} --key-env {var}{extra}")
    found += leaks(out, "%qwq use")
    for i, xmode in enumerate(XMODES):
        if i % 2:
            echo.fault("status", code=401, echo_auth=True)
        ip.run_line_magic("xmode", xmode)
        out = _run(ip, "%%qwq -o ans\nhi")
        assert "AuthenticationError" in out, out[-2000:]
        found += leaks(out, f"%%qwq in {xmode}")
    for src in ("%%qwq --dry-run --temperature 0.6\nshow me", "%qwq params", "%qwq providers",
                "%qwq models", "%qwq history", "%qwq cost",
                "print(repr(_qwq), _qwq.messages, _qwq.params, vars(_qwq))",
                "print(repr(qm.session), vars(qm.session), qm.session.client().__dict__)"):
        ip.user_ns["qm"] = qm
        found += leaks(_run(ip, src), src.split()[0])
    found += leaks("\n".join(debug_logs), "DEBUG logs")
    assert found == []


# -- recordings, the run log, widget state -----------------------------------------------------
def test_recordings_and_the_run_log_hold_no_key(ip: InteractiveShell, echo: Any,
                                                tmp_path: pathlib.Path) -> None:
    rec = tmp_path / "rec.jsonl"
    echo.script(Reply(reasoning="Thinking.", content="Recorded answer."))
    # a server that accepts any key (vllm needs none, gets QWQ_API_KEY) — the reply is recorded
    _run(ip, f"%qwq use openai --base-url {echo.base_url('vllm')} --model qwq")
    _run(ip, f"%qwq record {rec}")
    out = _run(ip, "%%qwq\nhi")
    assert "Recorded answer." in out
    assert echo.requests[-1].headers.get("Authorization", "").endswith(CANARIES["QWQ_API_KEY"])
    # …and one that refuses it and echoes it back (an error, also logged)
    for preset, route, var in PATHS:
        kw = _kw(echo, route, preset)
        extra = f" --model {kw['model']}" if "model" in kw else ""
        extra += f" --account-id {kw['account_id']}" if "account_id" in kw else ""
        _run(ip, f"%qwq use {preset} --base-url {kw['base_url']} --key-env {var}{extra}")
        _run(ip, "%%qwq\nhi again")
    session.stop_recording()
    assert runlog.flush()
    found = leaks(rec.read_bytes(), "recording")
    log = pathlib.Path(os.environ["QWQ_LOG_PATH"])
    assert log.exists()
    for p in [log, *log.parent.glob(log.name + "-*")]:  # the database and its -wal/-shm files
        found += leaks(p.read_bytes(), p.name)
    assert b"Recorded answer." in log.read_bytes() or any(
        b"Recorded answer." in p.read_bytes() for p in log.parent.glob(log.name + "-*"))
    assert found == []


async def test_widget_state_holds_no_key(canaries: dict[str, str], echo: Any) -> None:
    from qwq_magic.state import Session
    from qwq_magic.widgets import ChatPanel

    found: list[str] = []
    for preset, route, var in PATHS:
        from qwq_magic.resolve import key_from_env

        sess = Session()
        c = qm.Client(preset, api_key=key_from_env(var), **_kw(echo, route, preset))
        panel = ChatPanel(sess, client=c)
        await panel.send_async("hi")
        state = panel.get_state()
        assert "error" in json.dumps(state, default=str).lower()
        found += leaks(json.dumps(state, default=str), f"ChatPanel state ({var})")
        found += leaks(repr(panel.last) + str(panel.conversation), f"panel.last ({var})")
        panel.close()
    assert found == []


# -- a real kernel, a saved notebook ------------------------------------------------------------
@pytest.mark.kernel
def test_a_notebook_run_in_a_kernel_and_saved_holds_no_key(canaries: dict[str, str],
                                                           echo: Any, tmp_path: pathlib.Path
                                                           ) -> None:
    from nbclient import NotebookClient

    cells = ["%load_ext qwq_magic",
             "import logging, sys\nlogging.basicConfig(level=logging.DEBUG, stream=sys.stdout)\n"
             "for n in ('qwq_magic', 'httpx', 'httpcore'):\n"
             "    logging.getLogger(n).setLevel(logging.DEBUG)",
             "%qwq providers"]
    for i, (preset, route, var) in enumerate(PATHS):
        kw = _kw(echo, route, preset)
        extra = f" --model {kw['model']}" if "model" in kw else ""
        extra += f" --account-id {kw['account_id']}" if "account_id" in kw else ""
        cells += [f"%xmode {XMODES[i % len(XMODES)]}",
                  f"%qwq use {preset} --base-url {kw['base_url']} --key-env {var}{extra}",
                  "%%qwq -o ans\nhi",
                  "%%qwq --dry-run\nshow the request",
                  "import qwq_magic as qm\nc = qm.session.client()\n"
                  "print(repr(c), vars(c), repr(_qwq), _qwq.params)",
                  "c.complete('from python')"]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True).execute()
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, path)
    saved = path.read_text(encoding="utf-8")
    assert "AuthenticationError" in saved and "httpcore" in saved  # errors and DEBUG logs
    assert leaks(saved, "saved notebook") == []
