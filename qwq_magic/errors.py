"""The exception tree. Every error a user can act on derives from :class:`QwqError`.

Messages say what to do. No message, repr or attribute ever holds an API key: keys a client
uses are registered with :func:`register_secret` and masked in every message as a last guard.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .completion import Completion

_SECRETS: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret (an API key) so that it is masked in every error message."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-~+/=]{6,}")


def redact(text: str) -> str:
    """Mask registered secrets and bearer tokens in ``text``."""
    for s in _SECRETS:
        if s in text:
            text = text.replace(s, mask(s))
    return _BEARER.sub(r"\1***", text)


def mask(key: str | None) -> str:
    """A key as it may be shown: ``'sk-a…f9'`` style, never the whole thing."""
    if not key:
        return "(none)"
    if len(key) <= 8:
        return "***"
    return f"{key[:3]}…{key[-2:]}"


class Secret:
    """A key held so that no repr, str, ``vars()`` or traceback shows it (``.get()`` does)."""

    __slots__ = ("_value",)

    def __init__(self, value: str | Secret) -> None:
        self._value = value.get() if isinstance(value, Secret) else str(value)
        register_secret(self._value)

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({mask(self._value)!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


#: characters of an error body an :class:`APIError` keeps (after redaction)
BODY_KEPT = 2000


class QwqError(Exception):
    """Base class of every qwq_magic error."""

    def __init__(self, message: str, *, completion: Completion | None = None) -> None:
        super().__init__(redact(message))
        self.completion = completion

    @property
    def message(self) -> str:
        return str(self)

    def __str__(self) -> str:
        return redact(super().__str__())


class ConfigurationError(QwqError):
    """The client is not set up right: unknown provider, bad URL, missing account id…"""


class MissingKeyError(ConfigurationError):
    """No API key was found for a provider that needs one."""

    def __init__(self, provider: str, env_vars: tuple[str, ...]) -> None:
        self.provider = provider
        self.env_vars = env_vars
        names = " or ".join(env_vars)
        super().__init__(
            f"No API key for provider {provider!r}: set the environment variable {names} "
            f"(or pass api_key=…)."
        )


class ParameterError(QwqError, ValueError):
    """A sampling parameter is out of range or not supported; raised before any request."""

    def __init__(
        self,
        message: str,
        *,
        param: str,
        value: Any = None,
        provider: str | None = None,
        allowed: str | None = None,
    ) -> None:
        self.param = param
        self.value = value
        self.provider = provider
        self.allowed = allowed
        super().__init__(message)


class APIError(QwqError):
    """The provider answered with an error (HTTP status, or an error event in the stream)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        provider: str | None = None,
        code: str | int | None = None,
        body: str | None = None,
        completion: Completion | None = None,
    ) -> None:
        self.status = status
        self.provider = provider
        # a server may echo anything back, in the body and in the code: redact before the cut,
        # so no key straddling the cut survives in part
        self.code = redact(code) if isinstance(code, str) else code
        self.body = redact(body)[:BODY_KEPT] if body else body
        super().__init__(message, completion=completion)


class AuthenticationError(APIError):
    """401/403: the key is missing, wrong, or lacks access."""


class NotFoundError(APIError):
    """404 or the provider's 'no such model': the model or the URL is wrong."""


class BadRequestError(APIError):
    """400/422: the provider refused the request."""


class RateLimitError(APIError):
    """429 after every allowed retry."""

    def __init__(self, message: str, *, retry_after: float | None = None, attempts: int = 1,
                 **kw: Any) -> None:
        self.retry_after = retry_after
        self.attempts = attempts
        super().__init__(message, **kw)


class ServerError(APIError):
    """5xx from the provider after every allowed retry."""


class StreamError(APIError):
    """The stream broke after it started: an error event or a dropped connection.

    ``.completion`` holds everything that had arrived before the break.
    """


class ConnectError(QwqError):
    """The server could not be reached (refused, DNS, TLS)."""


class RequestTimeoutError(QwqError):
    """No answer, or no new data, within the configured timeout."""


#: the earlier name (it shadowed the builtin ``TimeoutError`` in ``from qwq_magic import *``)
TimeoutError = RequestTimeoutError


def fmt_usd(v: float) -> str:
    """``$0.000123`` for small sums, ``$0.1234`` below a dollar, ``$12.34`` above."""
    return f"${v:.6f}" if v < 0.01 else f"${v:.4f}" if v < 1 else f"${v:.2f}"


class BudgetExceededError(QwqError):
    """The session's spend reached its budget cap; nothing was sent.

    ``spent`` and ``cap`` are in USD.
    """

    def __init__(self, spent: float, cap: float, replies: int) -> None:
        self.spent = spent
        self.cap = cap
        super().__init__(
            f"Budget reached: this session has spent {fmt_usd(spent)} of its {fmt_usd(cap)} "
            f"cap ({replies} {'reply' if replies == 1 else 'replies'}); nothing was sent. "
            "Raise it with %qwq budget 1.00 (or qm.session.budget = 1.0), or lift it with "
            "%qwq budget off."
        )


class CassetteMissError(QwqError):
    """Replay asked for a request that was never recorded."""


class InterpolationError(QwqError):
    """A ``{reference}`` in the prompt could not be filled in."""


class UsageError(QwqError):
    """A mistyped magic option or subcommand."""


class QwqInterrupted(KeyboardInterrupt):
    """The cell was interrupted; the partial reply is kept. Shown as one line (a
    ``KeyboardInterrupt``, so Run All stops there)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def _render_traceback_(self) -> list[str]:
        return [self.message]


# -- structured output ------------------------------------------------------------------------
class StructuredOutputError(QwqError):
    """The reply could not be turned into data matching the schema; ``.raw`` is the text we
    tried to parse, ``.attempts`` every (Completion, error) of a run with retries."""

    def __init__(self, message: str, *, raw: str = "", completion: Completion | None = None
                 ) -> None:
        super().__init__(message, completion=completion)
        self.raw = raw
        self.attempts: list[tuple[Completion, Exception]] = []


class InvalidJSONError(StructuredOutputError):
    """The answer is not valid JSON."""

    def __init__(self, reason: str, *, raw: str = "", line: int = 1, col: int = 1,
                 completion: Completion | None = None) -> None:
        self.reason, self.line, self.col = reason, line, col
        msg = f"The answer is not valid JSON: {reason} at line {line} col {col}"
        if raw.strip():
            msg += f". The answer began: {_excerpt(raw)}"
        super().__init__(msg, raw=raw, completion=completion)


class SchemaValidationError(StructuredOutputError):
    """The answer is JSON but does not match the schema; ``.path`` names the failing field."""

    def __init__(self, path: str, reason: str, *, raw: str = "",
                 completion: Completion | None = None) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"The answer does not match the schema at {path}: {reason}", raw=raw,
                         completion=completion)


class TruncatedOutputError(StructuredOutputError):
    """Generation stopped at max_tokens before the JSON value was complete."""

    def __init__(self, max_tokens: int | None, *, raw: str = "", thinking: bool = False,
                 completion: Completion | None = None) -> None:
        self.max_tokens = max_tokens
        n = f"{max_tokens} tokens" if max_tokens else "token limit"
        where = " (the model was still thinking)" if thinking else ""
        super().__init__(
            f"The answer was cut off at max_tokens ({n}) before the JSON was complete{where}; "
            "raise --max-tokens", raw=raw, completion=completion)


def _excerpt(text: str, n: int = 120) -> str:
    t = " ".join(text.strip().split())
    return repr(t if len(t) <= n else t[: n - 1] + "…")
