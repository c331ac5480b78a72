"""Knowing the server behind an OpenAI-compatible URL: llama.cpp, llama-cpp-python, vLLM, Ollama,
LM Studio, SGLang or TGI.

The generic ``openai`` preset talks to all of them, but they differ in what they accept and what
they ignore: llama.cpp calls it ``repeat_penalty``; llama-cpp-python ignores
``chat_template_kwargs`` (so ``enable_thinking`` does nothing) and refuses
``response_format: json_schema`` with HTTP 500 but enforces ``json_object`` with a ``schema``;
Ollama's ``/v1`` drops ``top_k``; TGI wants ``{"type": "json", "value": schema}``.

:func:`detect` asks once per base URL with a few cheap probes (short timeouts, an overall
budget, cached; never long on a call's path) and returns a frozen :class:`ServerInfo`. The rest
are pure functions of it: :func:`spec_table` adapts a parameter table (renames, refusals),
:func:`adapt_body` the request body, :func:`json_modes` / :func:`wire_form` choose the JSON form
that enforces a schema there, :func:`think_mode` says whether the template opens ``<think>``,
:func:`describe` says in one line what was found (for ``%qwq use``).

The probing itself is sans-I/O (:func:`probe_plan` yields requests, receives answers); the
sync and async shells only move bytes.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from ..params import SpecTable
    from ..reasoning import ThinkMode
    from .base import ModelInfo, Preset

ServerKind = Literal["llama.cpp", "llama-cpp-python", "vllm", "ollama", "lmstudio", "sglang",
                     "tgi", "unknown"]

TITLES: dict[str, str] = {
    "llama.cpp": "llama.cpp server", "llama-cpp-python": "llama-cpp-python server",
    "vllm": "vLLM", "ollama": "Ollama", "lmstudio": "LM Studio", "sglang": "SGLang",
    "tgi": "Text Generation Inference", "unknown": "an OpenAI-compatible server",
}

#: JSON modes, and whether each puts a grammar on the output from its first token (True), only
#: after the reasoning (False), or it depends (None). See structured.py for how each is used.
JSON_FORMS: dict[str, str] = {
    "json_schema": 'response_format {"type": "json_schema", "json_schema": {...}}',
    "json_object_schema": 'response_format {"type": "json_object", "schema": {...}} (llama.cpp)',
    "json_object": 'response_format {"type": "json_object"} + the schema in the prompt',
    "guided_json": "guided_json (Cloudflare Workers AI; legacy vLLM)",
    "vllm_guided_json": "guided_json (vLLM < 0.12)",
    "structured_outputs": 'structured_outputs {"json": ...} (vLLM ≥ 0.12)',
    "tgi_json": 'response_format {"type": "json", "value": {...}} (TGI)',
    "prompt": "the schema in the prompt only (not enforced)",
}


@dataclass(frozen=True)
class ServerInfo:
    """What the server behind a base URL is and how it behaves (see the module docstring)."""

    kind: ServerKind = "unknown"
    version: str | None = None
    base_url: str = ""
    models: tuple[str, ...] = ()
    chat_template: str | None = None
    #: the chat template opens ``<think>`` in the prompt (QwQ): the reply has no opening tag.
    #: None: the server does not say.
    opens_think: bool | None = None
    #: canonical parameter → the server's own name (``repetition_penalty`` → ``repeat_penalty``)
    renames: Mapping[str, str] = field(default_factory=dict)
    #: canonical parameter → why it is refused: the server accepts and ignores it
    ignored: Mapping[str, str] = field(default_factory=dict)
    #: where ``enable_thinking`` goes (dotted wire name), or None when it cannot be sent
    thinking_wire: str | None = "chat_template_kwargs.enable_thinking"
    #: JSON modes that enforce a schema there, best first (``prompt`` is always the last resort)
    json_forms: tuple[str, ...] = ("json_schema", "json_object")
    #: True: the grammar applies from the first token (no free reasoning before the JSON);
    #: False: after the reasoning (a reasoning parser); None: unknown
    grammar_from_start: bool | None = None
    #: usage arrives in the stream (with ``stream_options.include_usage``); None: unknown
    streams_usage: bool | None = True
    #: a reasoning parser the server runs (vLLM, SGLang), when it says
    reasoning_parser: str | None = None
    one_at_a_time: bool = False  # serves one request at a time (llama-cpp-python)
    notes: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return TITLES[self.kind]


# -- per-server facts (data) -------------------------------------------------------------------
_REPEAT = {"repetition_penalty": "repeat_penalty"}
_NO_KWARGS = ("{title} ignores chat_template_kwargs, so the chat template's enable_thinking "
              "switch never reaches the model; {fix}")

KNOWN: dict[str, ServerInfo] = {
    "llama.cpp": ServerInfo(
        "llama.cpp", renames=_REPEAT, json_forms=("json_schema", "json_object_schema"),
        grammar_from_start=True, streams_usage=True),
    "llama-cpp-python": ServerInfo(
        "llama-cpp-python", renames=_REPEAT,
        ignored={
            "enable_thinking": _NO_KWARGS.format(
                title="llama-cpp-python's server",
                fix="pick a chat template without thinking, or add '/no_think' to the prompt "
                "(Qwen3)"),
            "thinking_budget": "llama-cpp-python's server has no thinking budget",
        },
        thinking_wire=None, json_forms=("json_object_schema",), grammar_from_start=True,
        streams_usage=False, one_at_a_time=True,
        notes=("sends no usage in its stream", "serves one request at a time")),
    # vLLM enforces the standard json_schema in every version (guided_json was dropped in
    # 0.12 and is ignored there with HTTP 200, so it is never tried)
    "vllm": ServerInfo("vllm", json_forms=("json_schema", "json_object")),
    "ollama": ServerInfo(
        "ollama",
        ignored={p: f"Ollama's OpenAI-compatible API ignores {p}; set it in a Modelfile "
                 f"(PARAMETER {w}) or with `ollama run` /set parameter"
                 for p, w in (("top_k", "top_k"), ("min_p", "min_p"),
                              ("repetition_penalty", "repeat_penalty"))}
        | {"thinking_budget": "Ollama has no thinking budget"},
        thinking_wire="reasoning_effort", json_forms=("json_schema",)),
    "lmstudio": ServerInfo(
        "lmstudio", renames=_REPEAT,
        ignored={"min_p": "LM Studio's OpenAI-compatible API does not take min_p",
                 "enable_thinking": _NO_KWARGS.format(
                     title="LM Studio", fix="switch thinking in LM Studio's model settings"),
                 "thinking_budget": "LM Studio has no thinking budget"},
        thinking_wire=None, json_forms=("json_schema",), streams_usage=None),
    "sglang": ServerInfo("sglang", json_forms=("json_schema",)),
    "tgi": ServerInfo(
        "tgi",
        ignored={p: f"TGI's chat API does not take {p}"
                 for p in ("top_k", "min_p", "repetition_penalty", "enable_thinking",
                           "thinking_budget")},
        thinking_wire=None, json_forms=("tgi_json",), grammar_from_start=True),
    "unknown": ServerInfo("unknown", streams_usage=None),
}


# -- classifying probe answers (pure) ----------------------------------------------------------
@dataclass(frozen=True)
class Probe:
    """One request of the probe plan: ``path`` under the server root (or the base URL)."""

    method: str
    path: str
    body: Any = None
    under_base: bool = False  # relative to base_url (``/models``) instead of the root


Answer = tuple[int, Any]  # (HTTP status or 0 for no answer, decoded JSON or None)

_THINK_IN_PROMPT = re.compile(r"add_generation_prompt[\s\S]{0,400}?<think>", re.I)


def template_opens_think(template: str | None) -> bool | None:
    """Whether a chat template (Jinja, or an Ollama Go template) opens ``<think>`` in the
    generation prompt, as QwQ's and Qwen3-Thinking's do."""
    if not template:
        return None
    if _THINK_IN_PROMPT.search(template):
        return True
    # Ollama's Go templates end with the assistant turn: "<|im_start|>assistant\n<think>\n"
    tail = template.rstrip()[-200:]
    return "<think>" in tail and "</think>" not in tail


def _ids(models: Any) -> tuple[str, ...]:
    data = models.get("data") if isinstance(models, dict) else None
    if not isinstance(data, list):
        return ()
    return tuple(str(m["id"]) for m in data if isinstance(m, dict) and m.get("id"))


def _owner(models: Any) -> str:
    data = models.get("data") if isinstance(models, dict) else None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return str(data[0].get("owned_by") or "")
    return ""


def make_info(kind: str, *, version: str | None = None, base_url: str = "",
              models: tuple[str, ...] = (), chat_template: str | None = None,
              reasoning_parser: str | None = None, opens_think: bool | None = None
              ) -> ServerInfo:
    """The :class:`ServerInfo` for a kind of server, refined by what it reported."""
    base = KNOWN.get(kind, KNOWN["unknown"])
    kw: dict[str, Any] = {"version": version, "base_url": base_url, "models": models,
                          "chat_template": chat_template, "reasoning_parser": reasoning_parser}
    kw["opens_think"] = opens_think if opens_think is not None else template_opens_think(
        chat_template)
    if kind in ("vllm", "sglang") and reasoning_parser:
        kw["grammar_from_start"] = False  # the grammar starts after </think>
    return replace(base, **kw)


def _ok(a: Answer) -> Any:
    status, obj = a
    return obj if 200 <= status < 300 and isinstance(obj, dict) else None


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def _dict(obj: Any, key: str) -> dict[str, Any]:
    v = obj.get(key) if isinstance(obj, dict) else None
    return v if isinstance(v, dict) else {}


def probe_plan(base_url: str, model: str | None = None
               ) -> Generator[Probe, Answer, ServerInfo]:
    """The probes, one at a time: send each yielded :class:`Probe`, ``.send()`` its answer.

    The model list comes first: its ``owned_by`` names most servers, so one more probe gets
    the details; otherwise the server-specific probes are tried in turn.
    """
    models_ans = yield Probe("GET", "/models", under_base=True)
    models = _ok(models_ans)
    ids = _ids(models)
    owner = _owner(models).lower()
    model = model or (ids[0] if ids else None)
    order = ["llama.cpp", "vllm", "ollama", "sglang", "tgi", "lmstudio", "llama-cpp-python"]
    hint = {"me": "llama-cpp-python", "llamacpp": "llama.cpp", "vllm": "vllm",
            "sglang": "sglang", "library": "ollama", "ollama": "ollama",
            "organization_owner": "lmstudio", "tgi": "tgi"}.get(owner)
    if hint:
        order.remove(hint)
        order.insert(0, hint)
    for kind in order:
        info = yield from _probe_kind(kind, base_url, model, ids, hint == kind)
        if info is not None:
            return info
    if hint:  # the model list said so, even if the details did not come
        return make_info(hint, base_url=base_url, models=ids)
    return make_info("unknown", base_url=base_url, models=ids)


def _probe_kind(kind: str, base_url: str, model: str | None, ids: tuple[str, ...],
                hinted: bool) -> Generator[Probe, Answer, ServerInfo | None]:
    if kind == "llama.cpp":
        p = _ok((yield Probe("GET", "/props")))
        if p is not None and ({"default_generation_settings", "chat_template", "build_info",
                               "total_slots"} & set(p)):
            return make_info("llama.cpp", version=_str(p.get("build_info")),
                             base_url=base_url, models=ids,
                             chat_template=_str(p.get("chat_template")))
    elif kind == "vllm":
        v = _ok((yield Probe("GET", "/version")))
        if v is not None and isinstance(v.get("version"), str) and (hinted or len(v) == 1):
            return make_info("vllm", version=v["version"], base_url=base_url, models=ids)
    elif kind == "ollama":
        v = _ok((yield Probe("GET", "/api/version")))
        if v is not None and isinstance(v.get("version"), str):
            template, opens = None, None
            if model:
                show = _ok((yield Probe("POST", "/api/show", {"model": model})))
                if show is not None:
                    template = show.get("template") if isinstance(show.get("template"),
                                                                   str) else None
                    caps = show.get("capabilities")
                    if isinstance(caps, list) and "thinking" not in caps:
                        opens = False
            return make_info("ollama", version=v["version"], base_url=base_url, models=ids,
                             chat_template=template, opens_think=opens)
    elif kind == "sglang":
        s = _ok((yield Probe("GET", "/get_server_info")))
        if s is not None and ({"model_path", "tp_size", "reasoning_parser"} & set(s)):
            rp = s.get("reasoning_parser")
            return make_info("sglang", version=_str(s.get("version")),
                             base_url=base_url, models=ids,
                             reasoning_parser=rp if isinstance(rp, str) and rp else None)
    elif kind == "tgi":
        t = _ok((yield Probe("GET", "/info")))
        if t is not None and "model_id" in t:
            return make_info("tgi", version=_str(t.get("version")),
                             base_url=base_url, models=ids or (str(t["model_id"]),))
    elif kind == "lmstudio":
        m = _ok((yield Probe("GET", "/api/v0/models")))
        data = m.get("data") if m else None
        if isinstance(data, list) and any(isinstance(x, dict) and "arch" in x for x in data):
            return make_info("lmstudio", base_url=base_url, models=ids)
    elif kind == "llama-cpp-python":
        o = _ok((yield Probe("GET", "/openapi.json")))
        title = str(_dict(o, "info").get("title", ""))
        if "llama.cpp python" in title.lower() or "llama-cpp-python" in title.lower():
            return make_info("llama-cpp-python", version=_str(_dict(o, "info").get("version")),
                             base_url=base_url, models=ids)
    return None


# -- running the probes (thin shells) --------------------------------------------------------
PROBE_TIMEOUT = 1.0  # seconds per probe
PROBE_BUDGET = 3.0  # seconds for all of them: then the server is "unknown" (and cached)

_CACHE: dict[tuple[str, str | None], ServerInfo] = {}
_LOCK = threading.Lock()


def root_of(base_url: str) -> str:
    """The server root of a base URL: ``http://h:8000/v1`` → ``http://h:8000``."""
    u = base_url.rstrip("/")
    if u.endswith("/v1"):
        return u[:-3]
    parts = urlsplit(u)
    return f"{parts.scheme}://{parts.netloc}"


