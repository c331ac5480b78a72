"""The provider presets: endpoints, keys, models, parameter tables and prices (from the docs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..errors import ConfigurationError
from ..params import ParamSpec, SpecTable
from ..reasoning import ThinkMode, think_mode_for

Dialect = Literal["openai", "cloudflare"]
JsonMode = Literal["guided_json", "json_schema", "json_object", "vllm_guided_json", "prompt"]

_NO_THINK_SWITCH = "QwQ always thinks; its reasoning cannot be switched off"
_ONE_CHOICE = "qwq_magic streams a single choice"


@dataclass(frozen=True)
class ModelInfo:
    """What qwq_magic knows about one model on one provider."""

    id: str
    params: SpecTable
    think: ThinkMode = "auto"
    price_in: float | None = None  # USD per million input tokens
    price_out: float | None = None
    context: int | None = None
    tools: bool = True
    json_modes: tuple[JsonMode, ...] = ("json_schema", "json_object", "prompt")
    note: str = ""


@dataclass(frozen=True)
class Preset:
    """A provider: where to send requests, how to authenticate, which models it serves."""

    name: str
    dialect: Dialect
    base_url: str
    key_env: tuple[str, ...]
    key_required: bool
    default_model: str
    models: dict[str, ModelInfo] = field(default_factory=dict)
    generic_params: SpecTable = field(default_factory=dict)  # for models not listed
    doc_url: str = ""
    title: str = ""

    def model_info(self, model: str) -> ModelInfo:
        """The listed model, or a generic entry built from the preset's defaults."""
        info = self.models.get(model)
        if info is not None:
            return info
        return ModelInfo(id=model, params=self.generic_params, think=think_mode_for(model))


F, INT, B, L = float, int, bool, list

# -- Cloudflare Workers AI (native /ai/run) -----------------------------------------------------
# https://developers.cloudflare.com/workers-ai/models/qwq-32b/ (input schema)
CF_QWQ: SpecTable = {
    "temperature": ParamSpec(F, 0, 5, default=0.15),
    "top_p": ParamSpec(F, 0, 2),
    "top_k": ParamSpec(INT, 1, 50),
    "min_p": "not in the Workers AI schema for this model",
    "max_tokens": ParamSpec(INT, 1, 24000, default=256),
    "seed": ParamSpec(INT, 1, 9999999999),
    "repetition_penalty": ParamSpec(F, 0, 2),
    "frequency_penalty": ParamSpec(F, 0, 2),
    "presence_penalty": ParamSpec(F, 0, 2),
    "stop": "not in the Workers AI schema for this model",
    "n": _ONE_CHOICE,
    "enable_thinking": _NO_THINK_SWITCH,
    "thinking_budget": _NO_THINK_SWITCH,
}
# https://developers.cloudflare.com/workers-ai/models/qwen3-30b-a3b-fp8/
CF_QWEN3: SpecTable = {
    **CF_QWQ,
    "temperature": ParamSpec(F, 0, 5, default=0.6),
    "top_p": ParamSpec(F, 0.001, 1),
    "max_tokens": ParamSpec(INT, 1, 32768, default=2000),
    "frequency_penalty": ParamSpec(F, -2, 2),
    "presence_penalty": ParamSpec(F, -2, 2),
    "enable_thinking": "not in the Workers AI schema for this model",
    "thinking_budget": "not in the Workers AI schema for this model",
}

# -- DeepInfra (OpenAI-compatible) -------------------------------------------------------------
# https://docs.deepinfra.com/api-reference/openai-chat-completions-1
DI_PARAMS: SpecTable = {
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
    "n": _ONE_CHOICE,
    "enable_thinking": _NO_THINK_SWITCH,
    "thinking_budget": _NO_THINK_SWITCH,
}
DI_GENERIC: SpecTable = {
    **DI_PARAMS,
    "enable_thinking": ParamSpec(B, wire="chat_template_kwargs.enable_thinking"),
    "thinking_budget": "DeepInfra documents no thinking budget",
}

# -- AI/ML API (OpenAI-compatible) -------------------------------------------------------------
# github.com/aimlapi/api-docs: qwen-QwQ-32B.json, qwen3-32b.json
AIML_QWQ: SpecTable = {
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
    "n": _ONE_CHOICE,
    "enable_thinking": _NO_THINK_SWITCH,
    "thinking_budget": _NO_THINK_SWITCH,
}
AIML_QWEN3: SpecTable = {
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
    "n": _ONE_CHOICE,
    "enable_thinking": ParamSpec(B, default=False),
    "thinking_budget": ParamSpec(INT, 1, None),
}

