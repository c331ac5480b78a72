"""Slider specs for the sampling parameters, and ``ParamsPanel`` (ipywidgets sliders).

:func:`controls_for` is the one place that turns a provider's parameter table into control
specs; both :class:`ParamsPanel` and the chat panel draw from it, and both write the one shared
parameter object, ``qm.session.params`` (``None`` there means "the provider's default").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import QwqError
from ..params import DESCRIPTIONS, REGISTRY, ParamSpec
from ..providers import get_preset

if TYPE_CHECKING:
    from ..resolve import Choice

#: The parameters a panel shows, in display order (``n`` is not offered: one choice only).
CONTROL_NAMES: tuple[str, ...] = tuple(p.name for p in REGISTRY if p.control)

_KIND: dict[str, str] = {p.name: {float: "float", int: "int", bool: "bool", list: "text"}[p.kind]
                         for p in REGISTRY if p.control}

# Where a slider starts when the parameter is unset and the provider documents no default.
_NEUTRAL: dict[str, Any] = {p.name: p.neutral for p in REGISTRY if p.control}

# Upper ends for sliders whose documented range is open.
_OPEN_MAX: dict[str, float] = {"top_k": 100, "repetition_penalty": 2.0, "min_p": 1.0,
                               "temperature": 2.0, "top_p": 1.0}
SEED_MAX = 2**31 - 1
TOKENS_MAX = 32768

#: Named parameter sets; :func:`preset_values` keeps what the current model supports.
PRESETS: dict[str, dict[str, Any]] = {
    "QwQ recommended": {"temperature": 0.6, "top_p": 0.95, "top_k": 40},
    "near-deterministic": {"temperature": 0.0, "seed": 0},
    "creative": {"temperature": 1.0, "top_p": 1.0},
}


def resolve(provider: str | Choice | None, model: str | None = None) -> Choice:
    """The choice a client would use (no network, no key needed): a :class:`Choice` as given,
    else the resolver's answer for these arguments, else the generic server's."""
    from ..resolve import Choice as _Choice
    from ..resolve import resolve as _resolve

    if isinstance(provider, _Choice):
        return provider
    try:
        return _resolve(provider, model=model, probe=False)
    except QwqError:
        preset = get_preset(provider or "openai")
        return _Choice(preset, model or preset.default_model, preset.base_url)


def _step(kind: str, lo: float, hi: float) -> float:
    if kind == "int":
        return 1
    return 0.001 if round(lo * 100, 6) % 1 or hi - lo <= 0.1 else 0.01


def _control(name: str, spec: ParamSpec | str | None, context: int | None) -> dict[str, Any]:
    kind = _KIND[name]
    base: dict[str, Any] = {"name": name, "kind": kind, "description": DESCRIPTIONS.get(name, ""),
                            "min": None, "max": None, "step": None, "default": None,
                            "initial": _NEUTRAL[name], "range": "", "supported": True,
                            "reason": ""}
    if not isinstance(spec, ParamSpec):
        return {**base, "supported": False,
                "reason": spec if isinstance(spec, str) and spec else "not supported here"}
    base["default"] = spec.default
    base["range"] = spec.describe()
    if kind in ("bool", "text"):
        if spec.default is not None:
            base["initial"] = spec.default
        return base
    lo, hi = spec.min, spec.max
    if name in ("max_tokens", "thinking_budget"):
        cap = context or TOKENS_MAX
        hi = cap if hi is None else min(hi, cap)
    elif name == "seed":
        hi = SEED_MAX if hi is None else min(hi, SEED_MAX)
        lo = 0 if lo is None else lo
    elif hi is None:
        hi = _OPEN_MAX.get(name, 100)
    if lo is None:
        lo = 0
    step = _step(kind, float(lo), float(hi))
    if spec.min_open:
        lo = lo + step
    if spec.max_open:
        hi = hi - step
    if kind == "int":
        lo, hi = int(lo), int(hi)
    else:
        lo, hi = float(lo), float(hi)
    initial = spec.default if spec.default is not None else _NEUTRAL[name]
    base.update(min=lo, max=hi, step=step, initial=min(max(initial, lo), hi))
    return base


def controls_for(provider: str | Choice | None, model: str | None = None
                 ) -> list[dict[str, Any]]:
    """One control spec per sampling parameter for this provider and model.

    Each spec: ``name``, ``kind`` (``"float"``, ``"int"``, ``"bool"``, ``"text"``), ``min``,
    ``max``, ``step``, ``default`` (documented provider default or ``None``), ``initial`` (where
    an unset control rests), ``range`` (the documented range as text), ``description``,
    ``supported`` and ``reason`` (why not, when unsupported).
    """
    choice = resolve(provider, model)
    info = choice.preset.model_info(choice.model)
    return [_control(n, info.params.get(n), info.context) for n in CONTROL_NAMES]


def preset_values(preset: str, controls: list[dict[str, Any]]) -> dict[str, Any]:
    """``PRESETS[preset]`` restricted to supported parameters and clamped into their ranges."""
    specs = {c["name"]: c for c in controls if c["supported"]}
    out: dict[str, Any] = {}
    for k, v in PRESETS[preset].items():
        c = specs.get(k)
        if c is None:
            continue
        if c["min"] is not None:
            v = min(max(v, c["min"]), c["max"])
        out[k] = int(v) if c["kind"] == "int" else float(v) if c["kind"] == "float" else v
    return out


def presets_for(controls: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every preset, filtered for these controls (empty presets left out)."""
    out = {name: preset_values(name, controls) for name in PRESETS}
    return {k: v for k, v in out.items() if v}


