"""Teaching with reasoning models: class mode, reveal on cue, and handing a conversation out.

- **Class mode** (``%qwq class on``): every ``%%qwq`` output hides its reasoning behind a closed
  "🔒 Reveal reasoning" fold (a plain ``<details>``: no script, so it works in JupyterLab,
  Notebook 7 and an untrusted or exported notebook). ``--hide-reasoning`` does the same for one
  cell; ``--show-reasoning`` shows it for one cell in class mode.
- **Reveal** (``%qwq reveal``): every output of this session shown with hidden reasoning is
  redrawn in place (through its display id) with the reasoning shown, as if never hidden.
- **Export** (``%qwq export [NAME] --to md|json|cells [-o FILE]``, ``panel.export(...)``,
  :func:`export`): a conversation — a :class:`~qwq_magic.ChatPanel`'s, or a ``%%qwq --chat NAME``
  one — as Markdown (reasoning in ``<details>``), as JSON (messages with reasoning and usage;
  :func:`load` reads it back), or as notebook cells (one Markdown cell per turn).

Inserting cells from the kernel: Jupyter's only front-end-neutral way is the ``set_next_input``
payload, which makes **one code cell** (IPython keeps only the last one per execution; a Markdown
cell or several cells need front-end JavaScript, which an untrusted notebook never runs). So
``--to cells`` without ``-o`` inserts one cell below, starting with ``%%markdown``, holding every
turn (run it to render); ``-o FILE.ipynb`` writes real Markdown cells, one per turn, into a
notebook file (a new one, or appended to an existing one that is not open).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import QwqError, UsageError

FORMATS = ("md", "json", "cells")
JSON_FORMAT = "qwq_magic.conversation"

_class_mode = False
_hidden: list[tuple[Any, Any, dict[str, Any]]] = []  # (display handle, Completion, options)
_chats: dict[str, list[Any]] = {}  # %%qwq --chat NAME: the Completions of its turns
_last_panel: Any = None  # a weak reference to the newest ChatPanel (%qwq export without NAME)


def remember_panel(panel: Any) -> None:
    """The newest ChatPanel is what ``%qwq export`` exports when no conversation is named."""
    import weakref

    global _last_panel
    _last_panel = weakref.ref(panel)


# -- class mode and reveal -------------------------------------------------------------------
def class_mode() -> bool:
    """Whether ``%qwq class on`` hides reasoning in every ``%%qwq`` output."""
    return _class_mode


def set_class_mode(on: bool) -> None:
    global _class_mode
    _class_mode = bool(on)


def remember_hidden(handle: Any, completion: Any, **options: Any) -> None:
    """Keep the display handle of an output shown with hidden reasoning (``%qwq reveal``)."""
    _hidden.append((handle, completion, options))


def hidden_count() -> int:
    return len(_hidden)


def reveal() -> int:
    """Redraw every hidden-reasoning output of this session with its reasoning shown, in place.
    Returns how many outputs were revealed."""
    from .display import render_bundle

    n = 0
    while _hidden:
        handle, c, opt = _hidden.pop(0)
        bundle = render_bundle(c, hide_reasoning=False, raw=opt.get("raw", False),
                               preview=opt.get("preview"), note=opt.get("note"))
        meta = opt.get("metadata")
        handle.update(bundle, raw=True, **({"metadata": meta} if meta else {}))
        n += 1
    return n


# -- conversations ---------------------------------------------------------------------------
@dataclass
class Turn:
    """One exchange of a conversation: what was asked and what came back."""

    user: str
    answer: str
    reasoning: str = ""
    model: str | None = None
    provider: str | None = None
    status: str = "complete"
    finish_reason: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    summary: str = ""  # "Thought for 12.3 s · 1,234 tokens"

    @classmethod
    def of(cls, user: str, c: Any) -> Turn:
        from .view import view_of

        u = c.usage
        usage = {k: getattr(u, k) for k in ("prompt_tokens", "completion_tokens",
                                            "reasoning_tokens", "total_tokens", "cost_usd")
                 if u is not None and getattr(u, k) is not None}
        summary = view_of(c).summary if c.reasoning else ""
        return cls(user=user, answer=c.content, reasoning=c.reasoning, model=c.model or None,
                   provider=c.provider or None, status=c.status, finish_reason=c.finish_reason,
                   usage=usage, summary=summary)


def remember_turn(name: str, completion: Any) -> None:
    """``%%qwq --chat NAME`` keeps each reply (its reasoning and usage) for ``%qwq export``."""
    _chats.setdefault(name, []).append(completion)


def forget_chat(name: str | None = None) -> None:
    if name is None:
        _chats.clear()
    else:
        _chats.pop(name, None)


def _last_user(messages: Iterable[dict[str, Any]]) -> str:
    for m in reversed(list(messages)):
        if m.get("role") == "user":
            content = m.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


def turns_of(source: Any) -> list[Turn]:
    """The turns of a ChatPanel, a ``--chat`` conversation name, or a list of :class:`Turn`."""
    if isinstance(source, str):
        from .state import session

        if source not in _chats and source not in session.conversations:
            names = ", ".join(sorted(set(_chats) | set(session.conversations))) or "none yet"
            raise UsageError(f"No conversation {source!r} (conversations: {names}); start one "
                             f"with %%qwq --chat {source}.")
        return [Turn.of(_last_user(c.messages), c) for c in _chats.get(source, [])]
    if isinstance(source, list) and all(isinstance(t, Turn) for t in source):
        return list(source)
    turns = getattr(source, "_turns", None)
    if turns is not None:
        return [Turn.of(text, c) for text, c in turns]
    raise QwqError(f"Cannot export {type(source).__name__}: give a ChatPanel or the name of a "
                   "%%qwq --chat conversation.")


# -- the three formats -----------------------------------------------------------------------
def _quote(text: str) -> str:
    return "\n".join("> " + line if line else ">" for line in text.split("\n"))


def turn_markdown(t: Turn, n: int | None = None) -> str:
    """One turn as Markdown that is safe to render anywhere (model text cannot add HTML)."""
    from html import escape

    from ._markdown import markdown_copy, md_literal

    head = f"**You{f' ({n})' if n else ''}:** "
    parts = [head + md_literal(t.user).replace("\n", "  \n")]
    if t.reasoning:
        summary = escape(t.summary or "Reasoning")
        parts.append(f"<details><summary>{summary}</summary>\n\n{_quote(md_literal(t.reasoning))}"
                     "\n\n</details>")
    parts.append(markdown_copy(t.answer) if t.answer else f"*(no answer: {t.status})*")
    if t.model:
        parts.append(f"*{md_literal(t.model)}*")
    return "\n\n".join(parts)


def to_markdown(turns: list[Turn], title: str | None = None) -> str:
    body = "\n\n---\n\n".join(turn_markdown(t, i) for i, t in enumerate(turns, 1))
    head = f"# {title}\n\n" if title else ""
    return head + body + "\n"


def to_json(turns: list[Turn]) -> dict[str, Any]:
    """``{"format": "qwq_magic.conversation", "version": 1, "messages": [...], "turns": [...]}``
    — ``messages`` in the chat format (assistant messages carry ``reasoning`` and ``usage``)."""
    messages: list[dict[str, Any]] = []
    for t in turns:
        messages.append({"role": "user", "content": t.user})
        msg: dict[str, Any] = {"role": "assistant", "content": t.answer}
        if t.reasoning:
            msg["reasoning"] = t.reasoning
        if t.usage:
            msg["usage"] = dict(t.usage)
        for k in ("model", "provider", "finish_reason"):
            if getattr(t, k):
                msg[k] = getattr(t, k)
        if t.status != "complete":
            msg["status"] = t.status
        messages.append(msg)
    return {"format": JSON_FORMAT, "version": 1, "messages": messages,
            "turns": [asdict(t) for t in turns]}


def load(data: str | Path | dict[str, Any]) -> list[Turn]:
    """The turns of an exported JSON conversation (a dict, JSON text or a file path)."""
    if isinstance(data, Path) or (isinstance(data, str) and not data.lstrip().startswith("{")):
        data = Path(data).read_text(encoding="utf-8")
    obj = json.loads(data) if isinstance(data, str) else data
    if not isinstance(obj, dict) or obj.get("format") != JSON_FORMAT:
        raise QwqError("Not an exported qwq_magic conversation (no "
                       f"\"format\": \"{JSON_FORMAT}\"): export one with --to json.")
    fields = set(Turn.__dataclass_fields__)
    return [Turn(**{k: v for k, v in t.items() if k in fields}) for t in obj.get("turns", [])]


def to_cells(turns: list[Turn]) -> list[dict[str, Any]]:
    """One nbformat-4 Markdown cell per turn."""
    return [{"cell_type": "markdown", "metadata": {"qwq_magic": {"turn": i}},
             "source": turn_markdown(t, i)} for i, t in enumerate(turns, 1)]


def _write_cells(cells: list[dict[str, Any]], path: Path) -> None:
    if path.exists():
        nb = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
            raise QwqError(f"{path} is not a notebook: give a new .ipynb name.")
    else:
        nb = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    import uuid

    for cell in cells:
        nb["cells"].append({"id": uuid.uuid4().hex[:8], **cell})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def export(source: Any, to: str = "md", path: str | Path | None = None, *,
           title: str | None = None, shell: Any = None) -> Any:
    """Export a conversation (a ChatPanel, a ``--chat`` name, or turns).

    ``to="md"``: Markdown text; ``"json"``: the dict of :func:`to_json`; ``"cells"``: the list of
    Markdown cells. With ``path`` the result is written there (cells: into that ``.ipynb``) and
    the path returned. ``to="cells"`` without a path also inserts one ``%%markdown`` cell below
    the running cell (see the module docstring).
    """
    if to not in FORMATS:
        raise UsageError(f"Export format must be md, json or cells; got {to!r}.")
    turns = turns_of(source)
    if not turns:
        raise UsageError("The conversation is empty: nothing to export yet.")
    out: Any
    if to == "md":
        out = to_markdown(turns, title)
    elif to == "json":
        out = to_json(turns)
    else:
        out = to_cells(turns)
    if path is not None:
        p = Path(path)
        if to == "cells":
            _write_cells(out, p)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            text = out if to == "md" else json.dumps(out, indent=1, ensure_ascii=False) + "\n"
            p.write_text(text, encoding="utf-8")
        return p
    if to == "cells":
        shell = shell or _shell()
        if shell is not None:
            shell.set_next_input("%%markdown\n" + to_markdown(turns, title), replace=False)
    return out


def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


# -- %qwq class | reveal | export ------------------------------------------------------------
def cmd_class(magics: Any, words: list[str]) -> None:
    if words not in (["on"], ["off"], []):
        raise UsageError("%qwq class: say on or off (%qwq class on hides reasoning in every "
                         "output until %qwq reveal).")
    if words:
        set_class_mode(words[0] == "on")
    state = "on: reasoning is hidden behind “Reveal reasoning”; %qwq reveal shows it all" \
        if class_mode() else "off: reasoning shows as usual"
    magics._say(f"Class mode {state}.")


def cmd_reveal(magics: Any, words: list[str]) -> None:
    if words:
        raise UsageError("%qwq reveal takes no arguments: it reveals every hidden reasoning.")
    n = reveal()
    magics._say(f"Revealed the reasoning of {n} output{'s' if n != 1 else ''}." if n else
                "Nothing hidden to reveal in this session.")


def cmd_export(magics: Any, words: list[str]) -> Any:
    import argparse

    from .magics import _Parser

    p = _Parser(prog="%qwq export", add_help=False)
    p.add_argument("name", nargs="?", default=None)
    p.add_argument("--to", default="md", choices=FORMATS)
    p.add_argument("-o", "--out", default=None, metavar="FILE")
    p.add_argument("--title", default=None)
    try:
        a = p.parse_args(words)
    except argparse.ArgumentError as e:  # pragma: no cover - _Parser raises UsageError
        raise UsageError(str(e)) from None
    source = a.name or _only_source()
    result = export(source, a.to, a.out, title=a.title,
                    shell=getattr(magics, "shell", None))
    if a.out is not None:
        magics._say(f"Exported {source if isinstance(source, str) else 'the panel'} "
                    f"({a.to}) to {a.out}.")
        return None
    if a.to == "md":
        from IPython.display import Markdown, display

        display(Markdown(result))  # safe: model text was made literal / safe Markdown
        return None
    if a.to == "json":
        print(json.dumps(result, indent=1, ensure_ascii=False))
        return None
    magics._say(f"Inserted a %%markdown cell below with {len(result)} turns (run it to render; "
                f"-o FILE.ipynb writes one Markdown cell per turn).")
    return None


def _only_source() -> Any:
    from .state import session

    names = sorted(set(_chats) | set(session.conversations))
    panel = _last_panel() if _last_panel is not None else None
    if panel is not None and getattr(panel, "_turns", None):
        return panel
    if len(names) == 1:
        return names[0]
    raise UsageError("%qwq export: name the conversation (" + (", ".join(names) or "none yet")
                     + "), e.g. %qwq export " + shlex.quote(names[0] if names else "tutor")
                     + " --to md.")