def _url(base_url: str, p: Probe) -> str:
    return base_url.rstrip("/") + p.path if p.under_base else root_of(base_url) + p.path


def _decode(resp: Any) -> Answer:
    try:
        return resp.status_code, resp.json()
    except ValueError:
        return resp.status_code, None


def cached(base_url: str, model: str | None = None) -> ServerInfo | None:
    """What :func:`detect` found for this URL (and model) earlier, without asking."""
    with _LOCK:
        return _CACHE.get((base_url.rstrip("/"), model)) or _CACHE.get((base_url.rstrip("/"),
                                                                          None))


def forget(base_url: str | None = None) -> None:
    """Drop what was learnt about one base URL (all of them with None): probe again next time."""
    with _LOCK:
        if base_url is None:
            _CACHE.clear()
        else:
            for k in [k for k in _CACHE if k[0] == base_url.rstrip("/")]:
                del _CACHE[k]


def _store(base_url: str, model: str | None, info: ServerInfo) -> ServerInfo:
    with _LOCK:
        _CACHE[(base_url.rstrip("/"), model)] = info
    return info


def detect(base_url: str, model: str | None = None, *, headers: Mapping[str, str] | None = None,
           timeout: float = PROBE_TIMEOUT, budget: float = PROBE_BUDGET,
           transport: Any = None) -> ServerInfo:
    """Probe the server behind ``base_url`` once (cached per base URL and model)."""
    hit = cached(base_url, model)
    if hit is not None:
        return hit
    import httpx

    plan = probe_plan(base_url.rstrip("/"), model)
    deadline = time.monotonic() + budget
    kw: dict[str, Any] = {"timeout": httpx.Timeout(timeout, connect=min(timeout, 0.5)),
                          "headers": dict(headers or {})}
    if transport is not None:
        kw["transport"] = transport
    with httpx.Client(**kw) as http:
        try:
            probe = next(plan)
            while True:
                if time.monotonic() > deadline:
                    return _store(base_url, model, make_info("unknown", base_url=base_url))
                try:
                    r = http.request(probe.method, _url(base_url, probe), json=probe.body)
                    ans = _decode(r)
                except httpx.HTTPError:
                    ans = (0, None)
                probe = plan.send(ans)
        except StopIteration as stop:
            return _store(base_url, model, stop.value)


