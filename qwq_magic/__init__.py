"""qwq_magic: stream hosted reasoning models (QwQ-32B, Qwen3) into Jupyter.

``%load_ext qwq_magic`` registers the ``%%qwq`` / ``%qwq`` magics. The Python API::

    import qwq_magic as qm
    client = qm.Client("deepinfra")
    res = client.complete("What is 2+2?", temperature=0.6)
    res.reasoning, res.content, res.usage, res.cost

Names are imported lazily so that ``import qwq_magic`` and ``%load_ext`` stay near-instant.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
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
    "RequestTimeoutError": "errors",
    "TimeoutError": "errors",
    "BudgetExceededError": "errors",
    "CassetteMissError": "errors",
    "InterpolationError": "errors",
    "UsageError": "errors",
    "QwqInterrupted": "errors",
    "Secret": "errors",
    "StructuredOutputError": "errors",
    "InvalidJSONError": "errors",
    "SchemaValidationError": "errors",
    "TruncatedOutputError": "errors",
    "Choice": "resolve",
    "resolve": "resolve",
    "compare": "comparison",
    "Comparison": "comparison",
    "tune": "tuning",
    "Tuner": "tuning",
    "ChatPanel": "widgets",
    "ParamsPanel": "widgets",
    "session": "state",
    "Session": "state",
    "Params": "state",
    "history": "logview",
    "map": "batch",
    "MapEstimate": "batch",
    "MapError": "batch",
}

# left out of ``import *``, where they would shadow builtins: TimeoutError (the old name of
# RequestTimeoutError, still reachable as qm.TimeoutError) and map (qm.map)
__all__ = [*sorted(set(_EXPORTS) - {"TimeoutError", "map"}), "load_ipython_extension",
           "unload_ipython_extension"]


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'qwq_magic' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*__all__, "map"])


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext qwq_magic``: register the magics, nothing heavier."""
    from .magics import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .magics import unload

    unload(ipython)



def _declare_lazy_magic() -> None:
    """Inside IPython, ``import qwq_magic`` declares ``%qwq`` / ``%%qwq`` as lazy magics.

    Nothing is loaded now: the first ``%%qwq`` loads the extension, as if ``%load_ext
    qwq_magic`` had run (IPython >= 7.32, ``MagicsManager.register_lazy``). Outside IPython, or
    where IPython has not been imported, this does nothing and imports nothing.
    """
    ipython = sys.modules.get("IPython")
    shell = getattr(ipython, "get_ipython", lambda: None)()
    if shell is not None:
        with contextlib.suppress(AttributeError):  # IPython < 7.32: no lazy magics
            shell.magics_manager.register_lazy("qwq", __name__)


_declare_lazy_magic()
