"""``qm.map``: one prompt template over every row of a table, concurrently, resumably.

    out = qm.map("Classify the sentiment of: {text}", df, concurrency=8,
                 checkpoint="labels.sqlite", max_tokens=2048)
    est = qm.map("Classify the sentiment of: {text}", df, dry_run=True)   # sends nothing

The result is a DataFrame with the input's index: ``answer`` (or one column per schema field
with ``json_schema=``), ``reasoning``, ``reasoning_tokens``, ``answer_tokens``, ``cost``,
``finish_reason`` and ``error``. ``df.join(out)`` puts it beside the input.

How a run goes: every prompt is filled and checked first (a missing column is an error before
anything is sent); rows already in the checkpoint are skipped; the rest run on a private event
loop in a worker thread (so the notebook's own loop and Ctrl-C / kernel interrupt keep working),
at most ``concurrency`` at once, fewer while the provider rate-limits (:mod:`._concurrency`).
Each finished row is written to the checkpoint as it finishes. A failing row keeps its error in
its own ``error`` cell; an interrupt returns every finished row. A Dask DataFrame gives a Dask
DataFrame, computed partition by partition on the workers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import difflib
import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .errors import QwqError, RateLimitError, Secret, mask, register_secret
from .interpolate import InterpolationError, interpolate
from .params import ALIASES, PARAM_NAMES

if TYPE_CHECKING:
    import pandas as pd

    from .client import Client
    from .completion import Completion

__all__ = ["ClientConfig", "MapError", "MapEstimate", "map", "map_cell"]

OnError = Literal["keep", "raise", "skip"]
ON_ERROR = ("keep", "raise", "skip")
META_COLUMNS = ("reasoning", "reasoning_tokens", "answer_tokens", "cost", "finish_reason",
                "error")
INT_COLUMNS = ("reasoning_tokens", "answer_tokens")
TEXT_COLUMN = "text"  # the column a list of strings becomes
NOT_RUN = "not sent: the run was interrupted"
INTERRUPTED = "interrupted before the reply finished (the partial reply is kept)"
#: a rate-limited row is sent again this many times (after the server's Retry-After, at a
#: lower concurrency) before its 429 counts as the row's error
RATE_LIMIT_RETRIES = 6
_OPTIONS = ("json_schema", "concurrency", "client", "provider", "model", "base_url", "api_key",
            "account_id", "checkpoint", "on_error", "dry_run", "system", "json_mode", "retries",
            "progress")


class MapError(QwqError):
    """``on_error="raise"``: a row failed. ``.result`` holds the rows finished so far,
    ``.row`` the failing row's index label; the original error is ``__cause__``."""

    def __init__(self, message: str, *, row: Any = None, result: Any = None) -> None:
        super().__init__(message)
        self.row = row
        self.result = result


# -- the client ----------------------------------------------------------------------------------
def _client_for(client: Any = None, **kw: Any) -> Client:
    from .resolve import client_for

    return client_for(client, **kw)


@dataclass(frozen=True)
class ClientConfig:
    """A client as configuration, to send to Dask workers (never a live connection).

    The key travels only when it did not come from this machine's environment (then as a
    :class:`Secret`, masked in every repr); otherwise each worker reads its own environment.
    """

    provider: str
    model: str
    base_url: str
    account_id: str | None = None
    api_key: Secret | None = None
    timeout: float | None = None
    max_retries: int = 2
    max_retry_wait: float = 60.0
    think: str | None = None
    cassette: tuple[str, str, float] | None = None  # (absolute path, mode, speed)

    @classmethod
    def from_client(cls, c: Client) -> ClientConfig:
        # a key this machine's environment holds for this provider is read again by each
        # worker from its own environment; any other key travels (as a Secret)
        from .errors import QwqError
        from .resolve import resolve

        try:
            env_key = resolve(c.provider, probe=False).api_key
        except QwqError:
            env_key = None
        ship = c._key if c._key is not None and c._key != env_key else None
        cas = c.cassette
        return cls(provider=c.provider, model=c.model, base_url=c.base_url,
                   account_id=c.account_id, api_key=ship, timeout=c.timeout.read,
                   max_retries=c.max_retries, max_retry_wait=c.max_retry_wait, think=c.think,
                   cassette=(str(Path(cas.path).resolve()), cas.mode, cas.speed)
                   if cas is not None else None)

    def build(self) -> Client:
        from .client import Client

        cassette = None
        if self.cassette is not None:
            from .cassette import Cassette

            cassette = Cassette(self.cassette[0], mode=self.cassette[1], speed=self.cassette[2])
        return Client(self.provider, model=self.model, base_url=self.base_url,
                      api_key=self.api_key, account_id=self.account_id, timeout=self.timeout,
                      max_retries=self.max_retries, max_retry_wait=self.max_retry_wait,
                      think=self.think,  # type: ignore[arg-type]
                      cassette=cassette)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # unpickled on a worker: the key is masked in that process's messages too
        for k, v in state.items():
            object.__setattr__(self, k, v)
        if self.api_key is not None:
            register_secret(self.api_key.get())

    def __repr__(self) -> str:
        key = f", api_key={mask(self.api_key.get())!r}" if self.api_key else ""
        return (f"ClientConfig({self.provider!r}, model={self.model!r}, "
                f"base_url={self.base_url!r}{key})")