async def adetect(base_url: str, model: str | None = None, *,
                  headers: Mapping[str, str] | None = None, timeout: float = PROBE_TIMEOUT,
                  budget: float = PROBE_BUDGET, transport: Any = None) -> ServerInfo:
    """The async twin of :func:`detect` (same cache)."""
    hit = cached(base_url, model)
    if hit is not None:
        return hit
    import httpx

    plan = probe_plan(base_url.rstrip("/"), model)
    deadline = time.monotonic() + budget
    kw: dict[str, Any] = {"timeout": httpx.Timeout(timeout, connect=min(timeout, 0.5)),
                          "headers": dict(headers or {})}
    if transport is not None:
        kw["transport"] = transport
    async with httpx.AsyncClient(**kw) as http:
        try:
            probe = next(plan)
            while True:
                if time.monotonic() > deadline:
                    return _store(base_url, model, make_info("unknown", base_url=base_url))
                try:
                    r = await http.request(probe.method, _url(base_url, probe), json=probe.body)
                    ans = _decode(r)
                except httpx.HTTPError:
                    ans = (0, None)
                probe = plan.send(ans)
        except StopIteration as stop:
            return _store(base_url, model, stop.value)


def for_client(client: Any, model: str | None = None) -> ServerInfo | None:
    """What is behind a :class:`~qwq_magic.Client`'s URL (probed once, with its key), or None
    for hosted presets. The one call front ends and the request path need."""
    if not detects(client.preset):
        return None
    return detect(client.base_url, model or client.model, headers=client._auth_headers())


