// qwq_magic chat panel: plain ESM for anywidget (no npm, no build).
// Model text is untrusted: user text and reasoning go in with textContent; the answer HTML was
// rendered by Python from Markdown with raw HTML off, so only that string uses innerHTML.
// Every status, summary and footer string is worded in Python (qwq_magic/view.py): none here.

function h(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function fmtValue(c, v) {
  if (v === null || v === undefined) return "";
  if (c.kind === "float") {
    const digits = c.step && c.step < 0.01 ? 3 : 2;
    return Number(v).toFixed(digits);
  }
  return String(v);
}

function copyText(text, btn) {
  const done = () => {
    const old = btn.textContent;
    btn.textContent = "copied";
    setTimeout(() => { btn.textContent = old; }, 1200);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, () => fallbackCopy(text, done));
  } else {
    fallbackCopy(text, done);
  }
}

function fallbackCopy(text, done) {
  const ta = h("textarea");
  ta.value = text;
  ta.style.position = "fixed";
  ta.style.opacity = "0";
  document.body.appendChild(ta);
  ta.select();
  try { document.execCommand("copy"); done(); } catch (_e) { /* nothing more to try */ }
  ta.remove();
}

function addCopyButtons(container) {
  for (const code of container.querySelectorAll("pre > code")) {
    const pre = code.parentElement;
    if (pre.querySelector(":scope > .qwq-copy")) continue;
    const btn = h("button", "qwq-copy", "copy");
    btn.type = "button";
    btn.title = "copy this code";
    btn.addEventListener("click", (ev) => {
      ev.preventDefault();
      copyText(code.textContent, btn);
    });
    pre.appendChild(btn);
  }
}

function sig(m) {
  const len = (x) => (x ? x.length : 0);
  return `${m.role}|${m.status}|${len(m.text)}|${len(m.html)}|${len(m.reasoning)}|${len(m.footer)}|${m.notice || ""}`;
}

// One message's DOM, updated in place when its dict changes.
class MessageView {
  constructor(msg) {
    this.msg = {};
    this.userOpen = null; // the user's open/closed choice for the reasoning block
    this.el = h("div", `qwq-msg ${msg.role === "user" ? "user" : "assistant"}`);
    if (msg.role === "user") {
      this.body = h("div", "qwq-user-text");
      this.el.appendChild(this.body);
    } else {
      this.details = h("details", "qwq-reasoning");
      this.summary = h("summary", "qwq-summary");
      this.reasoning = h("div", "qwq-reasoning-body");
      this.details.append(this.summary, this.reasoning);
      this.expectedOpen = false;
      this.details.addEventListener("toggle", () => {
        if (this.details.open !== this.expectedOpen) this.userOpen = this.details.open;
        this.expectedOpen = this.details.open;
      });
      this.answer = h("div", "qwq-answer");
      this.status = h("div", "qwq-status");
      this.footer = h("div", "qwq-footer");
      // shown under a reply cut off by max_tokens: resumes the same reply (Python words it)
      this.cont = h("button", "qwq-continue", "Continue");
      this.cont.type = "button";
      this.cont.hidden = true;
      this.el.append(this.details, this.answer, this.status, this.footer, this.cont);
    }
    this.update(msg);
  }

  setOpen(open) {
    this.expectedOpen = open; // the toggle event fires later: it must not count as the user's
    if (this.details.open !== open) this.details.open = open;
  }

  update(msg) {
    const old = this.msg;
    this.msg = msg;
    if (msg.role === "user") {
      if (old.text !== msg.text) this.body.textContent = msg.text || "";
      return;
    }
    const hasReasoning = Boolean(msg.reasoning);
    this.details.hidden = !hasReasoning;
    if (old.summary !== msg.summary) this.summary.textContent = msg.summary || "Reasoning";
    if (old.reasoning !== msg.reasoning) this.reasoning.textContent = msg.reasoning || "";
    if (msg.thinking) {
      // open while thinking, unless the user closed it
      this.setOpen(this.userOpen === null ? true : this.userOpen);
    } else if (old.thinking || old.thinking === undefined) {
      // folds once when thinking ends; after that only the user opens or closes it
      this.setOpen(false);
      this.userOpen = null;
    }
    if (old.html !== msg.html) {
      this.answer.innerHTML = msg.html || "";
      addCopyButtons(this.answer);
    }
    this.el.classList.toggle("streaming", msg.status === "streaming");
    this.el.dataset.status = msg.status || "";
    // the status line is worded in Python (qwq_magic.view): waiting, stopped, error, cut off…
    const status = msg.notice || "";
    if (this.status.textContent !== status) this.status.textContent = status;
    this.status.hidden = !status;
    this.status.dataset.kind = msg.notice_kind || "";
    this.status.classList.toggle("error", msg.notice_kind === "error");
    this.footer.textContent = msg.footer || "";
    this.footer.hidden = !msg.footer;
    this.cont.hidden = !msg.can_continue;
    if (msg.continue_label) this.cont.textContent = msg.continue_label;
  }
}