_WORKER_CLIENTS: dict[ClientConfig, Client] = {}
_WORKER_LOCK = threading.Lock()


def _worker_client(cfg: ClientConfig) -> Client:
    with _WORKER_LOCK:
        c = _WORKER_CLIENTS.get(cfg)
        if c is None:
            c = _WORKER_CLIENTS[cfg] = cfg.build()
        return c


# -- the plan ------------------------------------------------------------------------------------
@dataclass
class _Plan:
    """Everything about one ``qm.map`` call but the data and the live client (picklable)."""

    template: str
    system: str | None
    params: dict[str, Any]  # canonical, validated, session defaults included (a snapshot)
    model: str
    schema: dict[str, Any] | None  # the JSON schema (for keys and columns)
    schema_spec: Any  # what to pass as json_schema= (the user's form; a dict for Dask)
    fields: tuple[str, ...]  # schema columns; () → "answer"
    json_mode: str | None
    retries: int
    concurrency: int
    on_error: str
    checkpoint: str | None
    extra_ns: dict[str, Any] | None = None  # notebook variables (the magic form)
    config: ClientConfig | None = None  # for Dask workers
    price_in: float | None = None
    price_out: float | None = None
    max_tokens: int | None = None
    provider: str = ""
    overhead_chars: int = 0  # characters the wire form adds to every prompt (JSON instruction)

    @property
    def columns(self) -> tuple[str, ...]:
        head = (*self.fields, "raw") if self.fields else ("answer",)
        return (*head, *META_COLUMNS)


def _check_keywords(params: Mapping[str, Any]) -> None:
    known = set(PARAM_NAMES) | set(ALIASES)
    bad = [k for k in params if k.replace("-", "_") not in known]
    if not bad:
        return
    hints = []
    for k in bad:
        m = difflib.get_close_matches(k, [*PARAM_NAMES, *_OPTIONS], n=1)
        if m:
            hints.append(f"{k!r} → {m[0]!r}?")
    hint = f" Did you mean: {', '.join(hints)}" if hints else ""
    raise TypeError(
        f"qm.map() got unexpected keyword argument{'s' if len(bad) > 1 else ''} "
        f"{', '.join(repr(k) for k in bad)}. Sampling parameters: {', '.join(PARAM_NAMES)}; "
        f"options: {', '.join(_OPTIONS)}.{hint}")


def _schema_fields(schema: dict[str, Any]) -> tuple[str, ...]:
    props = schema.get("properties")
    if schema.get("type", "object") == "object" and isinstance(props, dict) and props:
        fields = tuple(str(k) for k in props)
    else:
        fields = ("data",)
    clash = [f for f in fields if f in (*META_COLUMNS, "raw")]
    if clash:
        raise QwqError(
            f"The schema field{'s' if len(clash) > 1 else ''} {', '.join(repr(f) for f in clash)} "
            f"would clash with qm.map's own column{'s' if len(clash) > 1 else ''}: rename "
            f"{'them' if len(clash) > 1 else 'it'} in the schema (result columns: "
            f"{', '.join((*META_COLUMNS, 'raw'))}).")
    return fields


# -- the data ------------------------------------------------------------------------------------
def _rows(data: Any) -> tuple[Any, list[dict[str, Any]]]:
    """(index, one dict per row) from a DataFrame, a Series, a list of dicts or of strings."""
    try:
        import pandas as pd
    except ImportError:
        raise QwqError("qm.map returns a pandas DataFrame: install pandas "
                       "(pip install 'qwq-magic[pandas]').") from None

    if isinstance(data, pd.DataFrame):
        cols = [str(c) for c in data.columns]
        if len(set(cols)) != len(cols):
            dup = sorted({c for c in cols if cols.count(c) > 1})
            raise QwqError(f"qm.map: the DataFrame has duplicate column names {dup}: rename "
                           "them so that each {column} in the template is unambiguous.")
        if not cols:
            return data.index, [{} for _ in range(len(data))]
        values = [data.iloc[:, j].tolist() for j in range(len(cols))]  # python scalars
        return data.index, [dict(zip(cols, vals, strict=True)) for vals in zip(*values,
                                                                               strict=True)]
    if isinstance(data, pd.Series):
        name = str(data.name) if data.name is not None else TEXT_COLUMN
        return data.index, [{name: v} for v in data.tolist()]
    if isinstance(data, str | bytes) or not isinstance(data, Sequence | Iterator):
        raise QwqError(
            f"qm.map: data must be a pandas DataFrame, a list of dicts or a list of strings "
            f"(or a Dask DataFrame), not {type(data).__name__}.")
    items = list(data)
    out: list[dict[str, Any]] = []
    for i, x in enumerate(items):
        if isinstance(x, str):
            out.append({TEXT_COLUMN: x})
        elif isinstance(x, Mapping):
            out.append({str(k): v for k, v in x.items()})
        else:
            raise QwqError(f"qm.map: item {i} of the list is a {type(x).__name__}: give dicts "
                           "(one per row, keys = the template's {fields}) or strings "
                           f"(filled in as {{{TEXT_COLUMN}}}).")
    return pd.RangeIndex(len(out)), out


