"""qwq_magic: stream hosted reasoning models (QwQ-32B, Qwen3) into Jupyter.

``%load_ext qwq_magic`` registers the ``%%qwq`` / ``%qwq`` magics. The Python API::

    import qwq_magic as qm
    client = qm.Client("deepinfra")
    res = client.complete("What is 2+2?", temperature=0.6)
    res.reasoning, res.content, res.usage, res.cost

Names are imported lazily so that ``import qwq_magic`` and ``%load_ext`` stay near-instant.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "Client": "client",
    "Stream": "client",
    "AsyncStream": "client",
    "Completion": "completion",
    "ToolCall": "completion",
    "Timings": "completion",
    "ReasoningDelta": "events",
    "ContentDelta": "events",
    "ToolCallDelta": "events",
    "Usage": "events",
    "Finish": "events",
    "Reclassified": "events",
    "SamplingParams": "params",
    "PreparedRequest": "request",
    "PRESETS": "providers",
    "ThinkSplitter": "reasoning",
    "split_text": "reasoning",
    "QwqError": "errors",
    "ConfigurationError": "errors",
    "MissingKeyError": "errors",
    "ParameterError": "errors",
    "APIError": "errors",
    "AuthenticationError": "errors",
    "NotFoundError": "errors",
    "BadRequestError": "errors",
    "RateLimitError": "errors",
    "ServerError": "errors",
    "StreamError": "errors",
    "ConnectError": "errors",
    "TimeoutError": "errors",
    "CancelledError": "errors",
    "Secret": "errors",
    "StructuredOutputError": "structured",
    "InvalidJSONError": "structured",
    "SchemaValidationError": "structured",
    "TruncatedOutputError": "structured",
    "ChatPanel": "widgets",
    "ParamsPanel": "widgets",
    "session": "state",
    "Session": "state",
    "Params": "state",
}

__all__ = [*sorted(_EXPORTS), "load_ipython_extension", "unload_ipython_extension"]


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'qwq_magic' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext qwq_magic``: register the magics, nothing heavier."""
    from .magics import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .magics import unload

    unload(ipython)

