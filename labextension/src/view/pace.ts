/**
 * How often a view in sight writes its DOM while a reply streams: at most every FLUSH_MS, or
 * every FAST_FLUSH_MS while the reply grows faster than anyone reads it.
 *
 * Each DOM update costs a JupyterLab page 15-25 ms of main-thread time however little it adds
 * (style, layout, paint and compositing of the chunk that grew and of JupyterLab's page, its
 * ResizeObservers re-measuring the cell, then the scroll of a reader keeping the end in view:
 * benchmarks/bench_browser.py --follow --trace). A reply that grows by a third of the window or
 * more at each update (a torrent: hundreds of tokens a second, a long code block at once) is
 * skimmed, not read, and is drawn twice a second, each update bringing half as much again; at
 * reading speed (tens of tokens a second, a line or two an update) it is drawn three times a
 * second. How much it grew is what a ResizeObserver reports after the page's own layout: asking
 * would force a layout.
 */

export const FLUSH_MS = 300; // the least time between two DOM updates while a reply streams
export const FAST_FLUSH_MS = 500; // the same while each update grows the view a lot
export const FAST_GROWTH = 1 / 3; // "a lot": this much of the window's height, or more

export class Pace {
  /** The view's height when the last resize was reported (-1: none yet). */
  private height = -1;
  /** How much the last resize grew the view (px). */
  private growth = 0;
  private readonly observer: ResizeObserver | null = null;

  /** Watch `view` (the view's root) for the growth of its updates. */
  constructor(view: Element) {
    if (typeof ResizeObserver !== 'function') {
      return; // always FLUSH_MS
    }
    this.observer = new ResizeObserver(entries => {
      const height = entries[entries.length - 1].contentRect.height;
      this.growth = this.height < 0 ? 0 : height - this.height;
      this.height = height;
    });
    this.observer.observe(view);
  }

  /** The least time (ms) between two DOM updates of a view in sight. */
  get ms(): number {
    return this.growth >= window.innerHeight * FAST_GROWTH ? FAST_FLUSH_MS : FLUSH_MS;
  }

  dispose(): void {
    this.observer?.disconnect();
  }
}
