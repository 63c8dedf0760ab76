// hermes_nb chat view: an anywidget ES module, hand-written, no build step.
//
// The kernel sends frames {type: "frame", seq, prev, status, blocks: [{id, kind, html}], rid, meta}.
// Each view keeps its own cursor (the seq of what it applied) and applies a frame iff
// prev <= cursor < seq; it ignores frames with seq <= cursor and asks for a replay after=cursor
// when cursor < prev (a gap). Blocks are upserted by id, or patched from an offset only when the
// view holds exactly the HTML the patch starts from (cursor === prev); never appended blindly,
// so a replay can never duplicate text (DESIGN.md §3, invariants 1, 2 and 4). Block HTML is
// sanitised in the kernel before it is sent. A view removed from a live page (its output
// replaced by the static bundle, cleared, deleted) sends {type: "removed"}: once the run has
// settled, the kernel may then close the widget (view/display.py).
//
// The conversation (reply text, tool calls, prompt cards) is laid out in segments: a block id
// "2/reply:0" goes into segment 2, a bare id into segment 0 (view/_protocol.py). A prompt card
// (kind "ask") carries buttons and a text field; one delegated listener on the root sends
// {type: "answer", prompt_id, value}. The card stays as sent ("Sending…") until the kernel's
// frame replaces it with the decision; its countdown ticks here, against the kernel's clock
// (meta.clock), so the kernel sends nothing per second.
//
// Every code block of a reply gets Copy and, where hermes_nb's JupyterLab / Notebook 7 extension
// is present (document.body.dataset.hermesNbExtension), Insert below: a bar of buttons put
// before its <pre> each time the block's HTML is set (so a re-rendered block gets them again).
// They act on the block's code exactly (its text, without the fence's final newline). Their
// labels are CSS-generated, so a reply's text (innerText, a selection) stays the reply alone;
// the kernel's HTML never holds them, and a saved answer gets its buttons from the extension.

const LIVE = new Set(["queued", "streaming", "waiting"]);
const LABELS = {
  queued: "Queued",
  streaming: "Streaming…",
  waiting: "Waiting for you",
  done: "Done",
  stopped: "Stopped",
  error: "Error",
};
const SLOTS = {
  prompt: ".hnb-prompt",
  info: ".hnb-infos",
  reasoning: ".hnb-reasoning-body",
  error: ".hnb-errors",
  notice: ".hnb-notices",
  status: ".hnb-status",
};
// Kinds laid out per conversation segment, and their slot inside one.
const FLOW = { reply: ".hnb-reply", tool: ".hnb-tools", ask: ".hnb-asks" };
const SEGMENT = `<div class="hnb-reply jp-RenderedHTMLCommon"></div>
<div class="hnb-tools"></div><div class="hnb-asks"></div>`;
const RETRY_MS = [250, 500, 1000, 2000, 4000, 8000];
const ACTION_DONE_MS = 1500; // how long "Copied" / "Inserted" shows
// The extension's contract (labextension/README.md): version "1".
const INSERT_EVENT = "hermes-nb:insert-cell";
const PROBE_EVENT = "hermes-nb:probe";
const ACTIONS = {
  copy: { label: "Copy code", done: "Code copied to the clipboard", failed: "Copy failed" },
  insert: {
    label: "Insert code in a new cell below",
    done: "Code inserted in a new cell below",
    failed: "Could not insert a cell here",
  },
};
const MAX_ATTEMPTS = 40; // about five minutes of asking; a later gap asks again
const STOP_RETRY_MS = 3000;
const ANSWER_RETRY_MS = 5000; // no decision by then: the card's controls work again

