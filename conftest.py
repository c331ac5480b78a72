"""Repository-level pytest configuration.

The tutorial notebooks run under nbval from their recordings (``%qwq replay``): replay at once
(``QWQ_REPLAY_SPEED=0``) and make sure no provider key or URL from the developer's environment
can turn a replay into a live call, and the run log goes to a temporary file, never the
developer's own. nbval's kernels inherit this environment.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

for _var in list(os.environ):
    if _var.startswith(("QWQ_", "DEEPINFRA_", "AIMLAPI_", "CLOUDFLARE_")):
        del os.environ[_var]
os.environ["QWQ_REPLAY_SPEED"] = "0"
# every call made by a test (and the kernels it starts) logs into a throw-away run log
_log_dir = tempfile.mkdtemp(prefix="qwq-log-")
atexit.register(shutil.rmtree, _log_dir, True)  # after the log's writer (atexit runs LIFO)
os.environ["QWQ_LOG_PATH"] = os.path.join(_log_dir, "log.db")


#: the long suites whose time CI prints (setup, call and teardown of every test they mark)
SUITES = ("soak", "interrupts", "browser", "kernel", "llama")
_suite_seconds: dict[str, float] = {}


def pytest_runtest_logreport(report):  # type: ignore[no-untyped-def]
    for name in SUITES:
        if name in report.keywords:
            _suite_seconds[name] = _suite_seconds.get(name, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    """Print the figures the hardening suites reported (tests/_figures.py), -s or not, and
    the time each long suite took."""
    import sys

    mod = sys.modules.get("_figures")
    lines = list(getattr(mod, "LINES", []))
    if _suite_seconds:
        lines.append("suite times: " + ", ".join(
            f"{k} {v:.0f} s" for k, v in sorted(_suite_seconds.items())))
    if lines:
        terminalreporter.section("qwq_magic figures")
        for line in lines:
            terminalreporter.write_line(line)
