"""``qm.compare``: 8 runs at once versus one after another (goal: ≥ 7× faster).

The local provider server runs in-process with a latency of 0.5 s before each reply (a slow
upstream) and answers over real loopback HTTP. The same sweep of 8 runs (temperature × 4, runs=2)
is timed with ``concurrency=8`` and with ``concurrency=1`` (one after another); each is repeated
and the medians compared. The server's ``max_in_flight`` confirms the 8 really overlapped.

    .venv/bin/python benchmarks/bench_compare.py [--repeat 3] [--latency 0.5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import qwq_magic as qm
from qwq_magic.testing import ProviderServer

GOAL = 7.0


def timed(client: qm.Client, concurrency: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    cmp = qm.compare("Write a slogan for a bakery.", temperature=[0.2, 0.4, 0.6, 0.8], runs=2,
                     concurrency=concurrency, client=client, show="none")
    dt = time.perf_counter() - t0
    bad = [r.error_text() for r in cmp.runs if not r.ok]
    if bad:
        raise SystemExit(f"a run failed: {bad[0]}")
    return dt, len(cmp.runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--latency", type=float, default=0.5)
    a = ap.parse_args()
    with ProviderServer() as srv:
        client = qm.Client("openai", **srv.client_kwargs("vllm"))
        timed(client, 8)  # warm up: imports, connection pool
        srv.reset()
        srv.latency = a.latency
        par, seq, in_flight = [], [], 0
        for _ in range(a.repeat):
            srv.state.max_in_flight = 0
            dt, n = timed(client, 8)
            par.append(dt)
            in_flight = max(in_flight, srv.max_in_flight)
            seq.append(timed(client, 1)[0])
        client.close()
    p, s = statistics.median(par), statistics.median(seq)
    ratio = s / p
    ok = "✓" if ratio >= GOAL else "✗"
    print("### bench_compare: 8 runs concurrently vs one after another\n")
    print(f"_server latency {a.latency} s per reply, real loopback HTTP, median of "
          f"{a.repeat}; most requests in flight at once: {in_flight}_\n")
    print("| target | concurrent (8 at a time) | sequential | speed-up |")
    print("|---|---|---|---|")
    print(f"| 8 runs ≥ {GOAL:g}× faster at once than one after another | {p:.2f} s | {s:.2f} s "
          f"| **{ratio:.1f}×** {ok} |")
    print(json.dumps({"bench": "compare", "concurrent_s": round(p, 3),
                      "sequential_s": round(s, 3), "speedup": round(ratio, 2),
                      "max_in_flight": in_flight, "runs": n, "latency": a.latency}))


if __name__ == "__main__":
    main()
