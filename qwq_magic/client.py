"""``Client``: one provider preset, connection reuse, retries, streaming into a Completion.

The protocol work is done once, in :class:`_Call` (pure state: lines in, events out); the sync
and async clients are thin shells that move bytes and sleep between retries. Low-level httpx
errors are mapped onto ours in exactly one place each (:meth:`_Call.transport_error`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Mapping, Sequence
from typing import Any

import httpx
from jiter import from_json as _from_json

from . import __version__, _retry, runlog
from ._log import logger
from ._sse import MAX_ERROR_BODY_BYTES, MAX_LINE_BYTES, SSEDecoder, SSEError
from .completion import Completion
from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConnectError,
    MissingKeyError,
    NotFoundError,
    QwqError,
    RateLimitError,
    RequestTimeoutError,
    Secret,
    ServerError,
    StreamError,
    mask,
    redact,
)
from .events import Event, Finish, Usage
from .params import SamplingParams, normalize_names
from .providers import PRESETS, Preset
from .providers._common import error_from_obj, error_message
from .reasoning import ThinkMode, ThinkSplitter
from .request import PreparedRequest, build_messages, prepare
from .resolve import Choice, resolve

__all__ = ["AsyncStream", "Client", "Stream"]

DEFAULT_TIMEOUT = httpx.Timeout(120.0, connect=10.0)
USER_AGENT = f"qwq-magic/{__version__}"
_BACKGROUND: set[asyncio.Task[None]] = set()


def _seconds(name: str, v: Any) -> float:
    """A positive, finite number of seconds, or a clear error naming the argument."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        f = math.nan
    if isinstance(v, bool) or not math.isfinite(f) or f <= 0:
        raise ConfigurationError(f"{name} must be a positive number of seconds; got {v!r}.")
    return f


