"""The local provider server: real HTTP on loopback that speaks like our providers.

Routes (all under ``srv.root``)::

    /cloudflare/client/v4/accounts/{id}/ai/run/{model}   Workers AI native
    /deepinfra/v1/openai/chat/completions                DeepInfra
    /aimlapi/v1/chat/completions                         AI/ML API
    /{vllm,vllm-old,ollama,llamacpp,openrouter,raw}/v1/chat/completions (+ /v1/models)
    /llamacpp/props, /vllm/version, /vllm-old/version, /ollama/api/version, POST
    /ollama/api/show                                      what qwq_magic's server probes read
    /_control/{script,fault,requests,reset,pace,latency} scripting from another process

``srv.script(Reply(...))`` queues replies, ``srv.fault(kind, ...)`` injects faults,
``srv.requests`` records what arrived. Everything is plain stdlib (``http.server``) so the server
starts in milliseconds and runs in a thread of the test process or as
``python -m qwq_magic.testing``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from . import dialects as d
from .replies import Reply, default_reply, tokens

API_KEY = "test-key"
ACCOUNT_ID = "acct123"

FAULTS = ("status", "error_event", "drop", "stall", "cut_bytes", "comments", "crlf", "no_done",
          "json_instead_of_stream", "error_200", "reject_json_schema", "html_500", "raw")

DEFAULT_MODELS = {
    "vllm": "qwq", "vllm-old": "qwq", "ollama": "qwq", "llamacpp": "qwq",
    "openrouter": "qwen/qwq-32b", "raw": "Qwen/QwQ-32B", "deepinfra": "Qwen/QwQ-32B",
    "aimlapi": "Qwen/QwQ-32B", "cloudflare": "@cf/qwen/qwq-32b",
}


@dataclass
class RecordedRequest:
    method: str
    path: str
    route: str
    headers: dict[str, str]
    json: Any
    time: float = field(default_factory=time.time)
    #: the response body bytes written for this request, in order (chunk framing removed)
    sent: list[bytes] = field(default_factory=list)


@dataclass
class Fault:
    kind: str
    times: int | None = 1  # None: every request
    after: int = 0  # data events before a mid-stream fault
    route: str | None = None  # only on this route
    opts: dict[str, Any] = field(default_factory=dict)


class _Handled(Exception):
    pass


class _HTTPServer(ThreadingHTTPServer):
    # socketserver's listen backlog is 5: an 8th simultaneous connect was dropped and retried
    # by the kernel a second later (a stall no real provider shows)
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that hangs up (a stopped stream, an interrupt, the soak's drops) is normal
        # here: say nothing; anything else is a bug of the server and is printed
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError,
                                              ConnectionAbortedError)):
            super().handle_error(request, client_address)


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.replies: list[Reply] = []
        self.faults: list[Fault] = []
        self.requests: list[RecordedRequest] = []
        self.pace = 0.0
        self.latency = 0.0  # seconds before answering each chat request (a slow upstream)
        self.echo_auth = False  # a refused key is echoed in the 401 body and code
        self.in_flight = 0  # chat requests being answered now
        self.max_in_flight = 0  # the most answered at once since the last reset
        self.extra_models: set[str] = set()

    def reset(self) -> None:
        with self.lock:
            self.replies.clear()
            self.faults.clear()
            self.requests.clear()
            self.extra_models.clear()
            self.pace = 0.0
            self.latency = 0.0
            self.echo_auth = False
            self.max_in_flight = self.in_flight

    def take_reply(self, messages: list[dict[str, Any]]) -> Reply | None:
        last = ""
        for m in reversed(messages):
            if m.get("role") == "user":
                last = str(m.get("content"))
                break
        with self.lock:
            for i, r in enumerate(self.replies):
                if r.match is not None and r.match in last:
                    return self.replies.pop(i)
            for i, r in enumerate(self.replies):
                if r.match is None:
                    return self.replies.pop(i)
        return None

    def reply_faults(self, messages: list[dict[str, Any]]) -> list[Fault]:
        """The next fault of the scripted reply this request would take (see Reply.faults)."""
        last = ""
        for m in reversed(messages):
            if m.get("role") == "user":
                last = str(m.get("content"))
                break
        with self.lock:
            r = next((r for r in self.replies if r.match is not None and r.match in last),
                     None) or next((r for r in self.replies if r.match is None), None)
            if r is None or not r.faults:
                return []
            f = dict(r.faults.pop(0))
        return [Fault(f.pop("kind"), 1, int(f.pop("after", 0)), None, f)]

    def take_faults(self, route: str) -> list[Fault]:
        out = []
        with self.lock:
            for f in list(self.faults):
                if f.route and f.route != route:
                    continue
                out.append(f)
                if f.times is not None:
                    f.times -= 1
                    if f.times <= 0:
                        self.faults.remove(f)
        return out


class ProviderServer:
    """A loopback server speaking every provider dialect; a context manager.

    >>> with ProviderServer() as srv:
    ...     client = qm.Client("deepinfra", **srv.client_kwargs("deepinfra"))
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, pace: float = 0.0,
                 latency: float = 0.0) -> None:
        self.state = _State()
        self.state.pace = pace
        self.state.latency = latency
        self._default_pace = pace
        self._default_latency = latency
        state = self.state

        class Handler(_Handler):
            st = state

        self.httpd = _HTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> ProviderServer:
        if self._thread is None:
            self._thread = threading.Thread(target=self.httpd.serve_forever,
                                            kwargs={"poll_interval": 0.05},
                                            name="qwq-provider-server", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread = None
        self.httpd.server_close()

    def __enter__(self) -> ProviderServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses -----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def base_url(self, route: str) -> str:
        """The ``base_url`` a client takes for this route."""
        if route == "cloudflare":
            return f"{self.root}/cloudflare/client/v4"
        if route == "deepinfra":
            return f"{self.root}/deepinfra/v1/openai"
        if route not in d.ROUTES:
            raise ValueError(f"unknown route {route!r}; routes: {', '.join(d.ROUTES)}")
        return f"{self.root}/{route}/v1"

    def client_kwargs(self, route: str) -> dict[str, Any]:
        """Keyword arguments for ``qm.Client(preset, **kw)`` pointed at this route."""
        kw: dict[str, Any] = {"base_url": self.base_url(route), "api_key": API_KEY}
        if route == "cloudflare":
            kw["account_id"] = ACCOUNT_ID
        if route not in ("cloudflare", "deepinfra", "aimlapi"):
            kw["model"] = DEFAULT_MODELS[route]
        return kw

    # -- scripting -----------------------------------------------------------------------------
    def script(self, *replies: Reply) -> None:
        """Queue replies; each request takes the next (or the first whose ``match`` fits)."""
        with self.state.lock:
            self.state.replies.extend(replies)

    def fault(self, kind: str, times: int | None = 1, after: int = 0, route: str | None = None,
              **opts: Any) -> None:
        """Inject a fault into the next ``times`` requests (None: all of them).

        kinds: ``status`` (code=, retry_after=, message=, echo_auth=True to put the
        request's Authorization header in the error message), ``error_event`` (after N events),
        ``drop`` (close the connection after N events), ``stall`` (seconds= after N events),
        ``cut_bytes`` (size=: write the stream in pieces of that many bytes), ``comments``,
        ``crlf``, ``no_done``, ``json_instead_of_stream``, ``error_200``,
        ``reject_json_schema`` (code=, forms=), ``html_500``, ``raw`` (send these exact bytes
        as the reply: head= text once, then body= text or b64= bytes repeat= times, status=, content_type=,
        size= bytes per write, cut= drop the connection after that many bytes).
        """
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; faults: {', '.join(FAULTS)}")
        with self.state.lock:
            self.state.faults.append(Fault(kind, times, after, route, opts))

    @property
    def pace(self) -> float:
        return self.state.pace

    @pace.setter
    def pace(self, v: float) -> None:
        self.state.pace = v

    @property
    def latency(self) -> float:
        """Seconds every chat request waits before its reply starts (requests wait concurrently,
        so N concurrent requests take about one latency, N sequential ones N latencies)."""
        return self.state.latency

    @latency.setter
    def latency(self, v: float) -> None:
        self.state.latency = v

    @property
    def echo_auth(self) -> bool:
        """Echo a refused Authorization header back in the 401's message and code."""
        return self.state.echo_auth

    @echo_auth.setter
    def echo_auth(self, v: bool) -> None:
        self.state.echo_auth = v

    @property
    def max_in_flight(self) -> int:
        """The most chat requests answered at the same time since the last reset."""
        return self.state.max_in_flight

    def add_model(self, name: str) -> None:
        with self.state.lock:
            self.state.extra_models.add(name)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self.state.lock:
            return list(self.state.requests)

    def reset(self) -> None:
        self.state.reset()
        self.state.pace = self._default_pace
        self.state.latency = self._default_latency


# -- the handler ----------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    st: _State
    protocol_version = "HTTP/1.1"
    server_version = "qwq-magic-test-server/1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # -- plumbing ------------------------------------------------------------------------------
    def _send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None,
                   spacing: bool = False) -> None:
        data = (json.dumps(obj) if spacing else json.dumps(obj, separators=(",", ":"))).encode()
        self._send_bytes(status, data, "application/json", headers)

    def _send_bytes(self, status: int, data: bytes, ctype: str,
                    headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _read_body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["_control", "requests"]:
            with self.st.lock:
                reqs = [{k: v for k, v in r.__dict__.items() if k != "sent"}  # bytes
                        for r in self.st.requests]
            self._send_json(200, reqs)
            return
        if parts == ["v1", "models"]:  # the root looks like a plain vLLM server
            parts = ["vllm", "v1", "models"]
        if len(parts) == 3 and parts[1:] == ["v1", "models"] and parts[0] in d.ROUTES:
            model = DEFAULT_MODELS[parts[0]]
            self._send_json(200, {"object": "list", "data": [
                {"id": model, "object": "model",
                 "owned_by": _OWNED_BY.get(parts[0], "qwq-magic-test-server")}]})
            return
        probe = _PROBES.get((parts[0], "/".join(parts[1:]))) if parts else None
        if probe is not None:  # the servers' own endpoints that qwq_magic probes
            self._send_json(200, probe)
            return
        if not parts:
            self._send_json(200, {"server": "qwq_magic.testing",
                                  "routes": {r: f"/{r}" for r in d.ROUTES}})
            return
        self._send_json(404, {"error": {"message": f"no such path {path}"}})

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        raw = self._read_body()
        if path == "/ollama/api/show":  # Ollama's model card, as qwq_magic's probe reads it
            self._send_json(200, {"template": OLLAMA_QWQ_TEMPLATE,
                                  "capabilities": ["completion", "tools", "thinking"],
                                  "details": {"family": "qwen2", "format": "gguf"}})
            return
        if path.startswith("/_control/"):
            self._control(path.removeprefix("/_control/"), raw)
            return
        route, model_in_path = self._route(path)
        if route is None:
            self._send_json(404, {"error": {"message": f"no such path {path}"}})
            return
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        hdrs = {k: v for k, v in self.headers.items()}
        rec = RecordedRequest("POST", unquote(path), route.name, hdrs, body)
        self._sent: list[bytes] | None = rec.sent
        with self.st.lock:
            self.st.requests.append(rec)
        try:
            self._chat(route, model_in_path, body)
        except _Handled:
            pass
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a bug in the server: say so in the reply, don't hang
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._send_json(500, {"error": {"message": f"test server bug: {exc!r}"}})

    def _control(self, what: str, raw: bytes) -> None:
        body = json.loads(raw or b"null")
        st = self.st
        if what == "script":
            with st.lock:
                st.replies.extend(Reply.from_json(r) for r in body)
        elif what == "fault":
            with st.lock:
                st.faults.append(Fault(body.pop("kind"), body.pop("times", 1),
                                       body.pop("after", 0), body.pop("route", None), body))
        elif what == "reset":
            st.reset()
        elif what == "pace":
            st.pace = float(body)
        elif what == "latency":
            st.latency = float(body)
        else:
            self._send_json(404, {"error": f"unknown control {what}"})
            return
        self._send_json(200, {"ok": True})

    def _route(self, path: str) -> tuple[d.Route | None, str | None]:
        if path == "/v1/chat/completions":  # the root looks like a plain vLLM server
            return d.ROUTES["vllm"], None
        parts = path.split("/")
        # /cloudflare/client/v4/accounts/{id}/ai/run/{model...}
        if len(parts) > 2 and parts[1] == "cloudflare":
            p = unquote(path)
            marker = "/ai/run/"
            if "/accounts/" in p and marker in p:
                acct = p.split("/accounts/")[1].split("/")[0]
                if acct != ACCOUNT_ID:
                    return d.ROUTES["cloudflare"], "\0bad-account"
                return d.ROUTES["cloudflare"], p.split(marker, 1)[1]
            return None, None
        if len(parts) > 2 and parts[1] == "deepinfra" and path.endswith(
                "/v1/openai/chat/completions"):
            return d.ROUTES["deepinfra"], None
        if len(parts) > 2 and parts[1] in d.ROUTES and path.endswith("/chat/completions"):
            return d.ROUTES[parts[1]], None
        return None, None

    # -- the chat endpoint ---------------------------------------------------------------------
    def _fail(self, route: d.Route, status: int, message: str, code: Any = None,
              headers: dict[str, str] | None = None) -> None:
        body = d.error_body(route, status, message, code=code, path=urlsplit(self.path).path)
        self._send_json(status, body, headers, spacing=route.spacing)
        raise _Handled

    def _chat(self, route: d.Route, model_in_path: str | None, body: Any) -> None:
        st = self.st
        if not isinstance(body, dict):
            self._fail(route, 400, "Request body is not a JSON object", code=3003)
        # authentication
        if route.auth:
            auth = self.headers.get("Authorization", "")
            if auth != f"Bearer {API_KEY}":
                msg = {"cloudflare": "Authentication error", "aimlapi":
                       "This request requires a valid API key. Check the Authorization header.",
                       }.get(route.name, "Invalid API key provided.")
                if st.echo_auth:  # careless servers echo the credentials they refused
                    msg += f" (got Authorization: {auth})"
                self._fail(route, 401, msg, code=auth if st.echo_auth else 10000)
        if model_in_path == "\0bad-account":
            self._fail(route, 404, "Could not route to the account: no such account", code=7003)
        model = model_in_path if route.style == "cloudflare" else body.get("model")
        with st.lock:
            st.in_flight += 1
            st.max_in_flight = max(st.max_in_flight, st.in_flight)
        try:
            self._answer(route, model, body)
        finally:
            with st.lock:
                st.in_flight -= 1

    def _answer(self, route: d.Route, model: Any, body: dict[str, Any]) -> None:
        st = self.st
        if st.latency > 0:
            time.sleep(st.latency)
        faults = st.take_faults(route.name)
        if isinstance(body.get("messages"), list):
            faults += st.reply_faults(body["messages"])
        kinds = {f.kind: f for f in faults}
        if "status" in kinds:
            self._status_fault(route, kinds["status"])
        if "raw" in kinds:
            self._raw(kinds["raw"].opts)
            raise _Handled
        if "html_500" in kinds:
            self._send_bytes(500, b"<html><body><h1>500 Internal Server Error</h1>"
                             b"<p>nginx</p></body></html>", "text/html")
            raise _Handled
        self._validate(route, model, body)
        schema, json_form = _schema_in(body)
        if "reject_json_schema" in kinds and json_form in kinds["reject_json_schema"].opts.get(
                "forms", ("json_schema",)):
            f = kinds["reject_json_schema"]
            self._fail(route, int(f.opts.get("code", 400)),
                       f"response_format type '{json_form}' is not supported by this server")
        stream = bool(body.get("stream"))
        if route.name == "cloudflare" and stream and json_form:
            self._fail(route, 400, "AiError: JSON Mode currently doesn't support streaming",
                       code=5006)
        messages = body.get("messages") or [{"role": "user", "content": body.get("prompt", "")}]
        reply = st.take_reply(messages) or default_reply(messages, schema)
        plan = self._plan(route, str(model), body, reply, messages)
        if "error_200" in kinds:
            self._send_json(200, d.error_body(route, 500, "upstream model crashed"))
            raise _Handled
        cf_openai = route.name == "cloudflare" and model in d.OPENAI_FORMAT_CF_MODELS
        if not stream or "json_instead_of_stream" in kinds:
            whole = d.whole_body(plan, route, json_form is not None, cf_openai)
            self._send_json(200, whole, spacing=route.spacing)
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if route.style == "cloudflare" and not cf_openai:
            events = d.cloudflare_native_events(plan, route)
        else:
            events = d.openai_events(plan, route, include_usage)
        pace = reply.pace if reply.pace is not None else st.pace
        self._stream(route, plan, events, kinds, pace)

    def _status_fault(self, route: d.Route, f: Fault) -> None:
        code = int(f.opts.get("code", 500))
        headers = {}
        if f.opts.get("retry_after") is not None:
            headers["Retry-After"] = str(f.opts["retry_after"])
        default = {429: "Model busy, retry later" if route.name == "deepinfra"
                   else "Too Many Requests", 500: "Internal server error",
                   502: "Bad gateway", 503: "Service temporarily unavailable",
                   401: "Invalid API key", 403: "Forbidden", 404: "Not found"}
        msg = f.opts.get("message") or default.get(code, f"HTTP {code}")
        if f.opts.get("echo_auth"):  # careless servers echo the credentials they refused
            msg += f" (Authorization: {self.headers.get('Authorization')})"
        cf = {429: 3040, 500: 3001, 503: 3040}.get(code)
        self._fail(route, code, msg, code=f.opts.get("cf_code", cf), headers=headers)

    def _validate(self, route: d.Route, model: Any, body: dict[str, Any]) -> None:
        """Reject what the real service rejects, in its words."""
        if not model:
            self._fail(route, 422 if route.name == "deepinfra" else 400,
                       "field required: model", code="model")
        known = route.models or ()
        ok = model in known or model in self.st.extra_models or (
            not known and "qw" in str(model).lower())
        if not ok:
            if route.name == "cloudflare":
                self._fail(route, 400, f"No such model {model} or task", code=5007)
            if route.name == "aimlapi":
                self._fail(route, 400, f"Body validation error! Invalid model: {model}")
            self._fail(route, 404, f"The model `{model}` does not exist.")
        msgs = body.get("messages")
        if route.name == "cloudflare":
            if msgs is None and "prompt" not in body:
                self._fail(route, 400, "AiError: Bad input: Error: oneOf at '/' not met, 0 "
                           "matches: required properties at '/' are 'prompt', required "
                           "properties at '/' are 'messages'", code=5006)
            for i, m in enumerate(msgs or []):
                if not isinstance(m.get("content"), str):
                    self._fail(route, 400, f"AiError: Bad input: Error: Type mismatch of "
                               f"'/messages/{i}/content', 'null' not in 'string'", code=5006)
        elif not isinstance(msgs, list) or not msgs:
            self._fail(route, 422 if route.name == "deepinfra" else 400,
                       "messages: field required (a non-empty list)", code="messages")
        for name, lo, hi in _RANGES.get((route.name, _family(model)), ()):
            v = body.get(name)
            if v is None:
                continue
            if isinstance(v, list):
                bad = hi is not None and len(v) > hi
            else:
                bad = not isinstance(v, int | float) or (lo is not None and v < lo) or (
                    hi is not None and v > hi)
            if bad:
                msg = f"{name}: value {v!r} out of range [{lo}, {hi}]"
                if route.name == "cloudflare":
                    self._fail(route, 400, f"AiError: Bad input: Error: '/{name}' must be <= "
                               f"{hi} and >= {lo}", code=5006)
                if route.name == "deepinfra":
                    self._fail(route, 422, msg, code=name)
                self._fail(route, 400, f"Body validation error! {msg}")
        if route.name == "aimlapi" and body.get("thinking_budget") is not None and not body.get(
                "enable_thinking"):
            self._fail(route, 400, "Body validation error! thinking_budget requires "
                       "enable_thinking=true")
        if (route.name == "aimlapi" and not body.get("stream")
                and (model == "Qwen/QwQ-32B" or body.get("enable_thinking"))):
            self._fail(route, 400, "This model only support stream mode, please enable the "
                       "stream parameter to access the model. ")

    def _plan(self, route: d.Route, model: str, body: dict[str, Any], reply: Reply,
              messages: list[dict[str, Any]]) -> d.Plan:
        reasoning, content = reply.reasoning, reply.content
        # thinking switches: AI/ML API qwen3 defaults to off; chat_template_kwargs elsewhere
        thinking = True
        if route.name == "aimlapi" and model == "alibaba/qwen3-32b":
            thinking = bool(body.get("enable_thinking", False))
        ctk = body.get("chat_template_kwargs") or {}
        if ctk.get("enable_thinking") is False or body.get("enable_thinking") is False:
            thinking = False
        if not thinking:
            reasoning = ""
        r_toks = tokens(reasoning)
        budget = body.get("thinking_budget")
        if thinking and isinstance(budget, int) and budget >= 0:
            r_toks = r_toks[:budget]
        c_toks = tokens(content)
        mode = reply.reasoning_mode
        rf = route.reasoning_field
        if route.name == "cloudflare" and model in d.OPENAI_FORMAT_CF_MODELS:
            rf = "reasoning_content"
        inline_open = False
        if mode == "field":
            rf = rf or "reasoning_content"
        elif mode in ("inline", "inline_open"):
            rf, inline_open = None, mode == "inline_open"
        elif mode == "none":
            r_toks = []
        pieces: list[tuple[str, str]] = []
        if mode == "content_leak":
            pieces = [("c", t) for t in r_toks] + [("c", t) for t in c_toks]
        elif mode == "reasoning_only":
            pieces = [("r", t) for t in r_toks + c_toks]
            rf = rf or "reasoning_content"
        else:
            if r_toks and rf is None and inline_open:
                pieces.append(("c", "<think>\n"))
            pieces += [("r", t) if rf else ("c", t) for t in r_toks]
            if r_toks:
                pieces.append(("t", "\n</think>\n\n") if rf is None else ("t", "</think>"))
            pieces += [("c", t) for t in c_toks]
        limit = body.get("max_tokens") or body.get("max_completion_tokens") or (
            route.default_max_tokens)
        finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
        if isinstance(limit, int) and len(pieces) > limit:
            pieces = pieces[:limit]
            finish = "length"
            tool_calls = []
        else:
            tool_calls = reply.tool_calls
        if tool_calls and reply.tool_call_style == "inline":
            inline_tc = "".join(
                "<tool_call>\n" + json.dumps({"name": tc.name, "arguments": tc.arguments})
                + "\n</tool_call>" for tc in tool_calls)
            pieces.append(("c", inline_tc))
            tool_calls = []
            finish = reply.finish_reason or "stop"
        n_r = sum(1 for k, _ in pieces if k == "r")
        return d.Plan(
            pieces=pieces, tool_calls=tool_calls, tool_style=reply.tool_call_style,
            finish=finish,
            prompt_tokens=reply.prompt_tokens or d.count_prompt_tokens(messages),
            completion_tokens=len(pieces) + 8 * len(tool_calls), reasoning_tokens=n_r,
            model=model if route.name != "aimlapi" else model.split("/")[-1],
            reasoning_field=rf if route.style == "openai" or rf else None,
            chunk_size=max(1, reply.chunk_size))

    def _stream(self, route: d.Route, plan: d.Plan, events: list[str], kinds: dict[str, Fault],
                pace: float) -> None:
        nl = "\r\n" if "crlf" in kinds else "\n"
        lines: list[tuple[str, str]] = [("data", e) for e in events]
        if route.done and "no_done" not in kinds:
            lines.append(("data", "[DONE]"))
        cut = kinds.get("cut_bytes")
        size = int(cut.opts.get("size", 1)) if cut else 0
        comments = list(route.comments)
        if "comments" in kinds:
            comments += [": keep-alive", ":"]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if comments:
            self._chunk(f"{comments[0]}{nl}{nl}".encode(), size)
        for i, (fld, payload) in enumerate(lines):
            for kind in ("error_event", "drop", "stall"):
                f = kinds.get(kind)
                if f is None or i != f.after:
                    continue
                if kind == "error_event":
                    for efld, epayload in d.stream_error(
                            route, f.opts.get("message", "the model crashed mid-generation"),
                            plan.model):
                        self._chunk(f"{efld}: {epayload}{nl}{nl}".encode(), size)
                    self._end_chunks()
                    return
                if kind == "drop":
                    self.wfile.flush()
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if kind == "stall":
                    time.sleep(float(f.opts.get("seconds", 5)))
            if comments and i % 4 == 3:
                self._chunk(f"{comments[i % len(comments)]}{nl}".encode(), size)
            self._chunk(f"{fld}: {payload}{nl}{nl}".encode(), size)
            if pace:
                time.sleep(pace)
        self._end_chunks()

    def _raw(self, opts: dict[str, Any]) -> None:
        """The ``raw`` fault: exact bytes, in chunked encoding, maybe cut short."""
        import base64

        data = (base64.b64decode(opts["b64"]) if "b64" in opts
                else str(opts.get("body", "")).encode())
        repeat = int(opts.get("repeat", 1))
        size = int(opts.get("size", 0)) or 65536
        cut = opts.get("cut")
        self.send_response(int(opts.get("status", 200)))
        self.send_header("Content-Type", str(opts.get("content_type", "text/event-stream")))
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0
        if opts.get("head"):
            head = str(opts["head"]).encode()
            self._chunk(head)
            sent += len(head)
        for _ in range(repeat):
            for i in range(0, len(data), size):
                piece = data[i:i + size]
                if cut is not None and sent + len(piece) >= int(cut):
                    piece = piece[:int(cut) - sent]
                    if piece:
                        self._chunk(piece)
                    self.wfile.flush()
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self._chunk(piece)
                sent += len(piece)
        self._end_chunks()

    def _chunk(self, data: bytes, size: int = 0) -> None:
        pieces = [data[i:i + size] for i in range(0, len(data), size)] if size else [data]
        sent = getattr(self, "_sent", None)
        for p in pieces:
            self.wfile.write(f"{len(p):x}\r\n".encode() + p + b"\r\n")
            if sent is not None:
                sent.append(p)

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")


# What the probed endpoints of the real servers answer (shapes from their sources/docs).
QWQ_TEMPLATE = ("{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + "
                "message.content + '<|im_end|>\\n' }}{%- endfor %}{%- if add_generation_prompt "
                "%}{{- '<|im_start|>assistant\\n<think>\\n' }}{%- endif %}")
OLLAMA_QWQ_TEMPLATE = ("{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
                       "{{ end }}<|im_start|>assistant\n<think>\n")
_OWNED_BY = {"llamacpp": "llamacpp", "vllm": "vllm", "vllm-old": "vllm", "ollama": "library"}
_PROBES: dict[tuple[str, str], Any] = {
    ("llamacpp", "props"): {
        "default_generation_settings": {"n_ctx": 4096, "params": {"repeat_penalty": 1.0}},
        "total_slots": 1, "model_path": "models/qwq-32b-q4_k_m.gguf",
        "chat_template": QWQ_TEMPLATE, "build_info": "b6510-703f9e32"},
    ("vllm", "version"): {"version": "0.13.0"},
    ("vllm-old", "version"): {"version": "0.8.5"},
    ("ollama", "api/version"): {"version": "0.12.3"},
}


def _schema_in(body: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The JSON schema a request asks for, and the form it used."""
    rf = body.get("response_format")
    if isinstance(rf, dict):
        t = rf.get("type")
        if t == "json_schema":
            js = rf.get("json_schema") or {}
            schema = js.get("schema", js) if isinstance(js, dict) else None
            return schema if isinstance(schema, dict) else None, "json_schema"
        if t == "json_object":
            schema = rf.get("schema")
            return schema if isinstance(schema, dict) else None, "json_object"
    if isinstance(body.get("guided_json"), dict):
        return body["guided_json"], "guided_json"
    so = body.get("structured_outputs")
    if isinstance(so, dict) and isinstance(so.get("json"), dict):
        return so["json"], "structured_outputs"
    return None, None


def _family(model: Any) -> str:
    m = str(model).lower()
    if "qwq" in m:
        return "qwq"
    return "qwen3" if "qwen3" in m else "other"


# (route, model family) → (param, min, max); a list parameter's max is its max length
_RANGES: dict[tuple[str, str], tuple[tuple[str, float | None, float | None], ...]] = {
    ("cloudflare", "qwq"): (("temperature", 0, 5), ("top_p", 0, 2), ("top_k", 1, 50),
                            ("max_tokens", 1, 24000), ("seed", 1, 9999999999),
                            ("repetition_penalty", 0, 2), ("frequency_penalty", 0, 2),
                            ("presence_penalty", 0, 2)),
    ("deepinfra", "qwq"): (("temperature", 0, 2), ("top_p", 0, 1), ("top_k", 0, 999),
                           ("min_p", 0, 1), ("repetition_penalty", 0.01, 5),
                           ("frequency_penalty", -2, 2), ("presence_penalty", -2, 2),
                           ("stop", None, 16)),
    ("aimlapi", "qwq"): (("temperature", 0, 2), ("top_p", 0.01, 1), ("min_p", 0.001, 0.999),
                         ("frequency_penalty", -2, 2), ("presence_penalty", -2, 2),
                         ("stop", None, 4)),
    ("aimlapi", "qwen3"): (("temperature", 0, 2), ("top_p", 0.01, 1),
                           ("thinking_budget", 1, None)),
}
