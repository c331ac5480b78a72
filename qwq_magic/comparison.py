"""``qm.compare``: one prompt under several settings, sent concurrently, shown side by side.

>>> cmp = qm.compare("Write a slogan for a bakery.", temperature=[0.2, 0.6, 1.0], runs=3)
>>> cmp.df          # one row per run: the swept values, answer, reasoning, tokens, time, cost…
>>> cmp.plot()      # reasoning / answer tokens and seconds per setting, runs as points

Every keyword that is a sampling parameter (or ``model``, ``system``, ``prompt``) and holds a list
is a *sweep*; a plain value is fixed for every run. All combinations × ``runs`` are validated
first (a bad value refuses the whole sweep: nothing is sent), then sent at most ``concurrency``
at a time over ``client.astream``; retries and rate limits come from the client.

In a notebook the sweep runs on a private event loop in a worker thread while the cell waits
(interruptible); the cell thread redraws one output, a grid with a cell per run, a few times a
second. A failed run is a cell and a row with its error, never an exception; an interrupt keeps
every finished and partial run.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Any

from .completion import Completion
from .errors import ConfigurationError, MissingKeyError, ParameterError, QwqError, RateLimitError
from .events import INTERRUPTED

if TYPE_CHECKING:
    from ._concurrency import AdaptiveLimiter
from .params import ALIASES, PARAM_NAMES

__all__ = ["CompareInterrupted", "Comparison", "Run", "compare", "compare_cell"]

#: Keywords that choose the client (never swept, except ``model``).
CLIENT_KEYWORDS = ("client", "provider", "model", "base_url", "api_key", "account_id")
#: Non-sampling keywords that may hold a list of values to sweep.
SPECIAL_SWEEPS = ("model", "system", "prompt")
MAX_HZ = 8.0  # grid redraws per second while streaming
DEFAULT_MAX_RUNS = 100

class CompareInterrupted(KeyboardInterrupt):
    """The sweep was interrupted; finished and partial runs are kept. Shown as one line."""

    def __init__(self, message: str, comparison: Comparison) -> None:
        super().__init__(message)
        self.message = message
        self.comparison = comparison

    def _render_traceback_(self) -> list[str]:
        return [self.message]


def _client_for(client: Any = None, **kw: Any) -> Any:
    from .resolve import client_for

    return client_for(client, **kw)


def render_reply(c: Completion, *, preview: str | None = None) -> dict[str, str]:
    """The one place a grid cell renders its reply (switch here to the shared reply view)."""
    from .display import render_bundle

    return render_bundle(c, preview=preview)


# -- the plan --------------------------------------------------------------------------------
def _plain(x: Any) -> Any:
    """numpy / pandas scalars as Python numbers (the validator wants int / float / bool)."""
    if hasattr(x, "item") and not isinstance(x, (str, bytes, list, tuple, dict)):
        try:
            return x.item()
        except (TypeError, ValueError):
            return x
    return x


def _is_messages(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and bool(v) and all(isinstance(m, Mapping) for m in v)


def _as_sweep(name: str, v: Any) -> list[Any] | None:
    """The list of values if ``v`` sweeps ``name``, else None (a fixed value)."""
    if v is None or isinstance(v, (str, bytes, Mapping)):
        return None
    if name == "prompt" and _is_messages(v):
        return None  # one prompt given as a message list
    if hasattr(v, "tolist") and not isinstance(v, (list, tuple)):
        v = v.tolist()  # numpy array, pandas Series / Index
    if not isinstance(v, (list, tuple, range)):
        return None
    values = [_plain(x) for x in v]
    if name == "stop":  # stop is a list already: a sweep is a list of lists
        if not values or not all(x is None or isinstance(x, (list, tuple)) for x in values):
            return None
        return [None if x is None else list(x) for x in values]
    return values


def _short(text: Any, n: int = 40) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= n else s[: n - 1] + "…"


def _prompt_text(p: Any) -> str:
    if isinstance(p, str):
        return p
    if _is_messages(p):
        users = [m.get("content") for m in p if m.get("role") == "user"]
        return str(users[-1] if users else p[-1].get("content"))
    return str(p)


def _value_label(name: str, v: Any) -> str:
    if name == "prompt":
        return f"prompt “{_short(_prompt_text(v), 32)}”"
    if name == "system":
        return f"system “{_short(v, 24)}”"
    if isinstance(v, float):
        return f"{name}={v:g}"
    if isinstance(v, list):
        return f"{name}={','.join(map(str, v))}"
    return f"{name}={v}"


@dataclass
class Run:
    """One run: a setting (one value per swept name), its repeat number and what came back."""

    index: int  # position in the grid (settings in order, runs within a setting)
    setting_index: int
    repeat: int  # 1-based within its setting
    setting: dict[str, Any]  # the swept values
    call: dict[str, Any]  # prompt, system, model and parameters, as sent
    completion: Completion | None = None
    error: BaseException | None = None
    status: str = "queued"  # queued · streaming · complete · error · interrupted · not run
    data: Any = None

    @property
    def label(self) -> str:
        return " · ".join(_value_label(k, v) for k, v in self.setting.items()) or "as set"

    @property
    def finished(self) -> bool:
        return self.status not in ("queued", "streaming")

    @property
    def ok(self) -> bool:
        return self.status == "complete"

    # -- figures -----------------------------------------------------------------------------
    def tokens(self) -> tuple[int | None, int | None, bool]:
        """(reasoning tokens, answer tokens, reasoning counted from the stream)."""
        c = self.completion
        if c is None:
            return None, None, False
        u = c.usage
        counted = u is None or u.reasoning_tokens is None
        r = c.reasoning_events if counted else u.reasoning_tokens  # type: ignore[union-attr]
        total = u.completion_tokens if u is not None else None
        a = max(0, total - (r or 0)) if total is not None else c.content_events
        return r, a, counted

    def seconds(self) -> float | None:
        c = self.completion
        if c is None or c.timings.start <= 0:
            return None
        return c.timings.total_s if c.timings.end is not None else c.timings.elapsed()

    def error_text(self) -> str | None:
        if self.error is not None:
            return str(self.error).strip().splitlines()[0] if str(self.error).strip() else (
                type(self.error).__name__)
        if self.status == "not run":
            return "not run (interrupted)"
        return None

    def row(self) -> dict[str, Any]:
        c = self.completion
        r, a, counted = self.tokens()
        return {
            **{k: (_prompt_text(v) if k == "prompt" else v) for k, v in self.setting.items()},
            "run": self.repeat,
            "answer": c.content if c is not None else "",
            "reasoning": c.reasoning if c is not None else "",
            "reasoning_tokens": r,
            "answer_tokens": a,
            "reasoning_counted": counted if c is not None else None,
            "seconds": self.seconds(),
            "ttft": c.timings.ttft if c is not None else None,
            "cost": c.cost if c is not None else None,
            "finish_reason": c.finish_reason if c is not None else None,
            "status": self.status,
            "error": self.error_text(),
        }


def _split_keywords(kw: dict[str, Any]) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """Keywords → (sweeps, fixed values), names canonical; unknown names are a TypeError."""
    sweeps: dict[str, list[Any]] = {}
    fixed: dict[str, Any] = {}
    for key, value in kw.items():
        name = key.replace("-", "_")
        name = ALIASES.get(name, name)
        if name not in PARAM_NAMES and name not in SPECIAL_SWEEPS:
            raise TypeError(
                f"qm.compare() got an unexpected keyword argument {key!r}: sweep a sampling "
                f"parameter ({', '.join(PARAM_NAMES)}), model=[…], system=[…] or prompt=[…].")
        if name in sweeps or name in fixed:
            raise TypeError(f"qm.compare(): {name!r} given twice (as {key!r} too).")
        values = _as_sweep(name, value)
        if values is None:
            if value is not None:
                fixed[name] = _plain(value)
        elif not values:
            raise ParameterError(f"{key}=[] sweeps no values: give at least one.", param=key,
                                 value=value)
        else:
            sweeps[name] = values
    return sweeps, fixed


def _whole(name: str, v: Any, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ParameterError(f"{name} must be a whole number ≥ {lo}; got {v!r}.", param=name,
                             value=v)
    return v


class Comparison:
    """A sweep: its runs, a live grid while they stream, then ``.df`` and ``.plot()``.

    Built (and validated) by :func:`compare`; ``compare(..., dry_run=True)`` returns it unsent,
    ``.run()`` sends it. ``.runs`` holds every :class:`Run` (``.completion`` is the reply).
    ``Comparison.last`` is the most recent one (also after an interrupt).
    """

    last: Comparison | None = None

    def __init__(self, client: Any, runs: list[Run], *, swept: list[str], n_runs: int,
                 concurrency: int, json_schema: Any = None, json_mode: str | None = None,
                 retries: int | None = None) -> None:
        self.client = client
        self.runs = runs
        self.swept = swept
        self.n_runs = n_runs
        self.concurrency = concurrency
        self.json_schema = json_schema
        self.json_mode = json_mode
        self.retries = retries
        self.state = "planned"  # planned · running · done · interrupted
        self.version = 0  # bumped at every event: the view redraws only when it moved
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Future[Any] | None = None
        self._cancelled = False
        self._done = threading.Event()
        self._failure: BaseException | None = None
        self._shown_in: int | None = None  # the cell (execution count) that showed the grid
        self._html_cache: dict[int, str] = {}

    # -- reading -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.runs)

    @property
    def completions(self) -> list[Completion | None]:
        return [r.completion for r in self.runs]

    @property
    def settings(self) -> list[dict[str, Any]]:
        """The distinct settings, in grid order."""
        seen: dict[int, dict[str, Any]] = {}
        for r in self.runs:
            seen.setdefault(r.setting_index, r.setting)
        return list(seen.values())

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.runs:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    @property
    def df(self) -> Any:
        """A pandas DataFrame, one row per run (with ``json_schema``: one column per field)."""
        import pandas as pd

        rows = []
        for r in self.runs:
            row = r.row()
            if self.json_schema is not None:
                for k, v in _fields(r.data).items():
                    row[k if k not in row else f"data_{k}"] = v
            rows.append(row)
        return pd.DataFrame(rows)

    # -- running -----------------------------------------------------------------------------
    def run(self, show: str | bool = "auto", max_hz: float = MAX_HZ) -> Comparison:
        """Send every run (blocks; Ctrl-C / kernel interrupt keeps what arrived)."""
        if self.state != "planned":
            raise QwqError("This comparison has already run; call qm.compare(...) again "
                           "for a fresh one.")
        Comparison.last = self
        self.state = "running"
        view = _View(self, _mode(show), max_hz)
        worker = threading.Thread(target=self._worker, name="qwq-compare", daemon=True)
        worker.start()
        try:
            view.start()
            while not self._done.wait(view.interval):
                view.tick()
        except KeyboardInterrupt:
            self._cancel()
            self._done.wait(10)
            worker.join(10)
            self._settle(interrupted=True)
            view.finish()
            raise CompareInterrupted(self._interrupt_message(), self) from None
        worker.join()
        if self._failure is not None:
            raise self._failure
        self._settle(interrupted=False)
        view.finish()
        return self

    async def arun(self) -> Comparison:
        """Send every run on the running event loop (no display); ``await cmp.arun()``.

        Cancelling it keeps what arrived, like an interrupt of :meth:`run`."""
        if self.state == "planned":
            self.state = "running"
            Comparison.last = self
        from ._concurrency import AdaptiveLimiter

        # the same limiter as qm.map: a 429 that outlasts the client's retries halves the
        # concurrency for the runs still waiting (honouring Retry-After), then it grows back
        sem = AdaptiveLimiter(self.concurrency)
        order = sorted(self.runs, key=lambda r: (r.repeat, r.setting_index))
        tasks = [asyncio.ensure_future(self._one(r, sem)) for r in order]
        cancelled = True
        try:
            await asyncio.gather(*tasks)
            cancelled = False
        finally:
            for t in tasks:
                t.cancel()
            await _close_async_pool(self.client)
            self._settle(interrupted=cancelled)
        return self

    async def _one(self, run: Run, sem: AdaptiveLimiter) -> None:
        try:
            async with sem:
                run.status = "streaming"
                self.version += 1
                try:
                    await self._stream(run)
                except RateLimitError as e:
                    sem.rate_limited(e.retry_after)
                    raise
                sem.success()
                run.status = "complete"
        except asyncio.CancelledError:
            run.status = "interrupted" if run.status == "streaming" else "not run"
            raise
        except Exception as e:  # a failed run is a row, never the end of the sweep
            run.status, run.error = "error", e
            partial = getattr(e, "completion", None)
            if run.completion is None and isinstance(partial, Completion):
                run.completion = partial
            if run.completion is not None and run.completion.status == "streaming":
                run.completion.finish("error", e)
        finally:
            self.version += 1

    async def _stream(self, run: Run) -> None:
        call = dict(run.call)
        prompt = call.pop("prompt")
        if self.json_schema is None:
            stream = self.client.astream(request=call.pop("request"))
            run.completion = stream.completion
            async for _ in stream:
                self.version += 1
            return
        from .structured import arun

        call.pop("request", None)

        async def consume(stream: Any, attempt: int) -> None:
            run.completion = stream.completion
            async for _ in stream:
                self.version += 1

        c = await arun(self.client, prompt, json_schema=self.json_schema, retries=self.retries,
                       json_mode=self.json_mode, on_stream=consume, **call)
        run.completion = c
        run.data = c.data

    def _worker(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            self._loop = loop
            self._task = loop.create_task(self.arun())
            if self._cancelled:
                self._task.cancel(INTERRUPTED)
            try:
                loop.run_until_complete(self._task)
            except asyncio.CancelledError:
                pass
            except BaseException as e:  # a bug: hand it to the waiting cell
                self._failure = e
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._done.set()

    def _cancel(self) -> None:
        self._cancelled = True
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel, INTERRUPTED)

    def _settle(self, interrupted: bool) -> None:
        for r in self.runs:
            if r.status == "queued":
                r.status = "not run"
            elif r.status == "streaming":
                r.status = "interrupted"
        self.state = "interrupted" if interrupted else "done"
        self.version += 1

    def _interrupt_message(self) -> str:
        n = self.counts()
        done = n.get("complete", 0) + n.get("error", 0)
        where = "qm.Comparison.last" if _shell() is None else "_qwq_compare"
        return (f"⏹ Interrupted: {done} of {len(self.runs)} runs finished, "
                f"{n.get('interrupted', 0)} partial, {n.get('not run', 0)} not started; "
                f"the comparison is in {where} (and on this exception's .comparison).")

    # -- summary -----------------------------------------------------------------------------
    def _by_setting(self) -> list[list[Run]]:
        groups: dict[int, list[Run]] = {}
        for r in self.runs:
            groups.setdefault(r.setting_index, []).append(r)
        return list(groups.values())

    def summary(self) -> str:
        """One line: which setting agreed most (JSON) or answered shortest."""
        groups = [g for g in self._by_setting() if any(r.ok for r in g)]
        if not groups:
            return "No run finished." if self.state != "planned" else ""
        parts: list[str] = []
        if self.json_schema is not None:
            on = _vote_fields([r for g in groups for r in g if r.ok])
            what = f"agree on {', '.join(on)}" if on else "gave the same JSON"
            if self.n_runs > 1:
                best = max(groups, key=lambda g: (_agreement(g, on)[0], -_median_tokens(g, 1)))
                k, n = _agreement(best, on)
                parts.append(f"Most consistent: {best[0].label} ({k}/{n} runs {what})")
            else:
                keys = [_canon(_pick(g[0].data, on)) for g in groups]
                top = max(set(keys), key=keys.count)
                agree = [g[0].label for g, key in zip(groups, keys, strict=True) if key == top]
                parts.append(f"Most common JSON: {len(agree)} of {len(self.settings)} settings "
                             f"agree ({'; '.join(agree)})")
        if len(groups) > 1 or self.json_schema is None:
            parts.append(_extreme(groups, 1, "Shortest answer", "answer"))
            if any(_median_tokens(g, 0) for g in groups):
                parts.append(_extreme(groups, 0, "least thinking", "reasoning"))
        return " · ".join(parts)

    # -- plotting ----------------------------------------------------------------------------
    def plot(self) -> Any:
        """Reasoning tokens, answer tokens and seconds per setting, each run a point
        (matplotlib, imported only now). Returns the Figure."""
        try:
            import matplotlib.pyplot as plt
        except ImportError:
            raise QwqError("comparison.plot() needs matplotlib: pip install 'qwq-magic[plot]' "
                           "(or pip install matplotlib).") from None
        groups = self._by_setting()
        labels = [g[0].label.replace("$", r"\$") for g in groups]
        fig, axes = plt.subplots(1, 3, figsize=(max(8.0, 1.2 * len(groups) + 5), 3.4))
        for ax, (what, title) in zip(axes, [("reasoning", "reasoning tokens"),
                                            ("answer", "answer tokens"),
                                            ("seconds", "seconds")], strict=True):
            for i, g in enumerate(groups):
                ys = [y for y in (_figure(r, what) for r in g) if y is not None]
                if not ys:
                    continue
                xs = [i + (j - (len(ys) - 1) / 2) * 0.08 for j in range(len(ys))]
                ax.scatter(xs, ys, s=26, alpha=0.75, color=f"C{i % 10}", zorder=3)
                ax.hlines(statistics.median(ys), i - 0.3, i + 0.3, color="0.3", lw=1.5)
            ax.set_title(title, fontsize=10)
            ax.set_xticks(range(len(groups)))
            ax.set_xticklabels(labels, rotation=25 if len(groups) > 3 else 0, ha="right"
                               if len(groups) > 3 else "center", fontsize=8)
            ax.set_xlim(-0.6, len(groups) - 0.4)
            ax.set_ylim(bottom=0)
            ax.grid(axis="y", alpha=0.3)
        fig.suptitle(f"{len(self.runs)} runs · median line per setting", fontsize=10)
        fig.tight_layout()
        plt.close(fig)  # shown once, by the cell's result (not again by pyplot)
        return fig

    # -- rendering ---------------------------------------------------------------------------
    def _cell_html(self, r: Run) -> str:
        cached = self._html_cache.get(r.index)
        if cached is not None:
            return cached
        c = r.completion
        stats = _stats_text(r)
        head = (f'<div class="qwq-compare-label" style="{_S_LABEL}">{escape(r.label)}'
                f'<span style="{_S_DIM}"> · run {r.repeat}</span></div>'
                f'<div class="qwq-compare-stats" style="{_S_DIM}">{escape(stats)}</div>')
        body = ""
        if c is not None:
            body = render_reply(c, preview=_preview(r, self.json_schema))["text/html"]
        err = r.error_text()
        if err and (c is None or c.status != "error"):
            body += f'<div class="qwq-error" style="{_S_ERR}">⚠ {escape(err)}</div>'
        html = (f'<div class="qwq-compare-cell" data-status="{escape(r.status)}" '
                f'data-index="{r.index}" style="{_S_CELL}">{head}{body}</div>')
        if r.finished:  # a finished run never changes: drawn once
            self._html_cache[r.index] = html
        return html

    def _bundle(self) -> dict[str, str]:
        n = self.counts()
        parts = [f"{len(self.runs)} runs", f"{self.concurrency} at a time"]
        parts += [f"{v} {k}" for k, v in n.items()]
        cost = sum(c.cost for c in self.completions if c is not None and c.cost is not None)
        if cost:
            from .view import fmt_cost as _fmt_cost

            parts.append(("≈" if any(c is not None and c.cost_is_estimate
                                     for c in self.completions) else "") + _fmt_cost(cost))
        cols = (f"repeat({self.n_runs}, minmax(15em, 1fr))" if self.n_runs > 1
                else "repeat(auto-fill, minmax(18em, 1fr))")
        cells = "".join(self._cell_html(r) for r in self.runs)
        summary = self.summary() if self.state in ("done", "interrupted") else ""
        foot = (f'<div class="qwq-compare-footer" style="{_S_FOOT}">{escape(summary)}</div>'
                if summary else "")
        html = (f'<div class="qwq-compare" data-state="{self.state}" style="{_S_WRAP}">'
                f'<div class="qwq-compare-head" style="{_S_DIM}">qm.compare · '
                f'{escape(" · ".join(parts))}</div>'
                f'<div class="qwq-compare-grid" style="display: grid; gap: 0.5em; '
                f'grid-template-columns: {cols}">{cells}</div>{foot}</div>')
        return {"text/html": html, "text/plain": self.text_grid()}

    def text_grid(self, width: int = 48) -> str:
        """The grid as plain text (terminal IPython, ``print(cmp)``)."""
        head = ["setting", "run", "status", "reasoning", "answer", "s", "cost", "reply"]
        rows = []
        for r in self.runs:
            rt, at, counted = r.tokens()
            secs = r.seconds()
            c = r.completion
            reply = r.error_text() if r.error is not None else (c.content if c else "")
            rows.append([_short(r.label, 40), str(r.repeat), r.status,
                         "" if rt is None else f"{rt}{'*' if counted and rt else ''}",
                         "" if at is None else str(at),
                         "" if secs is None else f"{secs:.1f}",
                         "" if c is None or c.cost is None else f"{c.cost:.6f}",
                         _short(reply or "", width)])
        widths = [max(len(x[i]) for x in [head, *rows]) for i in range(len(head))]
        lines = ["  ".join(v.ljust(widths[i]) for i, v in enumerate(x)).rstrip()
                 for x in [head, *rows]]
        if any(r.tokens()[2] and r.tokens()[0] for r in self.runs):
            lines.append("* reasoning tokens counted from the stream (the provider sent none)")
        if summary := self.summary():
            lines.append(summary)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text_grid()

    def __repr__(self) -> str:
        n = ", ".join(f"{v} {k}" for k, v in self.counts().items())
        over = " × ".join(self.swept) or "no sweep"
        return f"<Comparison {len(self.runs)} runs over {over} ({self.n_runs} each): {n}>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        ip = _shell()
        if self._shown_in is not None and ip is not None and ip.execution_count == self._shown_in:
            # the live grid is already above, in this same cell: don't draw it twice
            return {"text/plain": repr(self) + "  · .df · .plot()"}
        return self._bundle()


# -- helpers for the summary and plot ----------------------------------------------------------
def _fields(data: Any) -> dict[str, Any]:
    if data is None:
        return {}
    if hasattr(data, "model_dump"):
        data = data.model_dump()
    if isinstance(data, dict):
        return dict(data)
    return {"data": data}


def _canon(data: Any) -> str:
    if hasattr(data, "model_dump"):
        data = data.model_dump()
    return json.dumps(data, sort_keys=True, default=str)


def _vote_fields(runs: list[Run]) -> list[str]:
    """The fields agreement is judged on: those never holding free text (booleans, numbers,
    choices); none such → the whole object."""
    rows = [_fields(r.data) for r in runs if isinstance(_fields(r.data), dict)]
    if not rows:
        return []
    names = [k for k in rows[0] if all(k in row for row in rows)]
    return [k for k in names if all(not isinstance(row[k], (str, list, dict)) for row in rows)]


def _pick(data: Any, on: list[str]) -> Any:
    if not on:
        return data
    f = _fields(data)
    return {k: f.get(k) for k in on}


def _agreement(group: list[Run], on: list[str] | None = None) -> tuple[int, int]:
    keys = [_canon(_pick(r.data, on or [])) for r in group if r.ok]
    best = max((keys.count(k) for k in set(keys)), default=0)
    return best, len(group)


def _median_tokens(group: list[Run], which: int) -> float:
    vals = [r.tokens()[which] for r in group if r.ok]
    nums = [v for v in vals if v is not None]
    return float(statistics.median(nums)) if nums else float("inf")


def _extreme(groups: list[list[Run]], which: int, title: str, what: str) -> str:
    """The setting with the smallest median (or: they are all the same)."""
    meds = [_median_tokens(g, which) for g in groups]
    lo = min(meds)
    if len(groups) > 1 and lo == max(meds):
        return f"{title}: a tie (every setting: median {lo:,.0f} {what} tokens)"
    best = groups[meds.index(lo)]
    return f"{title}: {best[0].label} (median {lo:,.0f} {what} tokens)"


def _figure(r: Run, what: str) -> float | None:
    if r.completion is None or r.status == "not run":
        return None
    if what == "seconds":
        return r.seconds()
    rt, at, _ = r.tokens()
    return rt if what == "reasoning" else at


def _stats_text(r: Run) -> str:
    c = r.completion
    if c is None or (c.usage is None and not c.reasoning_pieces and not c.content_pieces):
        secs = r.seconds()
        return r.status + (f" · {secs:.1f} s" if secs is not None and r.finished else "")
    rt, at, counted = r.tokens()
    parts = [r.status, f"{rt or 0:,}{' (counted)' if counted and rt else ''} / {at or 0:,} tok"]
    if (s := r.seconds()) is not None:
        parts.append(f"{s:.1f} s")
    if (cost := c.cost) is not None:
        from .view import fmt_cost as _fmt_cost

        parts.append(_fmt_cost(cost))
    return " · ".join(parts)


def _preview(r: Run, schema: Any) -> str | None:
    c = r.completion
    if schema is None or c is None:
        return None
    if r.data is not None:
        return json.dumps(_fields(r.data) if not isinstance(r.data, list) else r.data,
                          indent=1, ensure_ascii=False, default=str)
    if c.content and c.status == "streaming":
        from .structured import partial_preview

        return partial_preview(c.content)
    return None


async def _close_async_pool(client: Any) -> None:
    """Close the client's async connection pool if it belongs to this (private) loop."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    await client.aclose_pool(loop)


