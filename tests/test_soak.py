"""The fault-injecting soak: 320 streams, 16 at a time, through one async client, with faults
injected into most of them (HTTP 500 and 429 with Retry-After, 401, dropped connections,
stalls, error events, streams written a few bytes at a time, CRLF, comments, no [DONE],
exact raw bytes cut short).

For every stream: it completes with exactly the scripted text, or ends in a documented
``QwqError`` whose partial ``Completion`` holds every character of every event the server
wrote (the server records the bytes it sent; this test decodes them on its own). After the
run: no socket or file descriptor left open, no asyncio task left, and memory flat (the
second half of the run adds no more than a small, fixed amount over the first).
Never asserts on time. Figures are printed (tests/_figures.py).
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import os
import random
import re
import tracemalloc
from collections import Counter
from typing import Any

import pytest
from _figures import figure

import qwq_magic as qm
from qwq_magic.testing import Reply

pytestmark = pytest.mark.soak

STREAMS = 320
CONCURRENCY = 16
WORDS = ["Let", "me", "think:", "a", "<", "b", "and", "b", "<c", "so", "a<c.", "Check", "the",
         "<tag", "again,", "then", "answer", "ünïcode", "😀", "日本", "<"]


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _fault_plan(rng: random.Random, i: int) -> tuple[str, list[dict[str, Any]]]:
    """(label, the reply's faults in request order) for stream ``i``."""
    kinds = ["none", "none", "status500", "status429", "status500x3", "status401", "drop",
             "error_event", "stall", "cut_bytes", "crlf", "comments", "no_done", "raw_cut",
             "drop_first"]
    k = kinds[i % len(kinds)]
    after = rng.randint(1, 30)
    return k, {
        "none": [],
        "status500": [{"kind": "status", "code": 500}],
        "status429": [{"kind": "status", "code": 429, "retry_after": 0}],
        "status500x3": [{"kind": "status", "code": 500}] * 3,  # more than max_retries=2
        "status401": [{"kind": "status", "code": 401}],
        "drop": [{"kind": "drop", "after": after}],
        "drop_first": [{"kind": "drop", "after": 0}],
        "error_event": [{"kind": "error_event", "after": after}],
        "stall": [{"kind": "stall", "after": after, "seconds": 0.05}],
        "cut_bytes": [{"kind": "cut_bytes", "size": rng.choice([1, 3, 7, 64])}],
        "crlf": [{"kind": "crlf"}],
        "comments": [{"kind": "comments"}],
        "no_done": [{"kind": "no_done"}],
        "raw_cut": [],  # filled in by the caller (needs the text)
    }[k]


def _raw_sse(content: str, rng: random.Random) -> tuple[dict[str, Any], int]:
    """A ``raw`` fault: our own SSE bytes for ``content``, cut at a random byte."""
    events = []
    for tok in re.findall(r"\s*\S+|\s+", content):
        events.append("data: " + json.dumps({"choices": [{"index": 0, "delta": {
            "content": tok}}]}) + "\n\n")
    data = "".join(events).encode()
    cut = rng.randint(1, len(data) - 1)
    return {"kind": "raw", "b64": base64.b64encode(data).decode(), "cut": cut,
            "size": rng.choice([5, 50, 4096])}, cut


def _decode_sent(chunks: list[bytes]) -> tuple[str, str]:
    """What the server's bytes say, decoded without qwq_magic: (text of every complete event,
    the same plus an event cut off at the end). Reasoning fields and content, in order."""
    raw = b"".join(chunks).replace(b"\r\n", b"\n")
    *complete, tail = raw.split(b"\n\n")

    def text_of(block: bytes) -> str:
        out = []
        for line in block.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                continue
            try:
                obj = json.loads(payload)
            except ValueError:
                continue
            if not isinstance(obj, dict):
                continue
            for ch in obj.get("choices") or []:
                d = ch.get("delta") or {}
                out.append(str(d.get("reasoning") or d.get("reasoning_content") or ""))
                out.append(str(d.get("content") or ""))
        return "".join(out)

    done = "".join(text_of(b) for b in complete)
    return done, done + text_of(tail)


def _norm(s: str) -> str:
    return re.sub(r"\s+", "", s.replace("</think>", "").replace("<think>", ""))


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _sockets() -> int:
    import psutil

    return len(psutil.Process().net_connections(kind="inet"))


async def _settle(check: Any, want: int) -> int:
    """Let closing sockets finish closing (server threads notice EOF); bounded by count."""
    n = check()
    for _ in range(100):
        gc.collect()
        n = check()
        if n <= want:
            break
        await asyncio.sleep(0.05)
    return n


async def test_soak(provider_server: Any) -> None:
    srv = provider_server
    rng = random.Random(1717)
    client = qm.Client("openai", **srv.client_kwargs("vllm"), max_retries=2, timeout=30)
    stats: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    problems: list[str] = []
    chars = {"sent": 0, "kept": 0}

    async def one(i: int, sem: asyncio.Semaphore) -> None:
        tag = f"soak-{i}-"
        reasoning, content = _text(rng, rng.randint(5, 40)), _text(rng, rng.randint(3, 30))
        label, faults = _fault_plan(rng, i)
        if label == "raw_cut":
            faults = [_raw_sse(content, rng)[0]]
        mode = "inline" if i % 2 else "field"
        shape = {"reasoning": reasoning, "content": content, "match": tag,
                 "reasoning_mode": mode, "chunk_size": rng.choice([1, 1, 2, 5])}
        # a second copy for a retry after a connection dropped before any content (the client
        # retries then, and the first copy was taken by the dropped request)
        srv.script(Reply(**shape, faults=faults), Reply(**shape))
        stats[label] += 1
        stats["faults injected"] += len(faults)
        async with sem:
            s = client.astream(f"{tag} go", max_tokens=4000)
            err: BaseException | None = None
            try:
                async for _ in s:
                    pass
                c = s.completion
            except qm.QwqError as e:
                err = e
                c = e.completion or s.completion
            except BaseException as e:  # anything else escaping is a failure
                problems.append(f"{tag}{label}: {type(e).__name__}: {e}")
                return
        with srv.state.lock:  # this stream's requests: the last one is what streamed
            mine = [r for r in srv.state.requests
                    if tag in json.dumps((r.json or {}).get("messages"))]
            for r in mine:
                srv.state.requests.remove(r)
            srv.state.replies[:] = [r for r in srv.state.replies if r.match != tag]
        done, upto = _decode_sent(mine[-1].sent if mine else [])
        got = _norm(c.reasoning + c.content) if c is not None else ""
        chars["sent"] += len(_norm(done))
        chars["kept"] += len(got)
        if err is None:
            stats["complete"] += 1
            if label != "raw_cut":  # a cut raw stream is checked like a partial below
                if (c.reasoning.strip(), c.content.strip()) != (reasoning.strip(),
                                                                content.strip()):
                    problems.append(f"{tag}{label}: complete but the text differs")
                return
        else:
            errors[type(err).__name__] += 1
        if done and c is None:
            problems.append(f"{tag}{label}: {type(err).__name__} without the partial")
        elif not (got.startswith(_norm(done)) and _norm(upto).startswith(got)):
            problems.append(f"{tag}{label}: partial lost characters: kept {len(got)} of "
                            f"{len(_norm(done))} ({type(err).__name__}: {err})")

    async def half(lo: int, hi: int) -> None:
        sem = asyncio.Semaphore(CONCURRENCY)
        await asyncio.gather(*(one(i, sem) for i in range(lo, hi)))

    # warm up (imports, pools, caches), then measure
    await half(-CONCURRENCY, 0)
    await client.aclose_pool()
    base_fds = await _settle(_open_fds, 0)
    base_socks = await _settle(_sockets, 0)
    tasks_before = {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}
    tracemalloc.start()
    try:
        gc.collect()
        m0 = tracemalloc.get_traced_memory()[0]
        await half(0, STREAMS // 2)
        gc.collect()
        m1 = tracemalloc.get_traced_memory()[0]
        await half(STREAMS // 2, STREAMS)
        gc.collect()
        m2 = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    await client.aclose()
    fds = await _settle(_open_fds, base_fds)
    socks = await _settle(_sockets, base_socks)
    left = {t for t in asyncio.all_tasks() if t is not asyncio.current_task()} - tasks_before
    n = STREAMS + CONCURRENCY
    figure(f"soak: {n} streams, {CONCURRENCY} concurrent, faults injected: "
           f"{stats['faults injected']}, complete: {stats['complete']}, errors: "
           + ", ".join(f"{k} {v}" for k, v in sorted(errors.items())))
    figure(f"soak: characters the server sent in complete events: {chars['sent']:,}, kept in "
           f"the Completions: {chars['kept']:,}, lost: {len(problems)} streams")
    figure(f"soak: leaks: sockets {max(0, socks - base_socks)}, fds {max(0, fds - base_fds)}, "
           f"tasks {len(left)}; memory first half +{(m1 - m0) / 1e6:.2f} MB, second half "
           f"+{(m2 - m1) / 1e6:.2f} MB")
    assert problems == [], problems[:5]
    assert stats["complete"] > STREAMS // 3 and sum(errors.values()) > STREAMS // 5
    assert fds <= base_fds and socks <= base_socks, (base_fds, fds, base_socks, socks)
    assert not left, left
    assert m2 - m1 < max(2_000_000, 0.5 * (m1 - m0)), (m0, m1, m2)


def test_a_retry_after_a_cut_first_event_starts_from_a_clean_decoder(provider_server: Any
                                                                     ) -> None:
    """The connection drops in the middle of the first event (nothing shown yet): the client
    retries, and no byte of the cut body may be glued to the retried one."""
    srv = provider_server
    fault, _ = _raw_sse("never shown", random.Random(1))
    fault["cut"] = 20  # inside the first "data: {...}" line
    srv.script(Reply(reasoning="Fine.", content="The retried answer.", faults=[fault]),
               Reply(reasoning="Fine.", content="The retried answer."))
    for sync in (True, False):
        c = qm.Client("openai", **srv.client_kwargs("vllm"))
        res = c.complete("hi") if sync else asyncio.run(c.acomplete("hi"))
        assert res.content.strip() == "The retried answer." and res.status == "complete"
        srv.script(Reply(reasoning="Fine.", content="The retried answer.", faults=[fault]),
                   Reply(reasoning="Fine.", content="The retried answer."))
