"""The run log: one SQLite row per reply, from every front end.

Every reply that was sent (or replayed) — from the magic, the panel, the Python API, ``compare``
and ``map`` — is appended to ``log.db`` in the user's data directory (``platformdirs``), or at
``QWQ_LOG_PATH`` / ``%config QwqMagics.log_path``. ``QWQ_LOG=0`` or
``%config QwqMagics.log = False`` turns it off.

The client core calls two hooks, so no front end has to remember:

* :func:`before_send` before any request leaves: refuses it when the session's budget is spent;
* :func:`after_reply` when a reply ends (complete, stopped, interrupted or broken): counts its
  cost and queues its row. It never raises and never waits for the disk: one background thread
  writes the rows (``flush()`` waits for it; the process exit flushes it too).

Front ends label their rows with ``with runlog.source("compare"): ...``. Nothing with a key
is stored: no headers at all, and every string goes through :func:`qwq_magic.errors.redact`
with the values of the provider key variables registered as secrets.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import inspect
import json
import logging
import os
import queue
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextvars import ContextVar, Token
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from . import budget
from .errors import ConfigurationError, QwqError, redact, register_secret

if TYPE_CHECKING:
    import sqlite3

    from .completion import Completion
    from .request import PreparedRequest

__all__ = ["SCHEMA_VERSION", "after_parse", "after_reply", "before_send", "configure",
           "enabled", "flush", "log_path", "provenance", "source"]

log = logging.getLogger("qwq_magic.runlog")

SCHEMA_VERSION = 1
SOURCES = ("magic", "panel", "api", "compare", "map", "tune", "replay")
SESSION_ID = uuid.uuid4().hex[:12]  # this process: rows of "this session" share it
BUSY_TIMEOUT = 1.0  # seconds a write waits for a lock held by another connection
MAX_PENDING = 1000  # rows kept in memory while the database cannot be written

# (name, SQL type): the ``runs`` table, in order
COLUMNS: tuple[tuple[str, str], ...] = (
    ("uid", "TEXT UNIQUE NOT NULL"),
    ("time", "REAL NOT NULL"),  # unix seconds when the request was sent
    ("end_time", "REAL"),
    ("session", "TEXT"),
    ("source", "TEXT"),  # magic | panel | api | compare | map | tune | replay
    ("notebook", "TEXT"),
    ("provider", "TEXT"),
    ("model", "TEXT"),
    ("host", "TEXT"),  # host[:port] of the base URL (no path, no credentials)
    ("request_key", "TEXT"),  # the cassette key of the request (replays match on it)
    ("prompt", "TEXT"),  # the last user message
    ("messages", "TEXT"),  # JSON
    ("params", "TEXT"),  # JSON
    ("json_schema", "TEXT"),  # JSON
    ("json_mode", "TEXT"),
    ("reasoning", "TEXT"),
    ("answer", "TEXT"),
    ("data", "TEXT"),  # JSON: the validated structured output
    ("tool_calls", "TEXT"),  # JSON
    ("status", "TEXT"),  # complete | stopped | interrupted | error
    ("finish_reason", "TEXT"),
    ("error", "TEXT"),
    ("prompt_tokens", "INTEGER"),
    ("completion_tokens", "INTEGER"),
    ("reasoning_tokens", "INTEGER"),
    ("cached_tokens", "INTEGER"),
    ("total_tokens", "INTEGER"),
    ("usage_counted", "INTEGER"),  # 1: the provider sent no usage; counted here
    ("cost", "REAL"),  # USD
    ("cost_kind", "TEXT"),  # reported | estimate | counted | NULL (unknown)
    ("ttft_s", "REAL"),
    ("reasoning_s", "REAL"),
    ("total_s", "REAL"),
    ("tokens_per_s", "REAL"),
    ("replayed", "INTEGER"),
    ("version", "TEXT"),  # qwq_magic's version
)
JSON_COLUMNS = ("messages", "params", "json_schema", "data", "tool_calls")
_INSERT = (f"INSERT OR REPLACE INTO runs ({', '.join(n for n, _ in COLUMNS)}) "
           f"VALUES ({', '.join('?' for _ in COLUMNS)})")
_META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY, "
    + ", ".join(f"{n} {t}" for n, t in COLUMNS) + ");",
    "CREATE INDEX IF NOT EXISTS runs_time ON runs (time);",
)


# -- labelling rows: which front end made the call ---------------------------------------------
_SOURCE: ContextVar[str] = ContextVar("qwq_magic_source", default="api")
F = TypeVar("F", bound=Callable[..., Any])


class source:  # lower case: used like a function, ``with runlog.source("map"):``
    """Label the rows of calls made inside it: a context manager and a decorator.

    >>> with runlog.source("compare"):
    ...     client.complete(...)          # logged with source "compare"

    Nested labels win (``%%qwq --compare`` logs "compare"). The label is a context variable:
    asyncio tasks started inside inherit it; a worker thread needs ``contextvars.copy_context``.
    Replayed replies are always labelled "replay".
    """

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name.strip() or len(name) > 32:
            raise QwqError(f"runlog.source: give a short label such as {', '.join(SOURCES)}; "
                           f"got {name!r}.")
        self.name = name.strip()
        self._tokens: list[Token[str]] = []

    def __enter__(self) -> source:
        self._tokens.append(_SOURCE.set(self.name))
        return self

    def __exit__(self, *exc: object) -> None:
        _SOURCE.reset(self._tokens.pop())

    def __call__(self, fn: F) -> F:
        name = self.name
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def awrapper(*a: Any, **kw: Any) -> Any:
                with source(name):
                    return await fn(*a, **kw)

            return awrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*a: Any, **kw: Any) -> Any:
            with source(name):
                return fn(*a, **kw)

        return wrapper  # type: ignore[return-value]


def current_source() -> str:
    return _SOURCE.get()


# -- configuration ---------------------------------------------------------------------------
_override: dict[str, Any] = {}
_OFF = ("0", "false", "off", "no")


def configure(*, enabled: bool | None = None, path: str | os.PathLike[str] | None = None) -> None:
    """Turn the log on or off and choose its file from Python (beats the environment and
    ``%config``); ``configure()`` with no arguments drops these overrides."""
    if enabled is None and path is None:
        _override.clear()
        return
    if enabled is not None:
        _override["enabled"] = bool(enabled)
    if path is not None:
        _override["path"] = _as_path(path)


def _magics() -> Any:
    mod = sys.modules.get("qwq_magic.magics")  # only when the extension is loaded
    return getattr(mod, "_magics", None) if mod is not None else None


def enabled() -> bool:
    """Whether replies are written to the log now."""
    if "enabled" in _override:
        return bool(_override["enabled"])
    if os.environ.get("QWQ_LOG", "").strip().lower() in _OFF:
        return False
    m = _magics()
    return not (m is not None and getattr(m, "log", True) is False)


def _as_path(p: str | os.PathLike[str]) -> Path:
    path = Path(os.path.expanduser(os.fspath(p)))
    if path.is_dir() or os.fspath(p).endswith(("/", os.sep)):
        path = path / "log.db"
    return path


def log_path() -> Path:
    """The log file: ``configure(path=)`` > ``%config QwqMagics.log_path`` > ``QWQ_LOG_PATH`` >
    ``log.db`` in ``platformdirs.user_data_path("qwq-magic")``."""
    if "path" in _override:
        return Path(_override["path"])
    m = _magics()
    configured = getattr(m, "log_path", None) if m is not None else None
    if configured:
        return _as_path(configured)
    env = os.environ.get("QWQ_LOG_PATH", "").strip()
    if env:
        return _as_path(env)
    import platformdirs

    return platformdirs.user_data_path("qwq-magic") / "log.db"


# -- the hooks -------------------------------------------------------------------------------
def before_send(request: PreparedRequest, client: Any) -> None:
    """Called by the client core before a request is sent (not for replays, which cost
    nothing). Raises :class:`~qwq_magic.budget.BudgetExceededError` once the session's spend
    has reached its cap."""
    budget.check()


def after_reply(completion: Completion, request: PreparedRequest | None = None,
                client: Any = None) -> None:
    """Called by the client core when a reply ends, whatever its status: counts its cost in the
    session's tally and queues its row. Never raises, never touches the disk."""
    try:
        row = _row(completion, request, client)
        if row is None:
            return
        budget.tally.add(row)
        if enabled():
            _writer.put(("row", log_path(), row))
    except Exception as e:  # a bug here must never fail a call
        _writer.report("bug", f"qwq_magic could not log a reply ({type(e).__name__}: {e}).")