_S_DIM = "color: var(--jp-ui-font-color2, #777); font-size: 0.85em"
_S_LABEL = "font-weight: 600; font-size: 0.9em"
_S_ERR = "color: var(--jp-error-color0, #c62828); margin: 0.3em 0; font-size: 0.9em"
_S_FOOT = "margin-top: 0.5em; font-weight: 600; font-size: 0.9em"
_S_WRAP = "font-family: var(--jp-content-font-family, inherit)"
_S_CELL = ("border: 1px solid var(--jp-border-color2, #ddd); border-radius: 4px; "
           "padding: 0.4em 0.6em; max-height: 24em; overflow: auto; min-width: 0")


# -- the view --------------------------------------------------------------------------------
def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return None
    return get_ipython()


def _mode(show: str | bool) -> str:
    if show is False or show is None or show == "none":
        return "none"
    if show in ("rich", "text"):
        return str(show)
    if show not in (True, "auto"):
        raise ParameterError(f"show={show!r}: use 'auto', 'rich', 'text' or 'none'.",
                             param="show", value=show)
    ip = _shell()
    if ip is None:
        return "text" if show is True else "none"
    return "text" if type(ip).__name__ == "TerminalInteractiveShell" else "rich"


class _View:
    """Draws the comparison from the cell's thread: one display handle (rich), or a line per
    finished run and the text grid at the end (terminal)."""

    def __init__(self, cmp: Comparison, mode: str, max_hz: float) -> None:
        self.cmp, self.mode = cmp, mode
        self.interval = 1.0 / max_hz if max_hz > 0 else 0.1
        self.handle: Any = None
        self.seen = -1
        self.reported: set[int] = set()

    def start(self) -> None:
        ip = _shell()
        if ip is not None:
            ip.user_ns["_qwq_compare"] = self.cmp
            if self.mode != "none":
                self.cmp._shown_in = ip.execution_count
        if self.mode == "rich":
            from IPython.display import display

            self.seen = self.cmp.version
            self.handle = display(self.cmp._bundle(), raw=True, display_id=True)
        elif self.mode == "text":
            print(f"qm.compare: {len(self.cmp.runs)} runs, {self.cmp.concurrency} at a time",
                  flush=True)

    def tick(self) -> None:
        v = self.cmp.version
        if v == self.seen:
            return
        self.seen = v
        if self.mode == "rich" and self.handle is not None:
            self.handle.update(self.cmp._bundle(), raw=True)
        elif self.mode == "text":
            self._lines()

    def _lines(self) -> None:
        runs = self.cmp.runs
        for r in runs:
            if r.finished and r.index not in self.reported and r.status != "not run":
                self.reported.add(r.index)
                print(f"[{len(self.reported)}/{len(runs)}] {r.label} · run {r.repeat}: "
                      f"{_stats_text(r)}" + (f" · {r.error_text()}" if r.error else ""),
                      flush=True)

    def finish(self) -> None:
        if self.mode == "rich" and self.handle is not None:
            self.cmp._html_cache.clear()
            self.handle.update(self.cmp._bundle(), raw=True)
        elif self.mode == "text":
            self._lines()
            print(self.cmp.text_grid(), flush=True)


