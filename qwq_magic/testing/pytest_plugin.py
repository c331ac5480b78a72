"""pytest fixtures: ``provider_server`` (a running local provider server, reset per test).

Registered through the ``pytest11`` entry point, so any project that installs qwq_magic can use
it. One server per test session; each test gets it with no scripts, faults or requests left over.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def _qwq_provider_server_session() -> Iterator[object]:
    from .server import ProviderServer

    with ProviderServer() as srv:
        yield srv


@pytest.fixture
def provider_server(_qwq_provider_server_session: object) -> Iterator[object]:
    srv = _qwq_provider_server_session
    srv.reset()  # type: ignore[attr-defined]
    yield srv
    srv.reset()  # type: ignore[attr-defined]
