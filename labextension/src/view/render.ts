/**
 * The chat view's entry: anywidget's `render({model, el})`, wiring the parts together.
 *
 * The kernel sends frames {type: "frame", seq, prev, status, blocks: [{id, kind, html, at?}],
 * rid, meta}. Each view keeps its own cursor (the seq of what it applied) and applies a frame
 * iff prev <= cursor < seq; it ignores frames with seq <= cursor and asks for a replay
 * after=cursor when cursor < prev (a gap) (replay.ts, blocks.ts). A view that asked, removed
 * from a live page, sends {type: "removed"}: once the run has settled, the kernel may then close
 * the widget (hermes_nb/view/display.py).
 *
 * The DOM follows the frames at most FLUSH_MS apart (pace.ts): a frame's blocks are taken at
 * once, and the elements they change are written in one requestAnimationFrame callback, together
 * with whatever came since. Each DOM update costs a JupyterLab page a style, layout, paint and
 * compositing pass of 15-25 ms, however little it changes (JupyterLab's page, the chunk that
 * grew, the cell re-measured, a reader's scroll after it), so however many frames arrive a
 * streaming reply costs at most one such pass per FLUSH_MS: three a second, which reads as well
 * as ten (the kernel sends no more: MAX_FPS in hermes_nb/view/_controller.py), or two while
 * each update grows the view by a third of the window or more (FAST_FLUSH_MS; the view then tells
 * the kernel, {type: "pace"}, which sends a frame per update). The reply's blocks
 * come in chunks (blocks.ts), so an update's layout costs the chunk at the reply's end, not the
 * whole reply. While the view's end is off screen (sight.ts) updates come HIDDEN_FLUSH_MS apart
 * (sooner when HIDDEN_MAX_CHARS of HTML wait); the first frame after the end comes into view
 * shows everything. A settled status, a prompt card or a replay's answer is written in the next
 * frame, seen or not.
 */

import { Blocks } from './blocks';
import { Cards } from './cards';
import { codeAction, insertable } from './codeActions';
import { announce, LIVE, SKELETON, uid } from './layout';
import { Pace } from './pace';
import { Cleanup, IFrame, IRenderProps, trySend } from './protocol';
import { Replay } from './replay';
import { pageUnloading, watchSight } from './sight';
import { StatusLine } from './status';

const HIDDEN_FLUSH_MS = 3000; // the same while the view's end is off screen
const HIDDEN_MAX_CHARS = 24000; // ... or once this much new HTML waits (one update stays short:
// 3 s of a fast reply, ~40 KB, took a task of 50 ms: benchmarks/bench_browser.py)
const ATTACH_POLL_MS = 100; // how often a view not yet on the page looks again