def coerce(control: Mapping[str, Any], value: Any) -> Any:
    """A value from a UI control, as the parameter object stores it (``None``/``""`` unsets)."""
    if value is None or value == "":
        return None
    kind = control["kind"]
    if kind == "int":
        return round(float(value))
    if kind == "float":
        return float(value)
    if kind == "bool":
        return bool(value)
    if isinstance(value, list):
        return [str(s) for s in value] or None
    text = str(value).strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            return [str(s) for s in parsed] or None
    parts = [s.strip() for s in text.split(",")]
    return [s for s in parts if s] or None


def display_value(name: str, value: Any) -> Any:
    """A stored parameter as a UI control shows it (stop lists as comma-separated text)."""
    if name == "stop" and isinstance(value, list):
        return ", ".join(value)
    return value


# -- ipywidgets panel ------------------------------------------------------------------------


class ParamsPanel:
    """Sliders for every sampling parameter, linked both ways to ``session.params``.

    ``ParamsPanel()`` (or ``qm.ParamsPanel()``) displays in a notebook; moving a slider sets the
    session parameter (source ``"slider"``), ``%qwq set`` moves the slider, "↺" returns a
    parameter to the provider's default (unset). Controls are rebuilt when the provider or
    model changes; unsupported parameters are disabled with the reason as tooltip.
    """

    def __init__(self, session: Any = None, *, client: Any = None, provider: str | None = None,
                 model: str | None = None, base_url: str | None = None, api_key: Any = None,
                 account_id: str | None = None) -> None:
        if session is None:
            from ..state import session as default_session

            session = default_session
        self.session = session
        self.binding = Binding(session, client, provider=provider, model=model,
                               base_url=base_url, api_key=api_key, account_id=account_id)
        self.controls: list[dict[str, Any]] = []
        self.inputs: dict[str, Any] = {}  # name -> value widget (slider, checkbox, text)
        self.resets: dict[str, Any] = {}  # name -> "↺" button
        self.labels: dict[str, Any] = {}  # name -> "set"/"default" label
        self._widget: Any = None
        self._syncing = False
        session.observe(self._on_choice, names=list(CHOICE_TRAITS))
        session.params.observe(self._on_param, names=list(CONTROL_NAMES))

    # -- building ----------------------------------------------------------------------------
    @property
    def widget(self) -> Any:
        """The ipywidgets ``VBox`` (built on first use)."""
        if self._widget is None:
            import ipywidgets as w

            self._widget = w.VBox(layout=w.Layout(width="100%"))
            self._widget.add_class("qwq-params")
            self._build()
        return self._widget

    def _build(self) -> None:
        import ipywidgets as w

        choice, _configured = self.binding.shown()
        self.controls = controls_for(choice)
        self.inputs, self.resets, self.labels = {}, {}, {}
        title = w.HTML(f"<b>Sampling</b> · {_esc(choice.provider)} · {_esc(choice.model)}")
        buttons = []
        for pname, values in presets_for(self.controls).items():
            b = w.Button(description=pname, tooltip=_fmt(values),
                         layout=w.Layout(width="auto"))
            b.on_click(self._preset_handler(values))
            buttons.append(b)
        reset_all = w.Button(description="↺ all defaults", layout=w.Layout(width="auto"),
                             tooltip="unset every parameter (provider defaults)")
        reset_all.on_click(lambda _b: self.session.params.update(
            dict.fromkeys(CONTROL_NAMES), source="slider"))
        rows = [title, w.HBox([*buttons, reset_all])]
        rows += [self._row(c) for c in self.controls]
        self._widget.children = rows

    def _row(self, c: dict[str, Any]) -> Any:
        import ipywidgets as w

        name = c["name"]
        tip = c["reason"] if not c["supported"] else f"{c['description']} ({c['range']})"
        common: dict[str, Any] = {"description": name, "tooltip": tip,
                                  "style": {"description_width": "140px"},
                                  "layout": w.Layout(width="420px")}
        if not c["supported"]:
            box = w.Text(value="", placeholder=f"unsupported: {c['reason']}", disabled=True,
                         **common)
            self.inputs[name] = box
            row = w.HBox([box])
            row.add_class("qwq-control")
            return row
        kind = c["kind"]
        if kind == "float":
            fmt = ".3f" if c["step"] < 0.01 else ".2f"
            widget = w.FloatSlider(min=c["min"], max=c["max"], step=c["step"],
                                   value=c["initial"], continuous_update=False,
                                   readout_format=fmt, **common)
        elif kind == "int" and c["max"] - c["min"] > 100000:  # a seed: typed, not dragged
            widget = w.BoundedIntText(min=c["min"], max=c["max"], value=c["initial"], **common)
        elif kind == "int":
            widget = w.IntSlider(min=c["min"], max=c["max"], step=1, value=c["initial"],
                                 continuous_update=False, **common)
        elif kind == "bool":
            widget = w.Checkbox(value=bool(c["initial"]), indent=False, **common)
        else:
            widget = w.Text(value="", placeholder="comma-separated stop strings",
                            continuous_update=False, **common)
        reset = w.Button(description="↺", tooltip="use the provider default (unset)",
                         layout=w.Layout(width="36px"))
        label = w.HTML()
        self.inputs[name], self.resets[name], self.labels[name] = widget, reset, label
        widget.observe(self._widget_handler(c), names="value")
        reset.on_click(lambda _b, n=name: self.session.params.update({n: None}, source="slider"))
        self._show(name, getattr(self.session.params, name))
        row = w.HBox([widget, reset, label])
        row.add_class("qwq-control")
        return row

    def _preset_handler(self, values: dict[str, Any]) -> Callable[[Any], None]:
        return lambda _b: self.session.params.update(dict(values), source="slider")

    # -- syncing -----------------------------------------------------------------------------
    def _widget_handler(self, c: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
        def handler(change: dict[str, Any]) -> None:
            if self._syncing:  # a value we just received from the trait: never echo it
                return
            value = coerce(c, change["new"])
            if value == getattr(self.session.params, c["name"]):
                return
            self.session.params.update({c["name"]: value}, source="slider")

        return handler

    def _show(self, name: str, value: Any) -> None:
        """Move a control to the parameter's value (or its resting place when unset)."""
        widget = self.inputs.get(name)
        if widget is None or name not in self.resets:
            return
        c = next(c for c in self.controls if c["name"] == name)
        shown = c["initial"] if value is None else display_value(name, value)
        if c["kind"] == "text" and value is None:
            shown = ""
        self._syncing = True
        try:
            widget.value = shown
        finally:
            self._syncing = False
        self.resets[name].disabled = value is None
        if value is None:
            d = c["default"]
            note = (f"default ({display_value(name, d)})" if d is not None
                    else "server default")
        else:
            note = "set"
            lo, hi = c["min"], c["max"]
            if lo is not None and isinstance(value, (int, float)) and not lo <= value <= hi:
                note = f"set: {value} (outside {lo}–{hi})"
        self.labels[name].value = f"<span style='opacity:.7'>{_esc(note)}</span>"

    def _on_param(self, change: dict[str, Any]) -> None:
        if self._widget is not None:
            self._show(change["name"], change["new"])

    def _on_choice(self, change: dict[str, Any]) -> None:
        if self._widget is not None:
            self._build()

    def close(self) -> None:
        """Stop following the session and close the widgets."""
        self.session.unobserve(self._on_choice, names=list(CHOICE_TRAITS))
        self.session.params.unobserve(self._on_param, names=list(CONTROL_NAMES))
        if self._widget is not None:
            self._widget.close()

    def _repr_mimebundle_(self, **kw: Any) -> Any:
        return self.widget._repr_mimebundle_(**kw)

    def __repr__(self) -> str:
        try:
            label = self.binding.choice().label
        except QwqError:
            label = "no provider configured"
        return f"ParamsPanel({label})"


#: the session traits whose change may change what a panel is bound to
CHOICE_TRAITS = ("provider", "model", "base_url")


class Binding:
    """What a panel is bound to: a client given as ``client=``, the choice the provider
    keywords resolve to, or (neither) the session's current choice. The panels take exactly
    the keywords the API takes, and refuse both at once."""

    def __init__(self, session: Any, client: Any = None, **provider_kw: Any) -> None:
        from ..client import Client

        given = {k: v for k, v in provider_kw.items() if v is not None}
        if client is not None and given:
            raise TypeError(f"give client= or {', '.join(given)}=, not both")
        if client is not None and not isinstance(client, Client):
            raise TypeError(f"client= must be a qwq_magic.Client, not {type(client).__name__}")
        self.session = session
        self.bound = client
        self.provider_kw = given
        if given:
            self.client()  # a bad choice fails here, at once, with the resolver's message

    def client(self) -> Any:
        from ..resolve import client_for

        return client_for(self.bound, session=self.session, **self.provider_kw)

    def choice(self) -> Choice:
        """The bound choice; a :class:`~qwq_magic.ConfigurationError` when there is none."""
        from ..resolve import resolve as _resolve

        if self.bound is not None:
            return self.bound.choice  # type: ignore[no-any-return]
        if self.provider_kw:
            return _resolve(session=self.session, **self.provider_kw)
        return self.session.choice()  # type: ignore[no-any-return]

    def shown(self) -> tuple[Choice, bool]:
        """``(choice, configured)``: the bound choice, or — with none configured — the generic
        server's, so the panel can still show its controls."""
        from ..errors import ConfigurationError

        try:
            return self.choice(), True
        except ConfigurationError:
            return resolve(None), False


def _esc(s: Any) -> str:
    import html

    return html.escape(str(s))


def _fmt(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())
