"""``%%qwq`` and ``%qwq``: stream reasoning models into notebook cells.

The magic is a thin front end: options → :meth:`Client.stream` (through the shared
:data:`qwq_magic.session` (in :mod:`qwq_magic.state`)) → events → :class:`Completion` → :mod:`qwq_magic.display`.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import os
import shlex
from collections.abc import Sequence
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class
from traitlets import Bool, Dict, Enum, Float, Int, List, Unicode

from .errors import ConfigurationError, QwqError
from .state import session

LOCAL_PORTS = ((11434, "Ollama"), (1234, "LM Studio"), (8080, "llama.cpp"), (8000, "vLLM"))

HOW_TO_CONFIGURE = """No provider is configured and no local server answered.
Choose one:
  %qwq use deepinfra            with DEEPINFRA_TOKEN set        (models: Qwen/QwQ-32B, Qwen/QwQ-32B-Preview)
  %qwq use aimlapi              with AIMLAPI_KEY set            (models: Qwen/QwQ-32B, alibaba/qwen3-32b)
  %qwq use cloudflare           with CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID set
  %qwq use openai --base-url http://localhost:11434/v1 --model qwq     (Ollama, vLLM, llama.cpp, LM Studio…)
Or set QWQ_PROVIDER / QWQ_BASE_URL / QWQ_MODEL / QWQ_API_KEY in the environment.
To try it offline: python -m qwq_magic.testing   (a local test server), then
  %qwq use openai --base-url http://127.0.0.1:8765/vllm/v1 --model qwq"""

# flag → parameter name, type
PARAM_FLAGS: list[tuple[str, str, type]] = [
    ("--temperature", "temperature", float),
    ("--top-p", "top_p", float),
    ("--top-k", "top_k", int),
    ("--min-p", "min_p", float),
    ("--max-tokens", "max_tokens", int),
    ("--seed", "seed", int),
    ("--repetition-penalty", "repetition_penalty", float),
    ("--frequency-penalty", "frequency_penalty", float),
    ("--presence-penalty", "presence_penalty", float),
    ("--thinking-budget", "thinking_budget", int),
]

SUBCOMMANDS = ("use", "set", "params", "providers", "models", "history", "reset", "help",
               "record", "replay", "live")


class UsageError(QwqError):
    """A mistyped magic option."""