def after_parse(completion: Completion, error: BaseException | None = None) -> None:
    """Structured output: the reply's validated ``.data`` (or why it did not validate) is known
    only after :func:`after_reply`; this adds it to the reply's row. Never raises."""
    try:
        info = completion.__dict__.get("_qwq_log")
        if not info or not enabled():
            return
        fields: dict[str, Any] = {}
        if error is None:
            fields["data"] = completion.data
        else:
            fields["error"] = _error_text(error)
        _writer.put(("update", log_path(), (info["id"], fields)))
    except Exception as e:
        _writer.report("bug", f"qwq_magic could not log a reply ({type(e).__name__}: {e}).")


def flush(timeout: float = 10.0) -> bool:
    """Wait until every queued row is written (or has failed); False on timeout."""
    return _writer.flush(timeout)


def problems() -> list[str]:
    """What went wrong writing the log in this process (each kind reported once)."""
    return list(_writer.problems)


# -- building a row --------------------------------------------------------------------------
def _not_sent(err: BaseException | None) -> bool:
    """Errors raised before anything was sent (or replayed): no reply, no row."""
    if err is None:
        return False
    from .cassette import CassetteMissError

    return isinstance(err, budget.BudgetExceededError | ConfigurationError | CassetteMissError)


def _host(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    return parts.hostname + (f":{parts.port}" if parts.port else "")


def _wall(c: Completion) -> tuple[float, float | None]:
    """(start, end) as unix seconds, from the perf_counter timings."""
    now, perf = time.time(), time.perf_counter()
    t = c.timings
    start = now - (perf - t.start) if t.start else now
    end = None if t.end is None else start + (t.end - t.start if t.start else 0.0)
    return start, end


def _last_user(messages: list[dict[str, Any]]) -> str | None:
    for m in reversed(messages):
        if m.get("role") == "user":
            content = m.get("content")
            return content if isinstance(content, str) else json.dumps(content, default=repr)
    return None


def usage_of(c: Completion) -> tuple[dict[str, int | None], bool]:
    """The reply's token counts and whether they were counted here (the provider sent none):
    then completion tokens are the deltas received, prompt tokens ≈ characters / 4."""
    u = c.usage
    if u is None or (u.prompt_tokens is None and u.completion_tokens is None):
        u = c.counted_usage(u)
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "reasoning_tokens": u.reasoning_tokens, "cached_tokens": u.cached_tokens,
            "total_tokens": u.total_tokens}, u.counted


