"""Run every benchmark (same interpreter, one subprocess each) and print their Markdown tables,
ready for benchmarks/README.md, with a goals table on top. A few minutes on 2 cores.

    bash benchmarks/run.sh                       # installs the baselines, then runs this
    .venv/bin/python benchmarks/run_all.py [--out perf.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    ["bench_parse.py"],
    ["bench_memory.py"],
    ["bench_load_ext.py", "--repeat", "5"],
    ["bench_render.py"],
    ["bench_stop.py"],
]
TIMEOUT = 900  # seconds per script


def tables(stdout: str) -> str:
    """The Markdown part of a benchmark's output: from its first heading, JSON lines left out."""
    lines = stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("### ")), None)
    if start is None:
        return stdout.strip()
    return "\n".join(line for line in lines[start:] if not line.startswith("{")).strip()


def last_json(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            try:
                return dict(json.loads(line))
            except ValueError:
                return {}
    return {}


def goals(res: dict[str, dict[str, Any]]) -> str:
    """The goals table (issue #18) from the benchmarks' JSON lines."""
    rows: list[tuple[str, str, str, bool | None]] = []
    p = res.get("bench_parse.py", {})
    for shape, goal in (("reasoning field", 1.2), ("inline </think>", 1.3)):
        v = p.get("ratio_vs_bare", {}).get(shape)
        if v is not None:
            rows.append((f"parse CPU ÷ bare httpx + json.loads ({shape})", f"{v:.2f}×",
                         f"≤ {goal}×", v <= goal))
    for shape, v in p.get("openai_over_qwq", {}).items():
        if v:
            rows.append((f"speed-up over the openai SDK ({shape})", f"{v:.1f}×", "≥ 15×",
                         v >= 15))
    m = res.get("bench_memory.py", {}).get("plain")
    if m:
        rows.append(("finished 100k-token Completion ÷ its text (tracemalloc)",
                     f"{m['ratio']:.2f}×", "≤ 3×", m["ratio"] <= 3))
    ext = res.get("bench_load_ext.py", {})
    if "qwq_magic_s" in ext:
        ja = ext.get("jupyter_ai_magics_s")
        vs = f" (jupyter-ai: {ja * 1000:.0f} ms)" if ja else ""
        rows.append(("`%load_ext qwq_magic`", f"{ext['qwq_magic_s'] * 1000:.1f} ms{vs}",
                     "~15 ms", ext["qwq_magic_s"] < 0.05))
    if not rows:
        return ""
    out = ["### Goals", "", "| what | measured | goal | met |", "|---|---:|---:|:-:|"]
    for what, v, goal, ok in rows:
        out.append(f"| {what} | {v} | {goal} | {'✓' if ok else '✗'} |")
    return "\n".join(out)


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
    results: dict[str, dict[str, Any]] = {}
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
        results[cmd[0]] = last_json(p.stdout)
        out.append(tables(p.stdout) + f"\n\n_{' '.join(cmd)}: {dt:.1f} s_")
    if g := goals(results):
        out.insert(1, g)
    total = time.perf_counter() - t_all
    out.append(f"_all benchmarks: {total:.0f} s{f', {failed} FAILED' if failed else ''}_")
    text = "\n\n".join(out)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
