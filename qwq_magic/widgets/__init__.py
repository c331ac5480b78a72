"""Jupyter widgets: the chat panel (anywidget) and the sampling sliders (ipywidgets).

Imported lazily by ``qwq_magic`` (``qm.ChatPanel``, ``qm.ParamsPanel``): the core client never
imports a widget library.
"""

from __future__ import annotations

from .chat import ChatPanel
from .params import PRESETS, ParamsPanel, controls_for

__all__ = ["PRESETS", "ChatPanel", "ParamsPanel", "controls_for"]