def cost_of(c: Completion, usage: dict[str, int | None], counted: bool
            ) -> tuple[float | None, str | None]:
    """(USD, kind): ``reported`` by the provider, an ``estimate`` from the preset's prices and
    the reported usage, ``counted`` (prices × counted tokens), or (None, None): unknown."""
    if c.usage is not None and c.usage.cost_usd is not None:
        return float(c.usage.cost_usd), "reported"
    if c.price_in is None or c.price_out is None:
        return None, None
    pin, pout = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if pin is None or pout is None:
        return None, None
    return (pin * c.price_in + pout * c.price_out) / 1e6, "counted" if counted else "estimate"


def notebook_path(shell: Any = None) -> str | None:
    """The notebook's path when the front end says it: ``__session__`` (ipykernel, from
    Jupyter Server's ``JPY_SESSION_NAME``), ``__vsc_ipynb_file__`` (VS Code), else None."""
    if shell is None and "IPython" in sys.modules:
        from IPython import get_ipython

        shell = get_ipython()
    ns = getattr(shell, "user_ns", None) or {}
    for name in ("__vsc_ipynb_file__", "__session__"):
        v = ns.get(name)
        if isinstance(v, str) and v:
            return v
    return os.environ.get("JPY_SESSION_NAME") or None


def _request_key(request: PreparedRequest | None) -> str | None:
    if request is None:
        return None
    from .cassette import normalized_request, request_key

    try:
        return request_key(normalized_request(request))
    except (TypeError, ValueError):
        return None


def _error_text(err: BaseException | None) -> str | None:
    if err is None:
        return None
    return redact(f"{type(err).__name__}: {err}")