# -- the entry points ------------------------------------------------------------------------
def plan(prompt: Any = None, *, runs: int = 1, concurrency: int = 4, json_schema: Any = None,
         json_mode: str | None = None, retries: int | None = None, max_runs: int = DEFAULT_MAX_RUNS,
         client: Any = None, provider: str | None = None, base_url: str | None = None,
         api_key: Any = None, account_id: str | None = None,
         **kw: Any) -> Comparison:
    """Validate every combination and build the :class:`Comparison` (nothing is sent)."""
    runs = _whole("runs", runs, 1)
    concurrency = _whole("concurrency", concurrency, 1)
    retries = None if retries is None else _whole("retries", retries, 0)
    if "prompt" in kw and prompt is not None:
        raise TypeError("qm.compare(): give the prompt once (positionally or as prompt=[…]).")
    if prompt is not None:
        kw["prompt"] = prompt
    sweeps, fixed = _split_keywords(kw)
    model = fixed.pop("model", None)
    if not isinstance(model, (str, type(None))):
        raise ParameterError(f"model={model!r}: give a model name or a list of them.",
                             param="model", value=model)
    the_client = _client_for(client, provider=provider, model=model, base_url=base_url,
                             api_key=api_key, account_id=account_id)
    if "prompt" not in sweeps and fixed.get("prompt") is None:
        raise ConfigurationError("qm.compare() needs a prompt: qm.compare('Your question', "
                                 "temperature=[0.2, 0.6, 1.0]).")
    names = list(sweeps)
    combos = list(itertools.product(*sweeps.values())) if sweeps else [()]
    total = len(combos) * runs
    if total > max_runs:
        raise ParameterError(
            f"This sweep makes {total} runs ({len(combos)} settings × {runs}); the limit is "
            f"{max_runs}. Pass max_runs={total} to allow it, or sweep fewer values.",
            param="max_runs", value=total)
    out: list[Run] = []
    for si, values in enumerate(combos):
        setting = dict(zip(names, values, strict=True))
        call = {**fixed, **setting}
        if model is not None and "model" not in call:
            call["model"] = model
        label = " · ".join(_value_label(k, v) for k, v in setting.items()) or "the prompt"
        try:
            req = the_client.prepare(call.get("prompt"), json_schema=json_schema,
                                     json_mode=json_mode,
                                     **{k: v for k, v in call.items() if k != "prompt"})
        except ParameterError as e:
            raise ParameterError(f"{e} (setting {label}; nothing was sent)", param=e.param,
                                 value=e.value, provider=e.provider, allowed=e.allowed
                                 ) from None
        except QwqError as e:
            raise type(e)(f"{e} (setting {label}; nothing was sent)") from None
        call = {"prompt": call.pop("prompt", None), **call, "request": req}
        out += [Run(index=si * runs + k, setting_index=si, repeat=k + 1, setting=setting,
                    call=call) for k in range(runs)]
    _check_key(the_client)
    return Comparison(the_client, out, swept=names, n_runs=runs, concurrency=concurrency,
                      json_schema=json_schema, json_mode=json_mode, retries=retries)