class QwqInterrupted(KeyboardInterrupt):
    """The cell was interrupted; the partial reply is kept. Shown as one line."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def _render_traceback_(self) -> list[str]:
        return [self.message]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # type: ignore[override]
        raise UsageError(f"%%qwq: {message}. See %%qwq --help.")


def _cell_parser() -> _Parser:
    p = _Parser(prog="%%qwq", add_help=False, allow_abbrev=False,
                description="Stream a reasoning model's reply into this cell. The cell body "
                "is the prompt; {name}, {obj.attr} and {d['key']} are filled from the notebook.",
                formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog="Examples:\n  %%qwq --temperature 0.6 --max-tokens 4096 -o answer\n"
                "  %%qwq --json 'name, year int' -o people --df\n"
                "  %%qwq --chat tutor          (continue the conversation 'tutor')\n"
                "Line magic: %qwq help")
    g = p.add_argument_group("provider")
    g.add_argument("-p", "--provider", help="cloudflare | deepinfra | aimlapi | openai")
    g.add_argument("-m", "--model")
    g.add_argument("--base-url", dest="base_url")
    s = p.add_argument_group("sampling (validated against the provider's documented ranges)")
    for flag, name, kind in PARAM_FLAGS:
        s.add_argument(flag, dest=name, type=kind, metavar=kind.__name__.upper())
    s.add_argument("--stop", action="append", metavar="TEXT", help="stop string (repeatable)")
    s.add_argument("--thinking", dest="enable_thinking", action="store_true", default=None,
                   help="Qwen3: think before answering")
    s.add_argument("--no-thinking", dest="enable_thinking", action="store_false",
                   help="Qwen3: answer directly")
    c = p.add_argument_group("conversation and output")
    c.add_argument("--system", help="system prompt")
    c.add_argument("-o", "--out", metavar="VAR",
                   help="store the Completion (or, with --json, the data) in VAR")
    c.add_argument("--chat", nargs="?", const="default", metavar="NAME",
                   help="continue the named conversation (default: 'default')")
    c.add_argument("--new", action="store_true", help="start the conversation afresh")
    c.add_argument("--hide-reasoning", action="store_true", default=None)
    c.add_argument("--raw", action="store_true", default=None, help="plain text, no Markdown")
    c.add_argument("--no-interpolate", dest="interpolate", action="store_false", default=None)
    c.add_argument("--dry-run", action="store_true",
                   help="show the exact request (key masked) without sending it")
    j = p.add_argument_group("guided JSON")
    j.add_argument("--json", metavar="SCHEMA", help="JSON schema: a variable (dict or pydantic "
                   "class), a JSON string, a .json file or fields like 'name, year int'")
    j.add_argument("--json-mode", help="force a wire form (json_schema, json_object, "
                   "guided_json, vllm_guided_json, prompt)")
    j.add_argument("--df", action="store_true", help="turn the JSON into a pandas DataFrame")
    j.add_argument("--retries", type=int, default=0, help="re-ask N times on invalid JSON")
    p.add_argument("-h", "--help", action="store_true")
    p.add_argument("prompt", nargs="*", help=argparse.SUPPRESS)
    return p


@magics_class
class QwqMagics(Magics):
    """``%%qwq`` / ``%qwq``. Configurable: ``c.QwqMagics.model = "..."`` or ``%config``."""

    provider = Unicode(None, allow_none=True, help="Default provider preset").tag(config=True)
    model = Unicode(None, allow_none=True, help="Default model").tag(config=True)
    base_url = Unicode(None, allow_none=True, help="Default base URL").tag(config=True)
    params = Dict(help="Default sampling parameters, e.g. {'temperature': 0.6}").tag(config=True)
    hide_reasoning = Bool(False, help="Hide the reasoning block").tag(config=True)
    raw = Bool(False, help="Show answers as plain text").tag(config=True)
    remote_images = Bool(False, help="Load remote images in answers (off: a link)").tag(config=True)
    interpolate = Bool(True, help="Fill {names} in prompts from the notebook").tag(config=True)
    include_reasoning = Bool(False, help="Send earlier reasoning back in conversations "
                             "(the QwQ model card advises against it)").tag(config=True)
    max_hz = Float(20.0, help="Display updates per second while streaming").tag(config=True)
    display = Enum(["auto", "rich", "text"], "auto",
                   help="rich: HTML display updates; text: streamed text (terminal)"
                   ).tag(config=True)
    autodetect = Bool(True, help="Look for a local server when nothing is configured"
                      ).tag(config=True)
    local_ports = List(Int(), [p for p, _ in LOCAL_PORTS],
                       help="Loopback ports probed for an OpenAI-compatible server").tag(config=True)

    def __init__(self, shell: Any = None, **kw: Any) -> None:
        super().__init__(shell=shell, **kw)
        self.observe(self._config_params, names=["params"])
        self.observe(self._config_provider, names=["provider", "model", "base_url"])

    # -- configuration -------------------------------------------------------------------------
    def _config_params(self, change: Any) -> None:
        session.params.update(dict(change["new"]), source="config")

    def _config_provider(self, change: Any) -> None:
        if self.provider or self.base_url:
            session.use(self.provider or "openai", model=self.model, base_url=self.base_url)
        elif self.model:
            session.model = self.model

    def _ensure_provider(self) -> None:
        """Nothing configured: a provider key in the environment, else a local server."""
        if session.provider or session.base_url:
            return
        env = os.environ
        if env.get("QWQ_PROVIDER") or env.get("QWQ_BASE_URL"):
            return
        from .client import _detect_preset

        try:
            session.use(_detect_preset(), model=session.model)
            return
        except ConfigurationError:
            pass
        found = self._probe_local() if self.autodetect else None
        if found is None:
            raise ConfigurationError(HOW_TO_CONFIGURE)
        url, name, model = found
        session.use("openai", base_url=url, model=session.model or model)
        self._say(f"Using {name} at {url} (model {session.model or model}); "
                  "change with %qwq use.")

    def _probe_local(self) -> tuple[str, str, str | None] | None:
        import httpx

        names = dict(LOCAL_PORTS)
        for port in self.local_ports:
            name = names.get(port, f"a server on port {port}")
            url = f"http://127.0.0.1:{port}/v1"
            try:
                r = httpx.get(url + "/models", timeout=0.3)
            except httpx.HTTPError:
                continue
            if r.status_code == 200:
                try:
                    data = r.json().get("data") or []
                    model = data[0].get("id") if data else None
                except (ValueError, AttributeError):
                    model = None
                return url, name, model
        return None

    def _client(self, args: argparse.Namespace) -> Any:
        if args.provider is None and args.base_url is None:
            self._ensure_provider()
        return session.client(args.provider, model=args.model, base_url=args.base_url)

    # -- entry point ---------------------------------------------------------------------------
    @line_cell_magic
    def qwq(self, line: str, cell: str | None = None) -> Any:
        """Stream a reasoning model's reply (``%%qwq --help``); ``%qwq help`` for commands."""
        try:
            words = shlex.split(line)
        except ValueError as e:
            raise self._short(UsageError(f"%qwq: cannot parse the options: {e}")) from None
        try:
            if cell is None and words and words[0] in SUBCOMMANDS:
                return getattr(self, "_cmd_" + words[0])(words[1:])
            if cell is None and not words:
                return self._cmd_help([])
            return self._run(words, cell)
        except QwqError as e:
            raise self._short(e) from None

    @staticmethod
    def _short(e: QwqError) -> QwqError:
        """User errors show as one line (with the error type), not a traceback wall."""
        name = type(e).__name__
        msg = str(e)
        e._render_traceback_ = lambda: [f"\x1b[31m{name}\x1b[0m: {msg}"]  # type: ignore[attr-defined]
        return e

    def _say(self, text: str, html_text: str | None = None) -> None:
        from IPython.display import display

        bundle = {"text/plain": text}
        if html_text is not None:
            bundle["text/html"] = html_text
        display(bundle, raw=True)

    # -- %%qwq ---------------------------------------------------------------------------------
    def _run(self, words: list[str], cell: str | None) -> Any:
        parser = _cell_parser()
        args = parser.parse_args(words)
        if args.help:
            print(parser.format_help())
            return None
        prompt = (cell if cell is not None else " ".join(args.prompt)).strip()
        if cell is not None and args.prompt:
            raise UsageError(f"%%qwq: unexpected words on the magic line: {' '.join(args.prompt)!r}"
                             " (the prompt goes in the cell body; quote option values).")
        if not prompt.strip():
            raise UsageError("%%qwq: the prompt is empty: write it in the cell below the magic.")
        ns = self.shell.user_ns if self.shell is not None else {}
        interpolate = self.interpolate if args.interpolate is None else args.interpolate
        if interpolate:
            from .interpolate import interpolate as fill

            prompt = fill(prompt, ns)
        if args.out is not None and not args.out.isidentifier():
            raise UsageError(f"%%qwq: -o needs a Python variable name, not {args.out!r}.")
        call: dict[str, Any] = {name: getattr(args, name) for _, name, _ in PARAM_FLAGS
                                if getattr(args, name) is not None}
        if args.stop:
            call["stop"] = args.stop
        if args.enable_thinking is not None:
            call["enable_thinking"] = args.enable_thinking
        if args.system:
            call["system"] = args.system
        history: list[dict[str, Any]] = []
        if args.chat:
            if args.new:
                session.conversations.pop(args.chat, None)
            history = list(session.conversations.get(args.chat, []))
            if history:
                call["history"] = history
        elif args.new:
            raise UsageError("%%qwq: --new starts a conversation: use it with --chat [NAME].")
        schema = None
        if args.json is not None:
            schema = ns.get(args.json, args.json) if args.json.isidentifier() else args.json
        elif args.df:
            raise UsageError("%%qwq: --df needs --json SCHEMA (the shape of the table).")
        if schema is not None and args.df:
            from .structured import resolve

            if _is_record(resolve(schema).json):  # one record's schema: ask for a list of them
                call["multi"] = True
        client = self._client(args)
        if args.dry_run:
            if call.pop("multi", False):
                from .structured import resolve

                schema = resolve(schema, multi=True)
            req = client.prepare(prompt, json_schema=schema, json_mode=args.json_mode, **call)
            text = req.describe(client._key.get() if client._key else None)
            self._say(text, f"<pre class='qwq-dry-run'>{html.escape(text)}</pre>")
            return None
        hide = self.hide_reasoning if args.hide_reasoning is None else args.hide_reasoning
        raw = self.raw if args.raw is None else args.raw
        renderer = self._renderer(hide, raw, schema is not None)
        c = None
        try:
            if schema is not None:
                from . import structured

                c = structured.run(client, prompt, json_schema=schema, retries=args.retries,
                                   json_mode=args.json_mode,
                                   on_stream=lambda s, attempt: renderer.consume(s, attempt),
                                   **call)
            else:
                c = renderer.consume(client.stream(prompt, **call), 0)
        except KeyboardInterrupt:
            c = renderer.stream.completion if renderer.stream is not None else None
            if renderer.stream is not None:
                renderer.stream.close()
            if c is not None:
                c.finish("interrupted")
                self._store(c, args, None, json_mode=schema is not None, ok=False)
                renderer.done(c)
                raise QwqInterrupted(
                    f"⏹ Interrupted: the partial reply is in _qwq ({len(c.reasoning):,} "
                    f"reasoning chars, {len(c.content):,} answer chars).") from None
            raise QwqInterrupted("⏹ Interrupted before the reply started.") from None
        except QwqError as e:
            partial = e.completion or (renderer.stream.completion if renderer.stream else None)
            if partial is not None:
                if partial.status == "streaming":
                    partial.finish("error", e)
                self._store(partial, args, None, json_mode=schema is not None, ok=False)
                if renderer.started:
                    renderer.done(partial, note=None)
            raise
        data = c.data if schema is not None else None
        if schema is not None and args.df:
            from .structured import to_dataframe

            data = to_dataframe(data)
        self._store(c, args, data if schema is not None else None, json_mode=schema is not None)
        if args.chat:
            turn = c.to_message(include_reasoning=self.include_reasoning)
            session.conversations[args.chat] = [*c.messages, turn]
        return None

    def _renderer(self, hide: bool, raw: bool, json_preview: bool) -> Any:
        from .display import ReplyRenderer

        mode = self.display
        if mode == "auto":
            shell = type(self.shell).__name__ if self.shell is not None else ""
            mode = "text" if shell == "TerminalInteractiveShell" else "rich"
        return ReplyRenderer(mode == "rich", hide, raw, self.max_hz, json_preview)

    def _store(self, c: Any, args: argparse.Namespace, data: Any, json_mode: bool = False,
               ok: bool = True) -> None:
        """``_qwq`` always holds the Completion (partial ones too); ``-o VAR`` holds it as
        well, except with ``--json``, where VAR gets the validated data or is left alone."""
        session.last = c
        if self.shell is None:
            return
        ns = self.shell.user_ns
        ns["_qwq"] = c
        if args.out:
            if not json_mode:
                ns[args.out] = c
            elif ok:
                ns[args.out] = data

    # -- %qwq subcommands ----------------------------------------------------------------------
    def _cmd_help(self, words: list[str]) -> None:
        text = (
            "%qwq use PROVIDER [--model M] [--base-url U] [--account-id A] [--key-env VAR]\n"
            "%qwq set temperature=0.6 top_p=0.95      session defaults (validated); "
            "name=none unsets\n"
            "%qwq params                               effective parameters and their source\n"
            "%qwq providers | models                   what is available\n"
            "%qwq history [NAME] | reset [NAME]        conversations (--chat NAME)\n"
            "%qwq record PATH | replay PATH [--speed X] | live     cassettes for offline demos\n"
            "%qwq QUESTION                             a one-line prompt\n"
            "%%qwq [options]                           the cell is the prompt (%%qwq --help)"
        )
        print(text)

    def _cmd_use(self, words: list[str]) -> None:
        p = _Parser(prog="%qwq use", add_help=False)
        p.add_argument("provider")
        p.add_argument("-m", "--model")
        p.add_argument("--base-url", dest="base_url")
        p.add_argument("--account-id", dest="account_id")
        p.add_argument("--key-env", dest="key_env",
                       help="read the key from this environment variable")
        p.add_argument("--timeout", type=float)
        a = p.parse_args(words)
        kw: dict[str, Any] = {}
        if a.account_id:
            kw["account_id"] = a.account_id
        if a.timeout:
            kw["timeout"] = a.timeout
        if a.key_env:
            key = os.environ.get(a.key_env)
            if not key:
                raise ConfigurationError(f"%qwq use: the environment variable {a.key_env} is "
                                         "not set.")
            from .errors import Secret

            kw["api_key"] = Secret(key)
        client = session.use(a.provider, model=a.model, base_url=a.base_url, **kw)
        key_note = "" if client.has_key or not client.preset.key_required else (
            f" — no key yet: set {' or '.join(client.preset.key_env)}")
        if session.cassette is not None and session.cassette.mode == "replay":
            key_note = " — replaying recorded replies (no key needed)"
        self._say(f"Using {client.provider} · {client.model} at {client.base_url}{key_note}")

    def _cmd_set(self, words: list[str]) -> None:
        from .params import normalize_names

        if not words:
            raise UsageError("%qwq set: give name=value pairs, e.g. %qwq set temperature=0.6")
        values: dict[str, Any] = {}
        for w in words:
            if "=" not in w:
                raise UsageError(f"%qwq set: expected name=value, got {w!r}")
            k, v = w.split("=", 1)
            values[k.strip()] = _parse_value(v)
        values = normalize_names(values)
        try:
            self._ensure_provider()
        except ConfigurationError:
            pass  # no provider yet: kept as given, checked when a provider is chosen and used
        else:
            # validated against the current provider's documented ranges before it is kept
            merged = {**session.params.as_dict(), **values}
            session.client().prepare("check", params={k: v for k, v in merged.items()
                                                      if v is not None})
        session.params.update(values, source="%qwq set")
        self._cmd_params([])

    def _cmd_params(self, words: list[str]) -> None:
        rows = param_rows()
        head = ("parameter", "value", "source", "allowed")
        width = [max(len(str(r[i])) for r in [head, *rows]) for i in range(4)]
        text = "\n".join("  ".join(str(v).ljust(width[i]) for i, v in enumerate(r))
                         for r in [head, *rows])
        self._say(text, _html_table(head, rows))

    def _cmd_providers(self, words: list[str]) -> None:
        from .providers import PRESETS

        head = ("provider", "key variables", "key set", "default model", "endpoint")
        rows = []
        for name, p in PRESETS.items():
            has = any(os.environ.get(v) for v in p.key_env)
            rows.append((name + (" ◀" if name == session.provider else ""),
                         " / ".join(p.key_env) + ("" if p.key_required else " (optional)"),
                         "yes" if has else "no", p.default_model, p.base_url))
        self._say("\n".join(" | ".join(r) for r in [head, *rows]), _html_table(head, rows))

    def _cmd_models(self, words: list[str]) -> None:
        self._ensure_provider()
        client = session.client()
        p = client.preset
        head = ("model", "price in/out $/M", "context", "note")
        rows = [(m + (" ◀" if m == client.model else ""),
                 f"{i.price_in}/{i.price_out}" if i.price_in is not None else "",
                 str(i.context or ""), i.note) for m, i in p.models.items()]
        if p.name == "openai":
            import httpx

            try:
                r = client._sync_http().get(client.base_url.rstrip("/") + "/models",
                                            headers=client._auth_headers(), timeout=5)
                rows += [(m["id"] + (" ◀" if m["id"] == client.model else ""), "", "",
                          "served by " + client.base_url) for m in r.json().get("data", [])]
            except (httpx.HTTPError, ValueError, AttributeError):
                rows.append((client.model, "", "", f"could not list {client.base_url}/models"))
        self._say("\n".join(" | ".join(r) for r in [head, *rows]), _html_table(head, rows))

    def _cmd_history(self, words: list[str]) -> None:
        names = words or list(session.conversations)
        if not names:
            self._say("No conversations yet: use %%qwq --chat [NAME].")
            return
        lines = []
        for name in names:
            conv = session.conversations.get(name)
            if conv is None:
                raise UsageError(f"%qwq history: no conversation {name!r}; "
                                 f"have: {', '.join(session.conversations) or 'none'}")
            lines.append(f"── {name} ({sum(m['role'] == 'user' for m in conv)} turns)")
            for m in conv:
                content = str(m.get("content") or "")
                short = content if len(content) <= 300 else content[:297] + "…"
                lines.append(f"{m['role']:>9}: {short}")
        print("\n".join(lines))

    def _cmd_reset(self, words: list[str]) -> None:
        if words:
            for name in words:
                if session.conversations.pop(name, None) is None:
                    raise UsageError(f"%qwq reset: no conversation {name!r}")
            self._say(f"Forgot conversation {', '.join(words)}.")
            return
        session.reset()
        self._say("Reset: provider choice, parameters and conversations forgotten.")

    def _cmd_record(self, words: list[str], mode: str = "record") -> None:
        p = _Parser(prog=f"%qwq {mode}", add_help=False)
        p.add_argument("path")
        p.add_argument("--speed", type=float, default=1.0,
                       help="replay pace: 1 = as recorded, 0 = at once")
        p.add_argument("--auto", action="store_true",
                       help="replay what is recorded, record what is not")
        a = p.parse_args(words)
        cas = session.record(a.path, mode="auto" if a.auto else mode, speed=a.speed)
        what = {"record": "Recording to", "replay": "Replaying from", "auto": "Replaying/recording"}
        n = len(cas) if hasattr(cas, "__len__") else "?"
        self._say(f"{what[cas.mode]} {a.path} ({n} recorded replies); %qwq live stops.")

    def _cmd_replay(self, words: list[str]) -> None:
        self._cmd_record(words, mode="replay")

    def _cmd_live(self, words: list[str]) -> None:
        session.stop_recording()
        self._say("Live: calls go to the provider again.")