def _row(c: Completion, request: PreparedRequest | None, client: Any) -> dict[str, Any] | None:
    if c.__dict__.get("_qwq_log"):  # already logged (a hook called twice)
        return None
    if _not_sent(c.error):
        return None
    start, end = _wall(c)
    usage, counted = usage_of(c)
    cost, kind = cost_of(c, usage, counted)
    t = c.timings
    url = request.url if request is not None else getattr(client, "base_url", None)
    info = {
        "id": uuid.uuid4().hex,
        "source": "replay" if c.replayed else _SOURCE.get(),
        "host": _host(url),
        "key": _request_key(request),
        "json_mode": getattr(request, "json_mode", None),
        "time": start,
        "end": end,
        "usage": usage,
        "counted": counted,
        "cost": cost,
        "cost_kind": kind,
    }
    c.__dict__["_qwq_log"] = info
    from . import __version__

    return {
        "uid": info["id"], "time": start, "end_time": end, "session": SESSION_ID,
        "source": info["source"], "notebook": notebook_path(), "provider": c.provider,
        "model": c.model, "host": info["host"], "request_key": info["key"],
        "prompt": _last_user(c.messages), "messages": [dict(m) for m in c.messages],
        "params": dict(c.params), "json_schema": c.schema, "json_mode": info["json_mode"],
        "reasoning": c.reasoning, "answer": c.content, "data": c.data,
        "tool_calls": [{"id": tc.id, "name": tc.name, "arguments": tc.arguments}
                       for tc in c.tool_calls] or None,
        "status": c.status, "finish_reason": c.finish_reason, "error": _error_text(c.error),
        **usage, "usage_counted": int(counted), "cost": cost, "cost_kind": kind,
        "ttft_s": t.ttft if t.start else None,
        "reasoning_s": t.reasoning_s if t.first_token is not None else None,
        "total_s": t.total_s if t.start else None, "tokens_per_s": c.tokens_per_s,
        "replayed": int(c.replayed), "version": __version__,
    }


# -- keeping keys out ------------------------------------------------------------------------
def register_env_keys() -> None:
    """Treat the value of every provider key variable as a secret (masked wherever stored)."""
    from .resolve import env_keys

    for v in env_keys():
        register_secret(v)


def scrub(obj: Any) -> Any:
    """``obj`` with every string (keys of dicts too) passed through :func:`redact`."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {scrub(str(k)): scrub(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [scrub(v) for v in obj]
    return obj


def _jsonable(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)  # pydantic models
    if callable(dump):
        with contextlib.suppress(Exception):
            return dump(mode="json")
    to_dict = getattr(obj, "to_dict", None)  # DataFrames
    if callable(to_dict):
        with contextlib.suppress(Exception):
            return to_dict(orient="records")
    return repr(obj)


def _dumps(obj: Any) -> str | None:
    if obj is None:
        return None
    text = json.dumps(scrub(obj), ensure_ascii=False, default=_jsonable)
    return redact(text)


def _utf8(s: str) -> str:
    """Lone surrogates (possible in decoded JSON) cannot be stored: keep them as ``\\udXXX``."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return s.encode("utf-8", "backslashreplace").decode("utf-8")
    return s


def _encode(row: dict[str, Any]) -> tuple[Any, ...]:
    register_env_keys()
    out = []
    for name, _ in COLUMNS:
        v = row.get(name)
        if name in JSON_COLUMNS:
            v = _dumps(v)
        elif isinstance(v, str):
            v = redact(v)
        if isinstance(v, str):
            v = _utf8(v)
        out.append(v)
    return tuple(out)


