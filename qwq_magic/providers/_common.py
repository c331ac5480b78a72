"""Pieces both wire dialects share: reading error bodies and usage objects."""

from __future__ import annotations

import json
import re
from typing import Any

from ..events import Usage

_TITLE = re.compile(r"(?is)<title>(.*?)</title>")


def error_message(text: str) -> tuple[str, str | int | None]:
    """Pull ``(message, code)`` out of any provider's error body (JSON shapes or HTML)."""
    text = text.strip()
    try:
        obj = json.loads(text) if text else None
    except ValueError:
        obj = None
    if obj is None:
        if "<" in text[:100]:
            m = _TITLE.search(text)
            return (f"non-JSON error page{': ' + m.group(1).strip() if m else ''}", None)
        return (text[:300] or "(empty body)", None)
    return error_from_obj(obj)


def error_from_obj(obj: Any) -> tuple[str, str | int | None]:
    """``(message, code)`` from a decoded error object of any provider shape."""
    if isinstance(obj, dict):
        err = obj.get("error")
        if isinstance(err, dict):
            return (str(err.get("message") or err.get("type") or err), err.get("code"))
        if isinstance(err, str):
            return (err, obj.get("code"))
        errors = obj.get("errors")
        if isinstance(errors, list) and errors:
            e0 = errors[0] if isinstance(errors[0], dict) else {"message": str(errors[0])}
            return (str(e0.get("message", e0)), e0.get("code"))
        detail = obj.get("detail")
        if isinstance(detail, list) and detail:
            parts = []
            for d in detail[:3]:
                if isinstance(d, dict):
                    loc = ".".join(str(x) for x in d.get("loc", []) if x != "body")
                    parts.append(f"{loc}: {d.get('msg', '')}" if loc else str(d.get("msg", d)))
            return ("; ".join(parts) or str(detail), None)
        if isinstance(detail, str):
            return (detail, None)
        if "message" in obj:
            return (str(obj["message"]), obj.get("code") or obj.get("statusCode"))
    return (str(obj)[:300], None)


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def parse_usage(u: dict[str, Any]) -> Usage:
    """OpenAI-style usage (also Cloudflare's), with the extras providers add."""
    details = u.get("completion_tokens_details") or {}
    pdetails = u.get("prompt_tokens_details") or {}
    cost = u.get("estimated_cost", u.get("cost"))
    return Usage(
        prompt_tokens=_int(u.get("prompt_tokens")),
        completion_tokens=_int(u.get("completion_tokens")),
        total_tokens=_int(u.get("total_tokens")),
        reasoning_tokens=_int(details.get("reasoning_tokens")) if isinstance(details, dict) else None,
        cached_tokens=_int(pdetails.get("cached_tokens")) if isinstance(pdetails, dict) else None,
        cost_usd=float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None,
    )