def _check_key(client: Any) -> None:
    """A key the provider needs and nobody set fails every run: say so before sending."""
    cassette = getattr(client, "cassette", None)
    if cassette is not None and getattr(cassette, "mode", "") != "record":
        return
    preset = getattr(client, "preset", None)
    if preset is not None and preset.key_required and not client.has_key:
        raise MissingKeyError(client.provider, preset.key_env)


def compare(prompt: Any = None, *, runs: int = 1, concurrency: int = 4, json_schema: Any = None,
            json_mode: str | None = None, retries: int | None = None, dry_run: bool = False,
            show: str | bool = "auto", max_hz: float = MAX_HZ,
            max_runs: int = DEFAULT_MAX_RUNS, client: Any = None,
            provider: str | None = None, base_url: str | None = None, api_key: Any = None,
            account_id: str | None = None, **sweeps: Any) -> Comparison:
    """Send ``prompt`` under every combination of the swept values, ``runs`` times each.

    ``temperature=[0.2, 0.6, 1.0]`` (any sampling parameter), ``model=[…]``, ``system=[…]``
    and ``prompt=[…]`` (prompt variants) are sweeps; several multiply. A plain value
    (``max_tokens=1024``) applies to every run. ``json_schema`` asks for guided JSON: the parsed
    fields become columns of ``.df``. ``concurrency`` bounds the requests in flight.

    Every combination is validated before anything is sent. Returns the :class:`Comparison`
    (a live grid in a notebook; ``.df``, ``.plot()``, ``.runs``). ``dry_run=True`` returns it
    unsent (``.run()`` sends it). ``show``: ``"auto"``, ``"rich"``, ``"text"`` or ``"none"``;
    ``max_hz``: grid redraws per second while streaming.
    """
    cmp = plan(prompt, runs=runs, concurrency=concurrency, json_schema=json_schema,
               json_mode=json_mode, retries=retries, max_runs=max_runs, client=client,
               provider=provider, base_url=base_url, api_key=api_key, account_id=account_id,
               **sweeps)
    if dry_run:
        return cmp
    return cmp.run(show=show, max_hz=max_hz)