class _Missing(Exception):
    pass


class _RowNamespace(Mapping[str, Any]):
    """A row as the interpolation namespace: columns first, then ``row``, then extras."""

    __slots__ = ("extra", "row")

    def __init__(self, row: dict[str, Any], extra: Mapping[str, Any] | None) -> None:
        self.row, self.extra = row, extra

    def __contains__(self, key: object) -> bool:
        return True  # every name is looked up here (no builtins): a missing one is an error

    def __getitem__(self, key: str) -> Any:
        row = self.row
        if key in row:
            return row[key]
        if key == "row":
            return row
        if self.extra is not None and key in self.extra:
            return self.extra[key]
        raise _Missing(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.row)

    def __len__(self) -> int:
        return len(self.row)


def _compile(template: str) -> list[tuple[str, Any]] | None:
    """The template as (literal, reference) pieces, when filling it is plain substitution
    (no ``{{`` escapes, no code or math zones): then each row costs a few string joins instead
    of a scan. ``None``: fill each row with :func:`interpolate` itself."""
    from . import interpolate as ip

    if "{{" in template or ip._VERBATIM.search(template):
        return None
    pieces: list[tuple[str, Any]] = []
    pos = i = 0
    while (i := template.find("{", i)) >= 0:
        m = ip._REF.match(template, i)
        if m and not ip._TEX_BEFORE.search(template, 0, i):
            pieces.append((template[pos:i], m))  # the same decision interpolate's scan makes
            pos = i = m.end()
        else:
            i += 1
    pieces.append((template[pos:], None))
    return pieces


def _fill_all(template: str, rows: list[dict[str, Any]], index: Any,
              extra: Mapping[str, Any] | None = None) -> list[str]:
    from .interpolate import _value

    pieces = _compile(template)
    out = []
    ns = _RowNamespace({}, extra)
    for i, row in enumerate(rows):
        ns.row = row
        try:
            if pieces is None:
                out.append(interpolate(template, ns))
            else:
                out.append("".join([lit + _value(m, ns) if m is not None else lit
                                    for lit, m in pieces]))
        except _Missing as e:
            name = str(e.args[0])
            cols = ", ".join(row) or "none"
            where = "" if i == 0 else f" (row {index[i]!r})"
            raise InterpolationError(
                f"The template refers to {{{name}}} but the data has no column {name!r}{where}. "
                f"Columns: {cols}. Rename the column, fix the template, or write "
                f"{{{{{name}}}}} for literal braces.") from None
        except InterpolationError as e:
            raise InterpolationError(f"Row {index[i]!r}: {e}") from None
    return out


def _keys(prompts: list[str], plan: _Plan) -> list[str]:
    """Each row's request key: a hash of the filled prompt, system prompt, model, parameters
    and schema (what identifies a reply; concurrency, retries and the like do not)."""
    rest = json.dumps([plan.system, plan.model, plan.params, plan.schema], sort_keys=True,
                      ensure_ascii=False, separators=(",", ":"), default=str).encode()
    sha, dumps = hashlib.sha256, json.dumps
    return [sha(dumps(p, ensure_ascii=False).encode() + b"\n" + rest).hexdigest()[:32]
            for p in prompts]


# -- the estimate --------------------------------------------------------------------------------
@dataclass
class MapEstimate:
    """What a run would send (``qm.map(..., dry_run=True)``); nothing was sent."""

    rows: int
    requests: int  # rows still to send (the checkpoint's finished rows are skipped)
    skipped: int
    input_tokens: int
    tokens_counted_by: str  # "estimated (~4 characters per token)" or a tokenizer's name
    max_tokens: int | None  # per request (reasoning included); None: no cap set
    price_in: float | None  # USD per million tokens
    price_out: float | None
    provider: str = ""
    model: str = ""

    @property
    def estimated(self) -> bool:
        """True when the input tokens were estimated from characters, not counted."""
        return self.tokens_counted_by.startswith("estimated")

    @property
    def output_tokens_max(self) -> int | None:
        return None if self.max_tokens is None else self.max_tokens * self.requests

    @property
    def cost_min(self) -> float | None:
        """USD if every answer were empty: the input alone."""
        if self.price_in is None:
            return None
        return self.input_tokens * self.price_in / 1e6

    @property
    def cost_max(self) -> float | None:
        """USD if every request used all of max_tokens."""
        out = self.output_tokens_max
        if self.cost_min is None or self.price_out is None or out is None:
            return None
        return self.cost_min + out * self.price_out / 1e6

    def _lines(self) -> list[tuple[str, str]]:
        tok = f"{self.input_tokens:,}" + (" (estimated, ~4 characters per token)"
                                          if self.estimated else
                                          f" (counted with {self.tokens_counted_by})")
        rows = [("model", f"{self.provider} · {self.model}"),
                ("requests", f"{self.requests:,}" + (f" ({self.skipped:,} of {self.rows:,} rows "
                                                     "already in the checkpoint)"
                                                     if self.skipped else "")),
                ("input tokens", tok)]
        if self.max_tokens is None:
            rows.append(("output tokens", "no max_tokens set: unbounded (pass max_tokens= to "
                                          "bound the cost)"))
        else:
            rows.append(("output tokens", f"at most {self.output_tokens_max:,} "
                                          f"({self.max_tokens:,} per request, reasoning included)"))
        if self.price_in is None or self.price_out is None:
            rows.append(("cost", f"no price known for {self.provider} · {self.model}"))
        else:
            hi = self.cost_max
            lo = self.cost_min or 0.0
            rows.append(("cost", f"{_usd(lo)} – " + (_usd(hi) if hi is not None else "unbounded")
                         + f" (at ${self.price_in:g} in / ${self.price_out:g} out per M tokens)"))
        return rows

    def __repr__(self) -> str:
        lines = self._lines()
        w = max(len(k) for k, _ in lines)
        return "qm.map dry run — nothing sent\n" + "\n".join(f"  {k.ljust(w)}  {v}"
                                                            for k, v in lines)

    def _repr_html_(self) -> str:
        import html

        body = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                       f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
                       for k, v in self._lines())
        return (f"<div class='qwq-map-estimate'><b>qm.map dry run</b> — nothing sent"
                f"<table>{body}</table></div>")


