"""The I/O-free call core, fed by hand: a prepared request and rules in, lines in, events and
one Completion out; retry decisions as delays; errors as ours (no client, no socket)."""

from __future__ import annotations

import pytest

import qwq_magic as qm
from qwq_magic._call import Call, CallRules
from qwq_magic._retry import RetryPolicy
from qwq_magic.events import ContentDelta, Finish, ReasoningDelta


def request(preset: str = "deepinfra", **kw: object) -> qm.PreparedRequest:
    return qm.Client(preset, api_key="k-0123456789", account_id="a", **kw).prepare("hi")


def sse(obj: str) -> bytes:
    return f"data: {obj}\n\n".encode()


def test_lines_in_events_out() -> None:
    call = Call(request(), CallRules())
    evs = call.feed_bytes(sse('{"choices":[{"delta":{"reasoning_content":"think"}}]}'))
    evs += call.feed_bytes(sse('{"choices":[{"delta":{"content":"Hi"},"finish_reason":"stop"}]}'))
    evs += call.feed_bytes(b"data: [DONE]\n\n") + call.end()
    assert [type(e) for e in evs] == [ReasoningDelta, ContentDelta, Finish]
    c = call.completion
    assert (c.reasoning, c.content, c.status, c.finish_reason) == ("think", "Hi", "complete",
                                                                   "stop")


def test_retry_decisions_follow_the_policy_and_the_provider_rules() -> None:
    call = Call(request(), CallRules(retry=RetryPolicy(max_retries=1, max_wait=30)))
    assert call.http_error(503, {"retry-after": "2"}, "busy", attempt=0) == 2.0
    with pytest.raises(qm.ServerError, match="after 2 attempts"):
        call.http_error(503, {}, "busy", attempt=1)
    cf = Call(request("cloudflare"), CallRules(retry=RetryPolicy(max_retries=5)))
    with pytest.raises(qm.RateLimitError, match="Quota used up"):  # 3036: no retry helps
        cf.http_error(429, {}, '{"errors":[{"code":3036,"message":"daily limit"}]}', attempt=0)


def test_auth_errors_name_the_variable_and_whether_a_key_was_set() -> None:
    with pytest.raises(qm.AuthenticationError, match="Set DEEPINFRA_TOKEN"):
        Call(request(), CallRules(key_set=False)).http_error(401, {}, "no", attempt=0)
    with pytest.raises(qm.AuthenticationError, match="Check the key in DEEPINFRA_TOKEN"):
        Call(request(), CallRules(key_set=True)).http_error(401, {}, "no", attempt=0)


def test_a_404_from_a_url_without_v1_says_what_to_try() -> None:
    req = request("openai", base_url="http://127.0.0.1:8080", model="m")
    call = Call(req, CallRules(base_url="http://127.0.0.1:8080"))
    with pytest.raises(qm.NotFoundError, match=r"try http://127\.0\.0\.1:8080/v1"):
        call.http_error(404, {}, "Not Found", attempt=0)


def test_the_auth_header_comes_from_the_rules_and_is_masked() -> None:
    call = Call(request(), CallRules(auth={"Authorization": "Bearer k-0123456789"}))
    kw = call.request_kwargs()
    assert kw["headers"]["authorization"] == "Bearer k-0123456789"
    assert "k-0123456789" not in repr(kw["headers"])
