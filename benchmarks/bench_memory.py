"""Memory held by a finished ``Completion`` ÷ the size of its text (goal ≤ 3×).

A 100,000-token reply (75% reasoning in ``reasoning_content``, then the answer) streams from
the local provider server over loopback HTTP (a subprocess, so only the client is traced). ``tracemalloc`` measures what is
still allocated once the stream object is gone and only the ``Completion`` is kept — against
the UTF-8 size of ``reasoning + content``. Also shown: the peak while streaming, and the same
ratio for a reply that someone read (``.reasoning``) while it streamed, as a live view does.

    .venv/bin/python benchmarks/bench_memory.py [--tokens 100000]
"""

from __future__ import annotations

import argparse
import gc
import json
import tracemalloc
from typing import Any

import httpx
from bench_parse import KEY, server

import qwq_magic as qm
from qwq_magic.testing import Reply


def one(root: str, tokens: int, read_while_streaming: bool) -> dict[str, Any]:
    reply = Reply.long(tokens * 3 // 4, content=" ".join(f"w{i}" for i in range(tokens // 4)),
                       reasoning_mode="field")
    httpx.post(root + "/_control/script", json=[reply.to_json()]).raise_for_status()
    client = qm.Client("deepinfra", base_url=root + "/deepinfra/v1/openai", api_key=KEY)
    client._sync_http()  # the connection pool exists before tracing starts
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    s = client.stream("hi", max_tokens=tokens + 100)
    k = 0
    for _ in s:
        k += 1
        if read_while_streaming and k % 500 == 0:
            _ = s.completion.reasoning
    c = s.completion
    del s
    client.close()
    gc.collect()
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    text = len(c.reasoning.encode()) + len(c.content.encode())
    assert c.status == "complete" and c.reasoning_events > tokens // 2
    return {"events": k, "text_bytes": text, "held_bytes": held - before,
            "ratio": (held - before) / text, "peak_ratio": (peak - before) / text}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=100_000)
    a = ap.parse_args()
    with server() as root:
        plain = one(root, a.tokens, False)
        read = one(root, a.tokens, True)
    print(f"### Memory of a finished {a.tokens:,}-token Completion (tracemalloc)")
    print()
    print("| reply | text | held after the stream | ÷ text | peak while streaming ÷ text |")
    print("|---|---:|---:|---:|---:|")
    for name, r in (("streamed, read at the end", plain),
                    ("read every 500 events while streaming", read)):
        print(f"| {name} | {r['text_bytes'] / 1e6:.2f} MB | {r['held_bytes'] / 1e6:.2f} MB | "
              f"**{r['ratio']:.2f}×** | {r['peak_ratio']:.2f}× |")
    print()
    print("Goal: ≤ 3× (before: 15.6×, every token kept as its own string plus joined copies).")
    print(json.dumps({"plain": plain, "read_while_streaming": read}))


if __name__ == "__main__":
    main()
