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

An undefined name is an error before anything is sent.
"""

from __future__ import annotations

import ast
import builtins
import re
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
_PART = re.compile(r"\.([A-Za-z_]\w*)|\[('[^']*'|\"[^\"]*\"|-?\d+)\]")
_TEX_BEFORE = re.compile(r"(?:\\[A-Za-z]+\*?|[\^_}])$")


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
            if m and not _TEX_BEFORE.search(text, 0, i):
                out.append(_value(m, ns))
                i = m.end()
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def _value(m: re.Match[str], ns: Mapping[str, Any]) -> str:
    expr = m.group("expr")
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
        except (AttributeError, KeyError, IndexError, TypeError) as e:
            raise InterpolationError(
                f"Cannot fill {{{expr}}} in the prompt: {type(e).__name__}: {e}"
            ) from None
    conv = m.group("conv")
    if conv == "r":
        value = repr(value)
    elif conv == "a":
        value = ascii(value)
    elif conv == "s":
        value = str(value)
    try:
        return format(value, m.group("spec") or "")
    except (ValueError, TypeError) as e:
        raise InterpolationError(f"Cannot format {{{m.group(0)[1:-1]}}}: {e}") from None