# -- the writer ------------------------------------------------------------------------------
def _digest(messages: list[dict[str, Any]]) -> str:
    blob = json.dumps(messages, sort_keys=True, ensure_ascii=False, default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class _Writer:
    """One background thread, one queue: rows are written in order, off the caller's path."""

    def __init__(self) -> None:
        self.q: queue.SimpleQueue[tuple[str, Any, Any]] = queue.SimpleQueue()
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()
        self.conns: dict[Path, sqlite3.Connection] = {}
        self.pending: list[tuple[Path, dict[str, Any]]] = []
        self.problems: list[str] = []
        self._reported: set[str] = set()
        self._atexit = False

    # caller side
    def put(self, item: tuple[str, Any, Any]) -> None:
        self._start()
        self.q.put(item)

    def _start(self) -> None:
        if self.thread is not None and self.thread.is_alive():
            return
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._loop, name="qwq-runlog",
                                               daemon=True)
                self.thread.start()
                if not self._atexit:
                    atexit.register(self.close)
                    self._atexit = True

    def flush(self, timeout: float = 10.0) -> bool:
        if self.thread is None or not self.thread.is_alive():
            return True
        done = threading.Event()
        self.q.put(("flush", None, done))
        return done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued and stop the thread (registered with atexit)."""
        t = self.thread
        if t is None or not t.is_alive():
            return
        done = threading.Event()
        self.q.put(("stop", None, done))
        done.wait(timeout)
        t.join(timeout)

    def report(self, kind: str, message: str) -> None:
        """Say what went wrong, once per kind of problem."""
        if kind in self._reported:
            return
        self._reported.add(kind)
        self.problems.append(message)
        log.warning(message)
        warnings.warn(message, RuntimeWarning, stacklevel=2)

    # writer side
    def _loop(self) -> None:
        while True:
            kind, path, payload = self.q.get()
            try:
                if kind == "row":
                    self._write(path, payload)
                elif kind == "update":
                    self._update(path, *payload)
                elif kind == "flush":
                    self._retry_pending()
                    payload.set()
                elif kind == "stop":
                    self._retry_pending()
                    for conn in self.conns.values():
                        with contextlib.suppress(Exception):
                            conn.close()
                    self.conns.clear()
                    payload.set()
                    return
            except Exception as e:  # never let the thread die
                self.report("bug", f"qwq_magic's run log failed ({type(e).__name__}: {e}).")
                if kind in ("flush", "stop"):
                    payload.set()

    def _conn(self, path: Path) -> sqlite3.Connection:
        conn = self.conns.get(path)
        if conn is not None:
            return conn
        import sqlite3

        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():  # the log holds prompts: readable by its owner only
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None,
                               check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            _migrate(conn, path)
        except Exception:
            conn.close()
            raise
        self.conns[path] = conn
        return conn

    def _insert(self, path: Path, row: dict[str, Any]) -> None:
        conn = self._conn(path)
        with conn:
            conn.execute(_INSERT, _encode(row))

    def _failed(self, path: Path, exc: Exception) -> None:
        import sqlite3

        conn = self.conns.pop(path, None)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
        what = "locked by another program" if "locked" in str(exc) or "busy" in str(exc) \
            else f"not writable ({type(exc).__name__}: {exc})"
        if isinstance(exc, _NewerSchema):
            what = str(exc)
        kind = f"write:{path}:{'locked' if 'locked' in what else type(exc).__name__}"
        if not isinstance(exc, sqlite3.Error | OSError | _NewerSchema):
            kind = "bug"
        self.report(kind, f"qwq_magic's run log at {path} is {what}: replies are kept in "
                    "memory and written when it can be (calls are not affected; "
                    "QWQ_LOG=0 turns the log off).")

    def _try(self, path: Path, row: dict[str, Any]) -> bool | None:
        """Write one row: True; False when the database cannot be written now (keep the row);
        None when the row itself cannot be written (a bug: reported and dropped)."""
        import sqlite3

        try:
            self._insert(path, row)
            return True
        except (sqlite3.DatabaseError, OSError, _NewerSchema) as e:
            self._failed(path, e)
            return False
        except Exception as e:
            self.report("bug", f"qwq_magic could not log a reply ({type(e).__name__}: {e}).")
            return None

    def _write(self, path: Path, row: dict[str, Any]) -> None:
        failed = self._retry_pending() if self.pending else set()
        if path in failed or self._try(path, row) is False:  # don't wait on a lock twice
            self._keep(path, row)

    def _keep(self, path: Path, row: dict[str, Any]) -> None:
        self.pending.append((path, row))
        if len(self.pending) > MAX_PENDING:
            del self.pending[0]

    def _retry_pending(self) -> set[Path]:
        """Retry the kept rows in order; return the paths that still cannot be written."""
        failed: set[Path] = set()
        keep: list[tuple[Path, dict[str, Any]]] = []
        for path, row in self.pending:
            if path in failed or self._try(path, row) is False:
                failed.add(path)
                keep.append((path, row))
        self.pending = keep
        return failed

    def _update(self, path: Path, uid: str, fields: dict[str, Any]) -> None:
        for _p, row in self.pending:
            if row.get("uid") == uid:
                row.update(fields)
                return
        sets = ", ".join(f"{k} = ?" for k in fields)
        register_env_keys()
        values = [_dumps(v) if k in JSON_COLUMNS else redact(v) if isinstance(v, str) else v
                  for k, v in fields.items()]
        values = [_utf8(v) if isinstance(v, str) else v for v in values]
        try:
            conn = self._conn(path)
            with conn:
                conn.execute(f"UPDATE runs SET {sets} WHERE uid = ?", (*values, uid))
        except Exception as e:
            self._failed(path, e)


class _NewerSchema(Exception):
    pass


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Create the tables, or check and upgrade an older log (``meta.schema_version``)."""
    with conn:
        conn.execute(_META)
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise _NewerSchema(f"written by a newer qwq_magic (schema {version}, this one "
                               f"knows {SCHEMA_VERSION}); upgrade qwq_magic or set "
                               "QWQ_LOG_PATH to another file")
        for stmt in _SCHEMA:
            conn.execute(stmt)
        # later schema versions add their ALTER TABLE steps here, from `version` up
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                     (str(SCHEMA_VERSION),))
        conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('created', ?)",
                     (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),))


