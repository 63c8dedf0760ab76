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
// The DOM follows the frames at most FLUSH_MS apart: a frame's blocks are taken at once (the
// cursor, the HTML each block shows, so replay and patches stay exact), and the elements they
// change are written in one requestAnimationFrame callback, together with whatever came since.
// Each DOM update costs the page a style, layout, paint and compositing pass of several
// milliseconds, however little it changes, so however many frames arrive a streaming reply
// costs at most one such pass per FLUSH_MS. While the view's end (its status line) is off
// screen (a long reply read from its top, the cell scrolled away, outputs collapsed) nobody sees
// the text grow, and updates come HIDDEN_FLUSH_MS apart (sooner when HIDDEN_MAX_CHARS of HTML
// wait), only to keep the cell's height (the scrollbar) roughly right; the first frame after the
// end comes into view shows everything.
// The view tells the kernel ({type: "sight"}), which then sends frames once a second.
// A settled status, a prompt card or a replay's answer is written in the next frame, seen or
// not. Finished reply blocks (all but the last of a reply) skip rendering while off screen
// (chat.css: content-visibility).
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
const FLUSH_MS = 150; // the least time between two DOM updates while a reply streams
const HIDDEN_FLUSH_MS = 3000; // the same while the view's end is off screen
const HIDDEN_MAX_CHARS = 64000; // ... or once this much new HTML waits (one update stays short)
const TICK_MS = 1000; // the status line's clock, between frames
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
  if (seconds < 60) return `${Math.floor(seconds)} s`;
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
// `probe()` says whether Insert below works here; asked once per DOM update, and only if
// some block has code.
function decorateCode(node, probe) {
  const pres = node.querySelectorAll("pre");
  if (!pres.length) return;
  const insert = probe(node);
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
  const nodes = new Map(); // block id -> element (its HTML as written: node.hnbHtml)
  const htmlById = new Map(); // block id -> the HTML it shows (patches apply to this string)
  const dirty = new Map(); // block id -> kind: changed by frames since the last DOM update
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
  let flushFrame = 0; // requestAnimationFrame id of the next DOM update
  let flushTimer = null; // its timer, while the last update is too recent
  let lastFlush = 0;
  let seen = true; // the view's end on screen (until an IntersectionObserver says otherwise)
  let waiting = 0; // characters of HTML taken since the last DOM update

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
      // Blocks mostly arrive in order: after the last one, without looking at the others.
      const last = blockIndex(slot.lastElementChild?.dataset.block || "");
      if (last === null || last < index) {
        slot.appendChild(node);
        return;
      }
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

  // Take a frame's block: the HTML this view now holds for it (what the next patch applies
  // to), and a note that its element needs writing (write(), in the next DOM update).
  function accept(block) {
    const html =
      block.at === undefined
        ? block.html
        : htmlById.get(block.id).slice(0, block.at) + block.html;
    if (!html) {
      if (htmlById.delete(block.id) || nodes.has(block.id)) dirty.set(block.id, block.kind);
      return;
    }
    // The same HTML again (a replay): leave the node alone, with whatever the person was
    // typing into a card or had opened.
    if (htmlById.get(block.id) === html) return;
    if (!nodes.has(block.id) && !FLOW[block.kind] && !SLOTS[block.kind]) return;
    htmlById.set(block.id, html);
    dirty.set(block.id, block.kind);
    waiting += block.html.length;
  }

  // Bring one block's element up to date with the HTML this view holds for it.
  function write(id, kind, probe) {
    let node = nodes.get(id);
    const html = htmlById.get(id);
    if (!html) {
      node?.remove();
      nodes.delete(id);
      return;
    }
    if (node?.hnbHtml === html) return;
    const slot = node ? null : slotFor({ id, kind });
    if (!node && !slot) return;
    const open = node
      ? [...node.querySelectorAll("details")].map((d) => d.open)
      : [];
    const wasOpen = node?.querySelector('.hnb-ask[data-state="open"]') != null;
    if (!node) {
      if (kind === "status") slot.replaceChildren();
      node = document.createElement("div");
      node.className = "hnb-block";
      node.dataset.block = id;
      place(slot, node, id);
      nodes.set(id, node);
    }
    node.innerHTML = html;
    node.hnbHtml = html;
    if (kind === "reply") decorateCode(node, probe);
    // Keep a tool call the user opened open while it updates.
    if (open.length) {
      node.querySelectorAll("details").forEach((d, i) => {
        if (open[i]) d.open = true;
      });
    }
    if (kind === "reasoning") $(".hnb-reasoning").hidden = false;
    if (kind === "ask") onCard(node, wasOpen);
  }

  // -- DOM updates ----------------------------------------------------------------------------

  // Write every block changed since the last update, then the status line: one style, layout
  // and paint pass for all of them.
  function flush() {
    flushFrame = 0;
    clearTimeout(flushTimer);
    flushTimer = null;
    lastFlush = performance.now();
    waiting = 0;
    let insert; // whether Insert below works here: asked at most once per update
    const probe = (node) => {
      if (insert === undefined) insert = insertable(node);
      return insert;
    };
    const changed = [...dirty];
    dirty.clear();
    for (const [id, kind] of changed) write(id, kind, probe);
    paint();
  }

  // An update in the next frame if `now` (or FLUSH_MS after the last one), else at most
  // FLUSH_MS after the last.
  function schedule(now) {
    if (flushFrame) return;
    if (now) {
      clearTimeout(flushTimer);
      flushTimer = null;
    } else if (flushTimer !== null) {
      return;
    }
    const wait = now ? 0 : lastFlush + (seen ? FLUSH_MS : HIDDEN_FLUSH_MS) - performance.now();
    const frame = () => {
      flushTimer = null;
      flushFrame = requestAnimationFrame(flush);
    };
    if (wait <= 0) frame();
    else flushTimer = setTimeout(frame, wait);
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
    for (const block of msg.blocks) accept(block);
    const now =
      msg.rid != null ||
      (!seen && waiting > HIDDEN_MAX_CHARS) ||
      msg.status !== status ||
      !LIVE.has(msg.status) ||
      msg.blocks.some((b) => b.kind === "ask" || b.kind === "status");
    cursor = msg.seq;
    status = msg.status;
    meta = msg.meta || {};
    metaAt = performance.now();
    if (typeof meta.clock === "number") clockSkew = meta.clock - Date.now() / 1000;
    schedule(now);
  }

  // -- status line, Stop, ticker --------------------------------------------------------------

  function currentStatus() {
    return status ?? model.get("status") ?? "queued";
  }

  // Text and attributes are written only when they change: each write costs the page a
  // style and layout pass (and a mutation record for every observer of the cell).
  function setText(node, text) {
    if (node && node.textContent !== text) node.textContent = text;
  }

  function tick() {
    tickCountdowns();
    const detail = $(".hnb-status-detail");
    if (!detail || !LIVE.has(currentStatus()) || !metaAt) return;
    const elapsed = (meta.elapsed ?? 0) + (performance.now() - metaAt) / 1000;
    const tokens = meta.tokens ? ` · ${meta.tokens} tokens` : "";
    setText(detail, ` · ${formatElapsed(elapsed)}${tokens}`);
  }

  function paint() {
    const state = currentStatus();
    const live = LIVE.has(state);
    if (root.dataset.state !== state) root.dataset.state = state;
    setText($(".hnb-bot"), model.get("bot_name") || "Hermes");
    setText($(".hnb-model"), model.get("model") || "");
    if (!nodes.has("status")) {
      // Nothing from the kernel yet: show the synced state until the first frame arrives.
      const text = LABELS[state] ?? state;
      const shown = $(".hnb-status > .hnb-status-label");
      if (shown) setText(shown, text);
      else {
        const label = document.createElement("span");
        label.className = "hnb-status-label";
        label.textContent = text;
        const detail = document.createElement("span");
        detail.className = "hnb-status-detail";
        $(".hnb-status").replaceChildren(label, detail);
      }
    }
    if (stop.hidden === live) stop.hidden = !live;
    if (!live && (stop.disabled || stopTimer !== null)) {
      clearTimeout(stopTimer);
      stopTimer = null;
      stop.disabled = false;
      stop.textContent = "Stop";
    }
    // Between frames only: while a reply streams, each DOM update ticks (paint() → tick()), and
    // a tick of its own would cost the page another style, layout and paint pass.
    if (live && ticker === null) {
      ticker = setInterval(() => {
        if (seen && !flushFrame && flushTimer === null) tick();
      }, TICK_MS);
    }
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
      stopTimer = null;
      stop.disabled = false;
      stop.textContent = "Stop";
    }, STOP_RETRY_MS);
  }

  // Whether the view's end is on screen: the status line, below everything a frame changes.
  // Only the viewport's and the notebook's clipping count (no margin: the implicit root's
  // rootMargin would not reach into the notebook's scroller).
  const footer = $(".hnb-footer");
  const sight =
    typeof IntersectionObserver === "function"
      ? new IntersectionObserver((entries) => {
          const now = entries[entries.length - 1].isIntersecting;
          if (now === seen) return;
          seen = now;
          // The kernel sends frames less often while every view says it is off screen.
          try {
            model.send({ type: "sight", view: viewId, seen });
          } catch (err) {
            // The model is closing: nothing to tell.
          }
          if (seen && (dirty.size || flushTimer !== null)) schedule(true);
        })
      : null;
  sight?.observe(footer);

  const onCustom = (msg) => onFrame(msg);
  const onTrait = () => schedule(true); // shown with the frames' blocks, in the next update
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
      // Told in a task of its own: the one that removes the view also renders what replaces
      // it (the settle), and nothing waits on this message.
      setTimeout(() => {
        try {
          model.send({ type: "removed" });
        } catch (err) {
          // The model is closing (the kernel closed the widget): nothing to tell it.
        }
      }, 0);
    }
    for (const [name, handler] of listeners) model.off(name, handler);
    stop.removeEventListener("click", onStop);
    root.removeEventListener("click", onClick);
    root.removeEventListener("keydown", onKey);
    for (const entry of sent.values()) clearTimeout(entry.timer);
    clearTimeout(retryTimer);
    clearTimeout(stopTimer);
    clearInterval(ticker);
    sight?.disconnect();
    clearTimeout(flushTimer);
    cancelAnimationFrame(flushFrame);
    pending = null;
  };
}

export default { render };
