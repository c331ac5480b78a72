"""Live notebook display cost vs reasoning length: must stay linear, not quadratic.

A reply of N tokens (80% reasoning, 20% Markdown answer with fenced code) is fed token by token
into a ``Completion``; after every token ``LiveDisplay.update`` runs (throttled to 20 Hz on a fake
clock that advances 1/40 s per token, i.e. a 40 tok/s model), then ``finish`` once. Only the real
time spent inside update/finish is counted. Baseline, measured in the same run: a naive renderer
that re-renders the whole reasoning (``html.escape``) and the whole answer (markdown-it) on every
update at the same 20 Hz, and, at the smallest size only, the same without any throttle.
Linear work gives a (µs/token at the largest N) / (µs/token at the smallest N) ratio near 1;
quadratic work gives a ratio near largest/smallest (16 for 16k vs 1k).

    .venv/bin/python benchmarks/bench_render.py [--sizes 1000,4000,16000] [--repeat 3]

Second part, traffic: a reply of 32k reasoning tokens (plus a short answer) streamed at
4,000 tok/s (simulated clock) through ``LiveDisplay`` into a real IPython display publisher
(ipykernel's ``ZMQDisplayPublisher`` with a ``jupyter_client`` Session, the socket replaced by a
counter of the bytes of every message frame): the IOPub bytes while streaming, and the size
of the final output in a notebook saved with nbformat, against the reply's text. The same at a
real-world 50 tok/s gives the bytes per second. ``--traffic-only`` runs just this part (it also
runs against an older checkout: ``PYTHONPATH=/path/to/old benchmarks/bench_render.py``).
"""

from __future__ import annotations

import argparse
import gc
import html
import json
import time
from collections.abc import Callable

from qwq_magic.completion import Completion
from qwq_magic.display import LiveDisplay
from qwq_magic.events import ContentDelta, ReasoningDelta
from qwq_magic.testing import tokens

TOKENS_PER_S = 40  # simulated model speed
MAX_HZ = 20

_THOUGHTS = [
    "Okay, the user wants the sum of the first {n} odd numbers, so let me think about it.",
    "The first few sums are 1, 4, 9, 16, which looks like n squared.",
    "Wait, is that right? If n < {n} the pattern should still hold, and 2k - 1 > 0 for k >= 1.",
    "Hmm, let me check the induction step: (k+1)^2 - k^2 = 2k + 1, the next odd number.",
    "So the sum for n = {n} would be {sq}, but I should double-check the edge case n = 0.",
    "Alternatively, pair the terms from both ends: each pair sums to 2n, and there are n/2 pairs.",
    "That gives the same result, so I am fairly confident; maybe a short Python check helps too.",
]

_ANSWER = """## Step {i}

The sum of the first *n* odd numbers is **n²**: each new odd number `2k + 1` turns a k×k square
into a (k+1)×(k+1) square. For n = {n} that is {sq}.

- the pattern starts 1, 4, 9, 16, 25
- the induction step is (k+1)² − k² = 2k + 1
- pairing the ends gives n/2 pairs of 2n

```python
def odd_sum(n: int) -> int:
    total = 0
    for k in range(n):
        total += 2 * k + 1
    return total

assert all(odd_sum(n) == n * n for n in range({n}))
```

"""


def make_tokens(n: int) -> tuple[list[str], list[str]]:
    """Word-sized tokens (leading space attached): 80% reasoning, 20% Markdown answer."""
    n_r = n * 4 // 5
    reasoning: list[str] = []
    i = 0
    while len(reasoning) < n_r:
        t = _THOUGHTS[i % len(_THOUGHTS)].format(n=i + 3, sq=(i + 3) ** 2)
        reasoning += tokens(t + ("\n\n" if i % 5 == 4 else " "))
        i += 1
    answer: list[str] = []
    i = 0
    while len(answer) < n - n_r:
        answer += tokens(_ANSWER.format(i=i + 1, n=i + 3, sq=(i + 3) ** 2))
        i += 1
    return reasoning[:n_r], answer[: n - n_r]


class FakeClock:
    """Simulated seconds: one tick per token. The step is 1 ns longer than 1/40 s so that float
    rounding never makes two steps look shorter than the 1/20 s throttle interval."""

    STEP = 1 / TOKENS_PER_S + 1e-9

    def __init__(self) -> None:
        self.ticks = 0

    def __call__(self) -> float:
        return self.ticks * self.STEP


def run_qwq(reasoning: list[str], answer: list[str], max_hz: float = MAX_HZ) -> tuple[int, float]:
    """(number of display updates, seconds spent inside LiveDisplay.update/finish)."""
    clock = FakeClock()
    sink: list[int] = []
    live = LiveDisplay(publish=lambda bundle, first: sink.append(len(bundle["text/html"])),
                       max_hz=max_hz, clock=clock)
    c = Completion(provider="bench", model="Qwen/QwQ-32B")
    spent = 0.0
    pc = time.perf_counter
    for tok in reasoning:
        c.add(ReasoningDelta(tok))
        t = pc()
        live.update(c)
        spent += pc() - t
        clock.ticks += 1
    for tok in answer:
        c.add(ContentDelta(tok))
        t = pc()
        live.update(c)
        spent += pc() - t
        clock.ticks += 1
    c.finish("complete")
    t = pc()
    live.finish(c)
    spent += pc() - t
    assert live.n_updates == len(sink) and sink[-1] > 0
    return len(sink), spent


