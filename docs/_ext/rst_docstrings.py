"""A griffe extension for the API reference: our docstrings are reST-flavoured prose (``code``,
``:class:`Name```, ``>>>`` examples); mkdocstrings renders Markdown. This turns the reST
roles into code spans and each run of ``>>>`` lines into a fenced ``pycon`` block."""

from __future__ import annotations

import re
from typing import Any

try:
    import griffe
except ImportError:  # tests import to_markdown without the docs toolchain
    griffe = None

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|mod|data|exc|obj):`~?([^`]+)`")


def to_markdown(text: str) -> str:
    out: list[str] = []
    block: list[str] = []
    for line in [*text.split("\n"), ""]:
        stripped = line.lstrip()
        if stripped.startswith((">>>", "...")) and (block or stripped.startswith(">>>")):
            block.append(stripped)
            continue
        if block:
            out += ["", "```pycon", *block, "```", ""]
            block = []
        out.append(line)
    return _ROLE.sub(r"`\1`", "\n".join(out[:-1]))


if griffe is not None:

    class RstDocstrings(griffe.Extension):
        def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
            if obj.docstring is not None:
                obj.docstring.value = to_markdown(obj.docstring.value)
