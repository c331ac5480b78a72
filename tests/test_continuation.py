"""Continue: the request that resumes a cut-off reply, per provider (pure: nothing is sent)."""

from __future__ import annotations

import pytest

import qwq_magic as qm
from qwq_magic import continuation
from qwq_magic.completion import Completion
from qwq_magic.events import ContentDelta, Finish, ReasoningDelta

MSGS = [{"role": "user", "content": "What is 2+2?"}]


def cut(reasoning: str, content: str = "", closed: bool = False) -> Completion:
    c = Completion(provider="deepinfra", model="Qwen/QwQ-32B", messages=MSGS,
                   params={"max_tokens": 5})
    c.add(ReasoningDelta(reasoning))
    if content:
        c.add(ContentDelta(content))
    c.reasoning_complete = closed or bool(content)
    c.add(Finish("length", "length"))
    c.finish("complete")
    return c


def test_cut_in_the_reasoning_continues_inside_think() -> None:
    c = cut("Two plus two")
    assert continuation.chatml(MSGS, continuation.partial_text(c)) == (
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\nTwo plus two")
    req = continuation.prepare(qm.Client("deepinfra", api_key="k-123456789"), c, {})
    assert req.url.endswith("/v1/openai/completions") and req.think == "open"
    assert req.body["prompt"].endswith("<think>\nTwo plus two") and "max_tokens" not in req.body


def test_cut_in_the_answer_continues_the_answer() -> None:
    c = cut("Two plus two is four.", "The answer")
    req = continuation.prepare(qm.Client("aimlapi", api_key="k-123456789"), c,
                               {"max_tokens": 50})
    assert req.think == "off" and req.body["max_tokens"] == 50
    assert req.body["prompt"].endswith("four.\n</think>\n\nThe answer")


def test_cloudflare_continues_with_a_raw_prompt() -> None:
    c = cut("Two plus two")
    c.provider, c.model = "cloudflare", "@cf/qwen/qwq-32b"
    client = qm.Client("cloudflare", api_key="cf-123456789", account_id="acct")
    req = continuation.prepare(client, c, {"max_tokens": 100})
    assert req.body["raw"] is True and "/ai/run/@cf/qwen/qwq-32b" in req.url
    assert "messages" not in req.body


def test_nothing_to_continue_says_so() -> None:
    c = Completion(provider="deepinfra", model="Qwen/QwQ-32B", messages=MSGS)
    c.finish("complete")
    with pytest.raises(qm.ConfigurationError, match="Nothing to continue"):
        continuation.prepare(qm.Client("deepinfra", api_key="k-123456789"), c, {})


def test_a_bad_budget_is_refused_before_sending() -> None:
    c = cut("x")
    c.provider, c.model = "cloudflare", "@cf/qwen/qwq-32b"
    with pytest.raises(qm.ParameterError, match="max_tokens"):
        qm.Client("cloudflare", api_key="cf-123456789", account_id="a").continue_(
            c, max_tokens=10**9)