def _is_record(schema: dict[str, Any]) -> bool:
    """An object schema with no single list field (a table needs a list of such objects)."""
    if schema.get("type") == "array":
        return False
    arrays = [k for k, v in (schema.get("properties") or {}).items()
              if isinstance(v, dict) and v.get("type") == "array"]
    return len(arrays) != 1


def _parse_value(v: str) -> Any:
    s = v.strip()
    low = s.lower()
    if low in ("", "none", "null", "default"):
        return None
    if low in ("true", "on", "yes"):
        return True
    if low in ("false", "off", "no"):
        return False
    try:
        return int(s)
    except ValueError:
        pass
    try:
        return float(s)
    except ValueError:
        pass
    if s.startswith("[") and s.endswith("]"):
        import ast

        try:
            return list(ast.literal_eval(s))
        except (ValueError, SyntaxError):  # the shell ate the quotes: [END, ###]
            return [x.strip().strip("'\"") for x in s[1:-1].split(",") if x.strip()]
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
        return s[1:-1]
    return s


def param_rows() -> list[tuple[str, str, str, str]]:
    """(parameter, value, source, allowed) for the current provider (``%qwq params``)."""
    from .params import PARAM_NAMES, ParamSpec
    from .providers import get_preset

    values = session.params.as_dict()
    provider = session.provider or os.environ.get("QWQ_PROVIDER") or "openai"
    preset = get_preset(provider)
    info = preset.model_info(session.model or preset.default_model)
    rows = []
    for name in PARAM_NAMES:
        spec = info.params.get(name)
        if isinstance(spec, str):
            allowed = "unsupported: " + spec
        elif isinstance(spec, ParamSpec):
            allowed = spec.describe()
        else:
            allowed = "not sent by this preset"
        if name in values:
            rows.append((name, repr(values[name]), session.params.sources.get(name, "python"),
                         allowed))
        elif isinstance(spec, ParamSpec) and spec.default is not None:
            rows.append((name, repr(spec.default), f"{provider} default", allowed))
        elif isinstance(spec, ParamSpec):
            rows.append((name, "—", "server default", allowed))
    return rows


def _html_table(head: tuple[str, ...], rows: Sequence[tuple[Any, ...]]) -> str:
    th = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{html.escape(str(v))}</td>"
                                    for v in r) + "</tr>" for r in rows)
    return f"<table class='qwq-table'><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


_magics: QwqMagics | None = None


def load(ip: Any) -> None:
    """``%load_ext qwq_magic``."""
    global _magics
    m = QwqMagics(shell=ip, parent=ip)
    ip.register_magics(m)
    if m not in ip.configurables:
        ip.configurables.append(m)
    if m.params:
        session.params.update(dict(m.params), source="config")
    if m.provider or m.base_url:
        session.use(m.provider or "openai", model=m.model, base_url=m.base_url)
    elif m.model:
        session.model = m.model
    _magics = m


def unload(ip: Any) -> None:
    global _magics
    if _magics is not None:
        with contextlib.suppress(ValueError):
            ip.configurables.remove(_magics)
        _magics = None