async def afor_client(client: Any, model: str | None = None) -> ServerInfo | None:
    """The async twin of :func:`for_client`."""
    if not detects(client.preset):
        return None
    return await adetect(client.base_url, model or client.model,
                         headers=client._auth_headers())


def detects(preset: Preset) -> bool:
    """Whether calls through this preset should know their server (a preset for any server at
    any URL; hosted presets are known already)."""
    return not preset.hosted


# -- adapting requests (pure) ----------------------------------------------------------------
def spec_table(info: ServerInfo | None, table: SpecTable) -> SpecTable:
    """``table`` adapted to the server: renamed wire names, known-ignored parameters refused
    (the reason is shown by :func:`qwq_magic.params.validate` as a ParameterError)."""
    if info is None:
        return table
    from ..params import ParamSpec

    out: dict[str, ParamSpec | str] = dict(table)
    for name, wire in info.renames.items():
        spec = out.get(name)
        if isinstance(spec, ParamSpec):
            out[name] = replace(spec, wire=wire)
    spec = out.get("enable_thinking")
    if isinstance(spec, ParamSpec) and info.thinking_wire != spec.wire:
        if info.thinking_wire is None:
            out["enable_thinking"] = info.ignored.get(
                "enable_thinking", f"{info.title} has no way to switch thinking per request")
        else:
            out["enable_thinking"] = replace(spec, wire=info.thinking_wire)
    for name, why in info.ignored.items():
        if name in out:
            out[name] = why
    return out


