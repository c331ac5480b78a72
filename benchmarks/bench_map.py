"""``qm.map`` throughput and the cost of a dry run.

1. rows/s at concurrency 1, 4 and 16 against the local provider server with a 0.5 s latency
   before every reply (a slow upstream: the time goes in waiting, so concurrency is what
   counts). The ideal is ``concurrency / latency`` rows/s; the table shows how close we get.
2. The CPU time of a 100,000-row dry run (fill every prompt, hash every request key, estimate
   the tokens and the price; nothing is sent).

    .venv/bin/python benchmarks/bench_map.py [--rows 48] [--latency 0.5] [--dry-rows 100000]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

import qwq_magic as qm
from qwq_magic.testing import ProviderServer

TEMPLATE = "Classify the sentiment of this review as positive, negative or mixed: {text}"


def reviews(n: int) -> pd.DataFrame:
    text = "the soup was cold but the staff were lovely and the view made up for it"
    words = text.split(" ")
    return pd.DataFrame({"text": [" ".join(words[: 5 + i % 10]) + f" (#{i})" for i in range(n)]})


def dry_run_cpu(srv: ProviderServer, rows: int) -> tuple[float, float, int]:
    srv.reset()
    client = qm.Client("deepinfra", model="Qwen/QwQ-32B-Preview",
                       **srv.client_kwargs("deepinfra"))
    df = reviews(rows)
    c0, t0 = time.process_time(), time.perf_counter()
    est = qm.map(TEMPLATE, df, client=client, dry_run=True, max_tokens=2048)
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    assert est.requests == rows and not srv.requests
    return cpu, wall, est.input_tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=48)
    ap.add_argument("--latency", type=float, default=0.5)
    ap.add_argument("--dry-rows", type=int, default=100_000)
    a = ap.parse_args()
    with ProviderServer() as srv:
        print(f"qm.map over {a.rows} rows, server latency {a.latency} s per reply")
        print(f"{'concurrency':>11}  {'rows/s':>7}  {'ideal':>6}  {'of ideal':>8}  "
              f"{'max in flight':>13}")
        for conc in (1, 4, 16):
            rate, peak, _ = throughput(srv, a.rows, conc, a.latency)
            ideal = conc / a.latency
            print(f"{conc:>11}  {rate:>7.2f}  {ideal:>6.1f}  {rate / ideal:>8.0%}  {peak:>13}")
        cpu, wall, tokens = dry_run_cpu(srv, a.dry_rows)
        print(f"\ndry run over {a.dry_rows:,} rows: {cpu:.2f} s CPU ({wall:.2f} s wall), "
              f"{tokens:,} input tokens estimated, nothing sent")


def throughput(srv: ProviderServer, rows: int, conc: int,
                            latency: float) -> tuple[float, int, int]:
    """rows/s for one batch (``reset`` clears the server's counters; the latency is set after)."""
    srv.reset()
    srv.latency = latency
    client = qm.Client("deepinfra", model="Qwen/QwQ-32B-Preview",
                       **srv.client_kwargs("deepinfra"))
    t0 = time.perf_counter()
    out = qm.map(TEMPLATE, reviews(rows), client=client, concurrency=conc, progress=False,
                 max_tokens=512)
    dt = time.perf_counter() - t0
    assert out["error"].isna().all(), out["error"].dropna().head()
    return rows / dt, srv.max_in_flight, len(srv.requests)


if __name__ == "__main__":
    main()