def _count(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ConfigurationError(f"{name} must be a whole number ≥ 0; got {v!r}.")
    return v


def _timeout(t: float | httpx.Timeout | None) -> httpx.Timeout:
    if t is None:
        return DEFAULT_TIMEOUT
    if isinstance(t, httpx.Timeout):
        return t
    f = _seconds("timeout", t)
    return httpx.Timeout(f, connect=min(10.0, f))


class Client:
    """A connection to one provider.

    >>> client = Client("deepinfra")                        # key from DEEPINFRA_TOKEN
    >>> res = client.complete("What is 2+2?", temperature=0.6, max_tokens=512)
    >>> res.reasoning, res.content, res.usage, res.cost

    Every preset takes ``base_url=``, ``api_key=``, ``model=`` and ``timeout=``; Cloudflare
    also ``account_id=``. ``QWQ_PROVIDER``, ``QWQ_MODEL``, ``QWQ_BASE_URL`` and ``QWQ_API_KEY``
    override each preset's own environment variables (explicit arguments win over both).
    """

    def __init__(
        self,
        preset: str | None = None,
        *,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | Secret | None = None,
        account_id: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int = 2,
        max_retry_wait: float = 60.0,
        think: ThinkMode | None = None,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        cassette: Any = None,
        mode: str | None = None,
        http_client: httpx.Client | httpx.AsyncClient | None = None,
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
        choice: Choice | None = None,
    ) -> None:
        if choice is None:
            if preset is not None and not isinstance(preset, str):
                raise ConfigurationError(
                    f"Client(preset) takes a provider name such as 'deepinfra' (one of "
                    f"{', '.join(PRESETS)}), not {type(preset).__name__} {preset!r}.")
            choice = resolve(preset, model=model, base_url=base_url, api_key=api_key,
                             account_id=account_id)
        #: the resolved choice, with where each part came from (``client.choice.describe()``)
        self.choice: Choice = choice
        self._preset: Preset = choice.preset
        self.model: str = choice.model
        self.base_url: str = choice.base_url
        self._key: Secret | None = choice.api_key
        self.account_id: str | None = choice.account_id
        self.timeout = _timeout(timeout)
        self.max_retries = _count("max_retries", max_retries)
        self.max_retry_wait = _seconds("max_retry_wait", max_retry_wait)
        if think not in (None, "open", "auto", "off"):
            raise ConfigurationError(f"think= is 'open', 'auto' or 'off' (None: the model's "
                                     f"habit); got {think!r:.40}.")
        if headers is not None and not isinstance(headers, Mapping):
            raise ConfigurationError(f"headers= must be a dict of header names to values, not "
                                     f"{type(headers).__name__}.")
        self.think = think
        # kept by reference: a live object (qm.session.params) is read at every call
        self.params: Any = params if params is not None else SamplingParams()
        self._headers = {"User-Agent": USER_AGENT, **(headers or {})}
        self._http: httpx.Client | None = None
        self._ahttp: httpx.AsyncClient | None = None
        self._ahttp_loop: asyncio.AbstractEventLoop | None = None
        # injected connections (tests, benchmarks, proxies): used as given, never closed by us
        self._own_http = self._own_ahttp = None
        if isinstance(http_client, httpx.Client):
            self._own_http = http_client
        elif isinstance(http_client, httpx.AsyncClient):
            self._own_ahttp = http_client
        elif http_client is not None:
            raise ConfigurationError("http_client= must be an httpx.Client or httpx.AsyncClient, "
                                     f"not {type(http_client).__name__}.")
        self._transport = transport
        self.cassette: Any = None
        if cassette is not None:
            from .cassette import Cassette

            self.cassette = (cassette if isinstance(cassette, Cassette)
                             else Cassette(cassette, mode=mode or "replay"))
        # what worked for JSON mode on this server (structured output fallback memory)
        self.json_mode_memory: dict[str, str] = {}

    # -- introspection -----------------------------------------------------------------------
    @property
    def provider(self) -> str:
        return self._preset.name

    @property
    def preset(self) -> Preset:
        return self._preset

    @property
    def has_key(self) -> bool:
        return self._key is not None

    def __repr__(self) -> str:
        key = f", api_key={mask(self._key.get())!r}" if self._key else ""
        return f"Client({self.provider!r}, model={self.model!r}, base_url={self.base_url!r}{key})"

    # -- lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        """Close pooled connections (sync and async)."""
        if self._http is not None:
            self._http.close()
            self._http = None
        if self._ahttp is not None:
            ahttp, self._ahttp = self._ahttp, None
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                # its loop may be gone (asyncio.run ended): then its sockets already are too
                with contextlib.suppress(RuntimeError):
                    asyncio.run(ahttp.aclose())
            else:
                _BACKGROUND.add(t := loop.create_task(ahttp.aclose()))
                t.add_done_callback(_BACKGROUND.discard)

    async def aclose_pool(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Close the async connection pool if it belongs to ``loop`` (default: the running
        one) — for a private loop about to end (``compare``/``map`` workers)."""
        loop = loop or asyncio.get_running_loop()
        if self._ahttp is not None and self._ahttp_loop is loop:
            pool, self._ahttp = self._ahttp, None
            await pool.aclose()

    async def aclose(self) -> None:
        if self._ahttp is not None:
            await self._ahttp.aclose()
            self._ahttp = None
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _sync_http(self) -> httpx.Client:
        if self._own_http is not None:
            return self._own_http
        if self._http is None:
            t = self._transport
            self._http = httpx.Client(timeout=self.timeout, headers=self._headers,
                                      transport=t if isinstance(t, httpx.BaseTransport) else None)
        return self._http

    def _async_http(self) -> httpx.AsyncClient:
        if self._own_ahttp is not None:
            return self._own_ahttp
        # an AsyncClient's pool belongs to one event loop: a call from another loop (another
        # thread, or a later asyncio.run) gets its own client instead of a cross-loop error
        loop = asyncio.get_running_loop()
        if self._ahttp is None or self._ahttp_loop is not loop:
            t = self._transport
            self._ahttp = httpx.AsyncClient(
                timeout=self.timeout, headers=self._headers,
                transport=t if isinstance(t, httpx.AsyncBaseTransport) else None)
            self._ahttp_loop = loop
        return self._ahttp

    def list_models(self, timeout: float = 5.0) -> list[str]:
        """The model ids the server lists at ``GET {base_url}/models`` (ids redacted: a server
        may put anything there)."""
        if not self._preset.lists_models:
            return list(self._preset.models)
        url = self.base_url.rstrip("/") + "/models"
        try:
            r = self._sync_http().get(url, headers=httpx.Headers(self._auth_headers()),
                                      timeout=timeout)
            data = r.json().get("data") if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            data = None
        if not isinstance(data, list):
            raise ConnectError(f"could not list {url} (is the server up, and the URL right?)")
        return [redact(str(m.get("id")))[:200] for m in data
                if isinstance(m, dict) and m.get("id") is not None]

    # -- building requests -------------------------------------------------------------------
    def prepare(
        self,
        prompt: str | Sequence[Mapping[str, Any]] | None = None,
        *,
        system: str | None = None,
        history: Sequence[Mapping[str, Any]] | None = None,
        model: str | None = None,
        params: SamplingParams | Mapping[str, Any] | None = None,
        json_schema: Any = None,
        json_mode: str | None = None,
        tools: list[dict[str, Any]] | None = None,
        stream: bool = True,
        extra_body: dict[str, Any] | None = None,
        **kw: Any,
    ) -> PreparedRequest:
        """Validate everything and build the request without sending it (``--dry-run``)."""
        model = model or self.model
        merged = {**_as_params(self.params).as_dict(), **_as_params(params).as_dict(),
                  **normalize_names(kw)}
        messages = build_messages(prompt, system=system, history=history)
        response_format = None
        schema = None
        mode = None
        if json_schema is not None:
            from . import structured

            schema = structured.to_json_schema(json_schema)
            info = self._preset.model_info(model)
            mode = json_mode or self.json_mode_memory.get(self._json_key(model)) or info.json_modes[0]
            response_format, messages, stream_ok = structured.wire_form(
                mode, schema, messages, preset=self._preset)
            stream = stream and stream_ok
        req = prepare(
            self._preset, base_url=self.base_url, model=model, account_id=self.account_id,
            messages=messages, params=merged, stream=stream, think=self.think,
            response_format=response_format, tools=tools, extra_body=extra_body,
        )
        req.json_schema = schema
        req.json_mode = mode
        req.schema_source = json_schema
        return req

    def _json_key(self, model: str) -> str:
        return f"{self.base_url}|{model}"

    def _check_key(self) -> None:
        if self._key is None and self._preset.key_required:
            raise MissingKeyError(self.provider, self._preset.key_env)

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key.get()}"} if self._key else {}

    # -- streaming ---------------------------------------------------------------------------
    def stream(self, prompt: Any = None, **kw: Any) -> Stream:
        """Stream events (``ReasoningDelta``, ``ContentDelta``, ``ToolCallDelta``, ``Usage``,
        ``Finish``); the folded :class:`Completion` is ``stream.completion``."""
        req = kw.pop("request", None) or self.prepare(prompt, **kw)
        return Stream(self, req)

    def astream(self, prompt: Any = None, **kw: Any) -> AsyncStream:
        """Async version of :meth:`stream`: ``async for ev in client.astream(...)``."""
        req = kw.pop("request", None) or self.prepare(prompt, **kw)
        return AsyncStream(self, req)

    def complete(self, prompt: Any = None, **kw: Any) -> Completion:
        """Send, wait for the whole reply, return the :class:`Completion`.

        With ``json_schema=`` the answer is parsed and validated into ``.data`` (see
        :mod:`qwq_magic.structured`; ``retries=N`` re-asks with the validation error).
        """
        if kw.get("json_schema") is not None:
            from .structured import run

            return run(self, prompt, **kw)
        s = self.stream(prompt, **kw)
        for _ in s:
            pass
        return s.completion

    async def acomplete(self, prompt: Any = None, **kw: Any) -> Completion:
        if kw.get("json_schema") is not None:
            from .structured import arun

            return await arun(self, prompt, **kw)
        s = self.astream(prompt, **kw)
        async for _ in s:
            pass
        return s.completion


def _as_params(p: SamplingParams | Mapping[str, Any] | None) -> SamplingParams:
    if p is None:
        return SamplingParams()
    if isinstance(p, SamplingParams):
        return p
    if hasattr(p, "as_dict"):
        return SamplingParams.from_kwargs(**p.as_dict())
    return SamplingParams.from_kwargs(**dict(p))


class _Call:
    """The state of one call: the prepared request in, events and a Completion out.

    No I/O here: the shells feed it response lines and ask it what to do about errors.
    """

    __slots__ = ("_raw", "client", "completion", "done", "finished", "parse", "req", "splitter",
                 "sse")

    def __init__(self, client: Client, req: PreparedRequest) -> None:
        self.client = client
        self.req = req
        self.completion = Completion(
            provider=req.provider, model=req.model, messages=req.messages, params=req.params,
            schema=req.json_schema, price_in=req.info.price_in, price_out=req.info.price_out,
        )
        self.completion.timings.start = time.perf_counter()
        self.splitter = ThinkSplitter(req.think)
        self.sse = SSEDecoder()
        self._raw: list[Event] = []  # reused for every chunk (no list per event)
        self.parse = self.client.preset.wire.parse_chunk
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
            "headers": httpx.Headers({**self.req.headers, **self.client._auth_headers()}),
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
        raw = self._raw
        try:
            self.parse(obj, raw)
        except StreamError as e:
            self._fold(raw, out)  # what the chunk held before the error is kept
            raw.clear()
            raise self._broken(str(e), code=e.code) from None
        except (AttributeError, TypeError, KeyError, IndexError, ValueError, RecursionError):
            self._fold(raw, out)
            raw.clear()
            raise self._broken(f"the provider sent a chunk of an unexpected shape: "
                               f"{_show(data)}") from None
        self._fold(raw, out)
        raw.clear()

    def _fold(self, raw: list[Event], out: list[Event]) -> None:
        """Split inline reasoning, fold into the Completion; append what comes out to out."""
        n = len(out)
        process = self.splitter.process
        for e in raw:
            process(e, out)
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
        raw = self._raw
        try:
            self.parse(obj, raw)
        except StreamError:
            self._fold(raw, out)
            raw.clear()
            raise
        except (AttributeError, TypeError, KeyError, IndexError, ValueError, RecursionError):
            self._fold(raw, out)
            raw.clear()
            raise self._broken(f"the provider sent a body of an unexpected shape: "
                               f"{_show(text)}") from None
        self._fold(raw, out)
        raw.clear()
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
        err = StreamError(f"{self.client.provider}: {msg}.{kept}", provider=self.client.provider,
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
        c = self.client
        retryable = _retry.should_retry(status, code, c.preset.final_codes)
        if retryable and attempt < c.max_retries:
            delay = _retry.next_delay(attempt, headers)
            if delay <= c.max_retry_wait:
                logger.info("%s: HTTP %s (%s); retry %d of %d in %.1f s", c.provider, status,
                            redact(message)[:200], attempt + 1, c.max_retries, delay)
                return delay
        raise self._status_error(status, headers, message, code, text, attempt, retryable)

    def _status_error(self, status: int, headers: Mapping[str, str], message: str, code: Any,
                      text: str, attempt: int, retryable: bool) -> APIError:
        c = self.client
        prov = c.provider
        message = message.rstrip(". ")
        kw: dict[str, Any] = {"status": status, "provider": prov, "code": code, "body": text,
                              "completion": self.completion}
        tries = f" after {attempt + 1} attempts" if attempt else ""
        if status in (401, 403):
            env = " or ".join(c.preset.key_env)
            hint = (f"Check the key in {env}" if c.has_key else f"Set {env}") + " (or pass api_key=…)."
            if status == 403:
                hint = "The key was refused for this model or account. " + hint
            err: APIError = AuthenticationError(
                f"{prov}: authentication failed (HTTP {status}): {message}. {hint}", **kw)
        elif c.preset.is_not_found(status, code):
            err = NotFoundError(
                f"{prov}: model {self.req.model!r} not found (HTTP {status}): {message}. "
                f"Check the model name (%qwq models lists known ones) and the URL {self.req.url}.",
                **kw)
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
        c = self.client
        host = httpx.URL(self.req.url).host
        if isinstance(exc, httpx.TimeoutException):
            kind = "connect" if isinstance(exc, httpx.ConnectTimeout) else "read"
            err: QwqError = RequestTimeoutError(
                f"{c.provider}: no {'connection' if kind == 'connect' else 'data'} from {host} "
                f"within the timeout ({_fmt_timeout(c.timeout, kind)}). Raise it with timeout=…",
                completion=self.completion)
        elif isinstance(exc, httpx.ConnectError):
            err = ConnectError(
                f"{c.provider}: cannot reach {self.req.url.split('/', 3)[2]} ({exc}). Is the "
                "server running and the base_url right?", completion=self.completion)
        else:
            if not self.started and attempt < c.max_retries:
                # the retry reads a new body: no partial line of this one may carry over
                self.sse = SSEDecoder()
                delay = _retry.backoff(attempt)
                logger.info("%s: connection failed (%s); retry %d of %d in %.1f s", c.provider,
                            type(exc).__name__, attempt + 1, c.max_retries, delay)
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


def _read_capped(resp: httpx.Response, cap: int) -> bytes:
    """At most ``cap`` bytes of a body (the rest is never read: memory stays bounded)."""
    buf = bytearray()
    for chunk in resp.iter_bytes():
        buf += chunk
        if len(buf) >= cap:
            break
    return bytes(buf[:cap])


async def _aread_capped(resp: httpx.Response, cap: int) -> bytes:
    buf = bytearray()
    async for chunk in resp.aiter_bytes():
        buf += chunk
        if len(buf) >= cap:
            break
    return bytes(buf[:cap])


def _text(data: bytes, resp: httpx.Response) -> str:
    return data.decode(resp.encoding or "utf-8", "replace")


def _fmt_timeout(t: httpx.Timeout, kind: str) -> str:
    v = t.connect if kind == "connect" else t.read
    return f"{v:g} s" if v is not None else "none"


def _is_json(resp: httpx.Response) -> bool:
    ct = resp.headers.get("content-type", "")
    return "json" in ct and "ndjson" not in ct


class Stream:
    """Iterate to receive events; ``.completion`` holds everything received so far.

    Stopping early (``break``, ``close()``, an exception, Ctrl-C) closes the HTTP stream and
    keeps the partial completion, marked ``stopped`` or ``interrupted``.
    """

    def __init__(self, client: Client, req: PreparedRequest) -> None:
        self._call = _Call(client, req)
        self._client = client
        self._gen: Generator[Event, None, None] | None = None

    @property
    def completion(self) -> Completion:
        return self._call.completion

    @property
    def request(self) -> PreparedRequest:
        return self._call.req

    def __iter__(self) -> Generator[Event, None, None]:
        if self._gen is None:
            self._gen = self._run()
        return self._gen

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._gen is not None:
            self._gen.close()
        c = self.completion
        if c.status == "streaming":
            c.finish("stopped")

    def _run(self) -> Generator[Event, None, None]:
        c = self._call.completion
        cassette = self._client.cassette
        try:
            if cassette is not None:
                yield from cassette.play(self._call, self._live)
            else:
                yield from self._live()
        except GeneratorExit:
            if c.status == "streaming":
                c.finish("stopped")
            raise
        except KeyboardInterrupt:
            if c.status == "streaming":
                c.finish("interrupted")
            raise
        except QwqError as e:
            if c.status == "streaming":
                c.finish("error", e)
            if e.completion is None:
                e.completion = c
            raise
        finally:
            runlog.after_reply(c, self._call.req, self._client)

    def _live(self) -> Iterator[Event]:
        """The HTTP exchange, with retries before the first token."""
        call, client = self._call, self._client
        runlog.before_send(call.req, client)
        client._check_key()
        http = client._sync_http()
        attempt = 0
        while True:
            try:
                with http.stream(**call.request_kwargs()) as resp:
                    if resp.status_code >= 400:
                        # no local holds the body: it may echo the key (Verbose tracebacks)
                        delay = call.http_error(
                            resp.status_code, resp.headers,
                            _text(_read_capped(resp, MAX_ERROR_BODY_BYTES), resp), attempt)
                    elif _is_json(resp):
                        body = _read_capped(resp, MAX_LINE_BYTES + 1)
                        if len(body) > MAX_LINE_BYTES:
                            raise call._broken(f"the reply body is larger than "
                                               f"{MAX_LINE_BYTES >> 20} MiB")
                        yield from call.feed_body(body)
                        yield from call.end()
                        return
                    else:
                        feed = call.feed_bytes
                        for chunk in resp.iter_bytes():
                            evs = feed(chunk)
                            if evs:
                                yield from evs
                        yield from call.end()
                        return
            except httpx.HTTPError as exc:
                delay = call.transport_error(exc, attempt)
            finally:
                # every end (error, drop, interrupt, stop): nothing held back is lost
                call.flush_held()
            attempt += 1
            time.sleep(delay)


class AsyncStream:
    """Async twin of :class:`Stream` (``async for ev in stream``; ``await stream.aclose()``)."""

    def __init__(self, client: Client, req: PreparedRequest) -> None:
        self._call = _Call(client, req)
        self._client = client
        self._gen: AsyncGenerator[Event, None] | None = None

    @property
    def completion(self) -> Completion:
        return self._call.completion

    @property
    def request(self) -> PreparedRequest:
        return self._call.req

    def __aiter__(self) -> AsyncGenerator[Event, None]:
        if self._gen is None:
            self._gen = self._run()
        return self._gen

    async def aclose(self) -> None:
        if self._gen is not None:
            await self._gen.aclose()
        c = self.completion
        if c.status == "streaming":
            c.finish("stopped")

    async def _run(self) -> AsyncGenerator[Event, None]:
        c = self._call.completion
        cassette = self._client.cassette
        try:
            source = (cassette.aplay(self._call, self._live) if cassette is not None
                      else self._live())
            async for ev in source:
                yield ev
        except (GeneratorExit, asyncio.CancelledError):
            if c.status == "streaming":
                c.finish("stopped")
            raise
        except QwqError as e:
            if c.status == "streaming":
                c.finish("error", e)
            if e.completion is None:
                e.completion = c
            raise
        finally:
            runlog.after_reply(c, self._call.req, self._client)

    async def _live(self) -> AsyncIterator[Event]:
        call, client = self._call, self._client
        runlog.before_send(call.req, client)
        client._check_key()
        http = client._async_http()
        attempt = 0
        while True:
            try:
                async with http.stream(**call.request_kwargs()) as resp:
                    if resp.status_code >= 400:
                        delay = call.http_error(
                            resp.status_code, resp.headers,
                            _text(await _aread_capped(resp, MAX_ERROR_BODY_BYTES), resp), attempt)
                    elif _is_json(resp):
                        body = await _aread_capped(resp, MAX_LINE_BYTES + 1)
                        if len(body) > MAX_LINE_BYTES:
                            raise call._broken(f"the reply body is larger than "
                                               f"{MAX_LINE_BYTES >> 20} MiB")
                        for ev in call.feed_body(body) + call.end():
                            yield ev
                        return
                    else:
                        feed = call.feed_bytes
                        async for chunk in resp.aiter_bytes():
                            for ev in feed(chunk):
                                yield ev
                        for ev in call.end():
                            yield ev
                        return
            except httpx.HTTPError as exc:
                delay = call.transport_error(exc, attempt)
            finally:
                call.flush_held()
            attempt += 1
            await asyncio.sleep(delay)