def adapt_body(info: ServerInfo | None, body: dict[str, Any]) -> dict[str, Any]:
    """The request body as this server understands it (a new dict; ``body`` is untouched)."""
    if info is None:
        return body
    b = dict(body)
    if info.kind == "ollama" and isinstance(b.get("reasoning_effort"), bool):
        b["reasoning_effort"] = "medium" if b["reasoning_effort"] else "none"
    if info.streams_usage is False:
        b.pop("stream_options", None)  # accepted and ignored: do not pretend it works
    return b


def json_modes(info: ServerInfo | None, model_info: ModelInfo) -> tuple[str, ...]:
    """The JSON modes to try, best first, ending with ``prompt``."""
    modes = tuple(info.json_forms) if info is not None and info.kind != "unknown" else tuple(
        model_info.json_modes)
    if "prompt" not in modes:
        modes = (*modes, "prompt")
    return modes


def grammar_from_start(info: ServerInfo | None, mode: str) -> bool | None:
    """Whether this JSON mode constrains the reply from its first token on this server (then
    the reply IS the answer, with no reasoning before it)."""
    if mode == "prompt":
        return False
    if mode in ("guided_json", "json_object_schema", "tgi_json"):
        return True if info is None else info.grammar_from_start is not False
    if info is None:
        return None
    return info.grammar_from_start