const SKELETON = `
<div class="hnb-head"><span class="hnb-bot"></span><span class="hnb-model"></span></div>
<div class="hnb-prompt jp-RenderedHTMLCommon"></div>
<div class="hnb-infos"></div>
<details class="hnb-reasoning" hidden><summary>Reasoning</summary>
<div class="hnb-reasoning-body jp-RenderedHTMLCommon"></div></details>
<div class="hnb-flow"></div>
<div class="hnb-errors"></div>
<div class="hnb-notices"></div>
<div class="hnb-footer"><div class="hnb-status"></div>
<button type="button" class="hnb-stop" title="Stop this reply" hidden>Stop</button></div>
<div class="hnb-announce" role="status" aria-live="polite"></div>`;

function uid() {
  if (globalThis.crypto?.randomUUID) return globalThis.crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

function formatElapsed(seconds) {
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60);
  const s = Math.floor(seconds % 60);
  return `${m} min ${String(s).padStart(2, "0")} s`;
}

// Position of a block among its siblings: "reply:3" → 3 (other kinds keep arrival order,
// which is creation order: a view has applied every block created before its cursor).
function blockIndex(id) {
  const n = id.includes(":") ? Number(id.slice(id.lastIndexOf(":") + 1)) : Number.NaN;
  return Number.isInteger(n) ? n : null;
}

// "2/reply:0" → 2; a bare id is in segment 0.
function segmentOf(id) {
  const m = /^(\d+)\//.exec(id);
  return m ? Number(m[1]) : 0;
}

