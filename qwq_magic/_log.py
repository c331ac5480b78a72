"""The ``qwq_magic`` logger, and a redacting filter on the HTTP libraries' loggers.

``logging.getLogger("qwq_magic")`` records retries and JSON-mode fallbacks (never a key).
httpx and httpcore log request and response headers at DEBUG — servers echo keys back in them —
so every record from those loggers (and ours) passes through :func:`~qwq_magic.errors.redact`
before any handler sees it.
"""

from __future__ import annotations

import logging

from .errors import redact

logger = logging.getLogger("qwq_magic")


class RedactingFilter(logging.Filter):
    """Formats the record's message once and masks every registered key and bearer token."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # a broken format string: keep the record, drop its arguments
            msg = str(record.msg)
        clean = redact(msg)
        if clean != msg or record.args:
            record.msg, record.args = clean, None
        return True


_FILTER = RedactingFilter()


#: a logger's filters do not apply to its children's records, so each is named
LOGGERS = ("qwq_magic", "httpx", "httpcore", "httpcore.connection", "httpcore.http11",
           "httpcore.http2", "httpcore.proxy", "httpcore.socks")


def install() -> None:
    """Attach the filter to qwq_magic's, httpx's and httpcore's loggers (idempotent)."""
    for name in LOGGERS:
        lg = logging.getLogger(name)
        if _FILTER not in lg.filters:
            lg.addFilter(_FILTER)


install()