def _usd(x: float) -> str:
    return f"${x:,.2f}" if x >= 1 else f"${x:.4f}" if x >= 0.001 else f"${x:.6f}"


_TOKENIZER_REPOS = (("qwq-32b-preview", "Qwen/QwQ-32B-Preview"), ("qwq", "Qwen/QwQ-32B"),
                    ("qwen3-32b", "Qwen/Qwen3-32B"))


def _offline_tokenizer(model: str) -> tuple[Any, str] | None:
    """The model's tokenizer if it is on this machine already (never downloads)."""
    import os

    try:
        from tokenizers import Tokenizer  # type: ignore[import-not-found]
    except ImportError:
        return None
    path = os.environ.get("QWQ_TOKENIZER")
    if not path:
        repo = next((r for k, r in _TOKENIZER_REPOS if k in model.lower()), None)
        if repo is None:
            return None
        try:
            from huggingface_hub import try_to_load_from_cache  # type: ignore[import-not-found]
        except ImportError:
            return None
        found = try_to_load_from_cache(repo, "tokenizer.json")
        if not isinstance(found, str):
            return None
        path = found
    try:
        return Tokenizer.from_file(path), f"the {Path(path).parent.name or 'local'} tokenizer"
    except Exception:  # a broken file: fall back to the estimate
        return None


