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

from . import __version__, _slots, runlog
from ._call import Call, CallRules
from ._retry import RetryPolicy
from ._sse import MAX_ERROR_BODY_BYTES, MAX_LINE_BYTES
from .completion import Completion, Status
from .errors import (
    ConfigurationError,
    ConnectError,
    MissingKeyError,
    QwqError,
    Secret,
    mask,
    redact,
)
from .events import INTERRUPTED, Event
from .params import SamplingParams, normalize_names
from .providers import PRESETS, Preset, servers
from .reasoning import ThinkMode
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
        server = self.server(model)
        response_format = None
        schema = None
        mode = None
        if json_schema is not None:
            from . import structured

            schema = structured.to_json_schema(json_schema)
            info = self._preset.model_info(model)
            mode = (json_mode or self.json_mode_memory.get(self._json_key(model))
                    or (servers.json_modes(server, info)[0] if server else info.json_modes[0]))
            response_format, messages, stream_ok = structured.wire_form(
                mode, schema, messages, preset=self._preset)
            stream = stream and stream_ok
        req = prepare(
            self._preset, base_url=self.base_url, model=model, account_id=self.account_id,
            messages=messages, params=merged, stream=stream,
            think=self.think or (servers.think_mode(server) if server else None),
            response_format=response_format, tools=tools, extra_body=extra_body, server=server,
        )
        req.json_schema = schema
        req.json_mode = mode
        if server is not None and server.one_at_a_time:
            req.queue_key = self.base_url
        req.schema_source = json_schema
        return req

    def server(self, model: str | None = None) -> Any:
        """What serves this client's URL (:class:`~qwq_magic.providers.servers.ServerInfo`:
        llama.cpp, vLLM, Ollama…), probed once per URL and cached; None for hosted presets
        and while replaying a recording (offline: nothing to ask)."""
        if not servers.detects(self._preset):
            return None
        if self.cassette is not None and self.cassette.mode == "replay":
            return None
        return servers.for_client(self, model)

    def _rules(self) -> CallRules:
        """What the call core needs from this client (it never sees the client itself)."""
        return CallRules(retry=RetryPolicy(self.max_retries, self.max_retry_wait),
                         auth=self._auth_headers(), timeout=self.timeout,
                         key_set=self.has_key, base_url=self.base_url)

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

    def stream_continue(self, completion: Completion, **params: Any) -> Stream:
        """Stream the rest of a reply cut off by ``max_tokens`` (or stopped): events for the new
        text; ``stream.completion`` is the whole reply, earlier text included."""
        from . import continuation

        s = Stream(self, continuation.prepare(self, completion, normalize_names(params)))
        s.completion.seed(completion)
        return s

    def continue_(self, completion: Completion, **params: Any) -> Completion:
        """Resume a reply that was cut off (``finish_reason == "length"``) or stopped, from its
        last character — in the reasoning or in the answer — and return the whole reply as
        one Completion (``max_tokens=`` is the budget for the rest)."""
        s = self.stream_continue(completion, **params)
        for _ in s:
            pass
        return s.completion

    def astream_continue(self, completion: Completion, *, params: Any = None,
                         **kw: Any) -> AsyncStream:
        """Async :meth:`stream_continue` (``params=``: a parameter object, e.g. the session's)."""
        from . import continuation

        merged = {**_as_params(params).as_dict(), **normalize_names(kw)}
        s = AsyncStream(self, continuation.prepare(self, completion, merged))
        s.completion.seed(completion)
        return s

    async def acontinue_(self, completion: Completion, **params: Any) -> Completion:
        """Async :meth:`continue_`."""
        s = self.astream_continue(completion, **params)
        async for _ in s:
            pass
        return s.completion

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


def _is_json(resp: httpx.Response) -> bool:
    ct = resp.headers.get("content-type", "")
    return "json" in ct and "ndjson" not in ct


_Call = Call  # the earlier name


class Stream:
    """Iterate to receive events; ``.completion`` holds everything received so far.

    Stopping early (``break``, ``close()``, an exception, Ctrl-C) closes the HTTP stream and
    keeps the partial completion, marked ``stopped`` or ``interrupted``.
    """

    def __init__(self, client: Client, req: PreparedRequest) -> None:
        self._call = Call(req, client._rules())
        self._client = client
        self._gen: Generator[Event, None, None] | None = None
        self._close_status: Status = "stopped"

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

    def close(self, interrupted: bool = False) -> None:
        """Close the HTTP stream; the partial reply ends "stopped" (``interrupted=True``:
        "interrupted", for a Ctrl-C the caller caught)."""
        self._close_status = "interrupted" if interrupted else "stopped"
        if self._gen is not None:
            self._gen.close()
        c = self.completion
        if c.status == "streaming":
            c.finish(self._close_status)

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
                c.finish(self._close_status)
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
        # a server that answers one request at a time: wait for it (see _slots)
        with _slots.hold(self._call.req.queue_key):
            yield from self._exchange()

    def _exchange(self) -> Iterator[Event]:
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
        self._call = Call(req, client._rules())
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
        except (GeneratorExit, asyncio.CancelledError) as e:
            # the canceller says why: task.cancel(INTERRUPTED) for Ctrl-C, else a stop
            why = e.args[0] if isinstance(e, asyncio.CancelledError) and e.args else None
            if c.status == "streaming":
                c.finish("interrupted" if why == INTERRUPTED else "stopped")
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
        async with _slots.ahold(self._call.req.queue_key):
            async for ev in self._exchange():
                yield ev

    async def _exchange(self) -> AsyncIterator[Event]:
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