def run_naive(reasoning: list[str], answer: list[str], max_hz: float = MAX_HZ
              ) -> tuple[int, float]:
    """The same stream, re-rendering everything on every (throttled) update."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("js-default")
    clock = FakeClock()
    interval = 1.0 / max_hz if max_hz > 0 else 0.0
    r_pieces: list[str] = []
    a_pieces: list[str] = []
    sink: list[int] = []
    last: float | None = None
    spent = 0.0
    pc = time.perf_counter

    def render() -> None:
        nonlocal last
        body = ('<details open><summary>Thinking…</summary><div>'
                + html.escape("".join(r_pieces), quote=False) + "</div></details>")
        if a_pieces:
            body += '<div class="answer">' + md.render("".join(a_pieces)) + "</div>"
        sink.append(len(body))
        last = clock()

    for pieces, toks in ((r_pieces, reasoning), (a_pieces, answer)):
        for tok in toks:
            pieces.append(tok)
            t = pc()
            if last is None or clock() - last >= interval:
                render()
            spent += pc() - t
            clock.ticks += 1
    t = pc()
    render()
    spent += pc() - t
    return len(sink), spent


def best(fn: Callable[..., tuple[int, float]], r: list[str], a: list[str], repeat: int,
         **kw: float) -> tuple[int, float]:
    runs = []
    for _ in range(repeat):
        gc.collect()
        runs.append(fn(r, a, **kw))
    return min(runs, key=lambda x: x[1])


class _CountingSocket:
    """Stands in for the IOPub socket: counts the bytes of every frame sent."""

    def __init__(self) -> None:
        self.bytes = 0
        self.messages = 0

    def send_multipart(self, parts: list[bytes], *args: object, **kw: object) -> None:
        self.bytes += sum(len(p) for p in parts)
        self.messages += 1


def _publisher() -> tuple[object, _CountingSocket]:
    """A real IPython shell whose display publisher is ipykernel's, on a counting socket."""
    from ipykernel.zmqshell import ZMQDisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from jupyter_client.session import Session

    shell = InteractiveShell.instance()
    sock = _CountingSocket()
    session = Session(key=b"bench-key")
    pub = ZMQDisplayPublisher(session=session, pub_socket=sock, shell=shell)
    pub.set_parent(session.msg("execute_request", {"code": "%%qwq ..."}))
    shell.display_pub = pub
    return shell, sock


def run_traffic(n_reasoning: int = 32_000, n_answer: int = 300, tok_s: float = 4000.0
                ) -> dict[str, float]:
    """IOPub bytes while streaming and the saved final output, through a real publisher."""
    import inspect

    import nbformat

    _shell, sock = _publisher()
    r_toks, _ = make_tokens(n_reasoning * 5 // 4)
    _, a_toks = make_tokens(n_answer * 5)
    r_toks, a_toks = r_toks[:n_reasoning], a_toks[:n_answer]

    class Clock:
        t = 0.0

        def __call__(self) -> float:
            return self.t

    clock = Clock()
    kw: dict[str, object] = {"max_hz": MAX_HZ, "clock": clock}
    if "tick" in inspect.signature(LiveDisplay).parameters:
        kw["tick"] = None  # the clock's thread is wall time; this run is simulated
    live = LiveDisplay(**kw)  # type: ignore[arg-type]
    c = Completion(provider="bench", model="Qwen/QwQ-32B")
    c.timings.start = time.perf_counter()
    live.update(c, force=True)
    step = 1.0 / tok_s
    # the magic's loop: ``due(c)`` (paced by what c is doing) where the display supports it
    takes_c = bool(inspect.signature(live.due).parameters)

    def due() -> bool:
        return bool(live.due(c) if takes_c else live.due())

    for tok in r_toks:
        c.add(ReasoningDelta(tok))
        clock.t += step
        if due():
            live.update(c, force=True)
    for tok in a_toks:
        c.add(ContentDelta(tok))
        clock.t += step
        if due():
            live.update(c, force=True)
    streaming_bytes, streaming_msgs = sock.bytes, sock.messages
    c.finish("complete")
    before = sock.bytes
    live.finish(c)
    final_msg = sock.bytes - before
    from qwq_magic.display import render_bundle

    data = render_bundle(c) if "remote_images" not in inspect.signature(render_bundle).parameters \
        else render_bundle(c, remote_images=False)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%%qwq\nquestion", outputs=[
        nbformat.v4.new_output("display_data", data=data)])]
    saved = len(nbformat.writes(nb).encode()) - len(nbformat.writes(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("%%qwq\nquestion")])).encode())
    text = len((c.reasoning + c.content).encode())
    secs = (n_reasoning + n_answer) / tok_s
    return {"tok_s": tok_s, "seconds": secs, "updates": streaming_msgs,
            "iopub_bytes": streaming_bytes, "bytes_per_s": streaming_bytes / secs,
            "final_msg_bytes": final_msg, "saved_output_bytes": saved, "text_bytes": text,
            "saved_over_text": saved / text,
            "saved_mime_bytes": {k: len(v.encode()) for k, v in data.items()}}  # type: ignore[dict-item]


