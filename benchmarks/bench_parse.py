"""Stream parsing CPU per event over REAL loopback HTTP: qwq_magic vs its baselines.

The local provider server (``python -m qwq_magic.testing``) runs in a subprocess and streams the
same scripted reply to every consumer; this process measures its own CPU time
(``time.process_time``) while it reads and parses the stream, so the server's work is not
counted. Two stream shapes:

* **reasoning field** (DeepInfra route): ``reasoning_content`` deltas, then ``content``
  deltas, a usage chunk and ``[DONE]``;
* **inline </think>** (vLLM route, model ``qwq``): the reasoning inside ``content``, closed by
  ``</think>``, which qwq_magic splits (the baselines do not).

Consumers: a bare httpx ``iter_lines`` + ``json.loads`` loop (the floor), qwq_magic's
``client.stream`` (bytes → SSE → jiter → dialect → think splitter → Completion → typed events),
the official ``openai`` SDK, ``httpx-sse`` + ``json.loads``, and ``litellm`` when installed
(on a tenth of the stream: it costs ~0.6 ms an event).
Also the SSE line decoder alone: today's byte-level decoder vs the line-level one it replaced
(httpx ``iter_lines`` + the old ``SSEDecoder``), both without JSON. Medians of ``--repeat``.

    .venv/bin/python benchmarks/bench_parse.py [--events 50000] [--repeat 5] [--plot PATH]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
KEY = "test-key"

SHAPES = {
    # name: (route, base path, model, reply reasoning_mode)
    "reasoning field": ("deepinfra", "/deepinfra/v1/openai", "Qwen/QwQ-32B", "field"),
    "inline </think>": ("vllm", "/vllm/v1", "qwq", "inline"),
}


# -- the server ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server() -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    p = subprocess.Popen([sys.executable, "-m", "qwq_magic.testing", "--port", str(port),
                          "--pace", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         env=env)
    root = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(root + "/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield root
    finally:
        p.terminate()
        p.wait(10)


def make_stream(n: int, inline: bool) -> bytes:
    """A realistic SSE body of ``n`` chunks (DeepInfra-shaped: ids, nulls, usage at the end)."""
    head = {"id": "chatcmpl-RXE8YP4f", "object": "chat.completion.chunk", "created": 1732684855,
            "model": "Qwen/QwQ-32B"}
    lines = []
    for i in range(n):
        thinking = i < n * 3 // 4
        if inline:
            text = " </think>\n\n" if i == n * 3 // 4 else f" tok{i}"
            delta: dict[str, Any] = {"role": "assistant", "content": text}
        else:
            field = "reasoning_content" if thinking else "content"
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


def serve_bulk(root: str, route: str, n: int, inline: bool) -> None:
    """Every request on ``route`` gets the same body, written 64 KiB at a time (parse-bound)."""
    httpx.post(root + "/_control/reset").raise_for_status()
    data = base64.b64encode(make_stream(n, inline)).decode()
    httpx.post(root + "/_control/fault", json={"kind": "raw", "times": None, "route": route,
                                               "b64": data, "size": 65536},
               timeout=60).raise_for_status()


def script(root: str, n: int, mode: str) -> None:
    """One scripted reply, streamed by the server one write per event (I/O-bound, live-like)."""
    words = ["Let", "me", "think", "about", "this", "step", "by", "step,", "checking", "again."]
    reasoning = " ".join(words[i % len(words)] for i in range(n * 3 // 4))
    content = " ".join(words[i % len(words)] for i in range(n - n * 3 // 4))
    httpx.post(root + "/_control/script", json=[{
        "reasoning": reasoning, "content": content, "reasoning_mode": mode}]).raise_for_status()


def body(model: str, n: int) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "stream_options": {"include_usage": True}, "max_tokens": n + 10}


# -- consumers: each returns the number of events it handled ----------------------------------
def run_bare(url: str, model: str, n: int) -> int:
    k = 0
    with httpx.Client() as c, c.stream("POST", url + "/chat/completions", json=body(model, n),
                                        headers={"Authorization": f"Bearer {KEY}"}) as r:
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                obj = json.loads(line[6:])
                ch = obj["choices"]
                if ch:
                    d = ch[0]["delta"]
                    _ = d.get("reasoning_content") or d.get("content")
                k += 1
    return k


def run_qwq(url: str, model: str, n: int) -> int:
    import qwq_magic as qm

    with qm.Client("openai", base_url=url, model=model, api_key=KEY) as client:
        s = client.stream("hi", max_tokens=n + 10)
        k = 0
        for _ in s:
            k += 1
        c = s.completion
        assert c.status == "complete" and c.reasoning and c.content, c
    return k


def run_openai(url: str, model: str, n: int) -> int:
    import openai

    with openai.OpenAI(base_url=url, api_key=KEY) as c:
        k = 0
        for chunk in c.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}], stream=True,
                stream_options={"include_usage": True}, max_tokens=n + 10):
            if chunk.choices:
                d = chunk.choices[0].delta
                _ = getattr(d, "reasoning_content", None) or d.content
            k += 1
    return k


def run_httpx_sse(url: str, model: str, n: int) -> int:
    from httpx_sse import connect_sse

    k = 0
    with httpx.Client() as c, connect_sse(c, "POST", url + "/chat/completions",
                                          json=body(model, n),
                                          headers={"Authorization": f"Bearer {KEY}"}) as es:
        for sse in es.iter_sse():
            if sse.data != "[DONE]":
                obj = json.loads(sse.data)
                ch = obj["choices"]
                if ch:
                    d = ch[0]["delta"]
                    _ = d.get("reasoning_content") or d.get("content")
                k += 1
    return k


def run_litellm(url: str, model: str, n: int) -> int:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network at import
    import litellm

    k = 0
    for chunk in litellm.completion(model="openai/" + model, api_base=url, api_key=KEY,
                                    messages=[{"role": "user", "content": "hi"}], stream=True,
                                    max_tokens=n + 10):
        _ = chunk
        k += 1
    return k


class OldSSEDecoder:
    """The line-level decoder this project used before (fed httpx ``iter_lines``)."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> tuple[str, str] | None:
        if not line:
            if not self._data:
                self._event = ""
                return None
            ev = (self._event or "message", "\n".join(self._data))
            self._event = ""
            self._data = []
            return ev
        if line[0] == ":":
            return None
        name, sep, value = line.partition(":")
        if sep and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "error":
            return ("error", value)
        elif name.startswith("{"):
            return ("json", line)
        return None


