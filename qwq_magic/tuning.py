"""``qm.tune(prompt)``: sampling sliders, a Run button, and the newest answer beside the last.

>>> t = qm.tune("Write a slogan for a bakery.")      # sliders · Run · auto-run · before/after
>>> t.run(wait=True)                                  # or click Run; t.runs keeps the last few

The sliders are :class:`qwq_magic.widgets.ParamsPanel`'s, on the shared ``qm.session.params``
(so a value tuned here is what the next ``%%qwq`` uses). Each run streams in a background
thread, so the sliders and the button keep working; "what changed" lists the parameters that
differ from the previous run and a word-level diff of the answer (escaped: model text is
untrusted and never becomes markup).
"""

from __future__ import annotations

import difflib
import re
import threading
import time
from dataclasses import dataclass
from html import escape
from typing import Any

from .comparison import _client_for, render_reply
from .completion import Completion
from .errors import QwqError

__all__ = ["TuneRun", "Tuner", "param_changes", "tune", "word_diff"]

_WORD = re.compile(r"\s*\S+|\s+")  # words with their leading space
_S_DEL = "background: rgba(220, 50, 50, 0.18); text-decoration: line-through"
_S_INS = "background: rgba(40, 170, 80, 0.2); text-decoration: none"
_S_DIM = "color: var(--jp-ui-font-color2, #777); font-size: 0.85em"
_S_BOX = ("border: 1px solid var(--jp-border-color2, #ddd); border-radius: 4px; "
          "padding: 0.4em 0.6em; max-height: 28em; overflow: auto")


def word_diff(old: str, new: str) -> str:
    """HTML: ``new`` with words removed since ``old`` struck out and added ones marked
    (every piece escaped)."""
    a, b = _WORD.findall(old), _WORD.findall(new)
    out: list[str] = []
    sm = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if op == "equal":
            out.append(escape("".join(b[j1:j2])))
            continue
        if op in ("delete", "replace"):
            out.append(f'<del style="{_S_DEL}">{escape("".join(a[i1:i2]))}</del>')
        if op in ("insert", "replace"):
            out.append(f'<ins style="{_S_INS}">{escape("".join(b[j1:j2]))}</ins>')
    return "".join(out)


