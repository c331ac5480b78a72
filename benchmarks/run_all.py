"""Run every benchmark (same interpreter, one subprocess each) and print their Markdown tables,
ready for the README's performance section. About a minute on 2 cores.

    .venv/bin/python benchmarks/run_all.py [--out perf.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    ["bench_parse.py"],
    ["bench_load_ext.py", "--repeat", "5"],
    ["bench_render.py"],
    ["bench_stop.py"],
]
TIMEOUT = 170  # seconds per script


def tables(stdout: str) -> str:
    """The Markdown part of a benchmark's output: from its first heading, JSON lines left out."""
    lines = stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("### ")), None)
    if start is None:
        return stdout.strip()
    return "\n".join(line for line in lines[start:] if not line.startswith("{")).strip()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", help="also write the tables to this file")
    a = ap.parse_args()
    out: list[str] = [
        f"_Python {platform.python_version()} on {platform.machine()}, "
        f"{len(os.sched_getaffinity(0))} cores; ratios are against baselines "
        "measured in the same run._"
    ]
    failed = 0
    t_all = time.perf_counter()
    for cmd in BENCHMARKS:
        t = time.perf_counter()
        print(f"running {' '.join(cmd)} …", file=sys.stderr, flush=True)
        try:
            p = subprocess.run([sys.executable, str(HERE / cmd[0]), *cmd[1:]], capture_output=True,
                               text=True, timeout=TIMEOUT, cwd=HERE.parent)
        except subprocess.TimeoutExpired:
            out.append(f"### {cmd[0]}\n\n**timed out after {TIMEOUT} s**")
            failed += 1
            continue
        dt = time.perf_counter() - t
        if p.returncode != 0:
            failed += 1
            tail = "\n".join(p.stderr.strip().splitlines()[-15:])
            out.append(f"### {cmd[0]}\n\n**failed (exit {p.returncode})**\n\n```\n{tail}\n```")
            continue
        out.append(tables(p.stdout) + f"\n\n_{' '.join(cmd)}: {dt:.1f} s_")
    total = time.perf_counter() - t_all
    out.append(f"_all benchmarks: {total:.0f} s{f', {failed} FAILED' if failed else ''}_")
    text = "\n\n".join(out)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
