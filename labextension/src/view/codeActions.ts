/**
 * Copy and Insert below on a reply's code blocks.
 *
 * Every code block of a reply gets Copy and, where hermes_nb's JupyterLab / Notebook 7
 * extension is present (document.body.dataset.hermesNbExtension), Insert below: a bar of
 * buttons put before its <pre> each time the block's HTML is set (so a re-rendered block gets
 * them again). They act on the block's code exactly (its text, without the fence's final
 * newline). Their labels are CSS-generated, so a reply's text (innerText, a selection) stays the
 * reply alone; the kernel's HTML never holds them, and a saved answer gets its buttons from the
 * extension. A block fenced as `text` (data the kernel interpolated into a prompt, a DataFrame's
 * summary) is not code: it gets no buttons.
 *
 * Insert below talks to the extension through DOM events only (its contract, version "1", is in
 * labextension/src/index.ts), so this module needs nothing of JupyterLab.
 */

const INSERT_EVENT = 'hermes-nb:insert-cell';
const PROBE_EVENT = 'hermes-nb:probe';
const ACTION_DONE_MS = 1500; // how long "Copied" / "Inserted" shows

/** Plain text, not code: a fence the kernel marks `text` (data interpolated into a prompt). */
const NOT_CODE = ':scope > code.language-text';

/** The <pre> blocks under `node` that hold code (not plain text). */
export function codeBlocks(node: ParentNode): HTMLElement[] {
  return Array.from(node.querySelectorAll<HTMLElement>('pre')).filter(
    pre => !pre.querySelector(NOT_CODE)
  );
}

type Action = 'copy' | 'insert';

const ACTIONS: Record<Action, { label: string; done: string; failed: string }> = {
  copy: { label: 'Copy code', done: 'Code copied to the clipboard', failed: 'Copy failed' },
  insert: {
    label: 'Insert code in a new cell below',
    done: 'Code inserted in a new cell below',
    failed: 'Could not insert a cell here'
  }
};

/** A button's "done" / "failed" mark, cleared after ACTION_DONE_MS. */
const timers = new WeakMap<HTMLElement, number>();

function extensionPresent(): boolean {
  return document.body?.dataset.hermesNbExtension === '1';
}

/** The code of a <pre>: its text exactly, less the final newline every fence ends with. */
export function codeOf(pre: Element): string {
  const code = pre.querySelector('code') ?? pre;
  return (code.textContent ?? '').replace(/\n$/, '');
}

/**
 * The Clipboard API where the page may use it; else a hidden textarea and
 * execCommand("copy"), with the text put on the copy event itself (exact, whatever the
 * selection would hold).
 */
async function copyText(text: string, from: HTMLElement | null): Promise<boolean> {
  try {
    if (navigator.clipboard?.writeText) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch (err) {
    // Denied (no permission, an insecure origin, the page not focused): try the old way.
  }
  const area = document.createElement('textarea');
  area.value = text;
  area.setAttribute('readonly', '');
  area.setAttribute('aria-hidden', 'true');
  area.style.cssText = 'position:fixed;top:0;left:-9999px;opacity:0';
  const onCopy = (event: ClipboardEvent) => {
    event.clipboardData?.setData('text/plain', text);
    event.preventDefault();
  };
  document.body.appendChild(area);
  document.addEventListener('copy', onCopy, true);
  let ok = false;
  try {
    area.select();
    ok = document.execCommand('copy');
  } catch (err) {
    ok = false;
  } finally {
    document.removeEventListener('copy', onCopy, true);
    area.remove();
    from?.focus({ preventScroll: true });
  }
  return ok;
}

/**
 * Ask the extension to insert a code cell with `code` below the cell whose output holds
 * `from`; true iff it did (it called preventDefault).
 */
function insertBelow(from: Element, code: string): boolean {
  const event = new CustomEvent(INSERT_EVENT, {
    bubbles: true,
    cancelable: true,
    detail: { code }
  });
  return !from.dispatchEvent(event);
}

/**
 * Would Insert below work from `node` (a code cell's output in a writable notebook)? Only a
 * node in the document can ask; before that, assume it would.
 */
export function insertable(node: Element): boolean {
  if (!extensionPresent()) {
    return false;
  }
  if (!node.isConnected) {
    return true;
  }
  return !node.dispatchEvent(new CustomEvent(PROBE_EVENT, { bubbles: true, cancelable: true }));
}

function actionButton(action: Action): HTMLButtonElement {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'hnb-code-action';
  b.dataset.action = action;
  b.title = ACTIONS[action].label;
  b.setAttribute('aria-label', ACTIONS[action].label);
  return b;
}

/**
 * Put the bar of actions before every code <pre> of a reply block (its HTML was just set).
 * `probe()` says whether Insert below works here; asked once per DOM update, and only if some
 * block has code.
 */
export function decorateCode(node: Element, probe: (node: Element) => boolean): void {
  const pres = codeBlocks(node);
  if (!pres.length) {
    return;
  }
  const insert = probe(node);
  for (const pre of pres) {
    const bar = document.createElement('div');
    bar.className = 'hnb-code-actions';
    bar.setAttribute('role', 'group');
    bar.setAttribute('aria-label', 'Code actions');
    bar.append(actionButton('copy'));
    if (insert) {
      bar.append(actionButton('insert'));
    }
    pre.before(bar);
  }
}

/** Do what `button` (a code action) says, mark it done or failed, and announce the outcome. */
export async function codeAction(
  button: HTMLElement,
  announce: (text: string) => void
): Promise<void> {
  const pre = button.closest('.hnb-code-actions')?.nextElementSibling;
  if (!pre || pre.tagName !== 'PRE') {
    return;
  }
  const action = button.dataset.action as Action;
  if (!ACTIONS[action]) {
    return;
  }
  const code = codeOf(pre);
  let ok = false;
  if (action === 'copy') {
    ok = await copyText(code, button);
  } else if (action === 'insert') {
    ok = insertBelow(button, code);
  }
  clearTimeout(timers.get(button));
  if (ok) {
    button.dataset.done = '1';
    delete button.dataset.failed;
  } else {
    button.dataset.failed = '1';
    delete button.dataset.done;
  }
  announce(ok ? ACTIONS[action].done : ACTIONS[action].failed);
  timers.set(
    button,
    window.setTimeout(() => {
      delete button.dataset.done;
      delete button.dataset.failed;
    }, ACTION_DONE_MS)
  );
}
