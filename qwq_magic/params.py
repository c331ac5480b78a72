"""Sampling parameters and each provider's documented ranges and defaults.

One table per provider/model, taken from the provider's API documents (see docs/providers.md).
:func:`validate` refuses an out-of-range or unsupported value before any request is made, with
an error naming the parameter, the value, the provider and the allowed range. Nothing is dropped
silently.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ParameterError


@dataclass(frozen=True, slots=True)
class Param:
    """One sampling parameter, declared once. The magic's flags, the session's traits, the
    sliders, :class:`SamplingParams` and the docs table are all derived from :data:`REGISTRY`;
    adding a parameter is one line here plus its entries in the provider tables."""

    name: str
    kind: type  # float, int, bool or list (of strings)
    description: str
    #: where a slider rests while the parameter is unset and the provider documents no default
    neutral: Any = None
    #: the ``%%qwq`` option (``--top-p``); bool parameters also get ``--no-…``; None: no flag
    flag: str | None = None
    aliases: tuple[str, ...] = ()
    #: offered as a control in the panels
    control: bool = True


#: Every sampling parameter qwq_magic knows, in display order.
REGISTRY: tuple[Param, ...] = (
    Param("temperature", float, "randomness of sampling; QwQ's card suggests 0.6 (0 = greedy, "
          "which makes QwQ repeat itself)", 1.0, "--temperature"),
    Param("top_p", float, "nucleus sampling: keep the smallest set of tokens whose probability "
          "sums to top_p", 1.0, "--top-p"),
    Param("top_k", int, "sample only from the k most likely tokens", 40, "--top-k"),
    Param("min_p", float, "drop tokens less likely than min_p × the most likely one", 0.0,
          "--min-p"),
    Param("max_tokens", int, "cap on generated tokens, reasoning included", 4096, "--max-tokens",
          aliases=("max_completion_tokens", "max_new_tokens")),
    Param("seed", int, "fixed seed for reproducible sampling", 0, "--seed"),
    Param("repetition_penalty", float, "penalise tokens already present (1 = off)", 1.0,
          "--repetition-penalty"),
    Param("frequency_penalty", float, "penalise tokens by how often they appeared", 0.0,
          "--frequency-penalty"),
    Param("presence_penalty", float, "penalise tokens that appeared at all", 0.0,
          "--presence-penalty"),
    Param("stop", list, "strings that end generation", "", "--stop", aliases=("stop_sequences",)),
    Param("n", int, "number of choices", None, None, control=False),
    Param("enable_thinking", bool, "Qwen3 hybrid models: think before answering", False,
          "--thinking", aliases=("thinking",)),
    Param("thinking_budget", int, "Qwen3: cap on reasoning tokens (needs enable_thinking)", 4096,
          "--thinking-budget"),
)

BY_NAME: dict[str, Param] = {p.name: p for p in REGISTRY}
PARAM_NAMES: tuple[str, ...] = tuple(BY_NAME)
#: Other spellings users type, mapped onto ours.
ALIASES: dict[str, str] = {a: p.name for p in REGISTRY for a in p.aliases}
DESCRIPTIONS: dict[str, str] = {p.name: p.description for p in REGISTRY}
KINDS: dict[str, type] = {p.name: p.kind for p in REGISTRY}


def registry_markdown() -> str:
    """The parameter table of docs/providers.md, derived from :data:`REGISTRY`."""
    rows = ["| parameter | kind | `%%qwq` flag | what it does |", "|---|---|---|---|"]
    for p in REGISTRY:
        flag = f"`{p.flag}`" + (f" / `--no-{p.flag[2:]}`" if p.kind is bool and p.flag else "") \
            if p.flag else "—"
        kind = "list of strings" if p.kind is list else p.kind.__name__
        rows.append(f"| `{p.name}` | {kind} | {flag} | {p.description} |")
    return "\n".join(rows)


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """What one provider accepts for one parameter."""

    kind: type  # float, int, bool or list (stop)
    min: float | None = None
    max: float | None = None
    min_open: bool = False  # True: min itself is not allowed
    max_open: bool = False
    default: Any = None  # the provider's documented default (None: not documented)
    wire: str | None = None  # name on the wire; dotted for nesting ("chat_template_kwargs.x")
    max_items: int | None = None  # for stop

    def describe(self) -> str:
        """The allowed range as people read it: ``0–5``, ``> 0``, ``1–50 (integer)``…"""
        if self.kind is bool:
            return "true or false"
        if self.kind is list:
            n = f"up to {self.max_items} " if self.max_items else ""
            return f"a string or a list of {n}strings"
        lo, hi = self.min, self.max
        what = " (integer)" if self.kind is int else ""
        if lo is not None and hi is not None:
            left = "(" if self.min_open else ""
            right = ")" if self.max_open else ""
            if not left and not right:
                return f"{_num(lo)}–{_num(hi)}{what}"
            return f"{left or '['}{_num(lo)}, {_num(hi)}{right or ']'}{what}"
        if lo is not None:
            return f"{'>' if self.min_open else '≥'} {_num(lo)}{what}"
        if hi is not None:
            return f"{'<' if self.max_open else '≤'} {_num(hi)}{what}"
        return "any number" if self.kind is float else "any integer"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


# Unsupported parameters map to the reason, shown to the user.
Unsupported = str
SpecTable = Mapping[str, ParamSpec | Unsupported]


class SamplingParams:
    """A set of sampling parameters; ``None`` means "not set" (the provider's default applies).

    ``SamplingParams(temperature=0.6, max_tokens=512)``; its attributes are the names in
    :data:`REGISTRY` (aliases accepted, unknown names refused).
    """

    __slots__ = (*PARAM_NAMES, "extra")

    if TYPE_CHECKING:
        def __getattr__(self, name: str) -> Any: ...

    def __init__(self, extra: dict[str, Any] | None = None, **kw: Any) -> None:
        values = normalize_names(kw)
        for name in PARAM_NAMES:
            object.__setattr__(self, name, values.get(name))
        self.extra: dict[str, Any] = dict(extra or {})

    def as_dict(self) -> dict[str, Any]:
        """Only the parameters that are set."""
        return {k: v for k in PARAM_NAMES if (v := getattr(self, k)) is not None}

    @classmethod
    def from_kwargs(cls, **kw: Any) -> SamplingParams:
        return cls(**kw)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, SamplingParams) and self.as_dict() == other.as_dict()
                and self.extra == other.extra)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items())
        return f"SamplingParams({inner})"


def normalize_names(params: Mapping[str, Any]) -> dict[str, Any]:
    """Map aliases onto canonical names; refuse unknown names (with a suggestion)."""
    out: dict[str, Any] = {}
    for k, v in params.items():
        name = ALIASES.get(k.replace("-", "_"), k.replace("-", "_"))
        if name not in PARAM_NAMES:
            raise ParameterError(
                f"Unknown parameter {k!r}. Known parameters: {', '.join(PARAM_NAMES)}"
                + _suggest(name),
                param=k,
                value=v,
            )
        if name in out and v is not None and out[name] is not None and out[name] != v:
            raise ParameterError(
                f"Parameter {name!r} given twice (as {k!r} too) with different values.",
                param=name,
                value=v,
            )
        if v is not None or name not in out:
            out[name] = v
    return out


def _suggest(name: str) -> str:
    import difflib

    m = difflib.get_close_matches(name, PARAM_NAMES, n=1)
    return f" (did you mean {m[0]!r}?)" if m else ""


def _coerce(name: str, value: Any, spec: ParamSpec, where: str) -> Any:
    """Check the type; accept 5.0 for an integer and a single string for stop."""
    bad = ParameterError(
        f"{name}={value!r} is not valid for {where}: expected {spec.describe()}.",
        param=name,
        value=value,
        provider=where,
        allowed=spec.describe(),
    )
    if spec.kind is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if spec.kind is list:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(s, str) for s in value):
            raise bad
        if spec.max_items is not None and len(value) > spec.max_items:
            raise ParameterError(
                f"stop has {len(value)} strings; {where} allows at most {spec.max_items}.",
                param=name,
                value=value,
                provider=where,
                allowed=spec.describe(),
            )
        return list(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad
    if isinstance(value, float) and not math.isfinite(value):
        raise bad
    if spec.kind is int:
        if isinstance(value, float):
            if not value.is_integer():
                raise bad
            value = int(value)
        return value
    return float(value) if isinstance(value, int) else value


def check_range(name: str, value: Any, spec: ParamSpec, where: str) -> Any:
    """Type- and range-check one value against a spec; return the value to send."""
    value = _coerce(name, value, spec, where)
    if spec.kind in (int, float):
        lo, hi = spec.min, spec.max
        low_bad = lo is not None and (value < lo or (spec.min_open and value == lo))
        high_bad = hi is not None and (value > hi or (spec.max_open and value == hi))
        if low_bad or high_bad:
            dflt = f", default {_num(spec.default)}" if spec.default is not None else ""
            raise ParameterError(
                f"{name}={_num(value)} is out of range for {where}: allowed {spec.describe()}{dflt}.",
                param=name,
                value=value,
                provider=where,
                allowed=spec.describe(),
            )
    return value


def validate(params: Mapping[str, Any], table: SpecTable, where: str) -> dict[str, Any]:
    """Validate canonical parameters against a provider table.

    Returns ``{wire_name: value}`` ready for the request body (dotted wire names are nested by
    the caller). ``where`` names the provider and model in messages, e.g.
    ``"cloudflare (@cf/qwen/qwq-32b)"``.
    """
    params = normalize_names(params)
    out: dict[str, Any] = {}
    for name, value in params.items():
        if value is None:
            continue
        spec = table.get(name)
        if spec is None or isinstance(spec, str):
            supported = [k for k, v in table.items() if isinstance(v, ParamSpec)]
            reason = f" ({spec})" if isinstance(spec, str) and spec else ""
            raise ParameterError(
                f"{name} is not supported by {where}{reason}. "
                f"Supported: {', '.join(supported)}.",
                param=name,
                value=value,
                provider=where,
                allowed="not supported",
            )
        out[spec.wire or name] = check_range(name, value, spec, where)
    budget = params.get("thinking_budget")
    if budget is not None and params.get("enable_thinking") is not True:
        raise ParameterError(
            f"thinking_budget={budget} only takes effect with enable_thinking=True on {where}; "
            "set enable_thinking=True (or --thinking) too.",
            param="thinking_budget",
            value=budget,
            provider=where,
            allowed="with enable_thinking=True",
        )
    return out


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Turn dotted wire names into nested objects: ``{"a.b": 1}`` → ``{"a": {"b": 1}}``."""
    out: dict[str, Any] = {}
    for k, v in flat.items():
        parts = k.split(".")
        d = out
        for p in parts[:-1]:
            d = d.setdefault(p, {})
        d[parts[-1]] = v
    return out


def defaults_of(table: SpecTable) -> dict[str, Any]:
    """The provider's documented defaults, for display (``%qwq params``, the sliders)."""
    return {k: v.default for k, v in table.items() if isinstance(v, ParamSpec) and v.default is not None}
