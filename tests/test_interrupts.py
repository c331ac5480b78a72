"""Random interrupts: SIGINT at random moments while ``%%qwq`` streams in a real kernel.

One kernel (jupyter_client), the local provider server pacing long replies; 24 times a
``%%qwq`` cell starts and the kernel gets SIGINT after a random delay (some before the reply
starts, most in the middle of the reasoning or the answer). Each time: the cell ends with the
one-line ``QwqInterrupted``, ``_qwq`` holds the partial marked "interrupted" whose text is an
unbroken prefix of what the model was sending (no character lost or reordered, held-back
``<`` included), and the kernel runs the next cell as usual (every few rounds a whole
``%%qwq`` reply). Reports ``interrupts: N`` (tests/_figures.py). Never asserts on time.
"""

from __future__ import annotations

import json
import queue
import random
import re
import time
from typing import Any

import pytest
from _figures import figure
from jupyter_client.manager import start_new_kernel
from kernel_support import collect

from qwq_magic.testing import Reply

pytestmark = [pytest.mark.kernel, pytest.mark.interrupts]

ROUNDS = 24
WORDS = ["think", "<", "a<b", "step", "ünï", "😀", "then", "<tag", "again,", "so"]


def _wait(kc: Any, msg_id: str, timeout: float = 60) -> tuple[dict[str, Any], list[dict]]:
    return collect(kc, msg_id, timeout, drain=True)


def _until_executing(kc: Any, msg_id: str, timeout: float = 30) -> list[dict]:
    """Wait for the kernel to start running ``msg_id`` (its execute_input on iopub)."""
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            m = kc.get_iopub_msg(timeout=0.05)
        except queue.Empty:
            continue
        seen.append(m)
        if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "execute_input":
            return seen
    raise AssertionError("the kernel never started the cell")


def _stdout(msgs: list[dict]) -> str:
    return "".join(m["content"].get("text", "") for m in msgs if m["msg_type"] == "stream")


def _norm(s: str) -> str:
    return re.sub(r"\s+", "", s.replace("</think>", ""))


def test_random_interrupts_keep_every_character_and_the_kernel_usable(provider_server: Any
                                                                      ) -> None:
    srv = provider_server
    rng = random.Random(2026)
    km, kc = start_new_kernel(kernel_name="python3")
    counts = {"interrupts": 0, "before start": 0, "mid-stream": 0, "whole replies after": 0,
              "chars kept": 0}
    try:
        setup = kc.execute(f"%load_ext qwq_magic\n%qwq use openai --base-url "
                           f"{srv.base_url('vllm')} --model qwq")
        assert _wait(kc, setup)[0]["content"]["status"] == "ok"
        for i in range(ROUNDS):
            tag = f"round-{i}-"
            reasoning = " ".join(rng.choice(WORDS) for _ in range(2500))
            content = " ".join(rng.choice(WORDS) for _ in range(300))
            srv.script(Reply(reasoning=reasoning, content=content, match=tag, pace=0.002,
                             reasoning_mode="inline" if i % 2 else "field"))
            flags = rng.choice(["", "--chat talk", "--hide-reasoning", "--raw", "-o kept"])
            srv.latency = 3.0 if i % 6 == 0 else 0.0
            msg_id = kc.execute(f"%%qwq --max-tokens 8000 {flags}\n{tag} think at length")
            early = _until_executing(kc, msg_id)  # a SIGINT before that would hit nothing
            # every 6th round: while the request waits for a slow server (before the reply
            # starts); the others at a random point of the stream
            if i % 6 == 0:  # inside the HTTP wait for sure, however loaded the machine is
                deadline = time.monotonic() + 30
                while srv.state.in_flight == 0 and time.monotonic() < deadline:
                    time.sleep(0.02)
                time.sleep(0.2)
            else:
                time.sleep(rng.uniform(0.1, 1.5))
            km.interrupt_kernel()
            counts["interrupts"] += 1
            reply, late = _wait(kc, msg_id)
            del early, late
            c = reply["content"]
            assert c["status"] == "error" and c["ename"] == "QwqInterrupted", c
            assert len(c["traceback"]) == 1, c["traceback"]
            check = kc.execute("import json\nprint(json.dumps([_qwq.status, _qwq.reasoning, "
                               "_qwq.content, _qwq.messages[-1]['content']]) "
                               "if '_qwq' in dir() else '[]')")
            r2, out = _wait(kc, check)
            assert r2["content"]["status"] == "ok", "the kernel is not usable after SIGINT"
            state = json.loads(_stdout(out).strip() or "[]")
            if "before the reply started" in c["traceback"][0] or not state or \
                    tag not in state[3]:
                counts["before start"] += 1
                continue
            status, got_r, got_c, _ = state
            assert status == "interrupted"
            assert "partial reply is in _qwq" in c["traceback"][0]
            got = _norm(got_r + got_c)
            assert _norm(reasoning + content).startswith(got), f"round {i}: characters lost"
            counts["mid-stream" if got else "before start"] += 1
            counts["chars kept"] += len(got)
            if i % 5 == 4:  # the kernel still streams a whole reply
                srv.script(Reply(reasoning="Short.", content=f"whole-{i}", match=f"after-{i}"))
                ok = kc.execute(f"%%qwq -o done\nafter-{i}")
                assert _wait(kc, ok)[0]["content"]["status"] == "ok"
                check = kc.execute("print(done.status, done.content)")
                assert _stdout(_wait(kc, check)[1]).split() == ["complete", f"whole-{i}"]
                counts["whole replies after"] += 1
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    figure(f"interrupts: {counts['interrupts']} (mid-stream {counts['mid-stream']}, before the "
           f"reply started {counts['before start']}); partial characters kept: "
           f"{counts['chars kept']:,}, lost: 0; whole replies after: "
           f"{counts['whole replies after']}")
    assert counts["mid-stream"] >= ROUNDS // 2 and counts["before start"] >= ROUNDS // 6