_writer = _Writer()


@contextlib.contextmanager
def _connect_read(path: Path) -> Iterator[sqlite3.Connection | None]:
    """A connection for reading the log (None when there is no log yet)."""
    import sqlite3

    if not path.exists():
        yield None
        return
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT * 5)
    try:
        yield conn
    finally:
        conn.close()


# -- provenance: what a saved notebook says about each answer --------------------------------
def _r(v: float | None, n: int = 3) -> float | None:
    return None if v is None else round(v, n)


def provenance(completion: Completion) -> dict[str, Any]:
    """A compact, JSON-ready record of what produced ``completion`` (no key, no header): the
    request summary (provider, model, base URL host, the request's cassette key, a digest and
    sizes of the messages, parameters, schema), the reply (reasoning, answer, tool calls,
    status, finish reason, error), usage (``counted`` when the provider sent none), cost and
    its kind, timings, times and qwq_magic's version.

    The magic puts it in each output's display metadata under ``"qwq_magic"``; with the
    request ``key`` and the reply a notebook can be replayed from its own outputs.
    """
    from . import __version__

    c = completion
    info = c.__dict__.get("_qwq_log") or {}
    if info:
        usage, counted = info["usage"], info["counted"]
        cost, kind = info["cost"], info["cost_kind"]
        start, end = info["time"], info["end"]
    else:
        usage, counted = usage_of(c)
        cost, kind = cost_of(c, usage, counted)
        start, end = _wall(c)
    msgs = c.messages
    t = c.timings
    request: dict[str, Any] = {
        "provider": c.provider, "model": c.model, "host": info.get("host"),
        "key": info.get("key"),
        "messages": {"count": len(msgs),
                     "chars": sum(len(str(m.get("content") or "")) for m in msgs),
                     "sha256": _digest(msgs)},
        "params": dict(c.params),
        # the prompt's start: a replay of this notebook says how a new prompt differs
        "prompt": (_last_user(msgs) or "")[:300],
    }
    if c.schema is not None:
        request["json_schema"] = c.schema
        request["json_mode"] = info.get("json_mode")
    reply: dict[str, Any] = {"reasoning": c.reasoning, "content": c.content,
                             "status": c.status, "finish_reason": c.finish_reason}
    if c.tool_calls:
        reply["tool_calls"] = [{"id": tc.id, "name": tc.name, "arguments": tc.arguments}
                               for tc in c.tool_calls]
    if c.error is not None:
        reply["error"] = _error_text(c.error)
    out = {
        "format": 1,
        "version": __version__,
        "source": info.get("source") or ("replay" if c.replayed else _SOURCE.get()),
        "log_id": info.get("id"),
        "request": request,
        "reply": reply,
        "usage": {**{k: v for k, v in usage.items() if v is not None}, "counted": counted},
        "cost": cost,
        "cost_kind": kind,
        "timings": {"ttft": _r(t.ttft) if t.start else None,
                    "reasoning": _r(t.reasoning_s) if t.first_token is not None else None,
                    "total": _r(t.total_s) if t.start else None},
        "time": _iso(start),
        "end": _iso(end),
        "replayed": c.replayed,
    }
    register_env_keys()
    scrubbed: dict[str, Any] = scrub(out)
    return scrubbed


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"