// The "Sampling" section: one compact control per parameter spec.
function renderControls(model, box, views) {
  box.replaceChildren();
  views.clear();
  const presets = model.get("presets") || {};
  const bar = h("div", "qwq-presets");
  for (const [name, vals] of Object.entries(presets)) {
    const b = h("button", "qwq-preset", name);
    b.type = "button";
    b.title = Object.entries(vals).map(([k, v]) => `${k}=${v}`).join(", ");
    b.addEventListener("click", () => model.send({ type: "preset", name }));
    bar.appendChild(b);
  }
  const all = h("button", "qwq-preset", "all defaults");
  all.type = "button";
  all.title = "unset every parameter: the provider's defaults apply";
  all.addEventListener("click", () => model.send({ type: "reset_params" }));
  bar.appendChild(all);
  box.appendChild(bar);
  for (const c of model.get("controls") || []) {
    const row = h("div", "qwq-control");
    row.dataset.name = c.name;
    const label = h("label", "qwq-control-name", c.name);
    row.title = c.supported ? `${c.description} (${c.range})` : `unsupported: ${c.reason}`;
    row.appendChild(label);
    let input;
    const readout = h("span", "qwq-readout");
    const reset = h("a", "qwq-reset", "↺ default");
    reset.href = "#";
    reset.title = "use the provider's default (unset)";
    const sendValue = (value) => model.send({ type: "param", name: c.name, value });
    if (!c.supported) {
      row.classList.add("unsupported");
      input = h("input");
      input.type = "range";
      input.disabled = true;
      input.title = c.reason;
      readout.textContent = "n/a";
      reset.hidden = true;
    } else if (c.kind === "bool") {
      input = h("input");
      input.type = "checkbox";
      input.addEventListener("change", () => sendValue(input.checked));
    } else if (c.kind === "text") {
      input = h("input");
      input.type = "text";
      input.placeholder = "comma-separated";
      input.addEventListener("change", () => sendValue(input.value === "" ? null : input.value));
    } else if (c.max - c.min > 100000) {
      input = h("input"); // a seed: typed, not dragged
      input.type = "number";
      input.min = c.min;
      input.max = c.max;
      input.step = 1;
      input.addEventListener("change", () => {
        sendValue(input.value === "" ? null : Number(input.value));
      });
    } else {
      input = h("input");
      input.type = "range";
      // arrow keys move the focused slider (JupyterLab would take them for its own commands)
      input.addEventListener("keydown", (ev) => ev.stopPropagation());
      input.min = c.min;
      input.max = c.max;
      input.step = c.step;
      input.addEventListener("input", () => { readout.textContent = fmtValue(c, input.value); });
      input.addEventListener("change", () => sendValue(Number(input.value)));
    }
    reset.addEventListener("click", (ev) => { ev.preventDefault(); sendValue(null); });
    row.append(input, readout, reset);
    box.appendChild(row);
    views.set(c.name, { c, row, input, readout, reset });
  }
  showValues(model, views);
}

function showValues(model, views) {
  const values = model.get("values") || {};
  for (const { c, row, input, readout, reset } of views.values()) {
    if (!c.supported) continue;
    const v = values[c.name];
    const unset = v === null || v === undefined;
    row.classList.toggle("unset", unset);
    reset.hidden = unset;
    const shown = unset ? c.initial : v;
    const typed = input.type === "text" || input.type === "number";
    if (typed && document.activeElement === input) continue; // don't fight the user's typing
    if (c.kind === "bool") input.checked = Boolean(shown);
    else if (typed) {
      input.value = unset ? "" : String(v);
      if (input.type === "number") input.placeholder = String(c.default ?? c.initial);
    } else input.value = shown;
    // an unset parameter the provider documents no default for says "server default": the
    // slider's resting place is not a value anyone sends
    const documented = !(c.default === null || c.default === undefined);
    const unsetText = documented ? `default ${fmtValue(c, c.default)}` : "server default";
    if (c.kind === "bool") readout.textContent = unset ? unsetText : "";
    else if (c.kind === "text" || input.type === "number") readout.textContent = unset ? unsetText : "";
    else readout.textContent = unset ? unsetText : fmtValue(c, v);
  }
}