def param_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``["temperature 0.6 → 1.0", "top_p 0.95 → default"]``: what differs between two runs."""
    out = []
    for k in [*old, *(k for k in new if k not in old)]:
        a, b = old.get(k), new.get(k)
        if a != b:
            out.append(f"{k} {'default' if a is None else a} → {'default' if b is None else b}")
    return out


@dataclass
class TuneRun:
    """One run of the bench: the parameters it used and its reply."""

    number: int
    params: dict[str, Any]
    completion: Completion

    def tokens(self) -> tuple[int, int]:
        c = self.completion
        u = c.usage
        r = u.reasoning_tokens if u is not None and u.reasoning_tokens is not None else (
            c.reasoning_events)
        total = u.completion_tokens if u is not None else None
        return r, max(0, total - r) if total is not None else c.content_events


class Tuner:
    """The tuning bench (``qm.tune``): displays as a widget; ``run()`` from Python too."""

    def __init__(self, prompt: Any, *, client: Any = None, keep: int = 5,
                 auto_run: bool = False, system: str | None = None, session: Any = None,
                 max_hz: float = 8.0, **client_kw: Any) -> None:
        unknown = set(client_kw) - {"provider", "model", "base_url", "api_key", "account_id"}
        if unknown:
            raise TypeError(f"qm.tune() got an unexpected keyword argument "
                            f"{sorted(unknown)[0]!r}: move the sliders for sampling parameters "
                            "(or %qwq set them); client=, provider=, model=, base_url= choose "
                            "the model.")
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 2:
            from .errors import ParameterError

            raise ParameterError(f"keep must be a whole number ≥ 2; got {keep!r}.",
                                 param="keep", value=keep)
        if session is None:
            from .state import session as default_session

            session = default_session
        self.session = session
        self.client = _client_for(client, **client_kw)
        self.client.prepare(prompt, system=system)  # a bad prompt fails here, not on click
        self.prompt, self.system, self.keep = prompt, system, keep
        self.interval = 1.0 / max_hz if max_hz > 0 else 0.1
        self.runs: list[TuneRun] = []
        self.error: str | None = None
        self._count = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pending = False
        self._auto_initial = auto_run
        self._widget: Any = None
        self._panel: Any = None
        self.current: Completion | None = None

    # -- running -----------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """The parameters the next run sends (the sliders' values)."""
        return dict(self.session.params.as_dict())

    def run(self, wait: bool = False) -> TuneRun | None:
        """Start a run with the sliders' values (``wait=True``: block, return the run).

        A bad value raises :class:`~qwq_magic.ParameterError` here (from Python) or shows as
        one line under the button (from a click); nothing is sent either way.
        """
        params = self.params()
        self.client.prepare(self.prompt, system=self.system, params=params)
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                self._pending = True  # run again with the newest values when this one ends
                thread = self._thread
            else:
                self._count += 1
                thread = self._thread = threading.Thread(
                    target=self._work, args=(self._count, params), name="qwq-tune", daemon=True)
                thread.start()
        if wait:
            thread.join()
            while self._thread is not None and self._thread is not thread:
                thread = self._thread
                thread.join()
            return self.runs[-1] if self.runs else None
        return None

    def _work(self, number: int, params: dict[str, Any]) -> None:
        c: Completion | None = None
        try:
            stream = self.client.stream(self.prompt, system=self.system, params=params)
            c = self.current = stream.completion
            self._show_status(f"run {number} streaming…")
            last = 0.0
            for _ in stream:
                now = time.monotonic()
                if now - last >= self.interval:
                    last = now
                    self._show_live(c)
        except QwqError as e:  # shown under the button; the reply so far is kept
            self.error = str(e).splitlines()[0] if str(e) else type(e).__name__
            c = c or e.completion
        if c is not None:
            self.runs.append(TuneRun(number, params, c))
            del self.runs[: -self.keep]
        self.current = None
        self._refresh()
        with self._lock:
            again, self._pending = self._pending, False
            if again:
                self._count += 1
                self._thread = threading.Thread(target=self._work,
                                                args=(self._count, self.params()),
                                                name="qwq-tune", daemon=True)
                self._thread.start()

    def wait(self) -> None:
        """Block until no run is in progress."""
        while (t := self._thread) is not None and t.is_alive():
            t.join()

    # -- what changed -------------------------------------------------------------------------
    def changes(self) -> list[str]:
        """The parameters that differ between the last two runs, and the token counts."""
        if len(self.runs) < 2:
            return []
        prev, new = self.runs[-2], self.runs[-1]
        out = param_changes(prev.params, new.params)
        (r0, a0), (r1, a1) = prev.tokens(), new.tokens()
        out.append(f"reasoning {r0:,} → {r1:,} tokens, answer {a0:,} → {a1:,}")
        return out

    def changes_html(self) -> str:
        if len(self.runs) < 2:
            return f'<div style="{_S_DIM}">Run twice to see what changed.</div>'
        prev, new = self.runs[-2], self.runs[-1]
        items = "".join(f"<li>{escape(x)}</li>" for x in self.changes())
        same = "" if prev.params != new.params else "<li>same parameters (sampling varies)</li>"
        diff = word_diff(prev.completion.content, new.completion.content)
        return (f'<div class="qwq-tune-changes"><b>What changed</b> (run {prev.number} → '
                f'{new.number})<ul style="margin: 0.2em 0">{same}{items}</ul>'
                f'<div class="qwq-tune-diff" style="{_S_BOX}; white-space: pre-wrap">{diff}'
                "</div></div>")

    def history_html(self) -> str:
        rows = []
        for r in reversed(self.runs):
            rt, at = r.tokens()
            ps = ", ".join(f"{k}={v}" for k, v in r.params.items()) or "defaults"
            first = (r.completion.content.strip().splitlines() or [""])[0]
            rows.append(f"<tr><td>{r.number}</td><td>{escape(ps)}</td><td>{rt:,} / {at:,}</td>"
                        f"<td>{escape(first[:80])}</td></tr>")
        return ('<table class="qwq-tune-history" style="font-size: 0.85em"><thead><tr>'
                "<th>run</th><th>parameters</th><th>reasoning / answer tokens</th>"
                f"<th>answer</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")

    def _reply_html(self, run: TuneRun | None, title: str) -> str:
        if run is None:
            return f'<div style="{_S_DIM}">{escape(title)}: nothing yet</div>'
        ps = ", ".join(f"{k}={v}" for k, v in run.params.items()) or "provider defaults"
        body = render_reply(run.completion)["text/html"]
        return (f'<div class="qwq-tune-reply" data-run="{run.number}"><b>{escape(title)}</b> · '
                f'run {run.number} <span style="{_S_DIM}">{escape(ps)}</span>'
                f'<div style="{_S_BOX}">{body}</div></div>')

    # -- the widget --------------------------------------------------------------------------
    @property
    def widget(self) -> Any:
        if self._widget is None:
            self._build()
        return self._widget

    def _build(self) -> None:
        import ipywidgets as w

        from .state import Session
        from .widgets import ParamsPanel

        view = Session()  # the sliders show this client's ranges, on the shared parameters
        view.params = self.session.params
        view.provider, view.model = self.client.provider, self.client.model
        self._panel = ParamsPanel(session=view)
        self.button = w.Button(description="Run", button_style="primary", icon="play")
        self.button.add_class("qwq-tune-run")
        self.auto = w.Checkbox(value=self._auto_initial, description="auto-run on release",
                               indent=False)
        self.status = w.HTML()
        self.newest = w.HTML(layout=w.Layout(width="50%"))
        self.previous = w.HTML(layout=w.Layout(width="50%"))
        self.diff = w.HTML()
        self.history = w.HTML()
        self.button.on_click(lambda _b: self._click())
        self.session.params.observe(self._on_param)
        prompt = self.prompt if isinstance(self.prompt, str) else str(self.prompt[-1])
        title = w.HTML(f"<b>qm.tune</b> · {escape(self.client.model)} · "
                       f'<span style="{_S_DIM}">{escape(prompt[:200])}</span>')
        self._widget = w.VBox([title, self._panel.widget,
                               w.HBox([self.button, self.auto, self.status]),
                               w.HBox([self.newest, self.previous]), self.diff, self.history])
        self._widget.add_class("qwq-tune")
        self._refresh()

    def _click(self) -> None:
        try:
            self.error = None
            self.run()
        except QwqError as e:
            self.error = str(e).splitlines()[0]
            self._show_status("")

    def _on_param(self, change: Any) -> None:
        if self._widget is not None and self.auto.value:
            self._click()

    def _show_status(self, text: str) -> None:
        if self._widget is None:
            return
        err = (f'<span style="color: var(--jp-error-color0, #c62828)">⚠ {escape(self.error)}'
               "</span>") if self.error else ""
        self.status.value = f'<span style="{_S_DIM}">{escape(text)}</span> {err}'

    def _show_live(self, c: Completion) -> None:
        if self._widget is not None:
            self.newest.value = (f"<b>newest</b> · run {self._count} · streaming"
                                 f'<div style="{_S_BOX}">{render_reply(c)["text/html"]}</div>')

    def _refresh(self) -> None:
        if self._widget is None:
            return
        runs = self.runs
        self.newest.value = self._reply_html(runs[-1] if runs else None, "newest")
        self.previous.value = self._reply_html(runs[-2] if len(runs) > 1 else None, "previous")
        self.diff.value = self.changes_html()
        self.history.value = self.history_html()
        self._show_status(f"{len(runs)} run{'s' if len(runs) != 1 else ''} kept (last "
                          f"{self.keep})" if runs else "move the sliders, then Run")

    def close(self) -> None:
        """Stop following the parameters and close the widgets."""
        if self._widget is not None:
            self.session.params.unobserve(self._on_param)
            if self._panel is not None:
                self._panel.close()
            self._widget.close()
            self._widget = None

    def _repr_mimebundle_(self, **kw: Any) -> Any:
        return self.widget._repr_mimebundle_(**kw)

    def __repr__(self) -> str:
        return f"<Tuner {self.client.provider}:{self.client.model} · {len(self.runs)} runs kept>"


def tune(prompt: Any, *, client: Any = None, keep: int = 5, auto_run: bool = False,
         system: str | None = None, **client_kw: Any) -> Tuner:
    """A tuning bench for ``prompt``: sliders, Run, the newest answer beside the previous one
    with what changed (parameters, tokens, a word-level diff), the last ``keep`` runs.

    ``client=`` or ``provider=`` / ``model=`` / ``base_url=`` / ``api_key=`` choose the model;
    ``auto_run=True`` runs whenever a slider is released.
    """
    return Tuner(prompt, client=client, keep=keep, auto_run=auto_run, system=system,
                 **client_kw)
