"""Check every internal link of the built site (no network): each relative ``href`` / ``src``
in ``site/**/*.html`` must name a file that exists, and each ``#anchor`` an ``id`` on that page.

    python scripts/check_links.py [site]

External links (``http(s):``, ``mailto:`` …) are listed by count, not fetched: CI has no
network. Exits 1 with one line per broken link.
"""

from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name in ("id", "name"):
                self.ids.add(value)
            elif (name == "href" and tag in ("a", "link")) or (name == "src" and tag in (
                    "img", "script", "source", "iframe")):
                self.links.append(value)


def _parse(path: Path, cache: dict[Path, _Page]) -> _Page:
    if path not in cache:
        page = _Page()
        page.feed(path.read_text(encoding="utf-8", errors="replace"))
        cache[path] = page
    return cache[path]


def check(site: Path) -> tuple[list[str], int, int]:
    cache: dict[Path, _Page] = {}
    broken: list[str] = []
    internal = external = 0
    for html in sorted(site.rglob("*.html")):
        page = _parse(html, cache)
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or link.startswith("//"):
                external += 1
                continue
            internal += 1
            if not parts.path:
                target = html
            elif parts.path.startswith("/"):  # the 404 page links from the site's root
                target = (site / unquote(parts.path).lstrip("/")).resolve()
            else:
                target = (html.parent / unquote(parts.path)).resolve()
                if target.is_dir():
                    target = target / "index.html"
            where = f"{html.relative_to(site)}: {link}"
            if not target.exists():
                broken.append(f"{where} (no such file)")
                continue
            if parts.fragment and target.suffix == ".html":
                frag = unquote(parts.fragment)
                if frag not in _parse(target, cache).ids:
                    broken.append(f"{where} (no #{frag} on that page)")
    return broken, internal, external


def main() -> None:
    site = Path(sys.argv[1] if len(sys.argv) > 1 else "site").resolve()
    if not (site / "index.html").exists():
        sys.exit(f"links: no built site in {site} (run bash scripts/docs.sh)")
    broken, internal, external = check(site)
    for b in broken:
        print(f"broken link: {b}")
    print(f"links: {internal} internal checked, {len(broken)} broken; "
          f"{external} external not fetched (offline)")
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
