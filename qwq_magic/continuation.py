"""Continue a reply cut off by ``max_tokens`` (or stopped): the same reply, resumed, not repeated.

The conversation and the partial reply are rendered with the Qwen family's chat template
(ChatML: ``<|im_start|>role\\n…<|im_end|>``) up to the cut, and sent as a raw prompt — to
``/completions`` on OpenAI-compatible servers, ``raw: true`` on Workers AI — so the model goes
on from the last character it wrote, inside its reasoning or inside its answer. vLLM can
instead take the partial reply as a final assistant message (``continue_final_message``); it
is used there. The result is one :class:`~qwq_magic.Completion` holding the whole reply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError
from .params import nest, validate
from .reasoning import ThinkMode
from .request import PreparedRequest

if TYPE_CHECKING:
    from .client import Client
    from .completion import Completion

THINK_CLOSE = "\n</think>\n\n"


def cut_in_reasoning(c: Completion) -> bool:
    """The reply stopped while the model was still thinking."""
    return bool(c.reasoning) and not c.content and not c.reasoning_complete


def partial_text(c: Completion) -> str:
    """The assistant's text so far as the model wrote it (``<think>`` block included)."""
    if not c.reasoning:
        return c.content
    if cut_in_reasoning(c):
        return "<think>\n" + c.reasoning
    return "<think>\n" + c.reasoning.rstrip("\n") + THINK_CLOSE + c.content


def chatml(messages: list[dict[str, Any]], assistant_so_far: str) -> str:
    """The conversation in ChatML, ending inside the open assistant turn."""
    out = []
    for m in messages:
        content = m.get("content")
        if not isinstance(content, str):
            raise ConfigurationError("Continue works on text conversations; this one has "
                                     f"non-text content in a {m.get('role')!r} message.")
        out.append(f"<|im_start|>{m.get('role')}\n{content}<|im_end|>\n")
    out.append(f"<|im_start|>assistant\n{assistant_so_far}")
    return "".join(out)


def prepare(client: Client, c: Completion, params: dict[str, Any]) -> PreparedRequest:
    """The request that resumes ``c`` (validated like any other)."""
    if c.status == "streaming":
        raise ConfigurationError("That reply is still streaming: stop it before continuing.")
    if not (c.reasoning or c.content):
        raise ConfigurationError("Nothing to continue: the reply has no text yet; ask again.")
    preset = client.preset
    model = c.model or client.model
    info = preset.model_info(model)
    merged = {**client.params.as_dict(), **{k: v for k, v in c.params.items()
                                             if k != "max_tokens"}, **params}
    server = client.server(model)
    from .providers import servers

    table = servers.spec_table(server, info.params) if server is not None else info.params
    wire = nest(validate(merged, table, f"{preset.name} ({model})"))
    think: ThinkMode = "open" if cut_in_reasoning(c) else "off"
    so_far = partial_text(c)
    if servers.continues_final_message(server):
        body = preset.wire.body(model, [*c.messages, {"role": "assistant", "content": so_far}],
                                wire, stream=True)
        body.update(continue_final_message=True, add_generation_prompt=False)
        url = preset.wire.url(client.base_url, model, client.account_id)
    else:
        url = preset.wire.raw_url(client.base_url, model, client.account_id)
        body = preset.wire.raw_body(model, chatml(c.messages, so_far), wire, stream=True)
    if server is not None:
        body = servers.adapt_body(server, body)
    return PreparedRequest(
        provider=preset.name, model=model, url=url, body=body, stream=True,
        messages=c.messages, params={k: v for k, v in merged.items() if v is not None},
        think=think, info=info, preset=preset,
        queue_key=client.base_url if server is not None and server.one_at_a_time else None)
