"""What every provider is: its endpoint, key variables, models, parameter tables, prices, and the
rules that differ between providers (wire dialect, error codes, JSON wire forms).

Core modules ask a :class:`Preset` (``preset.url(...)``, ``preset.is_not_found(...)``,
``preset.json_forms(model)``…); they never compare a provider's name. Each provider's module
(``cloudflare.py``, ``deepinfra.py``, ``aimlapi.py``, ``generic.py``) builds its ``PRESET``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ..events import Event
from ..params import SpecTable
from ..reasoning import ThinkMode, think_mode_for

JsonMode = Literal["guided_json", "json_schema", "json_object", "vllm_guided_json",
                   "structured_outputs", "prompt"]

NO_THINK_SWITCH = "QwQ always thinks; its reasoning cannot be switched off"
ONE_CHOICE = "qwq_magic streams a single choice"


class Wire(Protocol):
    """A wire dialect module: pure functions that build the HTTP call and read the reply."""

    def url(self, base_url: str, model: str, account_id: str | None = None) -> str: ...

    def body(self, model: str, messages: list[dict[str, Any]], params: dict[str, Any], *,
             stream: bool, response_format: dict[str, Any] | None = None,
             tools: list[dict[str, Any]] | None = None,
             extra: dict[str, Any] | None = None) -> dict[str, Any]: ...

    def parse_chunk(self, obj: dict[str, Any], out: list[Event]) -> None: ...

    def raw_url(self, base_url: str, model: str, account_id: str | None = None) -> str: ...

    def raw_body(self, model: str, prompt: str, params: dict[str, Any], *,
                 stream: bool) -> dict[str, Any]: ...


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
    """A provider: where requests go, how they authenticate, which models it serves, and the
    rules in which it differs from the others."""

    name: str
    wire: Wire
    base_url: str
    key_env: tuple[str, ...]
    key_required: bool
    default_model: str
    models: dict[str, ModelInfo] = field(default_factory=dict)
    generic_params: SpecTable = field(default_factory=dict)  # for models not listed
    doc_url: str = ""
    title: str = ""
    #: the variable holding the account id, for providers whose URL needs one
    account_env: str | None = None
    #: provider error codes that mean "no such model" (besides HTTP 404)
    not_found_codes: frozenset[Any] = frozenset()
    #: provider error codes after which waiting does not help (a quota used up for the day)
    final_codes: frozenset[Any] = frozenset()
    #: JSON wire forms: whether ``json_schema`` is sent bare (not ``{name, schema, strict}``)
    json_schema_bare: bool = False
    #: whether a request with a JSON form may stream
    json_streams: bool = True
    #: a server that refuses one JSON form gets the next (generic servers, unknown abilities)
    json_fallback: bool = False
    #: where ``%qwq models`` looks beyond the listed models (``GET {base_url}/models``)
    lists_models: bool = False
    #: turns a base URL the server refused with 404 into advice (e.g. a missing ``/v1``)
    url_hint: Callable[[str], str] | None = None

    @property
    def hosted(self) -> bool:
        """A hosted service (a key is required), as opposed to any server at any URL."""
        return self.key_required

    def model_info(self, model: str) -> ModelInfo:
        """The listed model, or a generic entry built from the preset's defaults."""
        info = self.models.get(model)
        if info is not None:
            return info
        return ModelInfo(id=model, params=self.generic_params, think=think_mode_for(model))

    def json_forms(self, model: str) -> tuple[JsonMode, ...]:
        """The JSON wire forms to try for ``model``, best first."""
        return self.model_info(model).json_modes

    def is_not_found(self, status: int, code: Any) -> bool:
        return status == 404 or code in self.not_found_codes

    def is_final(self, code: Any) -> bool:
        """An error code after which a retry cannot help."""
        return code in self.final_codes