export function render({ model, el }: IRenderProps): Cleanup {
  const viewId = uid();
  const root = document.createElement('div');
  root.className = 'hnb-chat';
  root.innerHTML = SKELETON;
  el.replaceChildren(root);
  const region = root.querySelector('.hnb-announce')!;
  const say = (text: string) => announce(region, text);

  let cursor = 0; // seq of the last frame this view applied
  let flushFrame = 0; // requestAnimationFrame id of the next DOM update
  let flushTimer: number | null = null; // its timer, while the last update is too recent
  let lastFlush = 0;
  let seen = true; // the view's end on screen (until the observer says otherwise)

  // The suffix keeps element ids unique when a run has several views.
  const cards = new Cards(root, model, viewId.slice(0, 8), say);
  const blocks = new Blocks(root, (node, wasOpen) => cards.onCard(node, wasOpen));
  const replay = new Replay(model, viewId, () => cursor);
  // The kernel sends a frame per update at this pace (pace.ts).
  const pace = new Pace(root, ms => trySend(model, { type: 'pace', view: viewId, ms }));
  let asked = false; // the kernel counts this view once it asked for a replay
  const ask = () => {
    asked = true;
    replay.request();
  };
  const line = new StatusLine(
    root,
    model,
    blocks,
    cards,
    () => seen && !flushFrame && flushTimer === null
  );

  // -- DOM updates ----------------------------------------------------------------------------

  // Write every block changed since the last update, then the status line: one style, layout
  // and paint pass for all of them.
  function flush() {
    flushFrame = 0;
    clearTimeout(flushTimer ?? undefined);
    flushTimer = null;
    lastFlush = performance.now();
    let insert: boolean | undefined; // whether Insert below works here: asked at most once
    blocks.flush(node => {
      if (insert === undefined) {
        insert = insertable(node);
      }
      return insert;
    });
    line.paint();
  }

  // An update in the next frame if `now` (or the pace's time after the last one), else at most
  // that long after the last (pace.ts).
  function schedule(now: boolean) {
    if (flushFrame) {
      return;
    }
    if (now) {
      clearTimeout(flushTimer ?? undefined);
      flushTimer = null;
    } else if (flushTimer !== null) {
      return;
    }
    const wait = now ? 0 : lastFlush + (seen ? pace.ms : HIDDEN_FLUSH_MS) - performance.now();
    const frame = () => {
      flushTimer = null;
      flushFrame = requestAnimationFrame(flush);
    };
    if (wait <= 0) {
      frame();
    } else {
      flushTimer = window.setTimeout(frame, wait);
    }
  }

  // -- frames ---------------------------------------------------------------------------------

  function onFrame(msg: IFrame | null | undefined) {
    if (!msg || msg.type !== 'frame') {
      return;
    }
    replay.answered(msg.rid);
    if (msg.seq <= cursor) {
      return; // already applied
    }
    if (msg.prev > cursor || !blocks.patchable(msg, cursor)) {
      ask(); // a gap: something between cursor and prev never reached this view
      return;
    }
    for (const block of msg.blocks) {
      blocks.accept(block);
    }
    const now =
      msg.rid != null ||
      (!seen && blocks.waiting > HIDDEN_MAX_CHARS) ||
      msg.status !== line.status ||
      !LIVE.has(msg.status) ||
      msg.blocks.some(b => b.kind === 'ask' || b.kind === 'status');
    cursor = msg.seq;
    line.update(msg.status, msg.meta);
    schedule(now);
  }

  // -- the person's clicks and keys -----------------------------------------------------------

  function onClick(event: MouseEvent) {
    const button = (event.target as Element | null)?.closest?.<HTMLElement>('button');
    if (!button || !root.contains(button)) {
      return;
    }
    if (button.classList.contains('hnb-code-action')) {
      event.preventDefault();
      event.stopPropagation();
      void codeAction(button, say);
      return;
    }
    cards.onClick(button);
  }

  function onKey(event: KeyboardEvent) {
    if ((event.target as Element | null)?.classList?.contains('hnb-code-action')) {
      // The button's own keys (Enter, Space click it): not the notebook's shortcuts.
      if (event.key === 'Enter' || event.key === ' ') {
        event.stopPropagation();
      }
      return;
    }
    cards.onKey(event);
  }

  const unwatch = watchSight(root.querySelector('.hnb-footer')!, now => {
    seen = now;
    // Unseen, the chunk just finished skips rendering too (chat.css): the rare updates then
    // style and lay out only the last chunk's new blocks.
    root.toggleAttribute('data-unseen', !seen);
    // The kernel sends frames less often while every view says it is off screen.
    trySend(model, { type: 'sight', view: viewId, seen });
    if (seen && (blocks.pending || flushTimer !== null)) {
      schedule(true);
    }
  });

  const onCustom = (msg: IFrame) => onFrame(msg);
  const onTrait = () => schedule(true); // shown with the frames' blocks, in the next update
  // One list, so what render subscribes is exactly what cleanup unsubscribes.
  const listeners: [string, (...args: any[]) => void][] = [
    ['msg:custom', onCustom],
    ['change:status', onTrait],
    ['change:bot_name', onTrait],
    ['change:model', onTrait]
  ];
  for (const [name, handler] of listeners) {
    model.on(name, handler);
  }
  root.addEventListener('click', onClick);
  root.addEventListener('keydown', onKey);

  line.paint();
  // A fresh view (first render, page reload, second view) asks after=0 once it is on the page.
  // JupyterLab renders a widget view even when the settle's update replaced its output while
  // the model was being made (a short reply): that view is never attached, and neither asks
  // (the kernel would answer it) nor says it left (each message costs the kernel a busy/idle).
  let attachTimer = 0;
  const whenAttached = () => {
    if (root.isConnected) {
      ask();
    } else {
      attachTimer = window.setTimeout(whenAttached, ATTACH_POLL_MS);
    }
  };
  whenAttached();

  return () => {
    if (asked && !pageUnloading()) {
      // This view leaves a live page (its output replaced by the static bundle, cleared,
      // deleted): nothing here shows the run now. The kernel counts it once the run settled.
      // Told in a task of its own: the one that removes the view also renders what replaces
      // it (the settle), and nothing waits on this message.
      setTimeout(() => trySend(model, { type: 'removed' }), 0);
    }
    for (const [name, handler] of listeners) {
      model.off(name, handler);
    }
    root.removeEventListener('click', onClick);
    root.removeEventListener('keydown', onKey);
    cards.dispose();
    replay.dispose();
    line.dispose();
    pace.dispose();
    unwatch();
    clearTimeout(flushTimer ?? undefined);
    clearTimeout(attachTimer);
    cancelAnimationFrame(flushFrame);
  };
}
