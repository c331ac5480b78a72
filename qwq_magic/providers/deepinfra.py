"""DeepInfra: OpenAI-compatible at ``/v1/openai``; ``reasoning_content`` deltas (else inline
``</think>``), ``estimated_cost`` in the usage object.

Parameters: https://docs.deepinfra.com/api-reference/openai-chat-completions-1
"""

from __future__ import annotations

from ..params import ParamSpec, SpecTable
from . import openai_compat
from .base import NO_THINK_SWITCH, ONE_CHOICE, JsonMode, ModelInfo, Preset

F, INT, B, L = float, int, bool, list

PARAMS: SpecTable = {
    "temperature": ParamSpec(F, 0, 2, default=1.0),
    "top_p": ParamSpec(F, 0, 1, min_open=True, default=1.0),
    "top_k": ParamSpec(INT, 0, 1000, max_open=True, default=0),
    "min_p": ParamSpec(F, 0, 1, default=0.0),
    "max_tokens": ParamSpec(INT, 1, None),
    "seed": ParamSpec(INT, 0, None),
    "repetition_penalty": ParamSpec(F, 0.01, 5, default=1.0),
    "frequency_penalty": ParamSpec(F, -2, 2, default=0.0),
    "presence_penalty": ParamSpec(F, -2, 2, default=0.0),
    "stop": ParamSpec(L, max_items=16),
    "n": ONE_CHOICE,
    "enable_thinking": NO_THINK_SWITCH,
    "thinking_budget": NO_THINK_SWITCH,
}
GENERIC: SpecTable = {
    **PARAMS,
    "enable_thinking": ParamSpec(B, wire="chat_template_kwargs.enable_thinking"),
    "thinking_budget": "DeepInfra documents no thinking budget",
}
_JSON: tuple[JsonMode, ...] = ("json_schema", "json_object", "prompt")

PRESET = Preset(
    name="deepinfra",
    title="DeepInfra",
    wire=openai_compat,
    base_url="https://api.deepinfra.com/v1/openai",
    key_env=("DEEPINFRA_TOKEN", "DEEPINFRA_API_KEY"),
    key_required=True,
    default_model="Qwen/QwQ-32B",
    models={
        "Qwen/QwQ-32B": ModelInfo("Qwen/QwQ-32B", PARAMS, think="open", context=131072,
                                  json_modes=_JSON),
        "Qwen/QwQ-32B-Preview": ModelInfo(
            "Qwen/QwQ-32B-Preview", PARAMS, think="auto", price_in=0.12, price_out=0.18,
            context=32768, json_modes=_JSON,
            note="the preview reasons in plain text without <think> tags",
        ),
    },
    generic_params=GENERIC,
    doc_url="https://deepinfra.com/Qwen/QwQ-32B/api",
)
