"""Model Markdown made safe, twice: HTML for the page, and a Markdown copy that is safe to show alone.

HTML (:func:`render_markdown`): markdown-it-py with raw HTML off; links only to safe schemes
(``javascript:``, ``vbscript:``, ``file:``, ``data:`` refused however they are spelled); images are
not loaded unless allowed (``remote_images``): they show as a link naming the host; text nested
deeper than markdown-it's limit is kept as plain text instead of vanishing; rendered incrementally
for a text that grows (blocks before the last safe blank line are rendered once).

Markdown copy (:func:`markdown_copy`): the answer's source with ``<`` escaped everywhere except in
code that every CommonMark renderer agrees is code (top-level fences and indented blocks, code
spans on one line), images turned into links, links to unsafe schemes broken.
"""

from __future__ import annotations

import html as _html
import re
from collections import OrderedDict
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlsplit

# -- links -----------------------------------------------------------------------------------
_BAD_SCHEME = re.compile(r"^(?:javascript|vbscript|file|data):")
_CONTROL = re.compile(r"[\x00-\x20\x7f]+")


def unsafe_url(url: str) -> bool:
    """Whether ``url`` would run or embed something: ``javascript:`` and friends, spelled with
    entities, backslashes, case or control characters included."""
    u = unquote(_html.unescape(_html.unescape(url))).replace("\\", "").lstrip("<")
    u = _CONTROL.sub("", u).lower()
    return bool(_BAD_SCHEME.match(u))


def _host(src: str) -> str:
    try:
        parts = urlsplit(src)
    except ValueError:
        return "invalid address"
    if parts.scheme in ("http", "https") and parts.hostname:
        return parts.hostname
    return "inline data" if parts.scheme == "data" else (src[:40] or "no address")


# -- the HTML renderer -----------------------------------------------------------------------
@lru_cache(maxsize=1)
def _md() -> tuple[Any, Any]:
    """The Markdown renderer (raw HTML off, safe links and images, nesting kept) and pygments'
    formatter (inline styles)."""
    from markdown_it import MarkdownIt
    from pygments.formatters import HtmlFormatter

    fmt = HtmlFormatter(nowrap=True, noclasses=True)
    md = MarkdownIt("js-default", {"highlight": _highlight})
    md.validateLink = lambda url: not unsafe_url(url)  # type: ignore[method-assign]
    rules = md.renderer.rules  # type: ignore[attr-defined]
    for rule in ("fence", "code_block"):  # a visible box for code, in every front end
        default = rules[rule]

        def boxed(tokens: Any, idx: int, options: Any, env: Any, _d: Any = default) -> str:
            return str(_d(tokens, idx, options, env)).replace("<pre><code", _PRE, 1)

        rules[rule] = boxed
    default_image = rules["image"]

    def image(tokens: Any, idx: int, options: Any, env: Any) -> str:
        tok = tokens[idx]
        src = str(tok.attrGet("src") or "")
        if env.get("remote_images") and src.startswith(("https://", "http://")):
            tok.attrSet("referrerpolicy", "no-referrer")
            return str(default_image(tokens, idx, options, env))
        alt = md.renderer.renderInlineAsText(tok.children or [], options, env)  # type: ignore[attr-defined]
        label = _html.escape(f"🖼 {alt or 'image'} ({_host(src)})")
        title = _html.escape(f"image not loaded (remote images are off): {src}")
        if not src.startswith(("https://", "http://")):
            return f'<span class="qwq-image" title="{title}">{label}</span>'
        return (f'<a class="qwq-image" href="{_html.escape(src)}" title="{title}" '
                f'rel="noopener noreferrer nofollow" target="_blank">{label}</a>')

    def link_open(tokens: Any, idx: int, options: Any, env: Any) -> str:
        tokens[idx].attrSet("rel", "noopener noreferrer nofollow")
        return str(md.renderer.renderToken(tokens, idx, options, env))  # type: ignore[attr-defined]

    rules["image"] = image
    rules["link_open"] = link_open
    _keep_deep_text(md)
    return md, fmt


def _keep_deep_text(md: Any) -> None:
    """markdown-it drops everything after a block nested deeper than ``maxNesting``; keep it as
    one plain paragraph instead (its inline Markdown still renders)."""
    orig = md.block.tokenize
    limit = md.options.maxNesting

    def tokenize(state: Any, start: int, end: int) -> None:
        if state.level < limit:
            orig(state, start, end)
            return
        line = start
        while line < end and (state.isEmpty(line) or state.sCount[line] >= state.blkIndent):
            line += 1
        if line == start:  # cannot happen: the caller saw a line here
            line = min(end, start + 1)
        content = state.getLines(start, line, state.blkIndent, False).strip()
        if content:
            tok = state.push("paragraph_open", "p", 1)
            tok.map = [start, line]
            tok = state.push("inline", "", 0)
            tok.content, tok.map, tok.children = content, [start, line], []
            state.push("paragraph_close", "p", -1)
        state.line = line

    md.block.tokenize = tokenize


