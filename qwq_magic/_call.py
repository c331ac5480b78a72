"""The per-call state machine, with no I/O: a prepared request and the call's rules in,
bytes fed in, typed events and one :class:`~qwq_magic.Completion` out, and — for an error
status or a transport failure — the decision to retry (a delay) or the error to raise.

The sync and async shells in :mod:`qwq_magic.client` only move bytes and sleep; this module is
unit-tested by feeding it lines (``tests/test_call.py``). It knows no ``Client``: only the
request (which names its provider's rules, ``req.preset``), a :class:`CallRules` (retry policy,
auth headers, timeout, whether a key is set), and what arrives.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from jiter import from_json as _from_json

from . import _retry
from ._log import logger
from ._retry import RetryPolicy
from ._sse import SSEDecoder, SSEError
from .completion import Completion
from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConnectError,
    NotFoundError,
    QwqError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    StreamError,
    redact,
)
from .events import ContentDelta, Event, Finish, ReasoningDelta, Usage
from .providers import Preset
from .providers._common import error_from_obj, error_message
from .reasoning import ThinkSplitter
from .request import PreparedRequest

__all__ = ["Call", "CallRules"]

_TEXT = (ContentDelta, ReasoningDelta)


@dataclass(frozen=True)
class CallRules:
    """What one call needs to know besides its request: no client, no connection."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: the Authorization header(s) (left out of the repr; sent as httpx.Headers, which masks)
    auth: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout: httpx.Timeout = field(default_factory=lambda: httpx.Timeout(120.0, connect=10.0))
    key_set: bool = False
    base_url: str = ""


