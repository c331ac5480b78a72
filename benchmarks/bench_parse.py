"""Stream parsing cost per event: qwq_magic vs the official openai SDK vs a bare httpx loop.

All three read the same OpenAI-dialect SSE bytes (DeepInfra-shaped: reasoning_content deltas,
then content deltas, a usage chunk, [DONE]) through the same in-memory httpx transport, so the
only difference is the parsing. qwq_magic's figure includes the <think> split, folding into a
Completion and typed events. Reports µs/event and ratios measured in this run.

    .venv/bin/python benchmarks/bench_parse.py [--events 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import httpx


def make_stream(n: int) -> bytes:
    head = {"id": "chatcmpl-RXE8YP4f", "object": "chat.completion.chunk", "created": 1732684855,
            "model": "Qwen/QwQ-32B"}
    lines = []
    for i in range(n):
        field = "reasoning_content" if i < n * 3 // 4 else "content"
        delta = {"role": "assistant", field: f" tok{i}", "tool_calls": None}
        chunk = {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                 "usage": None}
        lines.append("data: " + json.dumps(chunk))
    final = {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
             "usage": {"prompt_tokens": 12, "completion_tokens": n, "total_tokens": n + 12,
                       "estimated_cost": 9.24e-05}}
    lines.append("data: " + json.dumps(final))
    lines.append("data: [DONE]")
    return ("\n\n".join(lines) + "\n\n").encode()


def transport(body: bytes) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    return httpx.MockTransport(handler)


def run_bare(body: bytes) -> int:
    n = 0
    with httpx.Client(transport=transport(body)) as c, c.stream(
        "POST", "http://bench/v1/chat/completions", json={}
    ) as r:
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                obj = json.loads(line[6:])
                ch = obj["choices"]
                if ch:
                    d = ch[0]["delta"]
                    _ = d.get("reasoning_content") or d.get("content")
                n += 1
    return n


def run_qwq(body: bytes) -> int:
    import qwq_magic as qm

    client = qm.Client("openai", base_url="http://bench/v1", model="Qwen/QwQ-32B")
    client._http = httpx.Client(transport=transport(body), timeout=client.timeout)
    s = client.stream("hi")
    n = sum(1 for _ in s)
    assert s.completion.reasoning and s.completion.content
    client.close()
    return n


def run_openai(body: bytes) -> int:
    import openai

    c = openai.OpenAI(base_url="http://bench/v1", api_key="x",
                      http_client=httpx.Client(transport=transport(body)))
    n = 0
    for chunk in c.chat.completions.create(model="Qwen/QwQ-32B", messages=[], stream=True):
        if chunk.choices:
            d = chunk.choices[0].delta
            _ = getattr(d, "reasoning_content", None) or d.content
        n += 1
    return n


def best(fn: Callable[[bytes], int], body: bytes, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn(body)
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    body = make_stream(a.events)
    for fn in (run_bare, run_qwq, run_openai):  # warm up imports
        fn(make_stream(50))
    res = {name: best(fn, body, a.repeat) / a.events * 1e6
           for name, fn in (("bare httpx+json", run_bare), ("qwq_magic", run_qwq),
                            ("openai SDK", run_openai))}
    for k, v in res.items():
        print(f"{k:16s} {v:7.2f} µs/event")
    print(f"qwq_magic / bare      = {res['qwq_magic'] / res['bare httpx+json']:.2f}×  (target ≤ 2×)")
    print(f"openai SDK / qwq_magic = {res['openai SDK'] / res['qwq_magic']:.1f}×  (target ≥ 10×)")
    print()
    print(f"### Stream parsing ({a.events:,} events, best of {a.repeat})")
    print()
    print("| parser | µs/event | × bare httpx+json |")
    print("|---|---:|---:|")
    for k, v in res.items():
        print(f"| {k} | {v:.2f} | {v / res['bare httpx+json']:.2f}× |")
    print(f"| **openai SDK / qwq_magic** | | **{res['openai SDK'] / res['qwq_magic']:.1f}×** |")
    print(json.dumps({"events": a.events, "us_per_event": res,
                      "ratio_vs_bare": res["qwq_magic"] / res["bare httpx+json"],
                      "openai_over_qwq": res["openai SDK"] / res["qwq_magic"]}))


if __name__ == "__main__":
    main()
