"""AI/ML API: OpenAI-compatible at ``/v1``; ``reasoning_content`` deltas; usage in a final
``choices: []`` chunk. Qwen3-32B takes ``enable_thinking`` (default false) and
``max_completion_tokens``.

Parameters: github.com/aimlapi/api-docs (qwen-QwQ-32B.json, qwen3-32b.json)
"""

from __future__ import annotations

from ..params import ParamSpec, SpecTable
from . import openai_compat
from .base import NO_THINK_SWITCH, ONE_CHOICE, JsonMode, ModelInfo, Preset

F, INT, B, L = float, int, bool, list

QWQ: SpecTable = {
    "temperature": ParamSpec(F, 0, 2),
    "top_p": ParamSpec(F, 0.01, 1),
    "top_k": ParamSpec(INT, 1, None),
    "min_p": ParamSpec(F, 0.001, 0.999),
    "max_tokens": ParamSpec(INT, 1, None),
    "seed": ParamSpec(INT, 1, None),
    "repetition_penalty": ParamSpec(F, 0, None, min_open=True),
    "frequency_penalty": ParamSpec(F, -2, 2),
    "presence_penalty": ParamSpec(F, -2, 2),
    "stop": ParamSpec(L, max_items=4),
    "n": ONE_CHOICE,
    "enable_thinking": NO_THINK_SWITCH,
    "thinking_budget": NO_THINK_SWITCH,
}
QWEN3: SpecTable = {
    "temperature": ParamSpec(F, 0, 2),
    "top_p": ParamSpec(F, 0.01, 1),
    "top_k": "not in AI/ML API's schema for alibaba/qwen3-32b",
    "min_p": "not in AI/ML API's schema for alibaba/qwen3-32b",
    "max_tokens": ParamSpec(INT, 1, None, wire="max_completion_tokens"),
    "seed": ParamSpec(INT, 1, None),
    "repetition_penalty": ParamSpec(F, 0, None, min_open=True),
    "frequency_penalty": ParamSpec(F, -2, 2),
    "presence_penalty": ParamSpec(F, -2, 2),
    "stop": ParamSpec(L, max_items=4),
    "n": ONE_CHOICE,
    "enable_thinking": ParamSpec(B, default=False),
    "thinking_budget": ParamSpec(INT, 1, None),
}
_JSON: tuple[JsonMode, ...] = ("json_schema", "json_object", "prompt")

PRESET = Preset(
    name="aimlapi",
    title="AI/ML API",
    wire=openai_compat,
    base_url="https://api.aimlapi.com/v1",
    key_env=("AIMLAPI_KEY", "AIML_API_KEY"),
    key_required=True,
    default_model="Qwen/QwQ-32B",
    models={
        "Qwen/QwQ-32B": ModelInfo("Qwen/QwQ-32B", QWQ, think="open", json_modes=_JSON),
        "alibaba/qwen3-32b": ModelInfo(
            "alibaba/qwen3-32b", QWEN3, think="auto", json_modes=_JSON,
            note="enable_thinking defaults to false: pass enable_thinking=True to see reasoning",
        ),
    },
    generic_params=QWQ,
    doc_url="https://docs.aimlapi.com/api-references/text-models-llm/alibaba-cloud/qwen3-32b",
)