def run_sse_old(url: str, model: str, n: int) -> int:
    k = 0
    d = OldSSEDecoder()
    with httpx.Client() as c, c.stream("POST", url + "/chat/completions", json=body(model, n),
                                        headers={"Authorization": f"Bearer {KEY}"}) as r:
        for line in r.iter_lines():
            if d.feed(line) is not None:
                k += 1
    return k


def run_sse_new(url: str, model: str, n: int) -> int:
    from qwq_magic._sse import SSEDecoder

    k = 0
    d = SSEDecoder()
    with httpx.Client() as c, c.stream("POST", url + "/chat/completions", json=body(model, n),
                                        headers={"Authorization": f"Bearer {KEY}"}) as r:
        for chunk in r.iter_bytes():
            k += len(d.feed(chunk))
    return k + len(d.close())


CONSUMERS: dict[str, Callable[[str, str, int], int]] = {
    "bare httpx + json.loads": run_bare,
    "qwq_magic": run_qwq,
    "httpx-sse + json.loads": run_httpx_sse,
    "openai SDK": run_openai,
    "litellm": run_litellm,
    "SSE lines, old (iter_lines + line decoder)": run_sse_old,
    "SSE lines, new (iter_bytes + byte decoder)": run_sse_new,
}


def available(name: str) -> str | None:
    mod = {"openai SDK": "openai", "httpx-sse + json.loads": "httpx_sse", "litellm": "litellm"}
    m = mod.get(name)
    if m is None:
        return None
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        __import__(m)
    except Exception as e:
        return f"not installed ({type(e).__name__})"
    return None


def measure(root: str, shape: str, name: str, n: int, repeat: int, live: bool) -> float:
    """Median CPU µs per event of this process."""
    _route, path, model, mode = SHAPES[shape]
    fn = CONSUMERS[name]
    times = []
    for _ in range(repeat):
        if live:
            script(root, n, mode)
        t = time.process_time()
        k = fn(root + path, model, n)
        times.append((time.process_time() - t) / max(k, 1) * 1e6)
    return statistics.median(times)


