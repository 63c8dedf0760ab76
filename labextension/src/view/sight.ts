/**
 * Whether the view's end is on screen, and whether the page is unloading.
 *
 * While the view's end (its status line) is off screen (a long reply read from its top, the
 * cell scrolled away, outputs collapsed) nobody sees the text grow: the view then updates its
 * DOM seldom, only to keep the cell's height (the scrollbar) roughly right, and tells the kernel
 * ({type: "sight"}), which then sends frames once a second.
 */

/**
 * How long the view's end stays off screen before the view counts as unseen. A reply that
 * grows pushes its end below the window between two scrolls of a person reading along (every
 * quarter second or so, or JupyterLab's output following): that is still a person watching, and
 * flipping to unseen and back each time cost the page more than it saved (a `sight` message to
 * the kernel and back each way, each a kernel busy/idle round that redraws JupyterLab's status
 * and favicon, and the view's pace switching between its two modes: benchmarks/bench_browser.py
 * --follow). Coming into view counts at once.
 */
export const OFF_SCREEN_MS = 1000;

/**
 * Call `onChange(seen)` whenever `target` comes on screen, or has stayed off screen for
 * `offMs`. Only the viewport's and the notebook's clipping count (no margin: the implicit
 * root's rootMargin would not reach into the notebook's scroller). Returns what stops watching.
 * Without IntersectionObserver the view counts as seen.
 */
export function watchSight(
  target: Element,
  onChange: (seen: boolean) => void,
  offMs: number = OFF_SCREEN_MS
): () => void {
  if (typeof IntersectionObserver !== 'function') {
    return () => undefined;
  }
  let seen = true;
  let leaving: number | null = null; // the timer that declares the view unseen
  const settle = () => {
    if (leaving !== null) {
      clearTimeout(leaving);
      leaving = null;
    }
  };
  const observer = new IntersectionObserver(entries => {
    const now = entries[entries.length - 1].isIntersecting;
    settle();
    if (now && !seen) {
      seen = true;
      onChange(true);
    } else if (!now && seen) {
      leaving = window.setTimeout(() => {
        leaving = null;
        seen = false;
        onChange(false);
      }, offMs);
    }
  });
  observer.observe(target);
  return () => {
    settle();
    observer.disconnect();
  };
}

/**
 * A view leaving a page that unloads (a reload, a closed tab) has not left the notebook: the
 * file may still hold it. Only a view removed from a live page (its output replaced by the
 * static bundle, cleared, deleted) tells the kernel, which may then close the widget.
 */
let unloading = false;
globalThis.addEventListener?.('pagehide', () => {
  unloading = true;
});
globalThis.addEventListener?.('pageshow', () => {
  unloading = false;
});

export function pageUnloading(): boolean {
  return unloading;
}
