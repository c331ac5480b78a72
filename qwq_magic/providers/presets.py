"""The registry of providers: one module each (``cloudflare``, ``deepinfra``, ``aimlapi``,
``generic``), collected here under their preset names."""

from __future__ import annotations

from ..errors import ConfigurationError
from . import aimlapi, cloudflare, deepinfra, generic
from .base import JsonMode, ModelInfo, Preset

__all__ = ["PRESETS", "JsonMode", "ModelInfo", "Preset", "get_preset"]

PRESETS: dict[str, Preset] = {
    p.name: p for p in (cloudflare.PRESET, deepinfra.PRESET, aimlapi.PRESET, generic.PRESET)
}


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (case-insensitive), or a clear error listing them."""
    p = PRESETS.get(name.lower().strip()) if isinstance(name, str) else None
    if p is None:
        raise ConfigurationError(
            f"Unknown provider {name!r}. Choose one of: {', '.join(PRESETS)} "
            "(use 'openai' with base_url=… for vLLM, Ollama, llama.cpp, LM Studio or OpenRouter)."
        )
    return p
