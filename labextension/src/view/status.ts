/**
 * The view's head and status line, the Stop button and the clock that ticks between frames.
 *
 * Until the kernel's first frame brings a status block, the line shows the synced `status`
 * trait. While the run is live, the elapsed time and token count tick once a second between
 * DOM updates only, a second after the last: while a reply streams each update ticks (paint →
 * tick), and a tick of its own would cost the page another style, layout and paint pass.
 */

import { Blocks } from './blocks';
import { Cards } from './cards';
import { formatElapsed, LABELS, LIVE, setText } from './layout';
import { IFrameMeta, IModel, trySend } from './protocol';

const TICK_MS = 1000; // the status line's clock, between frames
const STOP_RETRY_MS = 3000;

export class StatusLine {
  /** The status of the last frame applied (null: none yet, use the synced trait). */
  status: string | null = null;

  /**
   * @param idle whether no DOM update is due (the clock ticks on its own only then, and only
   *   while the view's end is on screen)
   */
  constructor(
    private readonly root: HTMLElement,
    private readonly model: IModel,
    private readonly blocks: Blocks,
    private readonly cards: Cards,
    private readonly idle: () => boolean
  ) {
    this.stop = root.querySelector<HTMLButtonElement>('.hnb-stop')!;
    this.stop.addEventListener('click', this.onStop);
  }

  /**
   * A frame was applied: its status, and what its meta changed. A live frame's meta carries only
   * the keys that changed (often none: a few tokens a second would otherwise pay for it in every
   * frame); `elapsed` restarts the clock from the kernel's count.
   */
  update(status: string, meta: IFrameMeta | undefined): void {
    this.status = status;
    if (!meta) {
      return;
    }
    this.meta = { ...this.meta, ...meta };
    if (typeof meta.elapsed === 'number') {
      this.metaAt = performance.now();
    }
    if (typeof meta.clock === 'number') {
      this.cards.clockSkew = meta.clock - Date.now() / 1000;
    }
  }

  current(): string {
    return this.status ?? (this.model.get('status') as string | undefined) ?? 'queued';
  }

  paint(): void {
    const state = this.current();
    const live = LIVE.has(state);
    const root = this.root;
    if (root.dataset.state !== state) {
      root.dataset.state = state;
    }
    setText(this.$('.hnb-bot'), (this.model.get('bot_name') as string) || 'Hermes');
    setText(this.$('.hnb-model'), (this.model.get('model') as string) || '');
    if (!this.blocks.hasStatus()) {
      // Nothing from the kernel yet: show the synced state until the first frame arrives.
      const text = LABELS[state] ?? state;
      const shown = this.$('.hnb-status > .hnb-status-label');
      if (shown) {
        setText(shown, text);
      } else {
        const label = document.createElement('span');
        label.className = 'hnb-status-label';
        label.textContent = text;
        const detail = document.createElement('span');
        detail.className = 'hnb-status-detail';
        this.$('.hnb-status')!.replaceChildren(label, detail);
      }
    }
    const stop = this.stop;
    if (stop.hidden === live) {
      stop.hidden = !live;
    }
    if (!live && (stop.disabled || this.stopTimer !== null)) {
      clearTimeout(this.stopTimer ?? undefined);
      this.stopTimer = null;
      stop.disabled = false;
      stop.textContent = 'Stop';
    }
    if (live) {
      // A second after this update, then every second: an update ticks (below), so a reply
      // streaming at two or three updates a second never pays a pass of its own for the clock.
      clearInterval(this.ticker ?? undefined);
      this.ticker = window.setInterval(() => {
        if (this.idle()) {
          this.tick();
        }
      }, TICK_MS);
    }
    if (!live && this.ticker !== null) {
      clearInterval(this.ticker);
      this.ticker = null;
    }
    if (live) {
      this.tick();
    }
  }

  dispose(): void {
    this.stop.removeEventListener('click', this.onStop);
    clearTimeout(this.stopTimer ?? undefined);
    clearInterval(this.ticker ?? undefined);
  }

  private readonly stop: HTMLButtonElement;
  private meta: IFrameMeta = {};
  private metaAt = 0;
  private stopTimer: number | null = null;
  private ticker: number | null = null;

  private $(selector: string): HTMLElement | null {
    return this.root.querySelector<HTMLElement>(selector);
  }

  private tick(): void {
    this.cards.tickCountdowns();
    const detail = this.$('.hnb-status-detail');
    if (!detail || !LIVE.has(this.current()) || !this.metaAt) {
      return;
    }
    const elapsed = (this.meta.elapsed ?? 0) + (performance.now() - this.metaAt) / 1000;
    const tokens = this.meta.tokens ? ` · ${this.meta.tokens} tokens` : '';
    setText(detail, ` · ${formatElapsed(elapsed)}${tokens}`);
  }

  private readonly onStop = (): void => {
    trySend(this.model, { type: 'cancel' }, 'stop');
    const stop = this.stop;
    stop.disabled = true;
    stop.textContent = 'Stopping…';
    clearTimeout(this.stopTimer ?? undefined);
    // If the click was lost (kernel busy with an old ipykernel, a reconnect), allow another.
    this.stopTimer = window.setTimeout(() => {
      this.stopTimer = null;
      stop.disabled = false;
      stop.textContent = 'Stop';
    }, STOP_RETRY_MS);
  };
}