function formatLeft(seconds) {
  const s = Math.max(0, Math.ceil(seconds));
  if (s < 60) return `${s} s left to answer`;
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, "0")} left to answer`;
}

// A view leaving a page that unloads (a reload, a closed tab) has not left the notebook: the
// file may still hold it. Only a view removed from a live page (its output replaced by the
// static bundle, cleared, deleted) tells the kernel, which may then close the widget.
let unloading = false;
globalThis.addEventListener?.("pagehide", () => {
  unloading = true;
});
globalThis.addEventListener?.("pageshow", () => {
  unloading = false;
});

// -- code actions (module level: they need nothing of a view but its nodes) -------------------

function extensionPresent() {
  return document.body?.dataset.hermesNbExtension === "1";
}

// The code of a <pre>: its text exactly, less the final newline every fence ends with.
function codeOf(pre) {
  const code = pre.querySelector("code") ?? pre;
  return (code.textContent ?? "").replace(/\n$/, "");
}

// The Clipboard API where the page may use it; else a hidden textarea and execCommand("copy"),
// with the text put on the copy event itself (exact, whatever the selection would hold).
async function copyText(text, from) {
  try {
    if (navigator.clipboard?.writeText) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch (err) {
    // Denied (no permission, an insecure origin, the page not focused): try the old way.
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.setAttribute("aria-hidden", "true");
  area.style.cssText = "position:fixed;top:0;left:-9999px;opacity:0";
  const onCopy = (event) => {
    event.clipboardData?.setData("text/plain", text);
    event.preventDefault();
  };
  document.body.appendChild(area);
  document.addEventListener("copy", onCopy, true);
  let ok = false;
  try {
    area.select();
    ok = document.execCommand("copy");
  } catch (err) {
    ok = false;
  } finally {
    document.removeEventListener("copy", onCopy, true);
    area.remove();
    from?.focus({ preventScroll: true });
  }
  return ok;
}

// Ask the extension to insert a code cell with `code` below the cell whose output holds `from`;
// true iff it did (it called preventDefault).
function insertBelow(from, code) {
  const event = new CustomEvent(INSERT_EVENT, {
    bubbles: true,
    cancelable: true,
    detail: { code },
  });
  return !from.dispatchEvent(event);
}

// Would Insert below work from `node` (a code cell's output in a writable notebook)? Only a
// node in the document can ask; before that, assume it would.
function insertable(node) {
  if (!extensionPresent()) return false;
  if (!node.isConnected) return true;
  return !node.dispatchEvent(new CustomEvent(PROBE_EVENT, { bubbles: true, cancelable: true }));
}

function actionButton(action) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "hnb-code-action";
  b.dataset.action = action;
  b.title = ACTIONS[action].label;
  b.setAttribute("aria-label", ACTIONS[action].label);
  return b;
}

// Put the bar of actions before every <pre> of a reply block (its HTML was just set).
function decorateCode(node) {
  const pres = node.querySelectorAll("pre");
  if (!pres.length) return;
  const insert = insertable(node);
  for (const pre of pres) {
    const bar = document.createElement("div");
    bar.className = "hnb-code-actions";
    bar.setAttribute("role", "group");
    bar.setAttribute("aria-label", "Code actions");
    bar.append(actionButton("copy"));
    if (insert) bar.append(actionButton("insert"));
    pre.before(bar);
  }
}

function ensureHighlightCss(css) {
  if (!css || document.getElementById("hnb-highlight-css")) return;
  const style = document.createElement("style");
  style.id = "hnb-highlight-css";
  style.textContent = css;
  document.head.appendChild(style);
}

function render({ model, el }) {
  const viewId = uid();
  const root = document.createElement("div");
  root.className = "hnb-chat";
  root.innerHTML = SKELETON;
  el.replaceChildren(root);
  const $ = (sel) => root.querySelector(sel);
  const stop = $(".hnb-stop");
  const nodes = new Map(); // block id -> element
  const htmlById = new Map(); // block id -> the HTML it shows (patches apply to this string)
  const sent = new Map(); // prompt id -> {value, timer}: answered here, decision not shown yet
  const suffix = viewId.slice(0, 8); // keeps element ids unique when a run has several views

  let cursor = 0; // seq of the last frame this view applied
  let status = null; // status of that frame (null: none yet, use the synced trait)
  let meta = {};
  let metaAt = 0;
  let pending = null; // rid of the replay request awaiting an answer
  let attempts = 0;
  let ridCount = 0;
  let retryTimer = null;
  let stopTimer = null;
  let ticker = null;
  let clockSkew = 0; // kernel epoch seconds minus this page's, from the last frame's meta

  // -- replay ---------------------------------------------------------------------------------

  function ask() {
    pending = `${viewId}:${++ridCount}`;
    try {
      model.send({ type: "replay", after: cursor, rid: pending });
    } catch (err) {
      console.warn("hermes_nb: replay request not sent", err);
    }
    const delay = RETRY_MS[Math.min(attempts, RETRY_MS.length - 1)];
    attempts += 1;
    clearTimeout(retryTimer);
    retryTimer = setTimeout(() => {
      // No answer with that rid: the request (or its answer) was lost. Ask again.
      if (pending !== null && attempts < MAX_ATTEMPTS) ask();
      else pending = null;
    }, delay);
  }

  function requestReplay() {
    if (pending === null) {
      attempts = 0;
      ask();
    }
  }

  // -- blocks ---------------------------------------------------------------------------------

  function place(slot, node, id) {
    const index = blockIndex(id);
    if (index !== null) {
      for (const sibling of slot.children) {
        const other = blockIndex(sibling.dataset.block || "");
        if (other !== null && other > index) {
          slot.insertBefore(node, sibling);
          return;
        }
      }
    }
    slot.appendChild(node);
  }

  // A patch ({at}) replaces the block's HTML from UTF-16 offset `at`. It is only valid for the
  // exact HTML the kernel had at the frame's prev, which this view holds iff cursor === prev.
  function patchable(msg) {
    return msg.blocks.every(
      (b) =>
        b.at === undefined ||
        (cursor === msg.prev && (htmlById.get(b.id)?.length ?? -1) >= b.at),
    );
  }

  function segment(n) {
    const flow = $(".hnb-flow");
    let seg = flow.querySelector(`:scope > .hnb-seg[data-seg="${n}"]`);
    if (seg) return seg;
    seg = document.createElement("div");
    seg.className = "hnb-seg";
    seg.dataset.seg = String(n);
    seg.innerHTML = SEGMENT;
    const after = [...flow.children].find((s) => Number(s.dataset.seg) > n);
    flow.insertBefore(seg, after ?? null);
    return seg;
  }

  function slotFor(block) {
    if (FLOW[block.kind]) return segment(segmentOf(block.id)).querySelector(FLOW[block.kind]);
    return SLOTS[block.kind] ? $(SLOTS[block.kind]) : null;
  }

  function upsert(block) {
    let node = nodes.get(block.id);
    const html =
      block.at === undefined
        ? block.html
        : htmlById.get(block.id).slice(0, block.at) + block.html;
    if (!html) {
      node?.remove();
      nodes.delete(block.id);
      htmlById.delete(block.id);
      return;
    }
    // The same HTML again (a replay): leave the node alone, with whatever the person was
    // typing into a card or had opened.
    if (node && htmlById.get(block.id) === html) return;
    const slot = node ? null : slotFor(block);
    if (!node && !slot) return;
    htmlById.set(block.id, html);
    const open = node
      ? [...node.querySelectorAll("details")].map((d) => d.open)
      : [];
    const wasOpen = node?.querySelector('.hnb-ask[data-state="open"]') != null;
    if (!node) {
      if (block.kind === "status") slot.replaceChildren();
      node = document.createElement("div");
      node.className = "hnb-block";
      node.dataset.block = block.id;
      place(slot, node, block.id);
      nodes.set(block.id, node);
    }
    node.innerHTML = html;
    if (block.kind === "reply") decorateCode(node);
    // Keep a tool call the user opened open while it updates.
    node.querySelectorAll("details").forEach((d, i) => {
      if (open[i]) d.open = true;
    });
    if (block.kind === "reasoning") $(".hnb-reasoning").hidden = false;
    if (block.kind === "ask") onCard(node, wasOpen);
  }

  // -- prompt cards ---------------------------------------------------------------------------

  // Element ids inside a card get this view's suffix (two views of a run share the page).
  function localizeIds(node) {
    for (const el of node.querySelectorAll("[id]")) el.id = `${el.id}-${suffix}`;
    for (const el of node.querySelectorAll("[aria-labelledby]")) {
      const ids = el.getAttribute("aria-labelledby").split(/\s+/);
      el.setAttribute("aria-labelledby", ids.map((i) => `${i}-${suffix}`).join(" "));
    }
  }

  function onCard(node, wasOpen) {
    localizeIds(node);
    const card = node.querySelector(".hnb-ask");
    if (!card) return;
    const id = card.dataset.prompt;
    if (card.dataset.state === "open") {
      if (sent.has(id)) markSending(card); // a replay of a card this view already answered
      tickCountdowns();
      return;
    }
    const was = sent.get(id);
    if (was) clearTimeout(was.timer);
    sent.delete(id);
    const decided = card.querySelector(".hnb-ask-decision");
    if (decided && (wasOpen || was)) {
      // Said once, in the view's own live region (the card's was just replaced).
      const text = card.querySelector(".hnb-ask-text")?.textContent ?? "";
      announce(`${text} ${decided.textContent}`);
    }
  }

  function announce(text) {
    const region = $(".hnb-announce");
    region.textContent = "";
    // A fresh text node, a tick later: screen readers announce a change, not a repeat.
    setTimeout(() => {
      region.textContent = text;
    }, 50);
  }

  function controls(card) {
    return card.querySelectorAll("button, input");
  }

  function markSending(card) {
    for (const el of controls(card)) el.disabled = true;
    card.dataset.sending = "true";
    const status = card.querySelector(".hnb-ask-decision");
    if (status) status.textContent = "Sending…";
  }

  function answer(card, value) {
    const id = card.dataset.prompt;
    if (!id || card.dataset.state !== "open" || card.dataset.sending === "true") return;
    try {
      model.send({ type: "answer", prompt_id: id, value });
    } catch (err) {
      console.warn("hermes_nb: answer not sent", err);
      return;
    }
    const timer = setTimeout(() => {
      // No decision yet (a busy kernel without subshells, a reconnect): allow another try.
      const entry = sent.get(id);
      if (!entry || entry.timer !== timer) return;
      sent.delete(id);
      const now = root.querySelector(`.hnb-ask[data-prompt="${CSS.escape(id)}"]`);
      if (!now || now.dataset.state !== "open") return;
      for (const el of controls(now)) el.disabled = false;
      delete now.dataset.sending;
      const status = now.querySelector(".hnb-ask-decision");
      if (status) status.textContent = "No reply from the kernel yet — you can try again.";
    }, ANSWER_RETRY_MS);
    sent.set(id, { value, timer });
    markSending(card);
  }

  function sendTyped(card) {
    const input = card.querySelector(".hnb-ask-input");
    const value = input ? input.value.trim() : "";
    if (!value) {
      input?.setAttribute("aria-invalid", "true");
      input?.focus();
      return;
    }
    input.removeAttribute("aria-invalid");
    answer(card, value);
  }

  // -- code actions ---------------------------------------------------------------------------

  async function codeAction(button) {
    const pre = button.closest(".hnb-code-actions")?.nextElementSibling;
    if (!pre || pre.tagName !== "PRE") return;
    const action = button.dataset.action;
    const code = codeOf(pre);
    let ok = false;
    if (action === "copy") ok = await copyText(code, button);
    else if (action === "insert") ok = insertBelow(button, code);
    clearTimeout(button.hnbTimer);
    if (ok) {
      button.dataset.done = "1";
      delete button.dataset.failed;
    } else {
      button.dataset.failed = "1";
      delete button.dataset.done;
    }
    announce(ok ? ACTIONS[action].done : ACTIONS[action].failed);
    button.hnbTimer = setTimeout(() => {
      delete button.dataset.done;
      delete button.dataset.failed;
    }, ACTION_DONE_MS);
  }

  function onClick(event) {
    const button = event.target.closest?.("button");
    if (!button || !root.contains(button)) return;
    if (button.classList.contains("hnb-code-action")) {
      event.preventDefault();
      event.stopPropagation();
      void codeAction(button);
      return;
    }
    const card = button.closest(".hnb-ask");
    if (!card) return;
    if (button.dataset.answer !== undefined) answer(card, button.dataset.answer);
    else if (button.classList.contains("hnb-ask-send")) sendTyped(card);
  }

  function onKey(event) {
    if (event.target.classList?.contains("hnb-code-action")) {
      // The button's own keys (Enter, Space click it): not the notebook's shortcuts.
      if (event.key === "Enter" || event.key === " ") event.stopPropagation();
      return;
    }
    if (event.key !== "Enter" || event.isComposing) return;
    const input = event.target.closest?.(".hnb-ask-input");
    if (!input) return;
    event.preventDefault();
    event.stopPropagation(); // not the notebook's Enter (edit mode, run cell)
    sendTyped(input.closest(".hnb-ask"));
  }

  function tickCountdowns() {
    const now = Date.now() / 1000 + clockSkew;
    for (const el of root.querySelectorAll(".hnb-countdown[data-deadline]")) {
      const left = Number(el.dataset.deadline) - now;
      el.textContent = left > 0 ? formatLeft(left) : "Time is up";
      el.dataset.urgent = left < 30 ? "true" : "false";
    }
  }

  // -- frames ---------------------------------------------------------------------------------

  function onFrame(msg) {
    if (!msg || msg.type !== "frame") return;
    if (msg.rid && msg.rid === pending) {
      pending = null;
      clearTimeout(retryTimer);
    }
    if (msg.seq <= cursor) return; // already applied
    if (msg.prev > cursor || !patchable(msg)) {
      requestReplay(); // a gap: something between cursor and prev never reached this view
      return;
    }
    for (const block of msg.blocks) upsert(block);
    cursor = msg.seq;
    status = msg.status;
    meta = msg.meta || {};
    metaAt = performance.now();
    if (typeof meta.clock === "number") clockSkew = meta.clock - Date.now() / 1000;
    paint();
  }

  // -- status line, Stop, ticker --------------------------------------------------------------

  function currentStatus() {
    return status ?? model.get("status") ?? "queued";
  }

  function tick() {
    tickCountdowns();
    const detail = $(".hnb-status-detail");
    if (!detail || !LIVE.has(currentStatus()) || !metaAt) return;
    const elapsed = (meta.elapsed ?? 0) + (performance.now() - metaAt) / 1000;
    const tokens = meta.tokens ? ` · ${meta.tokens} tokens` : "";
    detail.textContent = ` · ${formatElapsed(elapsed)}${tokens}`;
  }

  function paint() {
    const state = currentStatus();
    const live = LIVE.has(state);
    root.dataset.state = state;
    $(".hnb-bot").textContent = model.get("bot_name") || "Hermes";
    $(".hnb-model").textContent = model.get("model") || "";
    if (!nodes.has("status")) {
      // Nothing from the kernel yet: show the synced state until the first frame arrives.
      const label = document.createElement("span");
      label.className = "hnb-status-label";
      label.textContent = LABELS[state] ?? state;
      const detail = document.createElement("span");
      detail.className = "hnb-status-detail";
      $(".hnb-status").replaceChildren(label, detail);
    }
    stop.hidden = !live;
    if (!live) {
      clearTimeout(stopTimer);
      stop.disabled = false;
      stop.textContent = "Stop";
    }
    if (live && ticker === null) ticker = setInterval(tick, 250);
    if (!live && ticker !== null) {
      clearInterval(ticker);
      ticker = null;
    }
    if (live) tick();
  }

  function onStop() {
    try {
      model.send({ type: "cancel" });
    } catch (err) {
      console.warn("hermes_nb: stop not sent", err);
    }
    stop.disabled = true;
    stop.textContent = "Stopping…";
    clearTimeout(stopTimer);
    // If the click was lost (kernel busy with an old ipykernel, a reconnect), allow another.
    stopTimer = setTimeout(() => {
      stop.disabled = false;
      stop.textContent = "Stop";
    }, STOP_RETRY_MS);
  }

  const onCustom = (msg) => onFrame(msg);
  const onTrait = () => paint();
  const onCss = () => ensureHighlightCss(model.get("highlight_css"));
  // One list, so what render subscribes is exactly what cleanup unsubscribes.
  const listeners = [
    ["msg:custom", onCustom],
    ["change:status", onTrait],
    ["change:bot_name", onTrait],
    ["change:model", onTrait],
    ["change:highlight_css", onCss],
  ];
  for (const [name, handler] of listeners) model.on(name, handler);
  stop.addEventListener("click", onStop);
  root.addEventListener("click", onClick);
  root.addEventListener("keydown", onKey);

  onCss();
  paint();
  requestReplay(); // a fresh view (first render, page reload, second view) starts after=0

  return () => {
    if (!unloading) {
      // This view leaves a live page (its output replaced by the static bundle, cleared,
      // deleted): nothing here shows the run now. The kernel counts it once the run settled.
      try {
        model.send({ type: "removed" });
      } catch (err) {
        // The model is closing (the kernel closed the widget): nothing to tell it.
      }
    }
    for (const [name, handler] of listeners) model.off(name, handler);
    stop.removeEventListener("click", onStop);
    root.removeEventListener("click", onClick);
    root.removeEventListener("keydown", onKey);
    for (const entry of sent.values()) clearTimeout(entry.timer);
    clearTimeout(retryTimer);
    clearTimeout(stopTimer);
    clearInterval(ticker);
    pending = null;
  };
}

export default { render };
