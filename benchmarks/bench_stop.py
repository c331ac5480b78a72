"""How fast the chat panel's Stop takes effect mid-stream (target < 0.5 s).

The local provider server runs in-process and streams a long reasoning reply, one token every
10 ms. ``ChatPanel.send`` starts a reply; once some reasoning has reached the panel's last
message (its ``live`` state while it streams), ``ChatPanel.stop()`` is called and the time until
the generation task is done AND the last message says "stopped" is measured. Baselines, measured in the same run: the interval
between two chunks of the stream, and the same stop measured on a plain ``client.astream`` loop
that breaks out and ``await stream.aclose()``s (the floor: nothing but closing the HTTP stream).

    .venv/bin/python benchmarks/bench_stop.py [--repeat 10]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import time
from typing import Any

import qwq_magic as qm
from qwq_magic.state import Session
from qwq_magic.testing import ProviderServer, Reply

PACE = 0.01  # seconds between chunks
REASONING_TOKENS = 5000  # far more than streams before the stop (50 s of reply)
MIN_REASONING_CHARS = 100  # "some reasoning has streamed": ~20 words
TIMEOUT = 10.0


def import_panel() -> tuple[Any, str]:
    try:
        from qwq_magic.widgets import ChatPanel
    except Exception as e:  # the panel (or anywidget) is not there yet
        return None, f"{type(e).__name__}: {e}"
    return ChatPanel, ""


async def wait_for(cond: Any, what: str, poll: float = 0.002) -> None:
    deadline = time.perf_counter() + TIMEOUT
    while not cond():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"no {what} after {TIMEOUT} s")
        await asyncio.sleep(poll)


async def plain_once(client: Any) -> tuple[float, list[float]]:
    """(stop latency, inter-chunk intervals seen before the stop) for a bare astream loop."""
    s = client.astream("Think for a long time.")
    arrivals: list[float] = []
    async for _ev in s:
        arrivals.append(time.perf_counter())
        if len(s.completion.reasoning) >= MIN_REASONING_CHARS:
            break
    t0 = time.perf_counter()
    await s.aclose()
    dt = time.perf_counter() - t0
    assert s.completion.status == "stopped", s.completion.status
    return dt, [b - a for a, b in itertools.pairwise(arrivals[1:])]  # skip time to 1st token


async def panel_once(panel: Any) -> float:
    n_before = len(panel.messages)
    task = panel.send("Think for a long time.")
    assert task is not None, panel.notice

    def streamed() -> bool:  # this turn's assistant message (user + assistant appended)
        if len(panel.messages) < n_before + 2:
            return False
        # while a reply streams, messages[-1] is a placeholder and `live` has the message
        live = getattr(panel, "live", None)
        if live is None:  # an older panel: the streaming message is messages[-1]
            msg = panel.messages[-1]
        elif live.get("index") == len(panel.messages) - 1:
            msg = live.get("message") or {}
        else:
            return False
        return len(msg.get("reasoning", "")) >= MIN_REASONING_CHARS

    await wait_for(streamed, "reasoning in the panel")
    t0 = time.perf_counter()
    panel.stop()
    gen = panel.task if hasattr(panel, "task") else panel._task
    await asyncio.wait({gen}, timeout=TIMEOUT)
    if panel.messages[-1].get("status") != "stopped":
        await wait_for(lambda: panel.messages[-1].get("status") == "stopped", "stopped status",
                       poll=0.0002)
    dt = time.perf_counter() - t0
    assert gen.done() and not gen.cancelled(), "the generation task was cancelled, not stopped"
    c = gen.result()
    assert c.status == "stopped" and c.reasoning, (c.status, len(c.reasoning))
    assert not panel.busy
    return dt


async def run(srv: ProviderServer, repeat: int, panel_cls: Any) -> dict[str, Any]:
    res: dict[str, Any] = {}
    client = qm.Client("openai", **srv.client_kwargs("vllm"))
    plain, gaps = [], []
    for i in range(repeat + 1):
        srv.script(Reply.long(REASONING_TOKENS, pace=PACE))
        dt, g = await plain_once(client)
        if i:  # the first run warms up the connection and imports
            plain.append(dt)
            gaps += g
    await client.aclose()
    res["chunk_interval_s"] = statistics.median(gaps)
    res["chunk_interval_max_s"] = max(gaps)
    res["plain_s"] = plain
    if panel_cls is not None:
        sess = Session()
        sess.use("openai", **srv.client_kwargs("vllm"))
        panel = panel_cls(session=sess)
        lat = []
        for i in range(repeat + 1):
            srv.script(Reply.long(REASONING_TOKENS, pace=PACE))
            dt = await panel_once(panel)
            if i:
                lat.append(dt)
        res["panel_s"] = lat
        with_stop = [m for m in panel.messages if m.get("role") == "assistant"]
        res["panel_messages_stopped"] = sum(m.get("status") == "stopped" for m in with_stop)
        client = sess.client()
        await client.aclose()
        panel.close()
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=10)
    a = ap.parse_args()
    panel_cls, why = import_panel()
    if panel_cls is None:
        print(f"ChatPanel NOT importable yet ({why}): measuring the plain client only.")
    with ProviderServer() as srv:
        res = asyncio.run(run(srv, a.repeat, panel_cls))

    ms = 1000.0
    gap = res["chunk_interval_s"]
    plain_med, plain_max = statistics.median(res["plain_s"]), max(res["plain_s"])
    rows = [("chunk interval (stream pace 10 ms)", gap, res["chunk_interval_max_s"]),
            ("plain astream + aclose()", plain_med, plain_max)]
    if "panel_s" in res:
        panel_med, panel_max = statistics.median(res["panel_s"]), max(res["panel_s"])
        rows.append(("ChatPanel.stop()", panel_med, panel_max))
        res.update(panel_median_s=panel_med, panel_max_s=panel_max,
                   ratio_panel_over_plain=panel_med / plain_med,
                   ratio_panel_over_chunk=panel_med / gap, target_met=panel_max < 0.5)
    res.update(plain_median_s=plain_med, plain_max_s=plain_max)

    print()
    print(f"### Stop latency mid-stream ({a.repeat} runs each)")
    print()
    print("| measured | median ms | max ms |")
    print("|---|---:|---:|")
    for name, med, mx in rows:
        print(f"| {name} | {med * ms:.3f} | {mx * ms:.3f} |")
    if "panel_s" not in res:
        print("| ChatPanel.stop() | n/a | n/a |")
    print()
    print("| ratio | value |")
    print("|---|---:|")
    if "panel_s" in res:
        print(f"| panel / plain (median) | {res['ratio_panel_over_plain']:.2f}× |")
        print(f"| panel / chunk interval (median) | {res['ratio_panel_over_chunk']:.2f}× |")
        print(f"| panel max vs 500 ms target | {res['panel_max_s'] / 0.5:.3f}× "
              f"({'met' if res['target_met'] else 'MISSED'}) |")
    else:
        print(f"| panel / plain | n/a (ChatPanel not importable: {why}) |")
    print(f"| plain / chunk interval (median) | {plain_med / gap:.2f}× |")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