# pygments' colours are for a light background: keep code boxes light in every theme (so they
# stay readable in JupyterLab Dark too); JupyterLab gives inline <code> a background, not here
_PRE = ('<pre style="background: #f6f8fa; color: #1f2328; padding: 0.6em 0.8em; '
        'border-radius: 4px; border: 1px solid #d0d7de; overflow-x: auto; line-height: 1.4">'
        '<code style="background: none; padding: 0; color: inherit"')


@lru_cache(maxsize=64)
def _lexer(lang: str) -> Any:
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound

    try:
        return get_lexer_by_name(lang, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None


def _highlight(code: str, lang: str, attrs: str) -> str:
    """markdown-it ``highlight`` hook: pygments spans with inline styles ('' = plain escape)."""
    lexer = _lexer(lang.strip().lower()) if lang else None
    if lexer is None:
        return ""
    from pygments import highlight

    try:
        return str(highlight(code, lexer, _md()[1]))
    except Exception:  # a lexer bug must not break the display
        return ""


def render_markdown_full(text: str, *, remote_images: bool = False) -> str:
    """Render Markdown in one go (no cache)."""
    return str(_md()[0].render(text, {"remote_images": remote_images}))


_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_NO_SPLIT_START = re.compile(r"^(?:[ \t]|[-*+](?:[ \t]|$)|\d{1,9}[.)](?:[ \t]|$)|\[\^?[^\]]*\]:)")
_REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:", re.M)


def _fence_open(line: str) -> tuple[str, int] | None:
    """(char, length) if ``line`` opens a fenced code block (at any indent: lists nest them)."""
    m = _FENCE.match(line)
    if m is None:
        return None
    f = m.group(1)
    if f[0] == "`" and "`" in line[m.end():]:  # ```x``` is a code span, not a fence
        return None
    return f[0], len(f)


def _fence_closes(line: str, fence: tuple[str, int]) -> bool:
    m = _FENCE.match(line)
    return (m is not None and m.group(1)[0] == fence[0] and len(m.group(1)) >= fence[1]
            and not line[m.end():].strip())


def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > _MAX_STATES:
        cache.popitem(last=False)


class _MdState:
    """What is known about one growing text: ``text[:stable]`` is rendered as ``html``."""
    __slots__ = ("fence", "html", "prefix", "prev_blank", "scan", "stable")

    def __init__(self) -> None:
        self.prefix = ""  # text[:scan], to check the next text still starts with it
        self.stable = 0  # split point: rendered part ends here (a block boundary)
        self.html: list[str] = []
        self.scan = 0  # complete lines scanned up to here
        self.fence: tuple[str, int] | None = None  # open fence (char, length)
        self.prev_blank = False


_STATES: OrderedDict[Any, _MdState] = OrderedDict()
_MAX_STATES = 32


def _advance(cache: OrderedDict[Any, _MdState], key: Any, text: str) -> tuple[_MdState, int]:
    """The state for ``text`` under ``key`` (afresh when ``text`` does not extend the text seen
    before) and the new split point: the start of the last block that may still change."""
    st = cache.get(key)
    if st is None or not text.startswith(st.prefix) or len(text) < st.stable:
        st = _MdState()
    _remember(cache, key, st)
    split = st.stable
    pos = st.scan
    end = text.rfind("\n") + 1  # only complete lines are scanned
    while pos < end:
        nl = text.index("\n", pos)
        line = text[pos:nl]
        if st.fence is not None:
            if _fence_closes(line, st.fence):
                st.fence = None
            st.prev_blank = False
        elif not line.strip():
            st.prev_blank = True
        else:
            if st.prev_blank and not _NO_SPLIT_START.match(line):
                split = pos
            st.prev_blank = False
            st.fence = _fence_open(line)
        pos = nl + 1
    st.scan = pos
    st.prefix = text[:pos]
    return st, split


def render_markdown(text: str, key: Any = None, *, remote_images: bool = False) -> str:
    """Render Markdown to HTML, incrementally for a text that grows under the same ``key``.

    Blocks before the last safe blank line (outside fences, not followed by an indented line,
    a list item or a reference definition) are rendered once; only the tail is re-rendered.
    A text that is not an extension of the previous one (an answer reclassified as reasoning)
    starts afresh. The result equals :func:`render_markdown_full` for ordinary Markdown.
    """
    if _REF_DEF.search(text):  # references may be used before they are defined
        return render_markdown_full(text, remote_images=remote_images)
    st, split = _advance(_STATES, (key, remote_images) if remote_images else key, text)
    if split > st.stable:
        st.html.append(render_markdown_full(text[st.stable:split], remote_images=remote_images))
        st.stable = split
    rest = text[st.stable:]
    return "".join(st.html) + (render_markdown_full(rest, remote_images=remote_images)
                               if rest else "")


# -- the Markdown copy -----------------------------------------------------------------------
_LINE_CODE_SPAN = re.compile(r"(?<![`\\])(`+)(?!`)(.+?)(?<!`)\1(?!`)")
_QUOTE_MARKS = re.compile(r"^(?: {0,3}>)+")
_LINK_DEST = re.compile(r"\]\(\s*<?([^\s)>]*)")
_REF_LINE = re.compile(r"^( {0,3})\[([^\]]+)\]:\s*<?(\S*)")
_LITERAL = re.compile(r"[\\`*_\[\]!#|~]")


def md_literal(text: str) -> str:
    """``text`` as Markdown that every renderer shows literally (no markup, no HTML)."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _LITERAL.sub(lambda m: "\\" + m.group(0), text)


def _escape_prose(seg: str, remote_images: bool) -> str:
    seg = _LINK_DEST.sub(lambda m: ("]\\(" + m.group(0)[2:]) if unsafe_url(m.group(1))
                         else m.group(0), seg)
    seg = seg.replace("<", "&lt;")
    if not remote_images:
        seg = seg.replace("![", "!\\[")
    return seg


def _escape_line(line: str, remote_images: bool, spans: bool) -> str:
    """One line outside code: ``<`` escaped (``>`` too, but not blockquote markers); code spans
    kept verbatim when ``spans``."""
    m = _QUOTE_MARKS.match(line)
    lead = m.group(0) if m else ""
    body = line[len(lead):]
    if (r := _REF_LINE.match(body)) and unsafe_url(r.group(3)):
        body = body[:r.start(2) - 1] + "\\" + body[r.start(2) - 1:]
    out: list[str] = []
    pos = 0
    if spans:
        for cm in _LINE_CODE_SPAN.finditer(body):
            if "|" in cm.group(0):  # a table splits cells at pipes, even inside code
                continue
            out.append(_escape_prose(body[pos:cm.start()], remote_images).replace(">", "&gt;"))
            out.append(cm.group(0))
            pos = cm.end()
    out.append(_escape_prose(body[pos:], remote_images).replace(">", "&gt;"))
    return lead + "".join(out)


_COPY_STATES: OrderedDict[Any, _MdState] = OrderedDict()


def markdown_copy(text: str, key: Any = None, *, remote_images: bool = False) -> str:
    """The answer as Markdown that is safe to render alone, with raw HTML allowed (see the
    module docstring). Code keeps its ``<`` only where every renderer agrees it is code.
    Incremental for a text that grows under the same ``key`` (blocks copied once)."""
    if key is None or _REF_DEF.search(text):
        return _markdown_copy(text, remote_images)
    st, split = _advance(_COPY_STATES, (key, remote_images), text)
    if split > st.stable:
        st.html.append(_markdown_copy(text[st.stable:split], remote_images))
        st.stable = split
    return "".join(st.html) + _markdown_copy(text[st.stable:], remote_images)


def _markdown_copy(text: str, remote_images: bool) -> str:
    if not text:
        return ""
    verbatim: set[int] = set()
    try:
        tokens = _md()[0].parse(text)
    except Exception:  # a parser bug: escape everything
        tokens = []
    nested: set[int] = set()  # lines inside a top-level list or quote
    for tok in tokens:
        if tok.level == 0 and tok.nesting == 1 and tok.map and tok.type in (
                "bullet_list_open", "ordered_list_open", "blockquote_open"):
            nested.update(range(tok.map[0], tok.map[1]))
    for tok in tokens:
        # a fence right under a list or a quote might be read as its continuation elsewhere
        if (tok.level == 0 and tok.type in ("fence", "code_block") and tok.map
                and tok.map[0] - 1 not in nested):
            verbatim.update(range(tok.map[0], tok.map[1]))
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    for i, line in enumerate(lines):
        if i in verbatim:
            out.append(line)
            continue
        body = line.rstrip("\r\n")
        out.append(_escape_line(body, remote_images, spans=True) + line[len(body):])
    return "".join(out)
