"""The state one notebook session shares between ``%%qwq``, the chat panel and Python.

``qm.session.params`` is *the* parameter object: ``%qwq set`` writes it, the sliders of
``qm.ParamsPanel`` are linked to its traits, and every call made through the session reads it.
``qm.session.client()`` is the client for the current provider choice (``%qwq use``).
"""

from __future__ import annotations

from typing import Any

import traitlets as t

from .errors import ParameterError
from .params import KINDS, PARAM_NAMES, REGISTRY, SamplingParams, normalize_names
from .resolve import LOCAL_PORTS, Choice, resolve


def _trait(kind: type) -> t.TraitType[Any, Any]:
    if kind is float:
        return t.Float(None, allow_none=True)
    if kind is int:
        return t.Int(None, allow_none=True)
    if kind is bool:
        return t.Bool(None, allow_none=True)
    return t.List(t.Unicode(), default_value=None, allow_none=True)


_KIND_WORDS = {float: "a number", int: "a whole number", bool: "true or false",
               list: "a list of strings", str: "a string"}


class _ParamTraits(t.HasTraits):
    """Session sampling parameters as traits (``None`` = not set: provider default).

    One trait per parameter of :data:`qwq_magic.params.REGISTRY` (see :class:`Params`).
    ``sources`` records where each value came from (``"%qwq set"``, ``"slider"``,
    ``"config"``…) for ``%qwq params``.
    """

    def __init__(self, **kw: Any) -> None:
        super().__init__()
        self.sources: dict[str, str] = {}
        self.update(kw, source="init")

    def update(self, values: dict[str, Any], source: str = "python") -> None:
        """Set several parameters at once (names may be aliases; ``None`` unsets)."""
        values = normalize_names(values)
        with self.hold_trait_notifications():
            for k, v in values.items():
                if isinstance(v, int) and not isinstance(v, bool) and KINDS[k] is float:
                    v = float(v)
                try:
                    setattr(self, k, v)
                except t.TraitError:  # a value of the wrong type, said in one line
                    raise ParameterError(
                        f"{k}={v!r:.60} is not valid: {k} takes "
                        f"{_KIND_WORDS.get(KINDS[k], KINDS[k].__name__)} (none unsets it).",
                        param=k, value=v) from None
                if v is None:
                    self.sources.pop(k, None)
                else:
                    self.sources[k] = source

    def reset(self) -> None:
        self.update(dict.fromkeys(PARAM_NAMES), source="reset")

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in PARAM_NAMES if getattr(self, k) is not None}

    def to_sampling(self) -> SamplingParams:
        return SamplingParams.from_kwargs(**self.as_dict())

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items())
        return f"Params({inner})"


#: the session's parameter object's class: one trait per registered parameter
Params: type[_ParamTraits] = type(
    "Params", (_ParamTraits,),
    {"__module__": __name__, "__doc__": _ParamTraits.__doc__,
     **{p.name: _trait(p.kind) for p in REGISTRY}})


