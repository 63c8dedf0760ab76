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
 * would force a layout. A torrent ends once an update grows the view by less than half as much
 * (FAST_GROWTH / 2), so a reply near the line does not switch at every update.
 *
 * The view tells the kernel its pace when it changes ({type: "pace", view, ms}): the kernel then
 * sends a frame per update, not three a second into two updates, which would make every other
 * update carry two frames' worth of reply, the longest tasks of the stream (a 50 KB reply
 * streamed in 13 s: 1,400 new elements an update against 900).
 */

export const FLUSH_MS = 300; // the least time between two DOM updates while a reply streams
export const FAST_FLUSH_MS = 500; // the same while each update grows the view a lot
export const FAST_GROWTH = 1 / 3; // "a lot": this much of the window's height, or more

export class Pace {
  /**
   * Watch `view` (the view's root) for the growth of its updates; `changed(ms)` is called when
   * the least time between two updates changes.
   */
  constructor(view: Element, changed: (ms: number) => void = () => undefined) {
    if (typeof ResizeObserver !== 'function') {
      return; // always FLUSH_MS
    }
    this.observer = new ResizeObserver(entries => {
      const height = entries[entries.length - 1].contentRect.height;
      const growth = this.height < 0 ? 0 : height - this.height;
      this.height = height;
      const fast = this.fast
        ? growth >= window.innerHeight * (FAST_GROWTH / 2)
        : growth >= window.innerHeight * FAST_GROWTH;
      if (fast !== this.fast) {
        this.fast = fast;
        changed(this.ms);
      }
    });
    this.observer.observe(view);
  }

  /** The least time (ms) between two DOM updates of a view in sight. */
  get ms(): number {
    return this.fast ? FAST_FLUSH_MS : FLUSH_MS;
  }

  dispose(): void {
    this.observer?.disconnect();
  }

  /** The view's height when the last resize was reported (-1: none yet). */
  private height = -1;
  /** Whether the reply grows faster than anyone reads it (a torrent). */
  private fast = false;
  private readonly observer: ResizeObserver | null = null;
}