def traffic_report() -> list[dict[str, float]]:
    rows = [run_traffic(tok_s=4000.0), run_traffic(tok_s=50.0)]
    print()
    print("### Live output traffic: 32k reasoning tokens + 300 answer tokens, through "
          "ipykernel's display publisher")
    print()
    print("| model speed | stream s | updates | IOPub bytes while streaming | bytes/s "
          "| final output saved | text | saved ÷ text |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['tok_s']:,.0f} tok/s | {r['seconds']:,.1f} | {r['updates']:,} | "
              f"{r['iopub_bytes'] / 1e6:.3f} MB | {r['bytes_per_s'] / 1e3:,.1f} KB/s | "
              f"{r['saved_output_bytes'] / 1e3:,.1f} KB | {r['text_bytes'] / 1e3:,.1f} KB | "
              f"{r['saved_over_text']:.2f}× |")
    print(f"saved output per MIME type (bytes): {rows[0]['saved_mime_bytes']}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,4000,16000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--traffic-only", action="store_true")
    a = ap.parse_args()
    if a.traffic_only:
        print(json.dumps({"traffic": traffic_report()}))
        return
    sizes = [int(s) for s in a.sizes.split(",")]
    r0, a0 = make_tokens(200)
    run_qwq(r0, a0)  # warm up imports, lexers, caches
    run_naive(r0, a0)

    rows: list[dict[str, object]] = []
    for n in sizes:
        r, ans = make_tokens(n)
        sim_s = n / TOKENS_PER_S
        for name, fn, hz in (("qwq_magic LiveDisplay", run_qwq, MAX_HZ),
                             ("naive full re-render", run_naive, MAX_HZ),
                             ("naive, no throttle", run_naive, 0.0)):
            if hz == 0.0 and n != sizes[0]:
                continue
            rep = a.repeat if name.startswith("qwq") or n <= 4000 else 1
            updates, secs = best(fn, r, ans, rep, max_hz=hz)
            rows.append({"renderer": name, "tokens": n, "sim_s": sim_s,
                         "expected_updates": round(sim_s * MAX_HZ) + 2 if hz else n + 1,
                         "updates": updates, "render_s": secs, "us_per_token": secs / n * 1e6})
            print(f"{name:24s} {n:6d} tok  {updates:6d} updates  {secs:8.3f} s  "
                  f"{secs / n * 1e6:8.1f} µs/token", flush=True)

    def per_tok(name: str, n: int) -> float:
        return next(float(x["us_per_token"]) for x in rows  # type: ignore[arg-type]
                    if x["renderer"] == name and x["tokens"] == n)

    lo, hi = sizes[0], sizes[-1]
    growth = {name: per_tok(name, hi) / per_tok(name, lo)
              for name in ("qwq_magic LiveDisplay", "naive full re-render")}
    speedup = {n: per_tok("naive full re-render", n) / per_tok("qwq_magic LiveDisplay", n)
               for n in sizes}
    nothrottle = per_tok("naive, no throttle", lo) / per_tok("qwq_magic LiveDisplay", lo)

    print()
    print(f"### Live render cost (20 Hz, {TOKENS_PER_S} tok/s simulated, 80% reasoning)")
    print()
    print("| renderer | tokens | updates (≈ sim s × 20 + 2) | render s | µs/token |")
    print("|---|---:|---:|---:|---:|")
    for x in rows:
        print(f"| {x['renderer']} | {x['tokens']:,} | {x['updates']:,} ({x['expected_updates']:,})"
              f" | {x['render_s']:.3f} | {x['us_per_token']:.1f} |")
    print()
    print("| ratio | value | meaning |")
    print("|---|---:|---|")
    print(f"| qwq_magic µs/token {hi // 1000}k / {lo // 1000}k | "
          f"{growth['qwq_magic LiveDisplay']:.2f}× | ≈1 linear, ≈{hi / lo:.0f} quadratic |")
    print(f"| naive µs/token {hi // 1000}k / {lo // 1000}k | "
          f"{growth['naive full re-render']:.2f}× | same scale |")
    for n in sizes:
        print(f"| naive / qwq_magic at {n // 1000}k | {speedup[n]:.1f}× | time saved per token |")
    print(f"| naive no-throttle / qwq_magic at {lo // 1000}k | {nothrottle:.1f}× | "
          "what the 20 Hz throttle + incremental render avoid |")
    traffic = traffic_report()
    print(json.dumps({"rows": rows, "growth": growth, "naive_over_qwq": speedup,
                      "nothrottle_over_qwq": nothrottle, "traffic": traffic}))


if __name__ == "__main__":
    main()
