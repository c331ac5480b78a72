"""Provider presets and wire dialects."""

from .presets import PRESETS, ModelInfo, Preset, get_preset

__all__ = ["PRESETS", "ModelInfo", "Preset", "get_preset"]
