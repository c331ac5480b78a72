"""Keys never leak: canary keys in every key variable, servers that echo them back, tracebacks
in every ``%xmode``, httpx/httpcore DEBUG logs, and redaction before truncation."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import qwq_magic as qm
from qwq_magic.errors import APIError, redact, register_secret
from qwq_magic.testing import API_KEY

CANARY = "sk-canary-7f3a9c2e1b4d8f6a0c5e"
VARS = ("DEEPINFRA_TOKEN", "AIMLAPI_KEY", "CLOUDFLARE_API_TOKEN", "QWQ_API_KEY")


@pytest.fixture
def canaries(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    keys = [f"{CANARY}-{v.lower()}" for v in VARS]
    for v, k in zip(VARS, keys, strict=True):
        monkeypatch.setenv(v, k)
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", "acct123")
    return keys


def test_redaction_happens_before_the_cut() -> None:
    key = "sk-straddle-0123456789abcdef"
    register_secret(key)
    body = "x" * 1990 + key + "tail"
    e = APIError("boom", body=body, code=f"bad key {key}")
    assert key[:8] not in (e.body or "")[1985:] and key not in str(e.code)


@pytest.mark.parametrize("xmode", ["Plain", "Context", "Verbose", "Minimal"])
@pytest.mark.parametrize("route, preset", [("deepinfra", "deepinfra"), ("aimlapi", "aimlapi"),
                                           ("cloudflare", "cloudflare"), ("vllm", "openai")])
def test_tracebacks_in_every_xmode_hold_no_key(canaries: list[str], provider_server: Any,
                                               xmode: str, route: str, preset: str) -> None:
    """A 401 whose body and code echo the Authorization header, raised from a plain Python
    call in a cell (no magic shortening the traceback)."""
    kw = provider_server.client_kwargs(route)
    kw.pop("api_key")
    provider_server.fault("status", code=401, echo_auth=True, times=None)
    provider_server.echo_auth = True
    ip = InteractiveShell.instance()
    ip.user_ns.update(qm=qm, KW=kw)
    with capture_output() as cap:
        ip.run_line_magic("xmode", xmode)
        ip.run_cell(f"c = qm.Client({preset!r}, **KW)\nc.complete('hi')")
    ip.run_line_magic("xmode", "Context")
    out = cap.stdout + cap.stderr
    assert "AuthenticationError" in out
    for k in canaries:
        assert k not in out and k[3:20] not in out, (xmode, route)


def test_debug_logs_of_httpx_and_httpcore_hold_no_key(canaries: list[str], provider_server: Any,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    kw = provider_server.client_kwargs("deepinfra")
    kw.pop("api_key")
    provider_server.echo_auth = True
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(qm.AuthenticationError):
            qm.Client("deepinfra", **kw).complete("hi")
        qm.Client("deepinfra", **provider_server.client_kwargs("deepinfra")).complete("hi")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "httpcore" in " ".join(r.name for r in caplog.records)  # the logs were captured
    for k in [*canaries, API_KEY]:
        assert k not in text
    assert canaries[0] not in redact(f"Bearer {canaries[0]}")


def test_models_listing_redacts_server_sent_ids(canaries: list[str], provider_server: Any
                                                ) -> None:
    provider_server.add_model(f"echo-{canaries[3]}")
    c = qm.Client("openai", **provider_server.client_kwargs("vllm"))
    ids = c.list_models()
    assert ids and not any(canaries[3] in i for i in ids)
