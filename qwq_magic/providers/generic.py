"""Any OpenAI-compatible server (vLLM, Ollama ``/v1``, llama.cpp, LM Studio, SGLang, TGI,
OpenRouter…): abilities unknown until tried, so JSON forms fall back one by one, and the server
lists what it serves at ``GET /models``."""

from __future__ import annotations

from ..params import ParamSpec, SpecTable
from . import openai_compat
from .base import ONE_CHOICE, Preset

F, INT, B, L = float, int, bool, list

PARAMS: SpecTable = {
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
    "n": ONE_CHOICE,
    "enable_thinking": ParamSpec(B, wire="chat_template_kwargs.enable_thinking"),
    "thinking_budget": "no standard field on OpenAI-compatible servers; pass extra_body={...} "
    "with your server's own field",
}


def url_hint(base_url: str) -> str:
    """Advice for a 404 from a server whose base URL may lack its API prefix."""
    if not base_url.rstrip("/").endswith(("/v1", "/v1/openai", "/api/v1", "/openai/v1")):
        return (f" The base URL {base_url} does not end in /v1: most OpenAI-compatible servers "
                f"serve under it — try {base_url.rstrip('/')}/v1.")
    return ""


PRESET = Preset(
    name="openai",
    title="Any OpenAI-compatible server",
    wire=openai_compat,
    base_url="http://localhost:8000/v1",
    key_env=("QWQ_API_KEY",),
    key_required=False,
    default_model="qwq",
    models={},
    generic_params=PARAMS,
    doc_url="https://platform.openai.com/docs/api-reference/chat",
    json_fallback=True,
    lists_models=True,
    url_hint=url_hint,
)
