"""Reading the run log back: ``qm.history()``, ``%qwq history``, ``%qwq cost``, ``%qwq budget``.

``qm.history()`` is a pandas DataFrame (imported on first use): ``time`` is a datetime, token,
cost and timing columns are numeric, so ``qm.history().plot(x="time", y="cost")`` works like on
any DataFrame. The magic subcommands are plain functions ``cmd_NAME(magics, arg)``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shlex
import time
import warnings
from datetime import date, datetime, timedelta
from html import escape
from typing import Any

from . import budget, runlog
from .errors import QwqError

__all__ = ["cmd_budget", "cmd_cost", "cmd_history", "cost_report", "history"]

# DataFrame columns, in order (``id`` is the index)
FRAME_COLUMNS = (
    "time", "source", "provider", "model", "prompt", "answer", "reasoning", "data", "status",
    "finish_reason", "error", "prompt_tokens", "completion_tokens", "reasoning_tokens",
    "cached_tokens", "total_tokens", "usage_counted", "cost", "cost_kind", "ttft_s",
    "reasoning_s", "total_s", "tokens_per_s", "params", "messages", "json_schema", "json_mode",
    "tool_calls", "host", "notebook", "request_key", "replayed", "session", "end_time",
    "version", "uid",
)
_INT = ("prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens",
        "total_tokens")
_FLOAT = ("cost", "ttft_s", "reasoning_s", "total_s", "tokens_per_s")
_BOOL = ("usage_counted", "replayed")
_SINCE_HELP = ("since= takes a datetime, a date, a timedelta, 'today', 'yesterday', a span "
               "like '2h', '30m', '7d', '1w', or an ISO date like '2026-12-01'")
_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)\s*$", re.I)
_SPAN_S = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def _local_tz() -> Any:
    return datetime.now().astimezone().tzinfo


def _midnight(d: date) -> float:
    return datetime(d.year, d.month, d.day).timestamp()  # local midnight


def since_ts(since: Any) -> float:
    """``since=`` as unix seconds (naive datetimes are local time)."""
    if isinstance(since, datetime):  # pandas Timestamps too
        return since.timestamp()
    if isinstance(since, date):
        return _midnight(since)
    if isinstance(since, timedelta):
        return time.time() - since.total_seconds()
    if isinstance(since, str):
        s = since.strip().lower()
        if s == "today":
            return _midnight(date.today())
        if s == "yesterday":
            return _midnight(date.today() - timedelta(days=1))
        m = _SPAN.match(s)
        if m:
            return time.time() - float(m.group(1)) * _SPAN_S[m.group(2).lower()]
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(since.strip()).timestamp()
    raise QwqError(f"{_SINCE_HELP}; got {since!r}.")


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _query(limit: int | None, since: Any, model: str | None, search: str | None,
           source: str | None) -> list[tuple[Any, ...]]:
    """Rows (id first, then FRAME_COLUMNS), oldest first: the last ``limit`` that match."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise QwqError(f"limit= takes a positive whole number (or None for every run); "
                       f"got {limit!r}.")
    for name, v in (("model", model), ("search", search), ("source", source)):
        if v is not None and not isinstance(v, str):
            raise QwqError(f"{name}= takes text; got {v!r}.")
    where: list[str] = []
    args: list[Any] = []
    if since is not None:
        where.append("time >= ?")
        args.append(since_ts(since))
    if model:
        where.append("model LIKE ? ESCAPE '\\'")
        args.append(_like(model))
    if source:
        where.append("source = ?")
        args.append(source)
    if search:
        where.append("(" + " OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in
                                       ("messages", "reasoning", "answer", "data")) + ")")
        args += [_like(search)] * 4
    sql = (f"SELECT id, {', '.join(FRAME_COLUMNS)} FROM runs"
           + (" WHERE " + " AND ".join(where) if where else "")
           + " ORDER BY time DESC, id DESC" + (" LIMIT ?" if limit is not None else ""))
    if limit is not None:
        args.append(limit)
    runlog.flush()
    path = runlog.log_path()
    import sqlite3

    try:
        with runlog._connect_read(path) as conn:
            if conn is None:
                return []
            try:
                rows = conn.execute(sql, args).fetchall()
            except sqlite3.OperationalError as e:
                if "no such table" in str(e):
                    return []
                raise
    except sqlite3.Error as e:
        raise QwqError(f"Cannot read the run log at {path} ({e}). Is it a qwq_magic log? "
                       "Set QWQ_LOG_PATH to choose another file.") from None
    rows.reverse()
    return rows


def _loads(v: Any) -> Any:
    if v is None:
        return None
    try:
        return json.loads(v)
    except (TypeError, ValueError):
        return v


