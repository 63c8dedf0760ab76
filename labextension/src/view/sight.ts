/**
 * Whether the view's end is on screen, and whether the page is unloading.
 *
 * While the view's end (its status line) is off screen (a long reply read from its top, the
 * cell scrolled away, outputs collapsed) nobody sees the text grow: the view then updates its
 * DOM seldom, only to keep the cell's height (the scrollbar) roughly right, and tells the kernel
 * ({type: "sight"}), which then sends frames once a second.
 */

/**
 * Call `onChange(seen)` whenever `target` comes on or goes off screen. Only the viewport's and
 * the notebook's clipping count (no margin: the implicit root's rootMargin would not reach into
 * the notebook's scroller). Returns what stops watching. Without IntersectionObserver the view
 * counts as seen.
 */
export function watchSight(target: Element, onChange: (seen: boolean) => void): () => void {
  if (typeof IntersectionObserver !== 'function') {
    return () => undefined;
  }
  let seen = true;
  const observer = new IntersectionObserver(entries => {
    const now = entries[entries.length - 1].isIntersecting;
    if (now !== seen) {
      seen = now;
      onChange(seen);
    }
  });
  observer.observe(target);
  return () => observer.disconnect();
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