function render({ model, el }) {
  const root = h("div", "qwq-panel");
  // header
  const header = h("div", "qwq-header");
  const label = h("span", "qwq-provider");
  const newBtn = h("button", "qwq-new", "New chat");
  newBtn.type = "button";
  header.append(label, newBtn);
  // messages
  const list = h("div", "qwq-messages");
  const notice = h("div", "qwq-notice");
  // sampling
  const sampling = h("details", "qwq-sampling");
  const samplingSummary = h("summary", null, "Sampling");
  const controlsBox = h("div", "qwq-controls");
  sampling.append(samplingSummary, controlsBox);
  // input
  const form = h("div", "qwq-inputbar");
  const input = h("textarea", "qwq-input");
  input.rows = 2;
  input.placeholder = "Ask… (Enter sends, Shift+Enter for a new line)";
  const sendBtn = h("button", "qwq-send", "Send");
  sendBtn.type = "button";
  const stopBtn = h("button", "qwq-stop", "Stop");
  stopBtn.type = "button";
  form.append(input, sendBtn, stopBtn);
  root.append(header, list, notice, sampling, form);
  el.appendChild(root);

  const views = [];
  const controlViews = new Map();

  const atBottom = () => list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const pin = (wasAtBottom) => { if (wasAtBottom) list.scrollTop = list.scrollHeight; };

  // The streaming reply: `live` = {index, message} holds its whole current state while
  // `messages[index]` stays the placeholder. It applies only while that placeholder is there, so
  // a final `messages` (the complete reply, status no longer "streaming") always wins, whichever
  // of the two changes arrives first, and a stale `live` never draws over a finished message.
  function liveFor(msgs) {
    const live = model.get("live") || {};
    const i = live.index;
    const m = live.message;
    if (!m || typeof m !== "object" || !Number.isInteger(i) || i < 0 || i >= msgs.length) {
      return null;
    }
    const base = msgs[i];
    if (base.role !== "assistant" || base.status !== "streaming" || m.role !== "assistant") {
      return null;
    }
    return { index: i, message: m };
  }

  function renderMessages() {
    const all = model.get("messages") || [];
    const live = liveFor(all);
    const msgs = live ? all.map((m, i) => (i === live.index ? live.message : m)) : all;
    const wasAtBottom = atBottom();
    // drop views that no longer match (new chat, or a different message list)
    let keep = 0;
    while (keep < views.length && keep < msgs.length && views[keep].msg.role === msgs[keep].role) {
      keep++;
    }
    if (msgs.length < views.length || keep < Math.min(views.length, msgs.length)) {
      for (const v of views.splice(keep)) v.el.remove();
    }
    // normally only the last message changes; a cheap signature catches any other change
    for (let i = 0; i < views.length; i++) {
      if (i === views.length - 1 || sig(views[i].msg) !== sig(msgs[i])) views[i].update(msgs[i]);
    }
    for (let i = views.length; i < msgs.length; i++) {
      const v = new MessageView(msgs[i]);
      views.push(v);
      list.appendChild(v.el);
    }
    list.classList.toggle("empty", msgs.length === 0);
    pin(wasAtBottom);
  }

  // A `live` change redraws that one message in place; every other node is left alone.
  // Each update carries the whole message, so one that never arrived is healed by the next.
  // An empty `live` (the reply ended) draws nothing: the final `messages` draws the reply.
  function renderLive() {
    const live = liveFor(model.get("messages") || []);
    if (!live) return;
    const v = views[live.index];
    if (!v || v.msg.role !== "assistant") {
      renderMessages(); // the views lag the messages (cannot happen): redraw from the state
      return;
    }
    const wasAtBottom = atBottom();
    v.update(live.message);
    pin(wasAtBottom);
  }

  function renderState() {
    const streaming = model.get("streaming");
    stopBtn.disabled = !streaming;
    sendBtn.disabled = streaming;
    root.classList.toggle("streaming", streaming);
  }

  function renderHeader() {
    label.textContent = model.get("provider_label") || "no provider configured";
  }

  function renderScale() {
    const scale = Number(model.get("font_scale")) || 1;
    root.style.setProperty("--qwq-scale", String(scale));
  }

  function renderNotice() {
    const text = model.get("notice") || "";
    notice.textContent = text;
    notice.hidden = !text;
  }

  function send() {
    const text = input.value;
    if (!text.trim() || model.get("streaming")) return;
    model.send({ type: "send", text });
    input.value = "";
  }

  const onKey = (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      send();
    }
    ev.stopPropagation(); // keep JupyterLab's command shortcuts out of the textarea
  };
  input.addEventListener("keydown", onKey);
  sendBtn.addEventListener("click", send);
  stopBtn.addEventListener("click", () => model.send({ type: "stop" }));
  const onContinue = (ev) => {
    if (ev.target.closest && ev.target.closest(".qwq-continue") && !model.get("streaming")) {
      model.send({ type: "continue" });
    }
  };
  list.addEventListener("click", onContinue);
  newBtn.addEventListener("click", () => model.send({ type: "new" }));

  const onMessages = () => renderMessages();
  const onLive = () => renderLive();
  const onStreaming = () => renderState();
  const onLabel = () => renderHeader();
  const onControls = () => renderControls(model, controlsBox, controlViews);
  const onValues = () => showValues(model, controlViews);
  const onNotice = () => renderNotice();
  const handlers = [
    ["messages", onMessages], ["live", onLive], ["streaming", onStreaming],
    ["provider_label", onLabel], ["controls", onControls], ["presets", onControls],
    ["values", onValues], ["notice", onNotice], ["font_scale", renderScale],
  ];
  for (const [name, fn] of handlers) model.on(`change:${name}`, fn);

  renderScale();
  renderHeader();
  renderMessages();
  renderState();
  renderNotice();
  onControls();
  list.scrollTop = list.scrollHeight;

  return () => {
    for (const [name, fn] of handlers) model.off(`change:${name}`, fn);
  };
}

export default { render };
