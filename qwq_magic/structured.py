"""Guided JSON output: schemas in, validated Python values out.

``resolve`` turns whatever the user gave (a JSON Schema dict, a pydantic class, a JSON string,
a ``.json`` file, or the compact ``"name, year int: the year"`` shorthand) into a
:class:`Schema`; ``wire_form`` says how each JSON mode puts it on the wire; ``extract_json``,
``validate`` and ``parse_completion`` turn a reply into ``Completion.data``; ``run``/``arun``
drive a request with retries and JSON-mode fallback. Heavy imports happen inside functions.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import (
    APIError,
    ConfigurationError,
    InvalidJSONError,
    QwqError,
    SchemaValidationError,
    StructuredOutputError,
    TruncatedOutputError,
)

if TYPE_CHECKING:
    from .client import Client
    from .completion import Completion
    from .providers import Preset
    from .providers.servers import ServerInfo

Message = dict[str, Any]


def _excerpt(text: str, n: int = 120) -> str:
    t = " ".join(text.strip().split())
    return repr(t if len(t) <= n else t[: n - 1] + "…")


# -- schemas -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Schema:
    """A resolved schema: the JSON Schema dict, the pydantic class (if any), a wire name."""

    json: dict[str, Any]
    model: Any = None
    name: str = "response"
    item_model: Any = None  # multi=True around a pydantic class: each item becomes one


_TYPES = {"str": "string", "string": "string", "int": "integer", "integer": "integer",
          "float": "number", "number": "number", "bool": "boolean", "boolean": "boolean"}
_FIELD = re.compile(r"^([A-Za-z_][\w\-]*)(?:\s+(\w+))?\s*(?::\s*(.*))?$", re.S)


def parse_shorthand(spec: str) -> dict[str, Any]:
    """``"name, year int, bio: a short bio"`` → an object schema (all fields required).

    Fields are separated by newlines if there are any, else by commas; types are str (default),
    int, float and bool; text after a colon is the field's description.
    """
    parts = spec.splitlines() if "\n" in spec.strip() else spec.split(",")
    props: dict[str, Any] = {}
    for raw in (p.strip() for p in parts):
        if not raw:
            continue
        m = _FIELD.match(raw)
        if not m:
            raise ConfigurationError(
                f"Cannot read the schema field {raw!r}: write 'name', 'name int' or "
                "'name int: description' (types: str, int, float, bool).")
        name, typ, desc = m.group(1), (m.group(2) or "str").lower(), m.group(3)
        if typ not in _TYPES:
            raise ConfigurationError(
                f"Unknown type {typ!r} for schema field {name!r}: use str, int, float or bool.")
        prop: dict[str, Any] = {"type": _TYPES[typ]}
        if desc and desc.strip():
            prop["description"] = desc.strip()
        props[name] = prop
    if not props:
        raise ConfigurationError("The schema is empty: give at least one field.")
    return {"type": "object", "properties": props, "required": list(props)}


def _check(schema: Any, where: str) -> dict[str, Any]:
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError as e:
            raise ConfigurationError(f"The schema from {where} is not valid JSON: {e}") from None
    if not isinstance(schema, dict):
        raise ConfigurationError(f"The schema from {where} must be a JSON object, "
                                 f"not {type(schema).__name__}.")
    _check_shape(schema, where)
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as e:
        loc = _path(e.absolute_path)
        raise ConfigurationError(f"Invalid JSON Schema from {where} at {loc}: {e.message}") from None
    return schema


#: the deepest nesting a schema may have (a deeper one is refused before anything is sent)
MAX_SCHEMA_DEPTH = 64


def _check_shape(schema: dict[str, Any], where: str) -> None:
    """Refuse, before anything is sent, a schema nested deeper than :data:`MAX_SCHEMA_DEPTH`
    or with a ``$ref`` that does not point inside it (no remote references are fetched)."""
    stack: list[tuple[Any, int, str]] = [(schema, 0, "$")]
    refs: list[tuple[str, str]] = []
    while stack:
        node, depth, loc = stack.pop()
        if depth > MAX_SCHEMA_DEPTH:
            raise ConfigurationError(
                f"The schema from {where} is nested more than {MAX_SCHEMA_DEPTH} levels deep "
                f"(at {loc[:80]}…): flatten it, or use $defs and $ref for repeated parts.")
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                refs.append((ref, loc))
            stack.extend((v, depth + 1, f"{loc}.{k}") for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, depth + 1, f"{loc}[{i}]") for i, v in enumerate(node))
    for ref, loc in refs:
        if not ref.startswith("#"):
            raise ConfigurationError(
                f"The schema from {where} has $ref {ref!r:.80} at {loc}: only references "
                "inside the schema (#/$defs/…) are allowed; nothing is fetched.")
        node = schema
        for part in [p for p in ref[1:].split("/") if p]:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise ConfigurationError(
                    f"The schema from {where} has $ref {ref!r:.80} at {loc}, which points to "
                    "nothing in the schema: add the definition under $defs, or fix the name.")


def _pydantic_schema(model: Any) -> dict[str, Any]:
    """``model.model_json_schema()``, or a clear error naming the field pydantic cannot
    describe (an arbitrary type such as a class of your own)."""
    try:
        return dict(model.model_json_schema())
    except Exception as e:
        fields = getattr(model, "model_fields", {}) or {}
        bad = [n for n, f in fields.items() if "IsInstance" in repr(getattr(f, "annotation", ""))
               or _not_describable(f)]
        which = f" (field {', '.join(map(repr, bad))})" if bad else ""
        raise ConfigurationError(
            f"pydantic cannot turn {model.__name__} into a JSON Schema{which}: "
            f"{str(e).splitlines()[0]}. Use JSON-compatible field types (str, int, float, bool, "
            "lists, dicts, nested models).") from None


def _not_describable(field: Any) -> bool:
    import pydantic

    try:
        pydantic.TypeAdapter(field.annotation).json_schema()
    except Exception:
        return True
    return False


def _wire_name(name: str) -> str:
    n = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")[:64]
    return n or "response"


def resolve(spec: Any, *, multi: bool = False) -> Schema:
    """Any accepted schema form → :class:`Schema` (raises ConfigurationError if invalid).

    ``multi=True`` wraps the schema as ``{"items": [<schema>, ...]}`` (llm's --schema-multi).
    """
    model = None
    if isinstance(spec, Schema):
        if not multi:
            return spec
        schema, model, name = spec.json, None, spec.name
    elif hasattr(spec, "model_json_schema"):
        model = spec if isinstance(spec, type) else type(spec)
        schema = _check(_pydantic_schema(model), f"{model.__name__}.model_json_schema()")
        name = model.__name__
    elif isinstance(spec, dict):
        schema, name = _check(spec, "the dict"), str(spec.get("title") or "response")
    elif isinstance(spec, Path) or (isinstance(spec, str) and spec.strip().endswith(".json")
                                   and not spec.lstrip().startswith("{")):
        p = Path(spec).expanduser()
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigurationError(f"Cannot read the schema file {str(p)!r}: {e}") from None
        schema = _check(text, str(p))
        name = str(schema.get("title") or p.stem)
    elif isinstance(spec, str):
        s = spec.strip()
        if s.startswith("{"):
            schema = _check(s, "the JSON string")
            name = str(schema.get("title") or "response")
        else:
            schema, name = parse_shorthand(s), "response"
    else:
        raise ConfigurationError(
            f"Cannot use a {type(spec).__name__} as a schema: give a JSON Schema dict, a pydantic "
            "model class, a JSON string, a path to a .json file, or 'name, year int'.")
    if multi:
        inner = {k: v for k, v in schema.items() if k not in ("$defs", "definitions")}
        schema = {"type": "object", "properties": {"items": {"type": "array", "items": inner}},
                  "required": ["items"],
                  **{k: schema[k] for k in ("$defs", "definitions") if k in schema}}
        return Schema(schema, None, _wire_name(f"{name}_list"), item_model=model)
    return Schema(schema, model, _wire_name(name))


def to_json_schema(spec: Any) -> dict[str, Any]:
    """The JSON Schema dict for any accepted schema form."""
    return resolve(spec).json


# -- the wire ----------------------------------------------------------------------------------
#: every JSON mode; what each sends is in ``qwq_magic.providers.servers.JSON_FORMS``
MODES = ("guided_json", "json_schema", "json_object", "json_object_schema", "vllm_guided_json",
         "structured_outputs", "tgi_json", "prompt")


def instruction(schema: dict[str, Any]) -> str:
    return ("Reply with only a JSON value matching this JSON Schema (no prose, no code fences):\n"
            + json.dumps(schema, ensure_ascii=False))


def _with_instruction(messages: list[Message], schema: dict[str, Any]) -> list[Message]:
    """A copy of ``messages`` with the schema instruction in the system message (or appended
    to the last user message when there is no system message)."""
    msgs = [dict(m) for m in messages]
    text = instruction(schema)
    for m in msgs:
        if m.get("role") == "system" and isinstance(m.get("content"), str):
            m["content"] = f"{m['content']}\n\n{text}" if m["content"] else text
            return msgs
    for m in reversed(msgs):
        if m.get("role") == "user" and isinstance(m.get("content"), str):
            m["content"] = f"{m['content']}\n\n{text}"
            return msgs
    return [{"role": "system", "content": text}, *msgs]


def wire_form(mode: str, schema: dict[str, Any] | Schema, messages: list[Message], *,
              preset: Preset | None = None, name: str | None = None,
              ) -> tuple[dict[str, Any] | None, list[Message], bool]:
    """``(fields merged into the request body, messages, streaming allowed)`` for a JSON mode.

    Modes: ``json_schema`` (OpenAI ``response_format``; bare schema on Cloudflare),
    ``json_object_schema`` (llama.cpp / llama-cpp-python: ``json_object`` with a ``schema``),
    ``guided_json`` (Cloudflare native, top-level), ``vllm_guided_json`` (vLLM < 0.12),
    ``structured_outputs`` (vLLM ≥ 0.12), ``tgi_json`` (TGI's ``{"type": "json", "value"}``),
    ``json_object`` (any JSON, the schema in the system message) and ``prompt`` (the
    instruction only, not enforced). The preset says how its provider differs
    (``json_schema_bare``: the bare schema; ``json_streams``: whether JSON mode may stream).
    """
    from .providers import servers

    if isinstance(schema, Schema):
        name, schema = name or schema.name, schema.json
    name = _wire_name(name or str(schema.get("title") or "response"))
    try:
        fields, streams, instruct = servers.wire_form(mode, schema, name, preset=preset)
    except KeyError:
        raise ConfigurationError(
            f"Unknown JSON mode {mode!r}: use one of {', '.join(MODES)}.") from None
    return fields, (_with_instruction(messages, schema) if instruct else messages), streams


# -- reading answers ---------------------------------------------------------------------------
_BEFORE_JSON = re.compile(r"[\[{]|```")
_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n?(.*?)(?:```|\Z)", re.S)
_DECODER = json.JSONDecoder()


def _strip_think(text: str) -> str:
    """Drop a leading ``<think>…</think>`` block (all of it while unclosed), or leading
    reasoning ending in ``</think>`` when no JSON or fence starts before that tag."""
    head = text.lstrip()
    if head.startswith("<think>"):
        i = head.find("</think>")
        return "" if i < 0 else head[i + 8:]
    i = text.find("</think>")
    if i >= 0 and not _BEFORE_JSON.search(text, 0, i):
        return text[i + 8:]
    return text


_START = re.compile(r"[\[{]")


def _scan(text: str) -> tuple[list[tuple[Any, str]], json.JSONDecodeError | None]:
    """Every top-level JSON object/array embedded in ``text`` as (value, source), and the
    error of a value that starts but runs to the end of the text unfinished (cut off)."""
    found: list[tuple[Any, str]] = []
    i, n, tail = 0, len(text), len(text.rstrip())
    while i < n:
        m = _START.search(text, i)
        if not m:
            break
        s = m.start()
        try:
            value, end = _DECODER.raw_decode(text, s)
        except json.JSONDecodeError as e:
            if e.pos >= tail:
                return found, e
            i = s + 1
            continue
        found.append((value, text[s:end]))
        i = end
    return found, None


def _candidates(text: str) -> list[str]:
    text = _strip_think(text).rstrip()
    fenced = [m.group(1).strip() for m in _FENCE.finditer(text)] if "```" in text else []
    return [c for c in (*fenced, text) if c.strip()]


def _find(text: str, *, last: bool = False) -> tuple[Any, str] | InvalidJSONError | None:
    """The JSON value in ``text`` (the longest one, or the last one), an error if a value is
    cut off, or None when there is no JSON at all."""
    whole = _strip_think(text).strip()
    if whole[:1] in ("{", "["):  # a bare value first: it may hold ``` inside a string
        try:
            return json.loads(whole), whole
        except ValueError:
            pass
    if "```" in whole:  # fences inside a JSON string are not fences
        found, cut = _scan(whole)
        inner = [f for f in found if "```" in f[1]]
        if inner and cut is None:
            return inner[-1] if last else max(reversed(inner), key=lambda f: len(f[1]))
    cands = _candidates(text)
    for k, cand in enumerate(cands):
        try:
            return json.loads(cand), cand.strip()
        except ValueError:
            pass
        found, cut = _scan(cand)
        if cut is not None and k == len(cands) - 1:  # a fence may just hold a stray ```
            return InvalidJSONError(f"the JSON value is incomplete ({cut.msg})", raw=text,
                                    line=cut.lineno, col=cut.colno)
        if found and cut is None:
            if last:
                return found[-1]
            return max(reversed(found), key=lambda f: len(f[1]))  # longest; ties: the last
    return None


def _failure(text: str) -> InvalidJSONError:
    cands = _candidates(text)
    if not cands:
        return InvalidJSONError("the answer is empty", raw=text)
    body = cands[-1]
    m = _START.search(body)
    if not m:
        return InvalidJSONError("no JSON object or array found", raw=text)
    try:
        _DECODER.raw_decode(body, m.start())
    except json.JSONDecodeError as e:
        return InvalidJSONError(e.msg, raw=text, line=e.lineno, col=e.colno)
    return InvalidJSONError("no JSON value found", raw=text)  # pragma: no cover


def extract_json(text: str, reasoning: str = "") -> tuple[Any, str]:
    """The JSON value in an answer: ``(value, the JSON text used)``.

    Tolerates ``<think>`` blocks, code fences and prose around the value; if the answer holds
    no JSON at all but the reasoning does (grammar applied from the first token), the LAST JSON
    value in the reasoning is used. Raises :class:`InvalidJSONError` with the position.
    """
    hit = _find(text)
    if hit is None and reasoning and not _START.search(_strip_think(text)):
        hit = _find(reasoning, last=True)
    if hit is None:
        raise _failure(text)
    if isinstance(hit, InvalidJSONError):
        raise hit
    return hit


def _partial(text: str) -> Any:
    """A jiter partial parse of ``text`` from its first ``{``/``[`` (raises ValueError)."""
    import jiter

    m = _START.search(text)
    if not m:
        raise ValueError("no JSON start")
    body = text[m.start():]
    try:
        return jiter.from_json(body.encode(), partial_mode="trailing-strings",
                               allow_inf_nan=False)
    except ValueError:
        return _DECODER.raw_decode(body)[0]  # complete value followed by prose or a fence


def partial_preview(text: str) -> str | None:
    """Pretty JSON of what has arrived so far (for a live preview), or None."""
    text = _strip_think(text)
    try:
        value = _partial(text)
    except ValueError:
        return None
    return json.dumps(value, indent=2, ensure_ascii=False)


def _path(parts: Any) -> str:
    out = "$"
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif re.fullmatch(r"[A-Za-z_]\w*", str(p)):
            out += f".{p}"
        else:
            out += f"[{json.dumps(str(p))}]"
    return out


def validate(value: Any, schema: Schema | Any, *, raw: str = "") -> Any:
    """``value`` checked against the schema: the value, or a pydantic instance for a model."""
    if not isinstance(schema, Schema):
        schema = resolve(schema)
    if schema.model is not None:
        from pydantic import ValidationError

        try:
            return schema.model.model_validate(value)
        except ValidationError as e:
            errs = e.errors()
            first = errs[0] if errs else {"loc": (), "msg": str(e)}
            more = f" (and {len(errs) - 1} more problems)" if len(errs) > 1 else ""
            raise SchemaValidationError(_path(first["loc"]), f"{first['msg']}{more}",
                                        raw=raw) from None
    from jsonschema.exceptions import best_match
    from jsonschema.validators import validator_for

    v = validator_for(schema.json)(schema.json)
    err = best_match(v.iter_errors(value))
    if err is not None:
        raise SchemaValidationError(_path(err.absolute_path), err.message, raw=raw)
    if schema.item_model is not None:
        items = value["items"]
        return {"items": [validate(x, Schema({}, schema.item_model), raw=raw) for x in items]}
    return value


def _max_tokens(c: Completion) -> int | None:
    mt = c.params.get("max_tokens")
    return mt if isinstance(mt, int) else (c.usage.completion_tokens if c.usage else None)


def parse_completion(c: Completion, schema: Schema | Any) -> Any:
    """Parse and validate ``c``'s answer; set ``c.data`` and return it, or raise."""
    if not isinstance(schema, Schema):
        schema = resolve(schema)
    c.data = None
    raw = c.content or c.reasoning
    try:
        value, used = extract_json(c.content, c.reasoning)
    except InvalidJSONError as e:
        if c.finish_reason == "length":
            raise TruncatedOutputError(_max_tokens(c), raw=raw, completion=c,
                                       thinking=c.reasoning_truncated) from None
        e.completion, e.raw = c, raw
        raise
    try:
        c.data = validate(value, schema, raw=used)
    except SchemaValidationError as e:
        e.completion = c
        raise
    return c.data


def to_dataframe(value: Any) -> Any:
    """A pandas DataFrame from a list of records, or an object with one list-of-objects field."""
    import pandas as pd

    def rec(x: Any) -> Any:
        return x.model_dump() if hasattr(x, "model_dump") else x

    value = rec(value)
    if isinstance(value, dict):
        lists = [k for k, v in value.items()
                 if isinstance(v, list) and v and all(isinstance(rec(i), dict) for i in v)]
        if len(lists) != 1:
            raise QwqError(
                "Cannot make a table from this object: it needs exactly one field holding a "
                f"list of objects (found {len(lists)}: {', '.join(lists) or 'none'}).")
        value = value[lists[0]]
    if isinstance(value, list) and all(isinstance(rec(i), dict) for i in value):
        return pd.DataFrame([rec(i) for i in value])
    raise QwqError(f"Cannot make a table from a {type(value).__name__}: give a list of objects "
                   "or an object with one list-of-objects field.")


# -- running -----------------------------------------------------------------------------------
_FALLBACK_STATUS = (400, 422, 500, 501)
DEFAULT_RETRIES = 1  # one automatic repair attempt when the answer does not meet the schema
_THEN_JSON = ("Now give your final answer as JSON only, matching the schema; no reasoning, no "
              "prose.")


class _Run:
    """The attempt loop shared by :func:`run` and :func:`arun` (no I/O here).

    ``server`` is what :mod:`qwq_magic.providers.servers` found behind the URL (None for hosted
    presets): it chooses the JSON form that enforces the schema there.
    """

    def __init__(self, client: Client, prompt: Any, json_schema: Any, retries: int | None,
                 json_mode: str | None, kw: dict[str, Any], server: ServerInfo | None = None,
                 think_first: bool | str = False) -> None:
        from .providers import servers
        from .request import build_messages

        multi = kw.pop("multi", False)
        self.schema = resolve(json_schema, multi=multi)
        self.spec = self.schema if multi else json_schema
        if retries is None:
            retries = DEFAULT_RETRIES
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise ConfigurationError(f"retries={retries!r}: give a whole number ≥ 0 (the "
                                     "repair attempts after an answer that misses the schema).")
        if think_first not in (True, False, "auto"):
            raise ConfigurationError(f"think_first={think_first!r}: use True, False or 'auto'.")
        self.client, self.retries, self.kw, self.server = client, retries, kw, server
        self.msgs = build_messages(prompt, system=kw.pop("system", None),
                                   history=kw.pop("history", None))
        model = kw.get("model") or client.model
        self.model = model
        self.key = client._json_key(model)
        modes = list(servers.json_modes(server, client.preset.model_info(model)))
        start = json_mode or client.json_mode_memory.get(self.key) or modes[0]
        rest = modes[modes.index(start) + 1:] if start in modes else []
        if "prompt" not in rest and start != "prompt":
            rest.append("prompt")
        self.modes = [start, *rest]
        self.can_fall_back = json_mode is None and client.preset.json_fallback
        self.attempts: list[tuple[Completion, Exception]] = []
        self.answered = 0
        self.think_first = self._two_phase(think_first)
        self.thought: Completion | None = None  # phase one of a two-phase run

    # -- decisions -------------------------------------------------------------------------
    def from_start(self) -> bool:
        """File the reply as the answer: the current mode enforces the schema and the server
        is not known to apply it only after the reasoning. A grammar from the first token
        leaves no room for ``</think>``, so a template that opened ``<think>`` in the prompt
        must not turn the JSON into "reasoning"; reasoning sent in a field (a reasoning
        parser) stays reasoning either way."""
        from .providers import servers

        return servers.grammar_from_start(self.server, self.modes[0]) is not False

    def _two_phase(self, think_first: bool | str) -> bool:
        if think_first != "auto":
            return bool(think_first)
        from .providers import servers

        thinks = (self.client.think or self.client.preset.model_info(self.model).think) == "open" \
            or servers.think_mode(self.server) == "open"
        return thinks and servers.grammar_from_start(self.server, self.modes[0]) is True

    # -- requests --------------------------------------------------------------------------
    def request(self) -> dict[str, Any]:
        return {"json_schema": self.spec, "json_mode": self.modes[0], **self.kw}

    def prepare(self) -> Any:
        """The next constrained request, for a mode whose grammar applies from the first
        token: its reply is filed as the answer whatever the template opened."""
        req = self.client.prepare(self.msgs, **self.request())
        req.think = "off"
        return req

    def free_request(self) -> dict[str, Any]:
        """Phase one of ``think_first``: the same prompt, no constraint."""
        return {**self.kw}

    def after_thinking(self, c: Completion) -> None:
        """Phase one is done: ask for the constrained answer, its reasoning kept."""
        self.thought = c
        self.msgs = [*self.msgs, c.to_message(), {"role": "user", "content": _THEN_JSON}]

    def api_error(self, e: APIError) -> None:
        """Fall back to the next mode, or re-raise."""
        c = e.completion
        status = e.status
        if status is None and isinstance(e.code, int | str) and str(e.code).isdigit():
            status = int(e.code)
        started = c is not None and (c.content or c.reasoning or c.tool_calls)
        if not self.can_fall_back or started or status not in _FALLBACK_STATUS \
                or len(self.modes) < 2:
            raise e
        refused = self.modes.pop(0)
        from ._log import logger

        logger.info("%s refused JSON mode %r (HTTP %s); trying %r", self.key.split("|")[0],
                    refused, status, self.modes[0])

    def done(self, c: Completion) -> bool:
        """Parse ``c``: True when it is valid; False to re-ask; raises when out of retries."""
        from .events import ReasoningDelta

        self.client.json_mode_memory[self.key] = self.modes[0]
        c.schema = self.schema.json
        from . import runlog

        if self.thought is not None and self.thought.reasoning and not c.reasoning:
            c.add(ReasoningDelta(self.thought.reasoning))  # phase one's thinking, kept
            c.reasoning_complete = True
        c.attempts = [a for a, _ in self.attempts]
        try:
            parse_completion(c, self.schema)
            runlog.after_parse(c)
            return True
        except (InvalidJSONError, SchemaValidationError) as e:
            runlog.after_parse(c, e)
            self.attempts.append((c, e))
            if self.answered >= self.retries:
                e.attempts = self.attempts
                raise
            self.answered += 1
            self.msgs = [*self.msgs, c.to_message(), {"role": "user", "content": (
                f"Your previous answer failed validation: {e}. Reply again with only JSON "
                "matching the schema.")}]
            return False
        except StructuredOutputError as e:
            runlog.after_parse(c, e)
            self.attempts.append((c, e))
            e.attempts = self.attempts
            raise


def run(client: Client, prompt: Any = None, *, json_schema: Any, retries: int | None = None,
        on_stream: Any = None, json_mode: str | None = None, think_first: bool | str = False,
        **kw: Any) -> Completion:
    """Ask for JSON matching ``json_schema``; return the Completion with ``.data`` set.

    The JSON form is the one that enforces the schema on that server (for the generic
    ``openai`` preset the server is detected once; a form it refuses before answering gets
    the next, ending with ``prompt``), and what worked is remembered per URL and model. When
    that form constrains the reply from its first token, the reply is the answer.

    ``retries`` (default 1): repair attempts when the answer misses the schema, each re-asking
    with the validation error; earlier attempts are on ``completion.attempts``.
    ``think_first=True``: two requests, the first unconstrained (the model reasons freely), the
    second constrained, with the first one's reasoning kept in ``.reasoning``; ``"auto"`` does
    so for reasoning models on servers whose grammar applies from the first token.
    ``on_stream(stream, attempt)`` must consume the stream (live rendering).
    """
    r = _Run(client, prompt, json_schema, retries, json_mode, kw,
             _for_client(client, kw.get("model")), think_first)
    if r.think_first:
        s = client.stream(r.msgs, **r.free_request())
        _consume(s, on_stream, r.answered)
        r.after_thinking(s.completion)
    while True:
        stream = (client.stream(request=r.prepare()) if r.from_start()
                  else client.stream(r.msgs, **r.request()))
        try:
            _consume(stream, on_stream, r.answered)
        except APIError as e:
            r.api_error(e)
            continue
        if r.done(stream.completion):
            return stream.completion


def _for_client(client: Client, model: str | None) -> ServerInfo | None:
    from .providers import servers

    return servers.for_client(client, model)


async def _afor_client(client: Client, model: str | None) -> ServerInfo | None:
    from .providers import servers

    return await servers.afor_client(client, model)


def _consume(stream: Any, on_stream: Any, attempt: int) -> None:
    if on_stream is not None:
        on_stream(stream, attempt)
    else:
        for _ in stream:
            pass


async def _aconsume(stream: Any, on_stream: Any, attempt: int) -> None:
    if on_stream is not None:
        res = on_stream(stream, attempt)
        if hasattr(res, "__await__"):
            await res
    else:
        async for _ in stream:
            pass


async def arun(client: Client, prompt: Any = None, *, json_schema: Any,
               retries: int | None = None, on_stream: Any = None, json_mode: str | None = None,
               think_first: bool | str = False, **kw: Any) -> Completion:
    """The async twin of :func:`run` (``on_stream`` may be sync or a coroutine function)."""
    r = _Run(client, prompt, json_schema, retries, json_mode, kw,
             await _afor_client(client, kw.get("model")), think_first)
    if r.think_first:
        s = client.astream(r.msgs, **r.free_request())
        await _aconsume(s, on_stream, r.answered)
        r.after_thinking(s.completion)
    while True:
        stream = (client.astream(request=r.prepare()) if r.from_start()
                  else client.astream(r.msgs, **r.request()))
        try:
            await _aconsume(stream, on_stream, r.answered)
        except APIError as e:
            r.api_error(e)
            continue
        if r.done(stream.completion):
            return stream.completion
