"""Prompt interpolation for ``%%qwq``: ``{name}``, ``{obj.attr}``, ``{d["key"]}`` from the notebook.

Unlike ``str.format`` (which jupyter-ai's magic uses, and which breaks on JSON, dict literals,
code and LaTeX), only a brace holding a *reference* is replaced: a name followed by ``.attr`` and
``[key]`` parts, optionally ``!r`` and a format spec. Everything else is left as written:

* ``{"a": 1}``, ``{x: 1}``, ``{1, 2}``, ``{ }`` are not references;
* code fences (````` … `````), inline code (`` `…` ``) and TeX math (``$…$``, ``$$…$$``,
  ``\\(…\\)``, ``\\[…\\]``) are copied untouched, as are LaTeX groups such as ``\\frac{a}{b}``,
  ``x^{n}`` and ``a_{i}``;
* ``{{`` and ``}}`` are escapes for literal braces (a ``}}`` with no ``{{`` before it, as at
  the end of nested JSON, stays as written).

What a reference inserts:

* with ``!r`` / ``!s`` / ``!a`` or a format spec, exactly what ``str.format`` would;
* otherwise an object's own description for a model, when it has one: ``_repr_llm_()`` (a
  string), or ``_ai_repr_(**kwargs)`` from the Jupyter AI-representation proposal (a dict of
  MIME types to data; ``text/markdown``, then ``text/plain``, then any other text type is used;
  it may be ``async``);
* a pandas ``DataFrame`` / ``Series`` as a compact Markdown table, capped at
  :data:`MAX_ROWS` rows and :data:`MAX_COLS` columns, with a note saying what was left out;
* anything else as ``format(value, "")``, i.e. ``str(value)``.

Text after ``:`` is a format spec only when it is one: a valid standard spec (``{n:03d}``,
``{x:>10,.2f}``), or a word with no spaces, quotes or brackets that the value's own
``__format__`` accepts or refuses (``{when:%Y-%m-%d}``; ``{n:zz}`` is an error naming ``n``).
Anything else after ``:`` means the braces are not a reference and stay as written, so
jupyter-ai's failing prompt ``{v:k for k,v in dic.items()}`` passes through unchanged.

An undefined name is an error before anything is sent; so is an object whose attribute,
``__str__``, ``__format__`` or ``_repr_llm_`` raises: a one-line :class:`InterpolationError`
naming the reference, never a traceback from inside the object.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import inspect
import json
import re
import sys
import threading
from collections.abc import Mapping
from typing import Any

from .errors import InterpolationError

__all__ = ["InterpolationError", "interpolate"]


_REF = re.compile(
    r"""\{(?P<expr>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[(?:'[^'\]]*'|"[^"\]]*"|-?\d+)\])*)"""
    r"""(?:!(?P<conv>[rsa]))?(?::(?P<spec>[^\s{}][^{}]*))?\}"""
)
# zones copied verbatim: fenced code, inline code, display and inline TeX math
_VERBATIM = re.compile(
    r"(?ms)^(?P<fence>`{3,}|~{3,})[^\n]*\n.*?^(?P=fence)[ \t]*$"
    r"|(?P<tick>`+)[^`].*?(?P=tick)"
    r"|\$\$.+?\$\$|(?<![\\$])\$(?!\s)[^$\n]+?(?<!\s)\$|\\\(.+?\\\)|\\\[.+?\\\]"
)
# the standard format-spec mini-language:
# [[fill]align][sign]["z"]["#"]["0"][width][grouping]["." precision][type]
_STD_SPEC = re.compile(r"(?s:.?[<>=^])?[-+ ]?z?#?0?\d*[_,]?(?:\.\d+)?[bcdeEfFgGnosxX%]?")
# after ":", any of these means code or prose, not a spec: the braces stay as written
_NOT_SPEC = re.compile(r"[\s()\[\]'\";]")
_PART = re.compile(r"\.([A-Za-z_]\w*)|\[('[^']*'|\"[^\"]*\"|-?\d+)\]")
_TEX_BEFORE = re.compile(r"(?:\\[A-Za-z]+\*?|[\^_}])$")


MAX_ROWS = 20
"""Rows of a DataFrame inserted into a prompt; the rest is summarised in a note."""
MAX_COLS = 12
"""Columns of a DataFrame inserted into a prompt."""
MAX_CELL = 120
"""Characters of one table cell; longer cells end with "…"."""
REPR_TIMEOUT = 30.0
"""Seconds an ``async`` ``_ai_repr_`` may take."""


def interpolate(text: str, namespace: Mapping[str, Any]) -> str:
    """Fill ``{references}`` in ``text`` from ``namespace`` (see the module docstring)."""
    out: list[str] = []
    pos = 0
    for m in _VERBATIM.finditer(text):
        out.append(_fill(text[pos:m.start()], namespace))
        out.append(m.group(0))
        pos = m.end()
    out.append(_fill(text[pos:], namespace))
    return "".join(out)


def is_format_spec(spec: str | None) -> bool:
    """Whether the text after ``:`` in a brace counts as a format spec (see the module docstring).

    >>> is_format_spec(">10,.2f"), is_format_spec("%Y-%m-%d"), is_format_spec("k for k,v in d")
    (True, True, False)
    """
    if not spec:
        return True
    return bool(_STD_SPEC.fullmatch(spec)) or not _NOT_SPEC.search(spec)


def _fill(text: str, ns: Mapping[str, Any]) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    escapes = 0  # open {{ escapes: only those turn a later }} into } (JSON ends with }})
    while i < n:
        ch = text[i]
        if ch == "{" and text.startswith("{{", i):
            out.append("{")
            escapes += 1
            i += 2
            continue
        if ch == "}" and escapes and text.startswith("}}", i):
            out.append("}")
            escapes -= 1
            i += 2
            continue
        if ch == "{":
            m = _REF.match(text, i)
            if m and is_format_spec(m.group("spec")) and not _TEX_BEFORE.search(text, 0, i):
                out.append(_value(m, ns))
                i = m.end()
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def _why(e: BaseException) -> str:
    """``Type: first line of the message``, short, even when the exception's ``__str__`` fails."""
    try:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    except Exception:
        msg = ""
    why = f"{type(e).__name__}: {msg}" if msg else type(e).__name__
    return why if len(why) <= 160 else why[:159] + "…"


def _value(m: re.Match[str], ns: Mapping[str, Any]) -> str:
    expr = m.group("expr")
    ref = m.group(0)[1:-1]
    root = re.match(r"[A-Za-z_]\w*", expr).group(0)  # type: ignore[union-attr]
    if root in ns:
        value = ns[root]
    elif hasattr(builtins, root):
        value = getattr(builtins, root)
    else:
        raise InterpolationError(
            f"The prompt refers to {{{expr}}} but {root!r} is not defined in the notebook. "
            f"Define it, write {{{{{expr}}}}} for literal braces, or use --no-interpolate."
        )
    for pm in _PART.finditer(expr, len(root)):
        attr, key = pm.group(1), pm.group(2)
        try:
            value = getattr(value, attr) if attr is not None else value[ast.literal_eval(key)]
        except Exception as e:  # the user's object: a property or __getitem__ may raise anything
            raise InterpolationError(f"Cannot fill {{{expr}}} in the prompt: {_why(e)}") from None
    conv, spec = m.group("conv"), m.group("spec") or ""
    try:
        if conv is None and not spec:
            described = describe(value)
            if described is not None:
                return described
        if conv == "r":
            value = repr(value)
        elif conv == "a":
            value = ascii(value)
        elif conv == "s":
            value = str(value)
        return format(value, spec)
    except InterpolationError as e:
        raise InterpolationError(f"Cannot fill {{{ref}}} in the prompt: {e}") from None
    except Exception as e:  # __str__ / __repr__ / __format__ / _repr_llm_ of the user's object
        raise InterpolationError(
            f"Cannot fill {{{ref}}} in the prompt: {_why(e)}. Write {{{{{ref}}}}} for literal "
            f"braces, or use --no-interpolate."
        ) from None


def describe(value: Any) -> str | None:
    """How ``value`` describes itself to a model, or ``None`` to use ``str(value)``.

    ``_repr_llm_()``, then ``_ai_repr_()`` (sync or async; a MIME bundle or a string), then a
    pandas DataFrame or Series as a Markdown table (:func:`markdown_table`). Methods are looked
    up on the type, so an object whose ``__getattr__`` answers every name is not mistaken for
    one that implements them.
    """
    cls = type(value)
    for hook in ("_repr_llm_", "_ai_repr_"):
        if callable(getattr(cls, hook, None)):
            out = getattr(value, hook)()
            if inspect.isawaitable(out):
                out = _run_awaitable(out, hook)
            text = _text_of(out)
            if text is not None:
                return text
    pd = sys.modules.get("pandas")  # only if the notebook already imported it
    if pd is not None:
        if isinstance(value, pd.Series):
            value = value.to_frame()
        if isinstance(value, pd.DataFrame):
            return markdown_table(value)
    return None


_TEXT_TYPES = ("text/markdown", "text/plain")


def _text_of(out: Any) -> str | None:
    """The text in a ``_repr_llm_`` / ``_ai_repr_`` result: a string, or a MIME bundle."""
    if out is None:
        return None
    if isinstance(out, str):
        return out
    if isinstance(out, Mapping):
        for mime in _TEXT_TYPES:
            if isinstance(out.get(mime), str):
                return str(out[mime])
        for mime, data in out.items():
            if isinstance(mime, str) and mime.startswith("text/") and isinstance(data, str):
                return data
        for mime, data in out.items():
            if isinstance(mime, str) and mime.split(";")[0].endswith("json"):
                return data if isinstance(data, str) else json.dumps(data, default=str)
        return None  # images only: this is a text prompt, fall back to str()
    return None


def _run_awaitable(aw: Any, hook: str) -> Any:
    """Run an async ``_ai_repr_`` to completion, also from inside a running event loop."""
    box: dict[str, Any] = {}

    async def wrap() -> Any:
        return await aw

    def target() -> None:
        try:
            box["value"] = asyncio.run(wrap())
        except BaseException as e:
            box["error"] = e

    t = threading.Thread(target=target, name=f"qwq-{hook}", daemon=True)
    t.start()
    t.join(REPR_TIMEOUT)
    if t.is_alive():
        raise InterpolationError(f"its async {hook}() took longer than {REPR_TIMEOUT:g} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _cell(v: Any) -> str:
    text = " ".join(str(v).split()) if not isinstance(v, str) else " ".join(v.split())
    if len(text) > MAX_CELL:
        text = text[:MAX_CELL - 1] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|")


def _label(c: Any) -> str:
    return " / ".join(map(str, c)) if isinstance(c, tuple) else str(c)


def markdown_table(df: Any, max_rows: int | None = None, max_cols: int | None = None) -> str:
    """A pandas DataFrame as a compact GitHub-style Markdown table (no ``tabulate`` needed).

    At most ``max_rows`` rows and ``max_cols`` columns (default :data:`MAX_ROWS`,
    :data:`MAX_COLS`); when some are left out a last line says how many there are. The index is
    a first column unless it is the default ``0…n-1``; cells are one line, at most
    :data:`MAX_CELL` characters, with ``|`` escaped.
    """
    import pandas as pd

    max_rows = MAX_ROWS if max_rows is None else max_rows
    max_cols = MAX_COLS if max_cols is None else max_cols
    nrows, ncols = df.shape
    sub = df.iloc[:max_rows, :max_cols]
    idx = df.index
    default_index = isinstance(idx, pd.RangeIndex) and idx.start == 0 and idx.step == 1
    header = [_cell(_label(c)) for c in sub.columns]
    if not default_index:
        header.insert(0, _cell(_label(idx.name) if idx.name is not None else ""))
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for label, row in zip(sub.index, sub.itertuples(index=False, name=None), strict=True):
        cells = [_cell(v) for v in row]
        if not default_index:
            cells.insert(0, _cell(_label(label)))
        lines.append("| " + " | ".join(cells) + " |")
    cut = []
    if nrows > max_rows:
        cut.append(f"the first {max_rows} of {nrows:,} rows")
    if ncols > max_cols:
        cut.append(f"the first {max_cols} of {ncols:,} columns")
    if cut:
        lines.append(f"\n(table cut: showing {' and '.join(cut)})")
    elif nrows == 0:
        lines.append("\n(no rows)")
    return "\n".join(lines)
