"""``ChatPanel``: a chat with a reasoning model inside a notebook (anywidget, plain-ESM front end).

Generation runs as an ``asyncio`` task on the kernel's loop, so the panel's Stop button and
sliders keep working while a reply streams. ``messages`` (the whole conversation) is synced only
when a turn starts (the user's message and an empty assistant placeholder) and when it ends (the
complete reply). In between, at most 30 times a second, only ``live`` is synced: the whole
current state of the streaming message and its index, so the traffic per update does not grow
with the conversation, and a dropped update heals at the next one (and at the end, when the final
``messages`` is authoritative and ``live`` is reset to ``{}``). Model text never reaches the DOM as HTML: the answer is Markdown rendered here
with raw HTML off, and the reasoning is plain text the view inserts with ``textContent``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import warnings
from pathlib import Path
from typing import Any

import anywidget
import traitlets as t

from .. import runlog
from ..completion import Completion
from ..errors import QwqError
from ..params import validate
from ..view import Throttle, is_thinking, view_of
from .params import (
    CHOICE_TRAITS,
    CONTROL_NAMES,
    Binding,
    coerce,
    controls_for,
    display_value,
    presets_for,
)

FLUSH_HZ = 30.0
TICK_S = 0.5  # the clock redraws this often while nothing arrives
# the pace scales with FLUSH_HZ: while thinking 0.4 × its rate; payload per second capped at
# 4,000 bytes × FLUSH_HZ answering (120 KB/s) and 800 × FLUSH_HZ thinking (24 KB/s)
THINKING_SHARE, LIVE_BYTES_PER_HZ, THINKING_BYTES_PER_HZ = 0.4, 4000, 800
LIVE_REASONING_CHARS = 480  # the reasoning tail a live update carries (a few lines)
STATIC = Path(__file__).resolve().parent / "static"  # the view's ESM and CSS


def _static(name: str) -> Path:
    """The widget's front-end asset ``name`` (``qwq_magic/widgets/static/``)."""
    return STATIC / name


# -- rendering one message (the wording comes from qwq_magic.view) ----------------------------
def markdown_html(text: str, key: Any = None) -> str:
    """Markdown → HTML with raw HTML off (``<script>`` arrives escaped), unsafe links refused,
    remote images shown as links unless ``QwqMagics.remote_images``."""
    from ..display import remote_images_allowed, render_markdown

    return str(render_markdown(text, key=key, remote_images=remote_images_allowed()))


def _error_line(e: BaseException | None) -> str:
    if e is None:
        return ""
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


def assistant_message(c: Completion, final: bool, idle: float | None = None) -> dict[str, Any]:
    """The front-end dict for one assistant reply (a short reasoning tail while streaming).

    Every string the view shows is worded here, by :func:`qwq_magic.view.view_of`: ``summary``
    (the fold), ``notice`` with ``notice_kind`` (the status line: waiting, stopped, error, cut
    off…), ``footer``. The JS only places them.
    """
    from ..display import live_tail

    v = view_of(c, surface="panel", idle=idle)
    kind, notice = v.status_line
    status = c.status
    return {
        "role": "assistant",
        "text": "",
        "html": markdown_html(c.content, key=("chat", id(c))) if c.content else "",
        "reasoning": c.reasoning if final else live_tail(c.reasoning_pieces,
                                                         LIVE_REASONING_CHARS),
        "thinking": v.thinking and not final,
        "summary": v.summary,
        "footer": v.footer if final else "",
        "status": status,
        "notice": notice,
        "notice_kind": kind,
        "error": _error_line(c.error) if status == "error" else "",
        "truncated": bool(final and c.reasoning_truncated),
        # a reply cut off by max_tokens: the view offers Continue (same reply, resumed)
        "can_continue": bool(final and c.finish_reason == "length"
                             and (c.reasoning or c.content)),
    }


def user_message(text: str) -> dict[str, Any]:
    return {"role": "user", "text": text}