# -- %%qwq --compare -------------------------------------------------------------------------
def parse_compare_specs(specs: Iterable[str]) -> dict[str, list[Any]]:
    """``["temperature=0.2,0.6", "model=a,b"]`` → ``{"temperature": [0.2, 0.6], …}``."""
    import csv

    from .magics import UsageError, _parse_value

    out: dict[str, list[Any]] = {}
    for spec in specs:
        name, sep, rest = spec.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name or not rest.strip():
            raise UsageError(f"%%qwq --compare: expected NAME=V1,V2,…; got {spec!r} "
                             "(e.g. --compare temperature=0.2,0.6,1.0).")
        if name == "prompt":
            raise UsageError("%%qwq --compare: the cell is the prompt; to compare prompt "
                             "variants use qm.compare(prompt=[…]) from Python.")
        if name in out:
            raise UsageError(f"%%qwq --compare: {name} given twice; put every value in one "
                             f"flag: --compare {name}=A,B,C")
        values = [_parse_value(v) for v in next(csv.reader([rest], skipinitialspace=True))]
        if name == "stop":
            values = [v if isinstance(v, list) else [str(v)] for v in values]
        out[name] = values
    return out


def compare_cell(magics: Any, args: Any, prompt: str) -> None:
    """``%%qwq --compare NAME=V1,V2 [--compare …] [--runs N]``: the grid, ``-o VAR`` keeps it."""
    from .magics import UsageError, call_options, schema_arg

    for flag, what in (("chat", "--chat"), ("df", "--df")):
        if getattr(args, flag, None):
            raise UsageError(f"%%qwq: {what} does not combine with --compare; "
                             "the comparison has its own .df.")
    sweeps: dict[str, Any] = parse_compare_specs(args.compare or [])
    fixed: dict[str, Any] = call_options(args)
    both = sorted(set(sweeps) & set(fixed))
    if both:
        raise UsageError(f"%%qwq: {both[0]} is both swept (--compare) and fixed "
                         f"(--{both[0].replace('_', '-')}); keep one.")
    schema = None
    if args.json is not None:
        ns = magics.shell.user_ns if magics.shell is not None else {}
        schema = schema_arg(args.json, ns)
    client = magics._client(args)
    mode = getattr(magics, "display", "auto")
    try:
        cmp = plan(prompt, runs=1 if args.runs is None else args.runs, json_schema=schema, json_mode=args.json_mode,
                   retries=args.retries, client=client, **sweeps, **fixed)
    except TypeError as e:
        raise UsageError(f"%%qwq --compare: {e}") from None
    if args.dry_run:
        lines = [f"{len(cmp.runs)} requests ({len(cmp.settings)} settings × {cmp.n_runs}), "
                 "nothing sent:"]
        lines += [f"  {r.label}" for r in cmp.runs if r.repeat == 1]
        first = cmp.runs[0].call["request"]
        key = client._key.get() if getattr(client, "_key", None) else None
        text = "\n".join(lines) + "\n\n" + first.describe(key)
        magics._say(text, f"<pre class='qwq-dry-run'>{escape(text)}</pre>")
        return
    try:
        cmp.run(show="auto" if mode == "auto" else mode)
    finally:
        if magics.shell is not None and args.out:
            magics.shell.user_ns[args.out] = cmp