def history(limit: int | None = 50, since: Any = None, model: str | None = None,
            search: str | None = None, source: str | None = None) -> Any:
    """The logged replies as a pandas DataFrame, oldest first (the last ``limit`` that match).

    ``since``: a datetime, date, timedelta, ``"today"``, ``"2h"``/``"30m"``/``"7d"`` or an ISO
    date; ``model``: part of the model name; ``search``: text in the messages, reasoning,
    answer or data; ``source``: ``"magic"``, ``"panel"``, ``"api"``, ``"compare"``, ``"map"``,
    ``"replay"``. ``limit=None`` returns every match.

    >>> df = qm.history(since="today", model="QwQ")
    >>> df.plot(x="time", y="completion_tokens")
    """
    rows = _query(limit, since, model, search, source)
    import pandas as pd

    if not rows and not runlog.enabled():
        warnings.warn("The run log is off (QWQ_LOG=0 or %config QwqMagics.log = False): "
                      "nothing new is logged.", RuntimeWarning, stacklevel=2)
    df = pd.DataFrame(rows, columns=["id", *FRAME_COLUMNS]).set_index("id")
    tz = _local_tz()
    for col in ("time", "end_time"):
        df[col] = pd.to_datetime(df[col].astype("float64"), unit="s", utc=True).dt.tz_convert(tz)
    for col in _INT:
        df[col] = df[col].astype("Int64")
    for col in _FLOAT:
        df[col] = df[col].astype("float64")
    for col in _BOOL:
        df[col] = df[col].fillna(0).astype(bool)
    for col in runlog.JSON_COLUMNS:
        df[col] = pd.Series([_loads(v) for v in df[col]], index=df.index, dtype=object)
    return df


# -- cost ------------------------------------------------------------------------------------
def _db_lines(since: float | None) -> dict[tuple[str, str], budget.Line] | None:
    """Totals per (provider, model) from the log (None: no log to read)."""
    if not runlog.enabled() and not runlog.log_path().exists():
        return None
    runlog.flush()
    cols = ("provider", "model", "prompt_tokens", "completion_tokens", "reasoning_tokens",
            "usage_counted", "cost", "cost_kind", "replayed")
    sql = f"SELECT {', '.join(cols)} FROM runs" + (" WHERE time >= ?" if since else "")
    import sqlite3

    lines: dict[tuple[str, str], budget.Line] = {}
    try:
        with runlog._connect_read(runlog.log_path()) as conn:
            if conn is None:
                return lines
            for r in conn.execute(sql, (since,) if since else ()):
                row = dict(zip(cols, r, strict=True))
                lines.setdefault((row["provider"] or "", row["model"] or ""),
                                 budget.Line()).add(row)
    except sqlite3.Error:
        return None
    return lines


def cost_report() -> dict[str, dict[tuple[str, str], budget.Line] | None]:
    """Totals per (provider, model) for ``"session"`` (this process, in memory), ``"today"``
    and ``"all time"`` (from the log; None when there is no log)."""
    return {"session": budget.tally.snapshot(),
            "today": _db_lines(_midnight(date.today())),
            "all time": _db_lines(None)}


def _note(line: budget.Line) -> str:
    parts = []
    if line.reported:
        parts.append(f"{line.reported} priced by the provider")
    if line.estimated:
        parts.append(f"{line.estimated} estimated from preset prices")
    if line.unknown:
        parts.append(f"{line.unknown} with no price (counted $0)")
    if line.counted:
        parts.append(f"{line.counted} with usage counted here (the provider sent none)")
    if line.replayed:
        parts.append(f"{line.replayed} replayed (free)")
    return "; ".join(parts)


def _cost_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for scope, lines in report.items():
        if lines is None:
            rows.append((scope, "—", "", "", "", "", "", "the run log is off"))
            continue
        if not lines:
            rows.append((scope, "—", "", "0", "0", "0", budget.fmt_usd(0.0), ""))
            continue
        total = budget.Line()
        for (prov, model), line in sorted(lines.items()):
            rows.append((scope, prov, model, f"{line.replies:,}", f"{line.prompt_tokens:,}",
                         f"{line.completion_tokens:,}", _cost_cell(line), _note(line)))
            for k, v in vars(line).items():
                setattr(total, k, getattr(total, k) + v)
        if len(lines) > 1:
            rows.append((scope, "total", "", f"{total.replies:,}", f"{total.prompt_tokens:,}",
                         f"{total.completion_tokens:,}", _cost_cell(total), ""))
    return rows


def _cost_cell(line: budget.Line) -> str:
    estimated = line.estimated and not line.reported
    return ("≈" if estimated else "") + budget.fmt_usd(line.cost)


def _budget_line() -> str:
    cap, spent = budget.cap(), budget.spent()
    if cap is None:
        return f"This session has spent {budget.fmt_usd(spent)}; no budget set (%qwq budget 0.50)."
    pct = f" ({spent / cap:.0%})" if cap > 0 else ""
    left = max(0.0, cap - spent)
    return (f"This session has spent {budget.fmt_usd(spent)} of its {budget.fmt_usd(cap)} "
            f"budget{pct}; {budget.fmt_usd(left)} left.")


# -- rendering -------------------------------------------------------------------------------
def _text_table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    width = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    return "\n".join("  ".join(str(v).ljust(width[i]) for i, v in enumerate(r)).rstrip()
                     for r in [head, *rows])