def placeholder_message() -> dict[str, Any]:
    """The assistant entry ``messages`` holds while its reply streams (``live`` has the rest)."""
    return {"role": "assistant", "text": "", "html": "", "reasoning": "", "thinking": False,
            "summary": "", "footer": "", "status": "streaming", "notice": "Waiting for the model…",
            "notice_kind": "progress", "error": "", "truncated": False}


class ChatPanel(anywidget.AnyWidget):
    """Chat with the session's model: ``qm.ChatPanel()`` in a cell.

    Python API: :meth:`send` (schedules a reply), ``await`` :meth:`send_async`, :meth:`stop`,
    :meth:`new_chat`, :attr:`conversation` (what the model sees: reasoning left out),
    :attr:`last` and :attr:`history` (the :class:`~qwq_magic.Completion` objects).
    The sliders in its "Sampling" section write the shared ``session.params``.
    """

    _esm = _static("panel.js")
    _css = _static("panel.css")

    messages = t.List(t.Dict()).tag(sync=True)
    # the streaming reply while it streams: {"index": i, "message": {...}} (i into messages),
    # else {}; messages[i] stays the placeholder until the reply ends
    live = t.Dict().tag(sync=True)
    streaming = t.Bool(False).tag(sync=True)
    provider_label = t.Unicode("").tag(sync=True)
    controls = t.List(t.Dict()).tag(sync=True)
    values = t.Dict().tag(sync=True)
    presets = t.Dict().tag(sync=True)
    notice = t.Unicode("").tag(sync=True)  # a one-line problem outside any message
    #: text size (1 = the notebook's; default ``%config QwqMagics.font_scale``)
    font_scale = t.Float(1.0, min=0.5, max=4.0).tag(sync=True)

    def __init__(self, session: Any = None, *, client: Any = None, provider: str | None = None,
                 model: str | None = None, base_url: str | None = None, api_key: Any = None,
                 account_id: str | None = None, system: str | None = None,
                 font_scale: float | None = None) -> None:
        if session is None:
            from ..state import session as default_session

            session = default_session
        # first: a bad choice raises before any widget (or comm) exists
        binding = Binding(session, client, provider=provider, model=model, base_url=base_url,
                          api_key=api_key, account_id=account_id)
        super().__init__()
        from .. import teaching
        from ..display import font_scale as configured_scale

        self.font_scale = configured_scale() if font_scale is None else font_scale
        self._outputs: list[Any] = []  # display handles: their saved-notebook fallback is kept fresh
        teaching.remember_panel(self)
        self.session = session
        #: what the panel talks to: ``client=``, the provider keywords' choice, or the session's
        self.binding = binding
        self.system = system
        self._choice: Any = None  # what the header shows (set by _refresh_choice)
        self.history: list[Completion] = []  # one per assistant reply, in order
        self._turns: list[tuple[str, Completion]] = []
        self._task: asyncio.Task[Completion] | None = None
        self._stop_requested = False
        self._epoch = 0  # bumped by new_chat: a reply from an older chat no longer draws
        self._live_index = -1  # the streaming reply's index in messages
        # the loop of the thread that made the panel (the kernel's): every generation runs
        # there, whichever thread a widget message arrives on (JupyterLab 4.6 may deliver them
        # on a kernel subshell thread with its own loop)
        self._loop = _running_loop()  # None outside a loop: the first send() decides
        self._refresh_choice()
        self._refresh_values()
        session.observe(self._on_choice, names=list(CHOICE_TRAITS))
        session.params.observe(self._on_param, names=list(CONTROL_NAMES))
        self.on_msg(self._on_custom_msg)

    # -- display: the live panel, and the conversation for where widgets do not run ----------
    def _ipython_display_(self) -> None:
        """Shown as two outputs: the widget view, then a ``text/html`` / ``text/plain`` copy of
        the conversation (reasoning folded, answers rendered, inert), updated in place when a
        turn ends. Where the panel runs, its stylesheet hides the copy (the copy hides exactly
        where the widget draws, since the rule comes with the widget); GitHub, nbviewer and
        ``nbconvert --to html`` show it. Reopened in Jupyter, the live panel is back."""
        from IPython.display import display

        mimebundle = getattr(self, "_repr_mimebundle_", None)
        if not callable(mimebundle):  # ipywidgets 7 (Colab) displays itself
            super()._ipython_display_()  # type: ignore[misc]
        else:
            data: Any = mimebundle()
            if isinstance(data, tuple):  # (data, metadata) in some ipywidgets versions
                data = data[0]
            if not data:  # a closed widget: nothing to show
                return
            display({**data, "text/plain": "qwq_magic ChatPanel (the conversation is in the "
                                           "next output)"}, raw=True)
        handle = display(self._saved_bundle(), raw=True, display_id=True)
        if handle is not None:
            self._outputs.append(handle)

    def _saved_bundle(self) -> dict[str, str]:
        return {"text/html": self.fallback_html(), "text/plain": self.fallback_text()}

    def _refresh_outputs(self) -> None:
        if not self._outputs:
            return
        bundle = self._saved_bundle()
        for handle in self._outputs:
            with contextlib.suppress(Exception):  # a closed front end must not fail a turn
                handle.update(bundle, raw=True)

    def fallback_html(self) -> str:
        """The conversation as static, inert HTML (model text escaped or rendered with raw
        HTML off; reasoning in a closed ``<details>``)."""
        from html import escape

        scale = f"font-size: {self.font_scale:g}em; " if self.font_scale != 1 else ""
        out = [f'<div class="qwq-panel-saved" style="{scale}max-width: 900px; padding: 8px; '
               'border: 1px solid #ddd; border-radius: 6px">',
               f'<div style="color: #666; font-size: 0.9em">💬 qwq_magic chat · '
               f"{escape(self.provider_label or '')}</div>"]
        for m in self.messages:
            if m.get("role") == "user":
                out.append('<div class="qwq-user" style="margin: 0.6em 0 0.2em; '
                           'white-space: pre-wrap"><b>You:</b> '
                           f"{escape(str(m.get('text', '')), quote=False)}</div>")
                continue
            if m.get("reasoning"):
                out.append('<details class="qwq-reasoning"><summary style="color: #777">'
                           f"{escape(str(m.get('summary') or 'Reasoning'))}</summary>"
                           '<div style="white-space: pre-wrap; color: #777">'
                           f"{escape(str(m['reasoning']), quote=False)}</div></details>")
            out.append(f'<div class="qwq-answer">{m.get("html") or ""}</div>')
            for k in ("notice", "footer"):
                if m.get(k):
                    out.append(f'<div style="color: #777; font-size: 0.8em">'
                               f"{escape(str(m[k]))}</div>")
        if not self.messages:
            out.append('<div style="color: #777">(no messages yet)</div>')
        out.append("</div>")
        return "".join(out)

    def fallback_text(self) -> str:
        from ..display import printable

        lines = [f"qwq_magic ChatPanel ({len(self._turns)} turns)"]
        for text, c in self._turns:
            lines += [f"You: {printable(text)}", f"Model: {printable(c.content)}"]
        return "\n".join(lines)

    def export(self, to: str = "md", path: str | None = None, *, title: str | None = None
               ) -> Any:
        """The conversation as Markdown (``"md"``, reasoning in ``<details>``), JSON (``"json"``:
        messages with reasoning and usage) or notebook cells (``"cells"``: one Markdown cell per
        turn; without ``path`` one ``%%markdown`` cell is also inserted below). With ``path``
        it is written there. See :func:`qwq_magic.teaching.export`."""
        from .. import teaching

        return teaching.export(self, to, path, title=title)

    # -- state from the session --------------------------------------------------------------
    def _refresh_choice(self) -> None:
        try:
            choice, configured = self.binding.shown()
            controls = controls_for(choice)
        except QwqError as e:
            self.provider_label, self.controls, self.presets = "", [], {}
            self.notice = _error_line(e)
            return
        self._choice = choice
        label = choice.label
        if not configured:
            label = "no provider configured: run %qwq use PROVIDER (or set an API key variable)"
        self.provider_label = label
        self.controls = controls
        self.presets = presets_for(controls)

    def _refresh_values(self) -> None:
        p = self.session.params
        self.values = {n: display_value(n, getattr(p, n)) for n in CONTROL_NAMES}

    def _on_choice(self, change: dict[str, Any]) -> None:
        self._refresh_choice()

    def _on_param(self, change: dict[str, Any]) -> None:
        self._refresh_values()

    def set_param(self, name: str, value: Any) -> None:
        """Set one session parameter from the panel (``None`` or ``""`` unsets it)."""
        control = next((c for c in self.controls if c["name"] == name), None)
        if control is None or not control["supported"]:
            self.notice = f"{name} is not supported by {self.provider_label or 'this provider'}"
            return
        try:
            if (control["kind"] == "int" and isinstance(value, float)
                    and not (math.isfinite(value) and value.is_integer())):
                raise ValueError(f"{name} takes a whole number; got {value!r}")
            value = coerce(control, value)
            if value is not None:  # the provider's documented range, as for every other setter
                info = self._choice.preset.model_info(self._choice.model)
                validate({name: value}, info.params,
                         f"{self._choice.provider} ({self._choice.model})")
            self.session.params.update({name: value}, source="panel")
        except (QwqError, ValueError, TypeError, OverflowError, t.TraitError) as e:
            line = _error_line(e)  # always naming the parameter ("could not convert…" does not)
            self.notice = line if name in line else f"{name}={value!r:.40}: {line}"
        else:
            self.notice = ""

    def apply_preset(self, name: str) -> None:
        values = self.presets.get(name)
        if values:
            self.session.params.update(dict(values), source="panel")

    # -- messages from the view --------------------------------------------------------------
    def _on_custom_msg(self, widget: Any, content: Any, buffers: Any) -> None:
        """Messages from JS; never blocks (a send only schedules a task)."""
        if not isinstance(content, dict):
            return
        if (loop := self._foreign_loop()) is not None:
            loop.call_soon_threadsafe(self._dispatch, content)
        else:
            self._dispatch(content)

    def _foreign_loop(self) -> asyncio.AbstractEventLoop | None:
        """The panel's loop, when called from a thread running another loop (hand over)."""
        loop = self._loop
        if loop is not None and loop.is_running() and _running_loop() is not loop:
            return loop
        return None

    def _dispatch(self, content: dict[str, Any]) -> None:
        kind = content.get("type")
        if kind == "send":
            self.send(str(content.get("text", "")))
        elif kind == "stop":
            self.stop()
        elif kind == "continue":
            self.continue_last()
        elif kind == "new":
            self.new_chat()
        elif kind == "param":
            self.set_param(str(content.get("name", "")), content.get("value"))
        elif kind == "preset":
            self.apply_preset(str(content.get("name", "")))
        elif kind == "reset_params":
            self.session.params.update(dict.fromkeys(CONTROL_NAMES), source="panel")

    # -- the conversation --------------------------------------------------------------------
    @property
    def conversation(self) -> list[dict[str, Any]]:
        """The messages the model gets as history: user turns and answers, never reasoning.

        A turn stopped or broken before any answer text stays in the history (the user's
        message and a note that no answer came), so the model never sees two user messages in
        a row and the conversation says what happened.
        """
        out: list[dict[str, Any]] = []
        for text, c in self._turns:
            out.append({"role": "user", "content": text})
            answer = c.content or f"(no answer: the reply was {c.status} before it answered)"
            out.append({"role": "assistant", "content": answer})
        return out

    messages_for_model = conversation

    @property
    def last(self) -> Completion | None:
        return self.history[-1] if self.history else None

    def send(self, text: Any, buffers: Any = None) -> asyncio.Task[Completion] | None:  # type: ignore[override]
        """Ask the model (schedules :meth:`send_async` on the running loop; returns the task).

        A dict is a custom widget message (ipywidgets' own ``Widget.send``).
        """
        if isinstance(text, dict):
            super().send(text, buffers)
            return None
        text = str(text)
        if not text.strip():
            return None
        if self.busy:
            self.notice = "A reply is still streaming: stop it first."
            return None
        if (loop := self._foreign_loop()) is not None:
            loop.call_soon_threadsafe(self.send, text)
            return None
        loop = _running_loop() or self._loop or _current_loop()
        self._loop = self._loop or loop
        self.streaming = True  # at once: the view disables Send before the task runs
        task = self._task = loop.create_task(self.send_async(text))
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Completion]) -> None:
        # a task cancelled before its first step never runs send_async's cleanup
        if task is self._task:
            self.streaming = False
        if not task.cancelled() and task.exception() is not None:
            self.notice = _error_line(task.exception())

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def task(self) -> asyncio.Task[Completion] | None:
        """The generation task started by :meth:`send` (await it for the Completion)."""
        return self._task

    @runlog.source("panel")
    async def send_async(self, text: str) -> Completion:
        """Generate one reply to ``text`` and return its Completion (stopped or broken too)."""
        history = self.conversation
        epoch = self._epoch
        self._begin([*self.messages, user_message(text), placeholder_message()])
        # the client is made inside the stream's guard: a missing provider is an error reply
        return await self._generate(text, epoch, lambda: self.binding.client().astream(
            text, history=history, system=self.system or self.session.system,
            params=self.session.params))

    def continue_last(self) -> asyncio.Task[Completion] | None:
        """Resume the last reply where ``max_tokens`` cut it (the Continue button): the same
        reply goes on in place; returns the task."""
        if self.busy or not self._turns:
            self.notice = "Nothing to continue." if not self._turns else \
                "A reply is still streaming: stop it first."
            return None
        if (loop := self._foreign_loop()) is not None:
            loop.call_soon_threadsafe(self.continue_last)
            return None
        loop = _running_loop() or self._loop or _current_loop()
        self.streaming = True
        task = self._task = loop.create_task(self.continue_async())
        task.add_done_callback(self._task_done)
        return task

    async def continue_async(self) -> Completion:
        """Resume the last reply (see :meth:`continue_last`) and return the whole reply."""
        text, earlier = self._turns[-1]
        epoch = self._epoch
        self._begin([*self.messages[:-1], placeholder_message()])
        self._turns.pop()
        if self.history and self.history[-1] is earlier:
            self.history.pop()
        return await self._generate(text, epoch, lambda: self.binding.client().astream_continue(
            earlier, params=self.session.params))

    def _begin(self, messages: list[dict[str, Any]]) -> None:
        """A reply starts: the conversation with the streaming reply's placeholder last."""
        self.notice = ""
        self._stop_requested = False
        with self.hold_sync():
            self.messages = messages
            self.live = {}
        self._live_index = len(self.messages) - 1
        self.streaming = True

    async def _generate(self, text: str, epoch: int, start: Any) -> Completion:
        """Stream the reply ``start()`` opens into the placeholder; the end state is the
        stream's (stopped, broken or complete)."""
        c: Completion | None = None
        s: Any = None
        cancelled = False
        ticker: asyncio.Future[None] | None = None
        try:
            s = start()
            c = s.completion
            throttle = Throttle(FLUSH_HZ, thinking_hz=FLUSH_HZ * THINKING_SHARE,
                                max_bytes_per_s=FLUSH_HZ * LIVE_BYTES_PER_HZ,
                                thinking_bytes_per_s=FLUSH_HZ * THINKING_BYTES_PER_HZ)
            self._push(c, False, epoch, throttle)
            ticker = asyncio.ensure_future(self._clock(c, epoch, throttle))
            phase = (False, False)  # (thinking, answering) last drawn
            async for _ev in s:
                thinking = is_thinking(c)
                now = (thinking, bool(c.content))
                # a change of phase (the fold opens, the answer starts) is drawn at once; the
                # rest at the throttle's pace
                if now != phase or throttle.due(thinking):
                    self._push(c, False, epoch, throttle)
                    phase = now
        except asyncio.CancelledError:
            cancelled = True
            if s is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(s.aclose())
            if c is not None and c.status == "streaming":
                c.finish("stopped")
        except QwqError as e:
            if c is None:
                c = e.completion or Completion(provider=self._choice.provider)
            if c.status in ("streaming", "complete"):
                c.finish("error", e)
            c.error = c.error or e
        except Exception as e:  # a bug must show in the panel, not vanish in a task
            if c is None:
                c = Completion(provider=self._choice.provider)
            c.finish("error", e)
        finally:
            if ticker is not None:
                ticker.cancel()
            if c is None:  # cancelled before the request was built
                c = Completion(provider=self._choice.provider)
                c.finish("stopped")
            if c.status == "streaming":
                c.finish("complete")
            self._finish(text, c, epoch)
        if cancelled and not self._stop_requested:
            raise asyncio.CancelledError
        if cancelled:
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        return c

    async def _clock(self, c: Completion, epoch: int, throttle: Throttle) -> None:
        """While the reply streams, redraw when nothing was pushed for :data:`TICK_S`, so the
        waiting time and a stall show as a moving clock (cancelled when the reply ends)."""
        seen, since = -1, time.monotonic()
        while c.status == "streaming" and epoch == self._epoch:
            await asyncio.sleep(TICK_S)
            n = c.reasoning_events + c.content_events + len(c.tool_calls)
            now = time.monotonic()
            if n != seen:
                seen, since = n, now
            if c.status == "streaming" and throttle.idle() >= TICK_S * 0.9:
                self._push(c, False, epoch, throttle, idle=now - since)

    def _push(self, c: Completion, final: bool, epoch: int, throttle: Throttle | None = None,
              idle: float | None = None) -> None:
        """Sync the streaming message: only ``live`` while it streams, ``messages`` at the end."""
        if epoch != self._epoch:
            return
        i = self._live_index
        if not 0 <= i < len(self.messages):  # cannot happen: the turn's placeholder is there
            return
        msg = assistant_message(c, final, idle=idle)
        if throttle is not None:
            throttle.sent(sum(len(v) for v in msg.values() if isinstance(v, str)))
        if final:
            with self.hold_sync():  # one comm message; the view lets final messages win
                self.messages = [*self.messages[:i], msg, *self.messages[i + 1:]]
                self.live = {}
        else:
            self.live = {"index": i, "message": msg}

    def _finish(self, text: str, c: Completion, epoch: int) -> None:
        self.history.append(c)
        self.session.last = c
        if epoch == self._epoch:
            self._push(c, True, epoch)
            self._turns.append((text, c))
        self.streaming = False
        self._refresh_outputs()

    def stop(self) -> None:
        """Stop the reply being generated; its partial text stays, marked "stopped"."""
        if (loop := self._foreign_loop()) is not None:
            loop.call_soon_threadsafe(self.stop)
            return
        if self.busy and self._task is not None:
            self._stop_requested = True
            self._task.cancel()

    def new_chat(self) -> None:
        """Forget the conversation (stops a running reply first)."""
        self.stop()
        self._epoch += 1
        self._turns = []
        with self.hold_sync():
            self.messages = []
            self.live = {}
        self.notice = ""
        self._refresh_outputs()

    def close(self) -> None:
        if "session" not in self.__dict__:  # __init__ never ran (bad arguments): nothing to undo
            super().close()
            return
        self.stop()
        with contextlib.suppress(ValueError):
            self.session.unobserve(self._on_choice, names=list(CHOICE_TRAITS))
            self.session.params.unobserve(self._on_param, names=list(CONTROL_NAMES))
        super().close()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _current_loop() -> asyncio.AbstractEventLoop:
    """The running loop, else this thread's event loop (a new one if it has none)."""
    loop = _running_loop()
    if loop is not None:
        return loop
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return asyncio.get_event_loop()
        except RuntimeError:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            return loop