def table(title: str, res: dict[str, dict[str, float]], skipped: dict[str, str]) -> None:
    base = {s: r["bare httpx + json.loads"] for s, r in res.items()}
    print(title)
    print()
    print("| consumer | " + " | ".join(f"{s}: µs/event | × bare" for s in res) + " |")
    print("|---|" + "---:|---:|" * len(res))
    for name in CONSUMERS:
        if name in skipped:
            print(f"| {name} | {skipped[name]} |" + " |" * (2 * len(res) - 1))
            continue
        cells = []
        for s, row in res.items():
            v = row.get(name)
            cells += ["", ""] if v is None else [f"{v:.2f}", f"{v / base[s]:.2f}×"]
        if any(cells):
            print(f"| {name} | " + " | ".join(cells) + " |")
    print()
    for s, row in res.items():
        q = row["qwq_magic"]
        line = f"- {s}: qwq_magic ÷ bare = **{q / base[s]:.2f}×**"
        if "openai SDK" in row:
            line += f"; openai SDK ÷ qwq_magic = **{row['openai SDK'] / q:.1f}×**"
        print(line)
    r = res.get("reasoning field", {})
    old = r.get("SSE lines, old (iter_lines + line decoder)")
    new = r.get("SSE lines, new (iter_bytes + byte decoder)")
    if old and new:
        print(f"- SSE decoding alone: new byte decoder ÷ old line decoder = **{new / old:.2f}×**")
    print()


def plot(res: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k for k in CONSUMERS if not k.startswith("SSE") and k in res[next(iter(res))]]
    if not names:
        return
    fig, ax = plt.subplots(figsize=(7.5, 3.6), dpi=110)
    width = 0.8 / len(res)
    for j, (shape, row) in enumerate(res.items()):
        rates = [1e6 / row[k] / 1000 for k in names]
        xs = [i + j * width for i in range(len(names))]
        bars = ax.bar(xs, rates, width, label=shape)
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.set_xticks([i + width * (len(res) - 1) / 2 for i in range(len(names))],
                  [k.replace(" + ", "\n+ ") for k in names], fontsize=8)
    ax.set_ylabel("thousand events / CPU second")
    ax.set_title("Stream parse rate over loopback HTTP (higher is better)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=50000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--live-events", type=int, default=10000,
                    help="events for the one-write-per-event table (0: skip it)")
    ap.add_argument("--plot", default=str(HERE / "parse_rate.png"))
    a = ap.parse_args()
    skipped = {name: why for name in CONSUMERS if (why := available(name))}
    bulk: dict[str, dict[str, float]] = {}
    live: dict[str, dict[str, float]] = {}
    with server() as root:
        for shape, (route, *_rest) in SHAPES.items():
            serve_bulk(root, route, a.events, shape.startswith("inline"))
            bulk[shape] = {}
            for name in CONSUMERS:
                if name in skipped or (name.startswith("SSE") and shape != "reasoning field"):
                    continue
                n = a.events
                if name == "litellm":  # ~0.6 ms an event: a tenth of the stream is plenty
                    n = max(1000, a.events // 10)
                    serve_bulk(root, route, n, shape.startswith("inline"))
                measure(root, shape, name, n, 1, False)  # warm up
                bulk[shape][name] = measure(root, shape, name, n, a.repeat, False)
                if n != a.events:
                    serve_bulk(root, route, a.events, shape.startswith("inline"))
        httpx.post(root + "/_control/reset").raise_for_status()
        if a.live_events:
            for shape in SHAPES:
                live[shape] = {name: measure(root, shape, name, a.live_events, a.repeat, True)
                               for name in ("bare httpx + json.loads", "qwq_magic", "openai SDK")
                               if name not in skipped}
    table(f"### Stream parsing over loopback HTTP ({a.events:,} events, server writes 64 KiB "
          f"at a time; CPU µs/event, median of {a.repeat})", bulk, skipped)
    if live:
        table(f"### The same, one server write per event ({a.live_events:,} events: I/O-bound, "
              f"as a live model streams; median of {a.repeat})", live, {})
    if a.plot:
        with contextlib.suppress(ImportError):
            plot(bulk, Path(a.plot))
            print(f"![parse rate per consumer]({Path(a.plot).name})")
    print(json.dumps({"events": a.events, "us_per_event": bulk, "live_us_per_event": live,
                      "ratio_vs_bare": {s: bulk[s]["qwq_magic"] / bulk[s]["bare httpx + json.loads"]
                                        for s in bulk},
                      "openai_over_qwq": {s: bulk[s].get("openai SDK", 0) / bulk[s]["qwq_magic"]
                                          for s in bulk}}))


if __name__ == "__main__":
    main()