# -- any OpenAI-compatible server (vLLM, Ollama, llama.cpp, LM Studio, OpenRouter) ------------
OPENAI_GENERIC: SpecTable = {
    "temperature": ParamSpec(F, 0, 2),
    "top_p": ParamSpec(F, 0, 1, min_open=True),
    "top_k": ParamSpec(INT, -1, None),
    "min_p": ParamSpec(F, 0, 1),
    "max_tokens": ParamSpec(INT, 1, None),
    "seed": ParamSpec(INT, None, None),
    "repetition_penalty": ParamSpec(F, 0, None, min_open=True),
    "frequency_penalty": ParamSpec(F, -2, 2),
    "presence_penalty": ParamSpec(F, -2, 2),
    "stop": ParamSpec(L),
    "n": _ONE_CHOICE,
    "enable_thinking": ParamSpec(B, wire="chat_template_kwargs.enable_thinking"),
    "thinking_budget": "no standard field on OpenAI-compatible servers; pass extra_body={...} "
    "with your server's own field",
}

_CF_JSON: tuple[JsonMode, ...] = ("guided_json", "prompt")
_OAI_JSON: tuple[JsonMode, ...] = ("json_schema", "json_object", "prompt")

PRESETS: dict[str, Preset] = {
    "cloudflare": Preset(
        name="cloudflare",
        title="Cloudflare Workers AI",
        dialect="cloudflare",
        base_url="https://api.cloudflare.com/client/v4",
        key_env=("CLOUDFLARE_API_TOKEN", "CLOUDFLARE_AUTH_TOKEN"),
        key_required=True,
        default_model="@cf/qwen/qwq-32b",
        models={
            "@cf/qwen/qwq-32b": ModelInfo(
                "@cf/qwen/qwq-32b", CF_QWQ, think="open", price_in=0.66, price_out=1.00,
                context=24000, json_modes=_CF_JSON,
                note="max_tokens defaults to 256 on Workers AI: raise it, or thinking is cut off",
            ),
            "@cf/qwen/qwen3-30b-a3b-fp8": ModelInfo(
                "@cf/qwen/qwen3-30b-a3b-fp8", CF_QWEN3, think="auto", context=32768,
                json_modes=("json_schema", "prompt"),
            ),
        },
        generic_params=CF_QWQ,
        doc_url="https://developers.cloudflare.com/workers-ai/models/qwq-32b/",
    ),
    "deepinfra": Preset(
        name="deepinfra",
        title="DeepInfra",
        dialect="openai",
        base_url="https://api.deepinfra.com/v1/openai",
        key_env=("DEEPINFRA_TOKEN", "DEEPINFRA_API_KEY"),
        key_required=True,
        default_model="Qwen/QwQ-32B",
        models={
            "Qwen/QwQ-32B": ModelInfo("Qwen/QwQ-32B", DI_PARAMS, think="open", context=131072,
                                      json_modes=_OAI_JSON),
            "Qwen/QwQ-32B-Preview": ModelInfo(
                "Qwen/QwQ-32B-Preview", DI_PARAMS, think="auto", price_in=0.12, price_out=0.18,
                context=32768, json_modes=_OAI_JSON,
                note="the preview reasons in plain text without <think> tags",
            ),
        },
        generic_params=DI_GENERIC,
        doc_url="https://deepinfra.com/Qwen/QwQ-32B/api",
    ),
    "aimlapi": Preset(
        name="aimlapi",
        title="AI/ML API",
        dialect="openai",
        base_url="https://api.aimlapi.com/v1",
        key_env=("AIMLAPI_KEY", "AIML_API_KEY"),
        key_required=True,
        default_model="Qwen/QwQ-32B",
        models={
            "Qwen/QwQ-32B": ModelInfo("Qwen/QwQ-32B", AIML_QWQ, think="open", json_modes=_OAI_JSON),
            "alibaba/qwen3-32b": ModelInfo(
                "alibaba/qwen3-32b", AIML_QWEN3, think="auto", json_modes=_OAI_JSON,
                note="enable_thinking defaults to false: pass enable_thinking=True to see reasoning",
            ),
        },
        generic_params=AIML_QWQ,
        doc_url="https://docs.aimlapi.com/api-references/text-models-llm/alibaba-cloud/qwen3-32b",
    ),
    "openai": Preset(
        name="openai",
        title="Any OpenAI-compatible server",
        dialect="openai",
        base_url="http://localhost:8000/v1",
        key_env=("QWQ_API_KEY",),
        key_required=False,
        default_model="qwq",
        models={},
        generic_params=OPENAI_GENERIC,
        doc_url="https://platform.openai.com/docs/api-reference/chat",
    ),
}


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (case-insensitive), or a clear error listing them."""
    p = PRESETS.get(name.lower().strip())
    if p is None:
        raise ConfigurationError(
            f"Unknown provider {name!r}. Choose one of: {', '.join(PRESETS)} "
            "(use 'openai' with base_url=… for vLLM, Ollama, llama.cpp, LM Studio or OpenRouter)."
        )
    return p