def _count_tokens(prompts: list[str], plan: _Plan) -> tuple[int, str]:
    per_request = 8 + (4 if plan.system else 0)  # the chat template's role markers
    system = len(plan.system or "")
    tok = _offline_tokenizer(plan.model)
    if tok is not None:
        enc, name = tok
        n = sum(len(e.ids) for e in enc.encode_batch(prompts))
        extra = len(enc.encode(plan.system).ids) if plan.system else 0
        return n + len(prompts) * (per_request + extra + plan.overhead_chars // 4), name
    chars = sum(len(p) for p in prompts) + len(prompts) * (system + plan.overhead_chars)
    return -(-chars // 4) + len(prompts) * per_request, "estimated (~4 characters per token)"


# -- running -------------------------------------------------------------------------------------
@dataclass
class _Stats:
    """Counters the worker thread writes and the progress bar reads."""

    total: int
    done: int = 0
    failed: int = 0
    tokens: int = 0
    cost: float = 0.0
    started: float = field(default_factory=time.monotonic)
    limiter: Any = None

    def postfix(self) -> str:
        el = max(1e-9, time.monotonic() - self.started)
        parts = [f"failed {self.failed}", f"{self.tokens / el:,.0f} tok/s", _usd(self.cost)]
        lim = self.limiter
        if lim is not None:
            w = lim.waiting()
            if w > 0:
                parts.append(f"waiting {w:.0f} s on a rate limit (concurrency "
                             f"{lim.limit}/{lim.ceiling})")
            elif lim.limit < lim.ceiling:
                parts.append(f"concurrency {lim.limit}/{lim.ceiling} after a rate limit")
        return " · ".join(parts)


def _token_split(c: Completion) -> tuple[int | None, int | None]:
    u = c.usage
    total = u.completion_tokens if u is not None else None
    r = u.reasoning_tokens if u is not None else None
    nr, nc = c.reasoning_events, c.content_events
    if total is None:
        return (nr, nc) if (nr or nc or c.status == "complete") else (None, None)
    if r is None:  # not reported: share the total out by the deltas that arrived
        r = round(total * nr / (nr + nc)) if nr + nc else 0
    return r, max(0, total - r)


def _result(c: Completion | None, plan: _Plan, error: str | None) -> dict[str, Any]:
    res: dict[str, Any] = dict.fromkeys(plan.columns)
    if c is not None:
        rt, at = _token_split(c)
        res.update(reasoning=c.reasoning or None, reasoning_tokens=rt, answer_tokens=at,
                   cost=c.cost, finish_reason=c.finish_reason)
        if not plan.fields:
            res["answer"] = c.content if (c.content or error is None) else None
        elif c.data is not None and error is None:
            data = c.data.model_dump() if hasattr(c.data, "model_dump") else c.data
            if plan.fields == ("data",) or not isinstance(data, dict):
                res[plan.fields[0]] = data
            else:
                for f in plan.fields:
                    res[f] = data.get(f)
        else:
            res["raw"] = c.content or None  # the reply that did not parse: never dropped
    res["error"] = error
    return res


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


async def _one(client: Client, prompt: str, plan: _Plan) -> Completion:
    """One row's request; on cancel, the partial Completion rides on the CancelledError."""
    holder: list[Any] = []

    async def consume(stream: Any, attempt: int = 0) -> None:
        holder[:] = [stream]
        async for _ in stream:
            pass

    kw: dict[str, Any] = dict(plan.params)
    if plan.system:
        kw["system"] = plan.system
    try:
        if plan.schema is not None:
            from .structured import arun

            return await arun(client, prompt, json_schema=plan.schema_spec, retries=plan.retries,
                              json_mode=plan.json_mode, on_stream=consume, **kw)
        stream = client.astream(prompt, **kw)
        await consume(stream)
        return stream.completion
    except asyncio.CancelledError as e:
        if holder:
            e.args = (holder[0].completion,)
        raise


async def _run_rows(client: Client, plan: _Plan, todo: list[int], prompts: list[str],
                    keys: list[str], labels: Any, results: list[dict[str, Any] | None],
                    store: Any, stats: _Stats, stop: asyncio.Event) -> None:
    from ._concurrency import AdaptiveLimiter

    limiter = AdaptiveLimiter(plan.concurrency)
    stats.limiter = limiter
    queue = deque(todo)
    first_error: list[tuple[int, BaseException]] = []

    def finish(i: int, res: dict[str, Any], ok: bool) -> None:
        results[i] = res
        stats.done += 1
        if not ok:
            stats.failed += 1
        stats.tokens += (res["reasoning_tokens"] or 0) + (res["answer_tokens"] or 0)
        stats.cost += res["cost"] or 0.0
        if store is not None:
            store.write({"key": keys[i], "status": "ok" if ok else "error",
                         "index": _label(labels[i]), "result": res})

    async def worker() -> None:
        while queue and not stop.is_set():
            i = queue.popleft()
            for attempt in range(RATE_LIMIT_RETRIES + 1):
                async with limiter:
                    try:
                        c = await _one(client, prompts[i], plan)
                    except QwqError as e:
                        if isinstance(e, RateLimitError):
                            limiter.rate_limited(e.retry_after)
                            if attempt < RATE_LIMIT_RETRIES:
                                continue  # after the pause, at the lower concurrency
                        finish(i, _result(e.completion, plan, _describe(e)), False)
                        if plan.on_error == "raise":
                            first_error.append((i, e))
                            stop.set()
                    except asyncio.CancelledError as e:
                        part = e.args[0] if e.args and hasattr(e.args[0], "reasoning") else None
                        results[i] = _result(part, plan, INTERRUPTED)
                        raise
                    else:
                        limiter.success()
                        finish(i, _result(c, plan, None), True)
                break

    tasks = [asyncio.create_task(worker()) for _ in range(min(plan.concurrency, len(todo)))]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.aclose_pool()
    if first_error:
        i, e = first_error[0]
        raise MapError(f"qm.map: row {labels[i]!r} failed: {_describe(e)}", row=labels[i]) from e


def _label(x: Any) -> Any:
    """An index label as JSON can hold it."""
    if hasattr(x, "item"):
        x = x.item()
    return x if isinstance(x, str | int | float | bool | type(None)) else str(x)


def _in_thread(make: Callable[[asyncio.Event], Any], on_tick: Callable[[], None]) -> bool:
    """Run ``make(stop)`` on a private event loop in a worker thread; keep the caller
    interruptible. Returns True if it was interrupted (KeyboardInterrupt in this thread)."""
    loop = asyncio.new_event_loop()
    box: dict[str, Any] = {}
    ready = threading.Event()

    async def main() -> None:
        stop = asyncio.Event()
        box["stop"] = stop
        box["task"] = asyncio.current_task()
        ready.set()
        await make(stop)

    fut: concurrent.futures.Future[None] = concurrent.futures.Future()

    def target() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(main())
            fut.set_result(None)
        except BaseException as e:
            fut.set_exception(e)
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    th = threading.Thread(target=target, name="qwq-map", daemon=True)
    th.start()
    interrupted = False
    try:
        while True:
            try:
                fut.result(timeout=0.2)
                break
            except concurrent.futures.TimeoutError:
                on_tick()
    except KeyboardInterrupt:
        interrupted = True
        ready.wait()
        loop.call_soon_threadsafe(box["task"].cancel)
        while True:  # let the in-flight rows wind down and the checkpoint close
            try:
                fut.result(timeout=0.2)
            except concurrent.futures.TimeoutError:
                continue
            except (asyncio.CancelledError, concurrent.futures.CancelledError):
                pass
            break
    finally:
        th.join(timeout=5)
        on_tick()
    return interrupted


class _Progress:
    """tqdm.auto: a notebook bar in Jupyter, a text bar in a terminal."""

    def __init__(self, stats: _Stats, enabled: bool, skipped: int) -> None:
        self.stats = stats
        self.bar: Any = None
        if enabled and stats.total:
            from tqdm.auto import tqdm

            desc = "qm.map" + (f" ({skipped:,} done before)" if skipped else "")
            self.bar = tqdm(total=stats.total, desc=desc, unit="row", dynamic_ncols=True)

    def tick(self) -> None:
        bar = self.bar
        if bar is None:
            return
        delta = self.stats.done - bar.n
        if delta:
            bar.update(delta)
        bar.set_postfix_str(self.stats.postfix(), refresh=True)

    def close(self) -> None:
        bar = self.bar
        if bar is None:
            return
        self.tick()
        bar.close()
        if getattr(bar, "container", None) is not None:  # tqdm.notebook's widget bar
            # a saved notebook keeps only the widget's first text form ("0%"): say how it ended
            s = self.stats
            print(f"qm.map: {s.done:,} of {s.total:,} rows sent · {s.failed:,} failed · "
                  f"{s.tokens:,} tokens · {_usd(s.cost)}")


def _execute(client: Client, plan: _Plan, prompts: list[str], keys: list[str], labels: Any,
             done: Mapping[str, Any], *, progress: bool, part: int | None = None
             ) -> tuple[list[dict[str, Any]], bool, BaseException | None, _Stats]:
    """Run the rows not already done; returns (results, interrupted, error to raise)."""
    results: list[dict[str, Any] | None] = [None] * len(prompts)
    todo = []
    for i, k in enumerate(keys):
        rec = done.get(k)
        if rec is not None and rec.get("status") == "ok":
            results[i] = {c: rec["result"].get(c) for c in plan.columns}
        else:
            todo.append(i)
    stats = _Stats(total=len(todo))
    store = None
    if plan.checkpoint and todo:
        from ._checkpoint import open_store

        store = open_store(plan.checkpoint, part)
    bar = _Progress(stats, progress, len(prompts) - len(todo))
    err: list[BaseException] = []

    async def make(stop: asyncio.Event) -> None:
        try:
            await _run_rows(client, plan, todo, prompts, keys, labels, results, store, stats,
                            stop)
        except MapError as e:
            err.append(e)

    try:
        interrupted = _in_thread(make, bar.tick) if todo else False
    finally:
        bar.close()
        if store is not None:
            store.close()
    out = [r if r is not None else _result(None, plan, NOT_RUN) for r in results]
    return out, interrupted, (err[0] if err else None), stats


def _frame(results: list[dict[str, Any]], plan: _Plan, index: Any) -> pd.DataFrame:
    import pandas as pd

    df = pd.DataFrame(index=index)
    for c in plan.columns:
        vals = [r.get(c) for r in results]
        if c in INT_COLUMNS:
            df[c] = pd.Series(pd.array(vals, dtype="Int64"), index=index)
        elif c == "cost":
            df[c] = pd.Series([float("nan") if v is None else v for v in vals], index=index,
                              dtype="float64")
        else:  # object columns: a missing text is None (pandas' str dtype would make it NaN)
            df[c] = pd.Series(vals, index=index, dtype=object)
    return df


# -- the entry point -----------------------------------------------------------------------------
def map(  # qm.map: like the builtin, one function over many items
    template: str,
    data: Any,
    *,
    json_schema: Any = None,
    concurrency: int = 4,
    client: Any = None,
    provider: str | None = None,
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | Secret | None = None,
    account_id: str | None = None,
    checkpoint: str | Path | None = None,
    on_error: OnError = "keep",
    dry_run: bool = False,
    system: str | None = None,
    json_mode: str | None = None,
    retries: int = 0,
    progress: bool = True,
    _extra_ns: Mapping[str, Any] | None = None,
    **params: Any,
) -> Any:
    """Run one prompt template over every row of ``data``; a DataFrame of replies comes back.

    ``template``: a prompt with ``{column}`` fields (the ``%%qwq`` interpolation rules:
    ``{col!r}``, ``{col:.2f}``, ``{row["a column with spaces"]}``, ``{{`` for a brace).
    ``data``: a pandas DataFrame, a Series, a list of dicts, a list of strings (filled in as
    ``{text}``) or a Dask DataFrame (a Dask DataFrame comes back).

    ``json_schema``: a pydantic class, a JSON-schema dict or ``"label, score float"``: one
    output column per field instead of ``answer``. ``concurrency``: requests at once (fewer
    while the provider rate-limits). ``checkpoint``: a ``.sqlite`` / ``.jsonl`` / ``.parquet``
    file; finished rows are written as they finish and skipped when the same call runs again.
    ``on_error``: ``"keep"`` (the error goes in the row's ``error`` column), ``"skip"`` (failed
    rows are left out) or ``"raise"`` (stop at the first failure: :class:`MapError`).
    ``dry_run=True`` sends nothing and returns a :class:`MapEstimate` (requests, tokens, price
    range). Sampling parameters (``temperature=``, ``max_tokens=`` …) apply to every row; any
    other keyword is a ``TypeError``. ``client=`` or ``provider=`` / ``model=`` / ``base_url=``
    / ``api_key=`` / ``account_id=`` choose the model (default: the session's).

    An interrupt (Ctrl-C, the kernel's stop button) returns the DataFrame so far: unfinished
    rows say so in ``error`` and ``df.attrs["interrupted"]`` is True.
    """
    _check_keywords(params)
    if on_error not in ON_ERROR:
        raise QwqError(f"qm.map: on_error={on_error!r}: use 'keep', 'skip' or 'raise'.")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise QwqError(f"qm.map: concurrency={concurrency!r}: give a whole number ≥ 1 "
                       "(requests at the same time), e.g. concurrency=8.")
    if not isinstance(template, str) or not template.strip():
        raise QwqError("qm.map: the template is empty: give a prompt with {column} fields, "
                       "e.g. 'Classify the sentiment of: {text}'.")
    if checkpoint is not None:
        from ._checkpoint import check_path

        checkpoint = str(check_path(checkpoint))
    c = _client_for(client, provider=provider, model=model, base_url=base_url, api_key=api_key,
                    account_id=account_id)
    dask = _is_dask(data)
    plan = _make_plan(c, template, system=system, params=params, json_schema=json_schema,
                      json_mode=json_mode, retries=retries, concurrency=concurrency,
                      on_error=on_error, checkpoint=checkpoint, extra_ns=_extra_ns, dask=dask)
    if dask:
        return _map_dask(data, plan, dry_run)
    index, rows = _rows(data)
    prompts = _fill_all(plan.template, rows, index, plan.extra_ns)
    keys = _keys(prompts, plan)
    done: Mapping[str, Any] = {}
    if checkpoint is not None and Path(checkpoint).parent.exists():
        from ._checkpoint import load

        done = load(checkpoint)
    if dry_run:
        return _estimate(plan, prompts, keys, done)
    results, interrupted, err, stats = _execute(c, plan, prompts, keys, index, done,
                                                progress=progress)
    out = _frame(results, plan, index)
    n_done = sum(r["error"] not in (NOT_RUN, INTERRUPTED) for r in results)
    lim = stats.limiter
    out.attrs.update(interrupted=interrupted, done=n_done, rows=len(results),
                     sent=stats.done, failed=stats.failed,
                     rate_limits=lim.aimd.rate_limits if lim is not None else 0,
                     lowest_concurrency=lim.aimd.lowest if lim is not None else plan.concurrency)
    if err is not None:
        assert isinstance(err, MapError)
        err.result = out
        raise err
    if interrupted:
        where = f"; they are in {checkpoint}: run the same call again to resume" if (
            checkpoint) else "; pass checkpoint='run.sqlite' to resume next time"
        print(f"⏹ qm.map interrupted: {n_done:,} of {len(results):,} rows finished{where}.")
    if on_error == "skip":
        out = out[out["error"].isna() | out["error"].isin([NOT_RUN, INTERRUPTED])]
    return out


def _is_dask(data: Any) -> bool:
    return type(data).__module__.startswith("dask.") and hasattr(data, "map_partitions")


def _make_plan(c: Client, template: str, *, system: str | None, params: dict[str, Any],
               json_schema: Any, json_mode: str | None, retries: int, concurrency: int,
               on_error: str, checkpoint: str | None, extra_ns: Mapping[str, Any] | None,
               dask: bool) -> _Plan:
    schema = None
    fields: tuple[str, ...] = ()
    spec = json_schema
    if json_schema is not None:
        from .structured import resolve

        schema = resolve(json_schema).json
        fields = _schema_fields(schema)
        if dask:
            spec = schema  # plain JSON travels; data comes back as dicts
    probe = "x"
    req = c.prepare(probe, system=system, json_schema=json_schema, json_mode=json_mode, **params)
    info = req.info
    mt = req.params.get("max_tokens")
    if mt is None:
        spec_mt = info.params.get("max_tokens")
        mt = getattr(spec_mt, "default", None)
    overhead = sum(len(str(m.get("content") or "")) for m in req.messages) - len(probe) - len(
        system or "")
    return _Plan(template=template, system=system, params=dict(req.params), model=req.model,
                 schema=schema, schema_spec=spec, fields=fields, json_mode=json_mode,
                 retries=retries, concurrency=concurrency, on_error=on_error,
                 checkpoint=checkpoint,
                 # only the notebook names the template mentions (the rest need not pickle)
                 extra_ns={k: v for k, v in extra_ns.items() if k in template} if extra_ns
                 else None,
                 config=ClientConfig.from_client(c) if dask else None,
                 price_in=info.price_in, price_out=info.price_out, max_tokens=mt,
                 provider=c.provider, overhead_chars=max(0, overhead))


def _estimate(plan: _Plan, prompts: list[str], keys: list[str], done: Mapping[str, Any],
              ) -> MapEstimate:
    todo = [p for p, k in zip(prompts, keys, strict=True)
            if (done.get(k) or {}).get("status") != "ok"]
    n, how = _count_tokens(todo, plan)
    return MapEstimate(rows=len(prompts), requests=len(todo), skipped=len(prompts) - len(todo),
                       input_tokens=n, tokens_counted_by=how, max_tokens=plan.max_tokens,
                       price_in=plan.price_in, price_out=plan.price_out,
                       provider=plan.provider, model=plan.model)


# -- Dask ----------------------------------------------------------------------------------------
def _meta(plan: _Plan) -> pd.DataFrame:
    import pandas as pd

    return _frame([], plan, pd.RangeIndex(0))


def _partition_rows(pdf: Any, plan: _Plan) -> tuple[Any, list[str], list[str], dict[str, Any]]:
    index, rows = _rows(pdf)
    prompts = _fill_all(plan.template, rows, index, plan.extra_ns)
    keys = _keys(prompts, plan)
    done: dict[str, Any] = {}
    if plan.checkpoint is not None and Path(plan.checkpoint).parent.exists():
        from ._checkpoint import load

        done = load(plan.checkpoint)
    return index, prompts, keys, done


def _run_partition(pdf: Any, plan: _Plan, partition_info: dict[str, Any] | None = None) -> Any:
    """One Dask partition: its rows run concurrently and checkpoint to the partition's file."""
    if len(pdf) == 0:
        return _meta(plan)
    assert plan.config is not None
    client = _worker_client(plan.config)
    index, prompts, keys, done = _partition_rows(pdf, plan)
    part = int(partition_info["number"]) if partition_info else 0
    results, _, err, _ = _execute(client, plan, prompts, keys, index, done, progress=False,
                                  part=part)
    if err is not None:
        raise err
    out = _frame(results, plan, index)
    if plan.on_error == "skip":
        out = out[out["error"].isna()]
    return out


def _estimate_partition(pdf: Any, plan: _Plan) -> Any:
    import pandas as pd

    _, prompts, keys, done = _partition_rows(pdf, plan)
    est = _estimate(plan, prompts, keys, done)
    return pd.DataFrame({"rows": [est.rows], "requests": [est.requests],
                         "input_tokens": [est.input_tokens]})


def _map_dask(ddf: Any, plan: _Plan, dry_run: bool) -> Any:
    import pandas as pd

    if dry_run:
        meta = pd.DataFrame({"rows": pd.Series([], dtype="int64"),
                             "requests": pd.Series([], dtype="int64"),
                             "input_tokens": pd.Series([], dtype="int64")})
        parts = ddf.map_partitions(_estimate_partition, plan, meta=meta).compute()
        _, how = _count_tokens([], plan)
        rows, req = int(parts["rows"].sum()), int(parts["requests"].sum())
        return MapEstimate(rows=rows, requests=req, skipped=rows - req,
                           input_tokens=int(parts["input_tokens"].sum()), tokens_counted_by=how,
                           max_tokens=plan.max_tokens, price_in=plan.price_in,
                           price_out=plan.price_out, provider=plan.provider, model=plan.model)
    return ddf.map_partitions(_run_partition, replace(plan), meta=_meta(plan))


# -- the magic form ------------------------------------------------------------------------------
def map_cell(magics: Any, args: Any, prompt: str) -> Any:
    """``%%qwq --map DF [-o VAR] …``: the cell is the template, DF a notebook variable."""
    from .magics import QwqInterrupted, UsageError, call_options, schema_arg

    ns = magics.shell.user_ns if magics.shell is not None else {}
    name = args.map
    if name not in ns:
        raise UsageError(f"%%qwq --map {name}: there is no variable {name!r} in the notebook: "
                         "give the name of a DataFrame (or a list of dicts or strings).")
    if args.chat or args.new:
        raise UsageError("%%qwq --map runs each row on its own: it cannot be combined with "
                         "--chat/--new.")
    if args.df:
        raise UsageError("%%qwq --map already returns a DataFrame (one column per --json "
                         "field): leave out --df.")
    if args.out is not None and not args.out.isidentifier():
        raise UsageError(f"%%qwq: -o needs a Python variable name, not {args.out!r}.")
    params = call_options(args, system=False)
    schema = None
    if args.json is not None:
        schema = schema_arg(args.json, ns)
    interpolate_on = magics.interpolate if args.interpolate is None else args.interpolate
    if not interpolate_on:
        raise UsageError("%%qwq --map fills {column} from each row: --no-interpolate would send "
                         "the same prompt for every row (write {{ }} for literal braces).")
    client = magics._client(args)
    out = map(prompt, ns[name], client=client, json_schema=schema,
              concurrency=args.concurrency, checkpoint=args.checkpoint, on_error=args.on_error,
              dry_run=args.dry_run, system=args.system, json_mode=args.json_mode,
              retries=args.retries, _extra_ns=ns, **params)
    if args.dry_run:
        from IPython.display import display

        display(out)
        return None
    if args.out:
        ns[args.out] = out
    attrs = getattr(out, "attrs", {})
    if attrs.get("interrupted"):
        where = f" (-o {args.out})" if args.out else ""
        raise QwqInterrupted(f"⏹ Interrupted: {attrs.get('done', 0):,} of "
                             f"{attrs.get('rows', 0):,} rows finished and kept{where}.")
    return None if args.out else out
