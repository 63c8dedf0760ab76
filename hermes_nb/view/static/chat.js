// hermes_nb chat view: an anywidget ES module, hand-written, no build step.
//
// The kernel sends frames {type: "frame", seq, prev, status, blocks: [{id, kind, html}], rid, meta}.
// Each view keeps its own cursor (the seq of what it applied) and applies a frame iff
// prev <= cursor < seq; it ignores frames with seq <= cursor and asks for a replay after=cursor
// when cursor < prev (a gap). Blocks are upserted by id, or patched from an offset only when the
// view holds exactly the HTML the patch starts from (cursor === prev); never appended blindly,
// so a replay can never duplicate text (DESIGN.md §3, invariants 1, 2 and 4). Block HTML is
// sanitised in the kernel before it is sent.

const LIVE = new Set(["queued", "streaming"]);
const LABELS = {
  queued: "Queued",
  streaming: "Streaming…",
  done: "Done",
  stopped: "Stopped",
  error: "Error",
};
const SLOTS = {
  prompt: ".hnb-prompt",
  info: ".hnb-infos",
  reasoning: ".hnb-reasoning-body",
  tool: ".hnb-tools",
  reply: ".hnb-reply",
  error: ".hnb-errors",
  notice: ".hnb-notices",
  status: ".hnb-status",
};
const RETRY_MS = [250, 500, 1000, 2000, 4000, 8000];
const MAX_ATTEMPTS = 40; // about five minutes of asking; a later gap asks again
const STOP_RETRY_MS = 3000;

const SKELETON = `
<div class="hnb-head"><span class="hnb-bot"></span><span class="hnb-model"></span></div>
<div class="hnb-prompt jp-RenderedHTMLCommon"></div>
<div class="hnb-infos"></div>
<details class="hnb-reasoning" hidden><summary>Reasoning</summary>
<div class="hnb-reasoning-body jp-RenderedHTMLCommon"></div></details>
<div class="hnb-tools"></div>
<div class="hnb-reply jp-RenderedHTMLCommon"></div>
<div class="hnb-errors"></div>
<div class="hnb-notices"></div>
<div class="hnb-footer"><div class="hnb-status"></div>
<button type="button" class="hnb-stop" title="Stop this reply" hidden>Stop</button></div>`;

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

  function upsert(block) {
    const slot = $(SLOTS[block.kind]);
    if (!slot) return;
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
    htmlById.set(block.id, html);
    const open = node
      ? [...node.querySelectorAll("details")].map((d) => d.open)
      : [];
    if (!node) {
      if (block.kind === "status") slot.replaceChildren();
      node = document.createElement("div");
      node.className = "hnb-block";
      node.dataset.block = block.id;
      place(slot, node, block.id);
      nodes.set(block.id, node);
    }
    node.innerHTML = html;
    // Keep a tool call the user opened open while it updates.
    node.querySelectorAll("details").forEach((d, i) => {
      if (open[i]) d.open = true;
    });
    if (block.kind === "reasoning") $(".hnb-reasoning").hidden = false;
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
    paint();
  }

  // -- status line, Stop, ticker --------------------------------------------------------------

  function currentStatus() {
    return status ?? model.get("status") ?? "queued";
  }

  function tick() {
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

  onCss();
  paint();
  requestReplay(); // a fresh view (first render, page reload, second view) starts after=0

  return () => {
    for (const [name, handler] of listeners) model.off(name, handler);
    stop.removeEventListener("click", onStop);
    clearTimeout(retryTimer);
    clearTimeout(stopTimer);
    clearInterval(ticker);
    pending = null;
  };
}

export default { render };