class Session(t.HasTraits):
    """Current provider choice, shared parameters and named conversations.

    The choice (``provider``, ``model``, ``base_url``, ``client_kwargs``) is one input of the
    resolver (:func:`qwq_magic.resolve.resolve`); :meth:`choice` is what it resolves to now.
    """

    provider = t.Unicode(None, allow_none=True)
    model = t.Unicode(None, allow_none=True)
    base_url = t.Unicode(None, allow_none=True)
    #: look for a local server on ``local_ports`` when nothing names a provider
    autodetect = t.Bool(True)
    local_ports = t.List(t.Int(), [p for p, _ in LOCAL_PORTS])

    def __init__(self) -> None:
        super().__init__()
        self.params = Params()
        self.conversations: dict[str, list[dict[str, Any]]] = {}
        self.client_kwargs: dict[str, Any] = {}  # api_key=, account_id=, timeout= … (%qwq use)
        self._clients: dict[tuple[Any, ...], Any] = {}
        self.last: Any = None  # the last Completion from any front end
        #: the session-wide system prompt (``%qwq set system="…"``); ``--system`` wins per cell
        self.system: str | None = None

    def choice(self, provider: str | None = None, *, model: str | None = None,
               base_url: str | None = None, api_key: Any = None,
               account_id: str | None = None, probe: bool | None = None) -> Choice:
        """What the session's choice (plus these overrides) resolves to."""
        return resolve(provider, model=model, base_url=base_url, api_key=api_key,
                       account_id=account_id, session=self, probe=probe)

    def use(self, provider: str | None, *, model: str | None = None, base_url: str | None = None,
            **client_kwargs: Any) -> Any:
        """Choose the provider (validated at once by building its client).

        A recording or replay in progress (:meth:`record`) carries over to the new choice.
        """
        old = (self.provider, self.model, self.base_url, dict(self.client_kwargs))
        self._close_clients()
        self.provider, self.model, self.base_url = provider, model, base_url
        if self.cassette is not None:
            client_kwargs.setdefault("cassette", self.cassette)
        self.client_kwargs = client_kwargs
        try:
            return self.client()
        except Exception:
            self.provider, self.model, self.base_url, self.client_kwargs = old
            raise

    def client(self, provider: str | None = None, *, model: str | None = None,
               base_url: str | None = None, api_key: Any = None,
               account_id: str | None = None) -> Any:
        """The client for the current choice, or for a one-call override (``%%qwq -p/-m``).

        An override of the provider keeps only the session's cassette, not its key, URL or
        timeout; one of the model or URL keeps the rest of the choice. Clients are reused per
        resolved choice.
        """
        from .client import Client

        choice = self.choice(provider, model=model, base_url=base_url, api_key=api_key,
                             account_id=account_id)
        same = self.provider is None or self.provider.lower() == choice.provider
        kw = {k: v for k, v in self.client_kwargs.items()
              if k not in ("api_key", "account_id") and (same or k == "cassette")}
        key = (choice.provider, choice.model, choice.base_url, choice.api_key,
               choice.account_id, tuple(sorted((k, id(v)) for k, v in kw.items())))
        if key not in self._clients:
            self._clients[key] = Client(choice=choice, params=self.params, **kw)
        return self._clients[key]

    def _close_clients(self) -> None:
        for c in self._clients.values():
            c.close()
        self._clients.clear()

    def record(self, path: str, mode: str = "record", speed: float | None = None,
               exhausted: str = "cycle", new: bool = False) -> Any:
        """Route every call through a cassette (``%qwq record PATH`` / ``%qwq replay PATH``).

        ``mode``: ``"record"`` (appends to the file; ``new=True`` starts it afresh),
        ``"replay"`` or ``"auto"``; ``speed`` 0 replays at once (unset: ``QWQ_REPLAY_SPEED``,
        else 1); ``exhausted``: after the last take of a request ``"cycle"`` or ``"raise"``.
        """
        from .cassette import Cassette

        return self._route(Cassette(path, mode=mode, speed=speed, exhausted=exhausted, new=new))

    def _route(self, cassette: Any) -> Any:
        self._close_clients()
        self.client_kwargs = {**self.client_kwargs, "cassette": cassette}
        return cassette

    def replay(self, path: str, speed: float | None = None, exhausted: str = "cycle") -> Any:
        if str(path).endswith(".ipynb"):
            return self.replay_notebook(path, speed=speed, exhausted=exhausted)
        return self.record(path, mode="replay", speed=speed, exhausted=exhausted)

    def replay_notebook(self, path: str, speed: float | None = None,
                        exhausted: str = "cycle") -> Any:
        """Replay the replies stored in a saved, executed notebook's outputs (``%qwq replay
        lesson.ipynb``), with their original timing; ``self.cassette.pause()`` / ``.resume()``
        hold and release it, ``self.cassette.speed = 2`` speeds it up."""
        from .cassette import from_notebook

        return self._route(from_notebook(path, speed=speed, exhausted=exhausted))

    def stop_recording(self) -> None:
        """Back to live calls."""
        self._close_clients()
        self.client_kwargs = {k: v for k, v in self.client_kwargs.items() if k != "cassette"}

    @property
    def budget(self) -> float | None:
        """The session's spending cap in USD, None for none (``%qwq budget 0.50``)."""
        from .budget import cap

        return cap()

    @budget.setter
    def budget(self, value: Any) -> None:
        from .budget import set_cap

        set_cap(value)

    @property
    def cassette(self) -> Any:
        return self.client_kwargs.get("cassette")

    def reset(self) -> None:
        """Forget the provider choice, parameters and conversations."""
        self._close_clients()
        self.provider = self.model = self.base_url = None
        self.system = None
        self.client_kwargs = {}
        self.params.reset()
        self.conversations.clear()


session = Session()
