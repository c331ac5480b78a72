"""Figures the hardening suites report (keys planted, streams soaked, bad inputs…).

A suite calls ``figure("keys planted: 60, found: 0")``; the repository's ``conftest.py`` prints
every line at the end of the run (``pytest_terminal_summary``), with or without ``-s``, and
``QWQMAGIC_FIGURES_FILE`` (if set) gets them appended, for CI to keep.
"""

from __future__ import annotations

import os

LINES: list[str] = []


def figure(line: str) -> None:
    """Report one figure line (also appended to ``$QWQMAGIC_FIGURES_FILE`` when set)."""
    LINES.append(line)
    path = os.environ.get("QWQMAGIC_FIGURES_FILE")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
