"""The session's spend and its budget cap (``%qwq budget 0.50``, ``qm.session.budget = 0.5``).

Spend is counted in memory, per provider and model, as each reply ends (whether or not the run
log is on): the provider's own figure where it sends one (DeepInfra's ``estimated_cost``),
else the preset's prices times the usage. A reply whose cost is unknown counts 0 and is
counted as such, so ``%qwq cost`` can say so. Replayed replies cost nothing.

"The session" is this Python process (the notebook's kernel): every front end and every
``Client`` in it shares one tally and one cap. A call in flight when the cap is reached still
finishes; the next one is refused before it is sent.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

from .errors import BudgetExceededError, QwqError, fmt_usd

__all__ = ["BudgetExceededError", "Tally", "cap", "check", "fmt_usd", "set_cap", "spent", "tally"]


@dataclass
class Line:
    """Totals for one (provider, model)."""

    replies: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float = 0.0
    reported: int = 0  # replies priced by the provider itself
    estimated: int = 0  # replies priced from the preset's prices
    unknown: int = 0  # replies with no price (counted as 0)
    counted: int = 0  # replies whose usage was counted here (the provider sent none)
    replayed: int = 0  # replayed from a recording (not charged)

    def add(self, row: dict[str, Any]) -> None:
        self.replies += 1
        if row.get("replayed"):
            self.replayed += 1
            return
        self.prompt_tokens += row.get("prompt_tokens") or 0
        self.completion_tokens += row.get("completion_tokens") or 0
        self.reasoning_tokens += row.get("reasoning_tokens") or 0
        if row.get("usage_counted"):
            self.counted += 1
        kind = row.get("cost_kind")
        cost = row.get("cost")
        if cost is None or kind is None:
            self.unknown += 1
            return
        self.cost += float(cost)
        if kind == "reported":
            self.reported += 1
        else:
            self.estimated += 1


@dataclass
class Tally:
    """Spend and tokens since this process started, per (provider, model)."""

    lines: dict[tuple[str, str], Line] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, row: dict[str, Any]) -> None:
        key = (str(row.get("provider") or ""), str(row.get("model") or ""))
        with self.lock:
            self.lines.setdefault(key, Line()).add(row)

    @property
    def cost(self) -> float:
        with self.lock:
            return sum(line.cost for line in self.lines.values())

    @property
    def replies(self) -> int:
        with self.lock:
            return sum(line.replies - line.replayed for line in self.lines.values())

    def snapshot(self) -> dict[tuple[str, str], Line]:
        with self.lock:
            return {k: Line(**vars(v)) for k, v in self.lines.items()}

    def clear(self) -> None:
        with self.lock:
            self.lines.clear()


tally = Tally()
_cap: float | None = None


def cap() -> float | None:
    """The cap in USD, or None (no cap)."""
    return _cap


def spent() -> float:
    """USD spent in this session (provider-reported where given, else preset prices)."""
    return tally.cost


def parse_cap(value: Any) -> float | None:
    """``0.5``, ``"0.50"``, ``"$0.50"`` → 0.5; ``None``, ``"off"``, ``"none"`` → None."""
    if value is None:
        return None
    if isinstance(value, str):
        s = value.strip().lower().lstrip("$")
        if s in ("off", "none", "no", ""):
            return None
        try:
            value = float(s)
        except ValueError:
            raise QwqError(f"The budget must be a sum in US dollars like 0.50, or off; "
                           f"got {value!r}.") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise QwqError(f"The budget must be a sum in US dollars like 0.50, or None; "
                       f"got {value!r}.")
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise QwqError(f"The budget must be 0 or more US dollars (e.g. 0.50); got {value!r}.")
    return v


def set_cap(value: Any) -> float | None:
    """Set (or with None / ``"off"`` lift) the session's cap; returns the new cap."""
    global _cap
    _cap = parse_cap(value)
    return _cap


def check() -> None:
    """Raise :class:`BudgetExceededError` when the session's spend has reached the cap."""
    c = _cap
    if c is None:
        return
    s = tally.cost
    if s >= c:
        raise BudgetExceededError(s, c, tally.replies)
