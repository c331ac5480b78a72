"""Providers: one module per provider owns everything specific to it (endpoint, key variables,
parameter tables, wire dialect, error codes, JSON forms); :mod:`.presets` collects them."""

from .base import ModelInfo, Preset
from .presets import PRESETS, get_preset

__all__ = ["PRESETS", "ModelInfo", "Preset", "get_preset"]
