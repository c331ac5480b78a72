"""The local provider server: every provider's wire format on loopback, faults on demand.

>>> from qwq_magic.testing import ProviderServer, Reply
>>> with ProviderServer() as srv:
...     srv.script(Reply(reasoning="Two and two…", content="4"))
...     qm.Client("deepinfra", **srv.client_kwargs("deepinfra")).complete("2+2?")

In pytest the ``provider_server`` fixture gives a running server, reset for each test.
Run ``python -m qwq_magic.testing`` to start one by hand (it prints its base URLs).
"""

from .replies import Reply, ToolCall, example_for, tokens
from .server import ACCOUNT_ID, API_KEY, FAULTS, ProviderServer, RecordedRequest

__all__ = ["ACCOUNT_ID", "API_KEY", "FAULTS", "ProviderServer", "RecordedRequest", "Reply",
           "ToolCall", "example_for", "tokens"]