def continues_final_message(info: ServerInfo | None) -> bool:
    """Whether the server continues a final assistant message when asked
    (vLLM's ``continue_final_message``); else Continue sends a raw prompt."""
    return info is not None and info.kind == "vllm"


def think_mode(info: ServerInfo | None) -> ThinkMode | None:
    """``"open"`` when the server says its template opens ``<think>`` in the prompt, else None
    (keep the model's own default)."""
    if info is not None and info.opens_think:
        return "open"
    return None


def wire_form(mode: str, schema: dict[str, Any], name: str, *, preset: Preset | None = None
              ) -> tuple[dict[str, Any] | None, bool, bool]:
    """``(fields merged into the body, streaming allowed, schema also in the prompt)`` for a
    JSON mode. The preset says how its provider differs (``json_schema_bare``: the bare
    schema, as Workers AI wants; ``json_streams``: whether a JSON request may stream)."""
    bare = preset is not None and preset.json_schema_bare
    streams = preset is None or preset.json_streams
    if mode == "prompt":
        return None, True, True
    if mode in ("guided_json", "vllm_guided_json"):
        return {"guided_json": schema}, streams, False
    if mode == "json_schema":
        js = schema if bare else {"name": name, "schema": schema, "strict": False}
        return {"response_format": {"type": "json_schema", "json_schema": js}}, streams, False
    if mode == "json_object":
        return {"response_format": {"type": "json_object"}}, streams, True
    if mode == "json_object_schema":
        return {"response_format": {"type": "json_object", "schema": schema}}, True, False
    if mode == "structured_outputs":
        return {"structured_outputs": {"json": schema}}, True, False
    if mode == "tgi_json":
        return {"response_format": {"type": "json", "value": schema}}, True, False
    raise KeyError(mode)


# -- saying what was found ---------------------------------------------------------------------
def describe(info: ServerInfo) -> str:
    """One line for ``%qwq use``: what the server is and what that changes."""
    if info.kind == "unknown":
        return ("Server: not recognised (no llama.cpp, vLLM, Ollama, LM Studio, SGLang or TGI "
                "probe answered); using plain OpenAI-compatible requests.")
    head = f"Server: {info.title}" + (f" {info.version}" if info.version else "")
    bits: list[str] = []
    if info.opens_think:
        bits.append("its chat template opens <think> in the prompt (replies start in the "
                    "reasoning)")
    for p, w in info.renames.items():
        bits.append(f"{p} is sent as {w}")
    if info.ignored:
        bits.append(f"refusing {', '.join(sorted(info.ignored))} (ignored there)")
    forms = [f for f in info.json_forms if f != "prompt"]
    if forms:
        bits.append(f"guided JSON as {forms[0]}")
    if info.reasoning_parser:
        bits.append(f"reasoning parser {info.reasoning_parser}")
    if info.streams_usage is False:
        bits.append("no usage in its stream")
    if info.one_at_a_time:
        bits.append("one request at a time")
    return head + (": " + "; ".join(bits) if bits else "") + "."