class Call:
    """The state of one call: the prepared request in, events and a Completion out.

    No I/O here: the shells feed it response lines and ask it what to do about errors.
    """

    __slots__ = ("_raw", "completion", "done", "finished", "parse", "preset", "provider", "req",
                 "rules", "splitter", "sse")

    def __init__(self, req: PreparedRequest, rules: CallRules) -> None:
        if req.preset is None:
            raise ValueError("a PreparedRequest from Client.prepare (it names its preset)")
        self.req = req
        self.rules = rules
        self.preset: Preset = req.preset
        self.provider = req.provider
        self.completion = Completion(
            provider=req.provider, model=req.model, messages=req.messages, params=req.params,
            schema=req.json_schema, price_in=req.info.price_in, price_out=req.info.price_out,
        )
        self.completion.timings.start = time.perf_counter()
        self.splitter = ThinkSplitter(req.think)
        self.sse = SSEDecoder()
        self._raw: list[Event] = []  # reused for every chunk (no list per event)
        self.parse = self.preset.wire.parse_chunk
        self.done = False
        self.finished = False

    @property
    def started(self) -> bool:
        c = self.completion
        return bool(c.reasoning_pieces or c.content_pieces or c.tool_calls
                    or self.splitter.holding)

    def request_kwargs(self) -> dict[str, Any]:
        return {
            "method": "POST",
            "url": self.req.url,
            "json": self.req.body,
            # httpx.Headers: its repr masks Authorization wherever a traceback shows it
            "headers": httpx.Headers({**self.req.headers, **self.rules.auth}),
        }

    # -- the response ------------------------------------------------------------------------
    def feed_bytes(self, chunk: bytes) -> list[Event]:
        """One network read of the stream body → the events it completed (folded already)."""
        try:
            evs = self.sse.feed(chunk)
        except SSEError as e:
            raise self._broken(str(e)) from None
        out: list[Event] = []
        for name, data in evs:
            self._on_event(name, data, out)
        return out

    def feed_line(self, line: str) -> list[Event]:
        """One decoded line (without its line ending): for callers that split lines
        themselves."""
        return self.feed_bytes(line.encode() + b"\n")

    def _on_event(self, name: str, data: bytes, out: list[Event]) -> None:
        if data == b"[DONE]":
            self.done = True
            return
        if not data:
            return
        try:
            obj = _from_json(data, cache_mode="none")
        except ValueError as e:
            why = "nested too deeply" if "recursion" in str(e) else "malformed"
            raise self._broken(f"the provider sent a {why} chunk: {_show(data)}") from None
        if type(obj) is not dict:
            raise self._broken(f"the provider sent a chunk that is not a JSON object: "
                               f"{_show(data)}")
        if name == "error":
            msg, code = error_from_obj(obj)
            raise self._broken(f"the provider reported an error mid-stream: {msg}", code=code)
        self._parse(obj, out, "chunk", data)

    def _parse(self, obj: dict[str, Any], out: list[Event], what: str, data: str | bytes
               ) -> None:
        """Parse one decoded ``chunk`` or ``body`` into ``out``; what it held before a failure
        is folded in first (nothing received is lost), then the failure is raised as ours."""
        raw = self._raw
        failure: StreamError | None = None
        odd_shape = False
        try:
            self.parse(obj, raw)
        except StreamError as e:
            failure = e
        except (AttributeError, TypeError, KeyError, IndexError, ValueError, RecursionError):
            odd_shape = True
        self._fold(raw, out)
        raw.clear()
        if odd_shape:
            raise self._broken(f"the provider sent a {what} of an unexpected shape: "
                               f"{_show(data)}")
        if failure is not None:
            if what == "body":  # a whole body's error is the provider's own, as it said it
                raise failure
            raise self._broken(str(failure), code=failure.code)

    def _fold(self, raw: list[Event], out: list[Event]) -> None:
        """Split inline reasoning, fold into the Completion; append what comes out to out."""
        n = len(out)
        process = self.splitter.process
        deltas = 0
        for e in raw:
            if type(e) in _TEXT:
                deltas += 1
            process(e, out)
        self.completion.deltas += deltas
        add = self.completion.add
        for i in range(n, len(out)):
            e = out[i]
            add(e)
            if type(e) is Finish:
                self.finished = True

    def feed_body(self, text: str | bytes) -> list[Event]:
        """A whole JSON body (non-streaming request, or a server that ignored stream:true)."""
        try:
            obj = _from_json(text.encode() if isinstance(text, str) else text)
        except ValueError:
            raise self._broken(f"the provider sent a non-JSON body: {_show(text)}") from None
        self.done = True
        if type(obj) is not dict:
            raise self._broken(f"the provider sent a body that is not a JSON object: "
                               f"{_show(text)}")
        out: list[Event] = []
        self._parse(obj, out, "body", text)
        return out

    def flush_held(self) -> list[Event]:
        """Release what the think splitter holds back (a possible tag) into the Completion.
        Called on every end of a stream — clean, error, drop, interrupt, stop — so that every
        character received is kept. Idempotent."""
        if not self.splitter.holding:
            return []
        rest: list[Event] = []
        self.splitter.flush(rest)
        for e in rest:
            self.completion.add(e)
        return rest

    def end(self) -> list[Event]:
        """The response ended: flush, infer a missing finish, detect truncation."""
        out: list[Event] = []
        for name, data in self.sse.close():
            self._on_event(name, data, out)
        rest: list[Event] = []
        self.splitter.flush(rest)
        for e in rest:
            self.completion.add(e)
        out += rest
        c = self.completion
        if c.extract_inline_tool_calls() and c.finish_reason in (None, "stop"):
            c.finish_reason = "tool_calls" if self.finished else None
        if not self.finished:
            if not self.done and (self.started or c.usage is None):
                raise self._broken(
                    "the connection closed before the reply finished (no [DONE], no finish "
                    "reason)"
                )
            reason = self._infer_finish()
            fin = Finish(reason, None)
            c.add(fin)
            out.append(fin)
        if self.splitter.saw_close:
            c.reasoning_complete = True
        c.finish("complete")
        return out

    def _infer_finish(self) -> Any:
        c = self.completion
        if c.tool_calls:
            return "tool_calls"
        u: Usage | None = c.usage
        cap = self.req.params.get("max_tokens")
        if cap is None:
            spec = self.req.info.params.get("max_tokens")
            cap = getattr(spec, "default", None)
        if u is not None and u.completion_tokens is not None and cap and u.completion_tokens >= cap:
            return "length"
        return "stop"

    # -- errors ------------------------------------------------------------------------------
    def _broken(self, msg: str, code: Any = None) -> StreamError:
        self.flush_held()
        c = self.completion
        kept = ""
        if self.started:
            kept = (
                f" Kept what arrived: {len(c.reasoning)} characters of reasoning and "
                f"{len(c.content)} of answer (on the exception's .completion)."
            )
        err = StreamError(f"{self.provider}: {msg}.{kept}", provider=self.provider,
                          code=code, completion=c)
        c.finish("error", err)
        return err

    def http_error(self, status: int, headers: Mapping[str, str], text: str,
                   attempt: int) -> float:
        """An error status before the stream: return the delay before retrying, or raise."""
        # servers echo keys back: nothing unredacted stays in a local of the error path
        text = redact(text)
        headers = {k: redact(v) for k, v in headers.items()}
        message, code = error_message(text)
        retry = self.rules.retry
        retryable = _retry.should_retry(status, code, self.preset.final_codes)
        if retryable and attempt < retry.max_retries:
            delay = _retry.next_delay(attempt, headers)
            if delay <= retry.max_wait:
                logger.info("%s: HTTP %s (%s); retry %d of %d in %.1f s", self.provider, status,
                            redact(message)[:200], attempt + 1, retry.max_retries, delay)
                return delay
        raise self._status_error(status, headers, message, code, text, attempt, retryable)

    def _status_error(self, status: int, headers: Mapping[str, str], message: str, code: Any,
                      text: str, attempt: int, retryable: bool) -> APIError:
        p = self.preset
        prov = self.provider
        message = message.rstrip(". ")
        kw: dict[str, Any] = {"status": status, "provider": prov, "code": code, "body": text,
                              "completion": self.completion}
        tries = f" after {attempt + 1} attempts" if attempt else ""
        if status in (401, 403):
            env = " or ".join(p.key_env)
            hint = (f"Check the key in {env}" if self.rules.key_set else f"Set {env}") \
                + " (or pass api_key=…)."
            if status == 403:
                hint = "The key was refused for this model or account. " + hint
            err: APIError = AuthenticationError(
                f"{prov}: authentication failed (HTTP {status}): {message}. {hint}", **kw)
        elif p.is_not_found(status, code):
            hint = p.url_hint(self.rules.base_url) if p.url_hint else ""
            err = NotFoundError(
                f"{prov}: model {self.req.model!r} not found (HTTP {status}): {message}. "
                f"Check the model name (%qwq models lists known ones) and the URL {self.req.url}."
                f"{hint}", **kw)
        elif status == 429:
            ra = _retry.retry_after(headers)
            wait = f" The server asks to wait {ra:.0f} s." if ra else ""
            what = "Rate limited" if retryable else "Quota used up"
            err = RateLimitError(f"{prov}: {what}{tries} (HTTP 429): {message}.{wait}",
                                 retry_after=ra, attempts=attempt + 1, **kw)
        elif status >= 500 or status in (408, 409):
            err = ServerError(f"{prov}: server error{tries} (HTTP {status}): {message}. "
                              "Try again in a moment.", **kw)
        else:
            err = BadRequestError(f"{prov}: request refused (HTTP {status}): {message}", **kw)
        self.completion.finish("error", err)
        return err

    def transport_error(self, exc: Exception, attempt: int) -> float:
        """A network-level failure: retry (delay) if nothing arrived yet, else raise ours."""
        prov, retry = self.provider, self.rules.retry
        host = httpx.URL(self.req.url).host
        if isinstance(exc, httpx.TimeoutException):
            kind = "connect" if isinstance(exc, httpx.ConnectTimeout) else "read"
            err: QwqError = RequestTimeoutError(
                f"{prov}: no {'connection' if kind == 'connect' else 'data'} from {host} "
                f"within the timeout ({_fmt_timeout(self.rules.timeout, kind)}). Raise it with "
                "timeout=…",
                completion=self.completion)
        elif isinstance(exc, httpx.ConnectError):
            err = ConnectError(
                f"{prov}: cannot reach {self.req.url.split('/', 3)[2]} ({exc}). Is the "
                "server running and the base_url right?", completion=self.completion)
        else:
            if not self.started and attempt < retry.max_retries:
                # the retry reads a new body: no partial line of this one may carry over
                self.sse = SSEDecoder()
                delay = _retry.backoff(attempt)
                logger.info("%s: connection failed (%s); retry %d of %d in %.1f s", prov,
                            type(exc).__name__, attempt + 1, retry.max_retries, delay)
                return delay
            return_err = self._broken(f"the connection dropped ({type(exc).__name__}: {exc})")
            raise return_err from None  # httpx's frames hold the request headers: not chained
        if self.started:
            err = self._broken(str(err))
        else:
            self.completion.finish("error", err)
        raise err from None


def _show(data: str | bytes, n: int = 200) -> str:
    """A short, safe quote of what the provider sent (for error messages)."""
    if isinstance(data, bytes):
        data = data[: n * 4].decode("utf-8", "replace")
    return repr(data[:n]) + ("…" if len(data) > n else "")



def _fmt_timeout(t: httpx.Timeout, kind: str) -> str:
    v = t.connect if kind == "connect" else t.read
    return f"{v:g} s" if v is not None else "none"


