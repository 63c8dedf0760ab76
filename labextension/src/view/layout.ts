/**
 * The view's skeleton and where each block kind goes in it, with the small pure helpers that
 * read a block id (its segment, its position) and format the status line's and cards' clocks.
 *
 * The conversation (reply text, tool calls, prompt cards) is laid out in segments: a block id
 * "2/reply:0" goes into segment 2, a bare id into segment 0 (hermes_nb/view/_protocol.py).
 */

export const LIVE = new Set(['queued', 'streaming', 'waiting']);

export const LABELS: Record<string, string> = {
  queued: 'Queued',
  streaming: 'Streaming…',
  waiting: 'Waiting for you',
  done: 'Done',
  stopped: 'Stopped',
  error: 'Error'
};

/** Kinds shown once per view, and their slot. */
export const SLOTS: Record<string, string> = {
  prompt: '.hnb-prompt',
  info: '.hnb-infos',
  reasoning: '.hnb-reasoning-body',
  error: '.hnb-errors',
  notice: '.hnb-notices',
  status: '.hnb-status'
};

/** Kinds laid out per conversation segment, and their slot inside one. */
export const FLOW: Record<string, string> = {
  reply: '.hnb-reply',
  tool: '.hnb-tools',
  ask: '.hnb-asks'
};

export const SEGMENT = `<div class="hnb-reply jp-RenderedHTMLCommon"></div>
<div class="hnb-tools"></div><div class="hnb-asks"></div>`;

export const SKELETON = `
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

export function uid(): string {
  if (globalThis.crypto?.randomUUID) {
    return globalThis.crypto.randomUUID();
  }
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

export function formatElapsed(seconds: number): string {
  if (seconds < 60) {
    return `${Math.floor(seconds)} s`;
  }
  const m = Math.floor(seconds / 60);
  const s = Math.floor(seconds % 60);
  return `${m} min ${String(s).padStart(2, '0')} s`;
}

export function formatLeft(seconds: number): string {
  const s = Math.max(0, Math.ceil(seconds));
  if (s < 60) {
    return `${s} s left to answer`;
  }
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, '0')} left to answer`;
}

/**
 * Position of a block among its siblings: "reply:3" → 3 (other kinds keep arrival order,
 * which is creation order: a view has applied every block created before its cursor).
 */
export function blockIndex(id: string): number | null {
  const n = id.includes(':') ? Number(id.slice(id.lastIndexOf(':') + 1)) : Number.NaN;
  return Number.isInteger(n) ? n : null;
}

/** "2/reply:0" → 2; a bare id is in segment 0. */
export function segmentOf(id: string): number {
  const m = /^(\d+)\//.exec(id);
  return m ? Number(m[1]) : 0;
}

/** Set a node's text only when it changes: each write costs the page a style and layout pass
 * (and a mutation record for every observer of the cell). */
export function setText(node: Element | null, text: string): void {
  if (node && node.textContent !== text) {
    node.textContent = text;
  }
}

/** Say `text` in a live region: a fresh text node, a tick later, so screen readers announce a
 * change, not a repeat. */
export function announce(region: Element, text: string): void {
  region.textContent = '';
  setTimeout(() => {
    region.textContent = text;
  }, 50);
}
