"""``%%qwq`` and ``%qwq``: stream reasoning models into notebook cells.

The magic is a thin front end: options → :meth:`Client.stream` (through the shared
:data:`qwq_magic.session` (in :mod:`qwq_magic.state`)) → events → :class:`Completion` → :mod:`qwq_magic.display`.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import shlex
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from traitlets import Bool, Dict, Enum, Float, Int, List, Unicode

from .errors import ConfigurationError, QwqError, QwqInterrupted, UsageError
from .params import REGISTRY
from .resolve import LOCAL_PORTS
from .state import session


class Command(NamedTuple):
    """One ``%qwq`` subcommand: its usage line, what it does, and the function that runs it
    (``fn(magics, words)``; ``None``: the ``_cmd_<name>`` method)."""

    usage: str
    help: str
    fn: Callable[[Any, list[str]], Any] | None = None


#: The command table: every ``%qwq`` subcommand, in the order ``%qwq help`` lists them.
#: Other modules add theirs with :func:`command`.
COMMANDS: dict[str, Command] = {
    "use": Command("use PROVIDER [--model M] [--base-url U] [--account-id A] [--key-env VAR]",
                   "choose the provider (says what it found)"),
    "set": Command("set temperature=0.6 top_p=0.95 system='…'",
                   "session defaults (validated); name=none unsets"),
    "params": Command("params", "effective parameters and their source"),
    "providers": Command("providers", "the presets and whether their keys are set"),
    "models": Command("models", "models of the current provider (and what the server serves)"),
    "history": Command("history [N] | history NAME", "recent runs (the run log) | a conversation",
                       lambda m, w: _logview("history", m, w)),
    "cost": Command("cost", "spend and tokens: this session, today, all time",
                    lambda m, w: _logview("cost", m, w)),
    "budget": Command("budget 0.50 | budget off", "a spending cap for this session",
                      lambda m, w: _logview("budget", m, w)),
    "reset": Command("reset [NAME]", "forget a conversation, or everything"),
    "record": Command("record PATH [--auto] [--new]",
                      "record every reply to a cassette (appends; --new starts afresh)"),
    "replay": Command("replay PATH|NOTEBOOK.ipynb [--speed X] [--raise] | replay --pause|--resume",
                      "replay a cassette or a saved notebook's replies (offline lessons)"),
    "live": Command("live", "back to live calls"),
    "continue": Command("continue [--max-tokens N] [-o VAR]",
                        "resume the last reply where max_tokens cut it (same reply, not repeated)"),
    "class": Command("class on|off", "class mode: hide reasoning in every output until revealed",
                     lambda m, w: _teaching("class", m, w)),
    "reveal": Command("reveal", "show every hidden reasoning of this session, in place",
                      lambda m, w: _teaching("reveal", m, w)),
    "export": Command("export [NAME] --to md|json|cells [-o FILE]",
                      "hand a conversation out (a --chat NAME one, or the chat panel's)",
                      lambda m, w: _teaching("export", m, w)),
    "help": Command("help", "this list"),
}


def command(name: str, usage: str, help: str) -> Callable[[Callable[[Any, list[str]], Any]],
                                                         Callable[[Any, list[str]], Any]]:
    """Register ``fn(magics, words)`` as ``%qwq NAME`` (used by the run log, compare, map…)."""
    def deco(fn: Callable[[Any, list[str]], Any]) -> Callable[[Any, list[str]], Any]:
        COMMANDS[name] = Command(usage, help, fn)
        return fn
    return deco


def _logview(name: str, magics: Any, words: list[str]) -> Any:
    from . import logview

    return getattr(logview, "cmd_" + name)(magics, shlex.join(words))


def _teaching(name: str, magics: Any, words: list[str]) -> Any:
    from . import teaching

    return getattr(teaching, "cmd_" + name)(magics, words)


def _did_you_mean(word: str) -> str | None:
    import difflib

    m = difflib.get_close_matches(word.lower(), COMMANDS, n=1, cutoff=0.75)
    return m[0] if m else None


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
    for prm in REGISTRY:
        if not prm.flag:
            continue
        if prm.kind is bool:
            s.add_argument(prm.flag, dest=prm.name, action="store_true", default=None,
                           help=prm.description)
            s.add_argument("--no-" + prm.flag[2:], dest=prm.name, action="store_false",
                           help=f"the opposite of {prm.flag}")
        elif prm.kind is list:
            s.add_argument(prm.flag, dest=prm.name, action="append", metavar="TEXT",
                           help=f"{prm.description} (repeatable)")
        else:
            s.add_argument(prm.flag, dest=prm.name, type=prm.kind,
                           metavar=prm.kind.__name__.upper(), help=prm.description)
    c = p.add_argument_group("conversation and output")
    c.add_argument("--system", help="system prompt")
    c.add_argument("-o", "--out", metavar="VAR",
                   help="store the Completion (or, with --json, the data) in VAR")
    c.add_argument("--chat", nargs="?", const="default", metavar="NAME",
                   help="continue the named conversation (default: 'default')")
    c.add_argument("--new", action="store_true", help="start the conversation afresh")
    c.add_argument("--hide-reasoning", action="store_true", default=None,
                   help="hide the reasoning behind a 'Reveal reasoning' fold (%%qwq reveal)")
    c.add_argument("--show-reasoning", dest="hide_reasoning", action="store_false",
                   help="show the reasoning even in class mode")
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
    j.add_argument("--retries", type=int, default=None,
                   help="repair attempts when the answer misses the schema (default 1)")
    b = p.add_argument_group("batch: the cell is a template run over every row (qm.map)")
    b.add_argument("--map", metavar="DF", help="a DataFrame (or list) variable; {column} is "
                   "filled from each row; -o VAR gets the result table")
    b.add_argument("--concurrency", type=int, default=4, metavar="N")
    b.add_argument("--checkpoint", metavar="PATH", help=".sqlite/.jsonl/.parquet: resume")
    b.add_argument("--on-error", dest="on_error", choices=("keep", "skip", "raise"),
                   default="keep")
    k = p.add_argument_group("compare settings side by side (qm.compare)")
    k.add_argument("--compare", action="append", metavar="NAME=V1,V2",
                   help="sweep a parameter, model or system (repeat to multiply)")
    k.add_argument("--runs", type=int, metavar="N", help="runs per setting (with --compare)")
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
    font_scale = Float(1.0, min=0.5, max=4.0,
                       help="Text size of outputs and the chat panel (1.4 for a projector)"
                       ).tag(config=True)
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
    log = Bool(True, help="Log every reply to the run log (QWQ_LOG=0 also turns it off)").tag(config=True)
    log_path = Unicode(None, allow_none=True, help="The run log's file (default: QWQ_LOG_PATH, else log.db in the user data dir)").tag(config=True)

    def __init__(self, shell: Any = None, **kw: Any) -> None:
        super().__init__(shell=shell, **kw)
        self.observe(self._config_params, names=["params"])
        self.observe(self._config_provider, names=["provider", "model", "base_url"])
        self.observe(self._config_probe, names=["autodetect", "local_ports"])
        self._config_probe({})

    # -- configuration -------------------------------------------------------------------------
    def _config_params(self, change: Any) -> None:
        session.params.update(dict(change["new"]), source="config")

    def _config_provider(self, change: Any) -> None:
        if self.provider or self.base_url:
            session.use(self.provider or "openai", model=self.model, base_url=self.base_url)
        elif self.model:
            session.model = self.model

    def _config_probe(self, change: Any) -> None:
        session.autodetect, session.local_ports = self.autodetect, list(self.local_ports)

    def _ensure_provider(self) -> None:
        """Resolve the session's choice now; a local server found by the probe is kept as the
        session's choice (and said once)."""
        choice = session.choice()
        if choice.found is not None:
            session.use("openai", base_url=choice.base_url, model=choice.model)
            self._say(f"Using {choice.found} at {choice.base_url} (model {choice.model}); "
                      "change with %qwq use.")

    def _client(self, args: argparse.Namespace) -> Any:
        if args.provider is None and args.base_url is None:
            self._ensure_provider()
        return session.client(args.provider, model=args.model, base_url=args.base_url)

    # -- entry point ---------------------------------------------------------------------------
    @no_var_expand  # the prompt arrives as typed: "$5 for $name" stays as it is
    @line_cell_magic
    def qwq(self, line: str, cell: str | None = None) -> Any:
        """Stream a reasoning model's reply (``%%qwq --help``); ``%qwq help`` for commands."""
        try:
            words = shlex.split(line)
        except ValueError as e:
            raise self._short(UsageError(f"%qwq: cannot parse the options: {e}")) from None
        try:
            if cell is None and words and words[0] in COMMANDS:
                cmd = COMMANDS[words[0]]
                fn = cmd.fn or getattr(type(self), "_cmd_" + words[0])
                return fn(self, words[1:])
            if cell is None and not words:
                return self._cmd_help([])
            if cell is None and len(words) <= 2 and not words[0].startswith("-") \
                    and (near := _did_you_mean(words[0])):
                raise UsageError(
                    f"%qwq {words[0]}: no such command — did you mean %qwq {near}? (To ask the "
                    f"model, write a longer question or use %%qwq; %qwq help lists commands.)")
            from . import runlog

            with runlog.source("magic"):
                return self._run(words, cell)
        except QwqError as e:
            raise self._short(e) from None
        except KeyboardInterrupt as e:
            if type(e) is not KeyboardInterrupt:  # ours (QwqInterrupted…): already one line
                raise
            # Ctrl-C before a reply started (parsing, interpolation, connecting): one line
            raise QwqInterrupted("⏹ Interrupted before the reply started.") from None

    @staticmethod
    def _short(e: QwqError) -> QwqError:
        """User errors show as one line (with the error type), not a traceback wall."""
        name = type(e).__name__
        msg = str(e)
        if getattr(e, "_qwq_shown", False):  # the output above already says it in full
            msg = "see the output above (the partial reply is in _qwq)"
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
        if args.map is not None:
            from .batch import map_cell

            return map_cell(self, args, prompt)
        ns = self.shell.user_ns if self.shell is not None else {}
        interpolate = self.interpolate if args.interpolate is None else args.interpolate
        if interpolate:
            from .interpolate import interpolate as fill

            prompt = fill(prompt, ns)
        if args.out is not None and not args.out.isidentifier():
            raise UsageError(f"%%qwq: -o needs a Python variable name, not {args.out!r}.")
        if args.compare or args.runs is not None:
            from .comparison import compare_cell

            return compare_cell(self, args, prompt)
        call = call_options(args)
        history: list[dict[str, Any]] = []
        if args.chat:
            if args.new:
                from .teaching import forget_chat

                session.conversations.pop(args.chat, None)
                forget_chat(args.chat)
            history = list(session.conversations.get(args.chat, []))
            if history:
                call["history"] = history
        elif args.new:
            raise UsageError("%%qwq: --new starts a conversation: use it with --chat [NAME].")
        schema = None
        if args.json is not None:
            schema = schema_arg(args.json, ns)
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
        from .teaching import class_mode

        # --hide-reasoning and class mode hide it behind "Reveal reasoning"; the config option
        # alone leaves it out of the output (both: %qwq reveal redraws it)
        reveal = bool(args.hide_reasoning) or (args.hide_reasoning is None and class_mode())
        hide = reveal or (self.hide_reasoning if args.hide_reasoning is None
                          else args.hide_reasoning)
        raw = self.raw if args.raw is None else args.raw
        renderer = self._renderer(hide, raw, schema is not None, reveal=reveal)

        def run() -> Any:
            if schema is not None:
                from . import structured

                return structured.run(client, prompt, json_schema=schema, retries=args.retries,
                                      json_mode=args.json_mode,
                                      on_stream=lambda s, attempt: renderer.consume(s, attempt),
                                      **call)
            return renderer.consume(client.stream(prompt, **call), 0)

        c = self._guarded(renderer, run, args, json_mode=schema is not None)
        data = c.data if schema is not None else None
        if schema is not None and args.df:
            from .structured import to_dataframe

            data = to_dataframe(data)
        self._store(c, args, data if schema is not None else None, json_mode=schema is not None)
        if args.chat:
            turn = c.to_message(include_reasoning=self.include_reasoning)
            session.conversations[args.chat] = [*c.messages, turn]
            from .teaching import remember_turn

            remember_turn(args.chat, c)
        return None

    def _guarded(self, renderer: Any, run: Callable[[], Any], args: Any,
                 json_mode: bool = False) -> Any:
        """Run ``run`` (which streams through ``renderer``); on Ctrl-C or an error, keep the
        partial reply in ``_qwq`` (and ``-o``), finish the output, and raise one line."""
        try:
            return run()
        except KeyboardInterrupt:
            c = renderer.stream.completion if renderer.stream is not None else None
            if renderer.stream is not None:
                renderer.stream.close(interrupted=True)
            if c is not None:
                self._store(c, args, None, json_mode=json_mode, ok=False)
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
                self._store(partial, args, None, json_mode=json_mode, ok=False)
                if renderer.started:
                    renderer.done(partial, note=None)
                    e._qwq_shown = True  # type: ignore[attr-defined]  # said in the output
            raise

    def _renderer(self, hide: bool, raw: bool, json_preview: bool, reveal: bool = False) -> Any:
        from .display import ReplyRenderer

        mode = self.display
        if mode == "auto":
            shell = type(self.shell).__name__ if self.shell is not None else ""
            mode = "text" if shell == "TerminalInteractiveShell" else "rich"
        return ReplyRenderer(mode == "rich", hide, raw, self.max_hz, json_preview, reveal=reveal)

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
        rows = [(f"%qwq {c.usage}", c.help) for c in COMMANDS.values()]
        rows += [("%qwq QUESTION", "a one-line prompt"),
                 ("%%qwq [options]", "the cell is the prompt (%%qwq --help)")]
        width = min(max(len(r[0]) for r in rows), 60)
        print("\n".join(f"{u.ljust(width)}  {h}" for u, h in rows))

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
        if a.timeout is not None:  # 0, -1, nan: refused by the client, naming timeout
            kw["timeout"] = a.timeout
        if a.key_env:
            from .resolve import key_from_env

            kw["api_key"] = key_from_env(a.key_env)
        client = session.use(a.provider, model=a.model, base_url=a.base_url, **kw)
        key_note = "" if client.has_key or not client.preset.key_required else (
            f" — no key yet: set {' or '.join(client.preset.key_env)}")
        if session.cassette is not None and session.cassette.mode == "replay":
            key_note = " — replaying recorded replies (no key needed)"
        lines = [f"Using {client.provider} · {client.model} at {client.base_url}{key_note}"]
        server = client.server()
        if server is not None:
            from .providers.servers import describe

            lines.append(describe(server))
        lines += _refused_params(client)
        self._say("\n".join(lines))

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
        if "system" in values:  # the session-wide system prompt (--system wins for one cell)
            system = values.pop("system")
            session.system = None if system is None else str(system)
            self._say(f"System prompt: {session.system!r}" if session.system
                      else "System prompt unset.")
            if not values:
                return
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
        from .resolve import key_variable

        head = ("provider", "key variables", "key set", "default model", "endpoint")
        rows = []
        current = _current_provider()
        for name, p in PRESETS.items():
            has = key_variable(p) is not None
            rows.append((name + (" ◀" if name == current else ""),
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
        if p.lists_models:
            try:
                rows += [(m + (" ◀" if m == client.model else ""), "", "",
                          "served by " + client.base_url) for m in client.list_models()]
            except QwqError as e:
                rows.append((client.model, "", "", str(e)))
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
                from .teaching import forget_chat

                forget_chat(name)
            self._say(f"Forgot conversation {', '.join(words)}.")
            return
        from .teaching import forget_chat

        forget_chat()
        session.reset()
        self._say("Reset: provider choice, parameters and conversations forgotten.")

    def _cmd_record(self, words: list[str], mode: str = "record") -> None:
        p = _Parser(prog=f"%qwq {mode}", add_help=False)
        p.add_argument("path", nargs="?" if mode == "replay" else None)
        p.add_argument("--speed", type=float, default=None,
                       help="replay pace: 1 = as recorded, 0 = at once (default: "
                       "QWQ_REPLAY_SPEED, else 1)")
        if mode == "replay":
            p.add_argument("--raise", dest="exhausted", action="store_const", const="raise",
                           default="cycle", help="after the last take: an error, not the first")
            p.add_argument("--pause", action="store_true", help="hold the replay where it is")
            p.add_argument("--resume", action="store_true", help="go on after --pause")
        else:
            p.add_argument("--auto", action="store_true",
                           help="replay what is recorded, record what is not")
            p.add_argument("--new", action="store_true",
                           help="start the file afresh (default: append to it)")
        a = p.parse_args(words)
        if mode == "replay" and (a.pause or a.resume):
            cas = session.cassette
            if cas is None or a.path:
                raise UsageError("%qwq replay --pause/--resume acts on the replay in progress: "
                                 "start one with %qwq replay PATH first.")
            cas.pause() if a.pause else cas.resume()
            self._say("Replay paused: %qwq replay --resume goes on." if a.pause
                      else "Replay resumed.")
            return
        if a.path is None:
            raise UsageError("%qwq replay: give a cassette (.jsonl) or a saved notebook (.ipynb).")
        if mode == "replay" and str(a.path).endswith(".ipynb"):
            cas = session.replay_notebook(a.path, speed=a.speed, exhausted=a.exhausted)
            self._say(f"Replaying {cas.takes} replies from the notebook {a.path}; "
                      "%qwq live stops.")
            return
        if mode == "replay":
            cas = session.record(a.path, mode="replay", speed=a.speed, exhausted=a.exhausted)
        else:
            cas = session.record(a.path, mode="auto" if a.auto else mode, new=a.new)
        what = {"record": "Recording to", "replay": "Replaying from", "auto": "Replaying/recording"}
        self._say(f"{what[cas.mode]} {a.path} ({cas.takes} recorded replies); %qwq live stops.")

    def _cmd_replay(self, words: list[str]) -> None:
        self._cmd_record(words, mode="replay")

    def _cmd_continue(self, words: list[str]) -> None:
        p = _Parser(prog="%qwq continue", add_help=False)
        p.add_argument("--max-tokens", dest="max_tokens", type=int,
                       help="budget for the rest of the reply")
        p.add_argument("-o", "--out", metavar="VAR")
        a = p.parse_args(words)
        c = session.last
        if c is None:
            raise UsageError("%qwq continue: there is no reply to continue yet; run %%qwq first.")
        if c.finish_reason not in ("length", None) and c.status == "complete":
            raise UsageError(f"%qwq continue: the last reply was not cut off (it ended with "
                             f"{c.finish_reason!r}); nothing to continue.")
        params = {"max_tokens": a.max_tokens} if a.max_tokens else {}
        same = _current_provider() == c.provider
        client = session.client(None if same else c.provider, model=c.model)
        renderer = self._renderer(self.hide_reasoning, self.raw, False)
        args = argparse.Namespace(out=a.out)
        done = self._guarded(renderer, lambda: renderer.consume(
            client.stream_continue(c, **params), 0), args)
        self._store(done, args, None)

    def _cmd_live(self, words: list[str]) -> None:
        session.stop_recording()
        self._say("Live: calls go to the provider again.")


def call_options(args: argparse.Namespace, system: bool = True) -> dict[str, Any]:
    """The sampling options (and system prompt) a ``%%qwq`` line gives: one reading of the
    flags for the plain cell, ``--compare`` and ``--map``."""
    call: dict[str, Any] = {p.name: getattr(args, p.name) for p in REGISTRY
                            if p.flag and getattr(args, p.name) is not None}
    if call.get("enable_thinking") is False and "thinking_budget" not in call:
        call["thinking_budget"] = None  # --no-thinking wins over a session thinking_budget
    if system and (args.system or session.system):
        call["system"] = args.system or session.system
    return call


def schema_arg(text: str, ns: dict[str, Any]) -> Any:
    """``--json X``: a notebook variable when X names one; an identifier naming none is a
    mistake (a misspelled variable), not a one-field schema."""
    if not text.isidentifier():
        return text
    if text in ns:
        return ns[text]
    import difflib

    names = [k for k in ns if not k.startswith("_") and k.isidentifier()]
    near = difflib.get_close_matches(text, names, n=1)
    hint = f" Did you mean {near[0]!r}?" if near else ""
    raise UsageError(f"%%qwq --json {text}: no variable named {text!r} in the notebook.{hint} "
                     f"For a one-field schema write --json '{text} str'.")


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


def _current_provider() -> str | None:
    try:
        return session.choice(probe=False).provider
    except QwqError:
        return None


def _refused_params(client: Any) -> list[str]:
    """Session parameters the newly chosen provider refuses (said at ``%qwq use``)."""
    from .params import validate
    from .providers.servers import spec_table

    table = spec_table(client.server(), client.preset.model_info(client.model).params)
    out = []
    for name, value in session.params.as_dict().items():
        try:
            validate({name: value}, table, f"{client.provider} ({client.model})")
        except QwqError as e:
            if name == "thinking_budget" and "enable_thinking" in str(e):
                continue  # checked together with enable_thinking at the call
            out.append(f"⚠ {e} Unset it with %qwq set {name}=none.")
    return out


def param_rows() -> list[tuple[str, str, str, str]]:
    """(parameter, value, source, allowed) for the current choice (``%qwq params``)."""
    from .params import PARAM_NAMES, ParamSpec
    from .providers import get_preset

    values = session.params.as_dict()
    try:
        choice = session.choice(probe=False)
        preset, model = choice.preset, choice.model
    except QwqError:
        preset = get_preset("openai")
        model = preset.default_model
    provider = preset.name
    info = preset.model_info(model)
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