def _html_table(head: tuple[str, ...], rows: list[tuple[str, ...]], title: str = "") -> str:
    th = "".join(f"<th style='text-align:left'>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{escape(str(v))}</td>"
                                    for v in r) + "</tr>" for r in rows)
    cap = f"<div class='qwq-note'>{escape(title)}</div>" if title else ""
    return (f"{cap}<table class='qwq-table'><thead><tr>{th}</tr></thead>"
            f"<tbody>{body}</tbody></table>")


def _say(magics: Any, text: str, html_text: str | None = None) -> None:
    say = getattr(magics, "_say", None)
    if say is None:
        print(text)
    else:
        say(text, html_text)


def _usage_error(msg: str) -> QwqError:
    mod = __import__("qwq_magic.magics", fromlist=["UsageError"])
    err: QwqError = mod.UsageError(msg)
    return err


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # type: ignore[override]
        raise _usage_error(f"{self.prog}: {message}. See %qwq help.")


def _short(text: Any, n: int) -> str:
    s = " ".join(str(text or "").split())
    return s if len(s) <= n else s[: n - 1] + "…"


def _when(ts: float, today: float) -> str:
    fmt = "%H:%M:%S" if ts >= today else "%Y-%m-%d %H:%M"
    return time.strftime(fmt, time.localtime(ts))


def _history_rows(rows: list[tuple[Any, ...]]) -> list[tuple[str, ...]]:
    idx = {c: i + 1 for i, c in enumerate(FRAME_COLUMNS)}
    today = _midnight(date.today())
    out: list[tuple[str, ...]] = []
    for r in rows:
        def g(c: str, r: tuple[Any, ...] = r) -> Any:
            return r[idx[c]]

        tin, tout = g("prompt_tokens"), g("completion_tokens")
        tokens = f"{tin if tin is not None else '?'}→{tout if tout is not None else '?'}"
        if g("usage_counted"):
            tokens += " (counted)"
        cost = g("cost")
        cost_s = "" if cost is None else (("≈" if g("cost_kind") != "reported" else "")
                                          + budget.fmt_usd(float(cost)))
        status = g("status") or ""
        if g("finish_reason") and g("finish_reason") != "stop":
            status += f" ({g('finish_reason')})"
        answer = g("answer") or (g("error") or "")
        out.append((str(r[0]), _when(g("time"), today), g("source") or "", g("model") or "",
                    _short(g("prompt"), 48), _short(answer, 48), tokens, cost_s, status))
    return out


def cmd_history(magics: Any, arg: str) -> None:
    """``%qwq history [N] [--search TEXT] [--model M] [--source S] [--since X]``: the last N
    runs (20) as a table; ``%qwq history NAME`` shows the conversation NAME."""
    words = shlex.split(arg)
    if len(words) == 1 and not words[0].isdigit() and not words[0].startswith("-"):
        magics._cmd_history(words)  # a conversation (%%qwq --chat NAME)
        return
    p = _Parser(prog="%qwq history", add_help=False)
    p.add_argument("n", nargs="?", type=int, default=20)
    p.add_argument("-s", "--search")
    p.add_argument("-m", "--model")
    p.add_argument("--source")
    p.add_argument("--since")
    a = p.parse_args(words)
    if a.n < 1:
        raise _usage_error("%qwq history: N must be 1 or more (the number of runs to show).")
    rows = _query(a.n, a.since, a.model, a.search, a.source)
    from .state import session

    conv = (f" Conversations: {', '.join(session.conversations)} (%qwq history NAME)."
            if session.conversations else "")
    if not rows:
        where = "the run log is off (QWQ_LOG=0 or %config QwqMagics.log = False)" if not \
            runlog.enabled() else f"nothing logged yet in {runlog.log_path()}"
        _say(magics, f"No runs to show: {where}.{conv}")
        return
    head = ("#", "time", "source", "model", "prompt", "answer", "tokens", "cost", "status")
    table = _history_rows(rows)
    title = f"The last {len(rows)} runs from {runlog.log_path()} (qm.history() for all columns)."
    _say(magics, title + conv + "\n" + _text_table(head, table),
         _html_table(head, table, title + conv))


def cmd_cost(magics: Any, arg: str) -> None:
    """``%qwq cost``: spend and tokens for this session, today and all time, by provider and
    model."""
    if arg.strip():
        raise _usage_error("%qwq cost takes no arguments.")
    head = ("scope", "provider", "model", "replies", "tokens in", "tokens out", "cost", "note")
    rows = _cost_rows(cost_report())
    title = _budget_line() + " ≈: estimated from the presets' prices."
    _say(magics, title + "\n" + _text_table(head, rows), _html_table(head, rows, title))


def cmd_budget(magics: Any, arg: str) -> None:
    """``%qwq budget 0.50`` sets the session's cap in USD, ``%qwq budget off`` lifts it,
    ``%qwq budget`` shows it."""
    words = shlex.split(arg)
    if len(words) > 1:
        raise _usage_error("%qwq budget: give one sum in US dollars (e.g. %qwq budget 0.50) "
                           "or off.")
    if words:
        budget.set_cap(words[0])
    _say(magics, _budget_line())
