/**
 * hermes_nb's front-end extension for JupyterLab 4.4+ and Notebook 7, one plugin per job (the
 * list at the end of this file):
 *
 * - `hermes-nb:chat-view` — the chat view itself (`./view/`, plain DOM, no JupyterLab import),
 *   so that a run's widget carries state, not code. The widget's anywidget module is a small
 *   stub (`hermes_nb/view/static/stub.js`); on activation this plugin registers the view for
 *   the page:
 *
 *     globalThis.__hermes_nb_view__ = {version: VIEW_PROTOCOL, render}
 *         version  a number: the widget protocol's version (`view/protocol.ts`)
 *         render   anywidget's render: ({model, el}) => cleanup
 *
 *   The stub renders with it iff `version` equals its own; otherwise (no extension, or one
 *   from another hermes_nb) the kernel's loader widget (`static/loader.js`) asks the kernel for
 *   the fallback module built from the same source (`hermes_nb/view/static/view.js`). The
 *   view's stylesheet comes with this extension's style (`style/index.css`).
 *
 * - `hermes-nb:insert-cell` — "Insert below" for the chat view. The view (in an output area,
 *   rendered through anywidget; the same code is the fallback module where this extension is
 *   absent) cannot reach JupyterLab's commands, so it asks through DOM events that bubble from
 *   its own element to `document`:
 *
 *     hermes-nb:insert-cell  CustomEvent, bubbles, cancelable, detail {code: string}
 *         → a new code cell below the notebook cell whose output holds the event's target,
 *           with exactly `code` as its source, made the active (selected) cell, not run.
 *           Handled ⇔ the extension called preventDefault(): `dispatchEvent` returns false.
 *     hermes-nb:probe        CustomEvent, bubbles, cancelable, no detail
 *         → preventDefault() iff an insert-cell event from the same target would be handled
 *           (the target is inside a code cell's output area of a writable notebook).
 *
 *   `document.body.dataset.hermesNbExtension` ("data-hermes-nb-extension" on <body>) is set to
 *   the contract's version, "1", when the plugin activates — before any notebook is shown, so
 *   a view can feature-detect synchronously and offer Copy only where it is absent (VS Code,
 *   Colab, classic Notebook, nbviewer). The command `hermes-nb:insert-cell-below`
 *   ({code, cellId?}) does the same from JavaScript or a keyboard shortcut: below the cell
 *   with model id `cellId`, else below the active cell of the current notebook.
 *
 * - `hermes-nb:display-ids` — a reloaded page keeps hermes_nb's outputs attached to their
 *   display ids. JupyterLab maps a display id to the outputs it updates only in memory (the
 *   kernel connection's `_displayIdToParentIds`, routed to the futures of the cells that were
 *   run from this page); a page that was reloaded has neither, so an `update_display_data`
 *   (the kernel replacing the live view by the static bundle when a run settles) goes nowhere.
 *   The kernel also writes the display id into the live output's metadata
 *   (`metadata.hermes_nb.display_id`); this plugin watches every notebook's iopub messages and
 *   applies an `update_display_data` to each output carrying that id. JupyterLab has already
 *   applied the update where it still knew the id (its kernel connection awaits its own
 *   routing before it emits `iopubMessage`), so an output already showing the update's data is
 *   left alone.
 *
 * - `hermes-nb:static-code-actions` — a settled run's saved output is static HTML
 *   (`.hnb-chat.hnb-static`, no script). Its reply code blocks get the same two buttons as the
 *   live view's: Copy and Insert below (not a block fenced as `text`: data, not code).
 *
 * - `hermes-nb:document` (`./document.ts`) — the notebook on the page for the kernel, over the
 *   comm target `hermes_nb.document`: the agent reads it and applies the changes the person
 *   accepted.
 */

import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Clipboard } from '@jupyterlab/apputils';
import { ICodeCellModel } from '@jupyterlab/cells';
import * as nbformat from '@jupyterlab/nbformat';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { KernelMessage } from '@jupyterlab/services';
import { JSONExt, ReadonlyPartialJSONObject } from '@lumino/coreutils';

import documentPlugin from './document';
import { codeBlocks, codeOf } from './view/codeActions';
import { render, VIEW_PROTOCOL } from './view';
import type { IViewModule } from './view';

/** The DOM contract's version, in `document.body.dataset.hermesNbExtension`. */
const CONTRACT_VERSION = '1';
const INSERT_EVENT = 'hermes-nb:insert-cell';
const PROBE_EVENT = 'hermes-nb:probe';
const INSERT_COMMAND = 'hermes-nb:insert-cell-below';

/** The notebook cell whose *output area* holds `node`. */
interface ICellAt {
  panel: NotebookPanel;
  index: number;
}

function nodeOf(event: Event): Node | null {
  const path = event.composedPath();
  const first = path.length ? path[0] : event.target;
  return first instanceof Node ? first : null;
}

function cellAt(tracker: INotebookTracker, node: Node | null): ICellAt | null {
  if (!node) {
    return null;
  }
  const panel = tracker.find(p => p.content.node.contains(node));
  if (!panel || !panel.content.model || panel.content.model.readOnly) {
    return null;
  }
  const cells = panel.content.widgets;
  for (let index = 0; index < cells.length; index++) {
    const cell = cells[index];
    if (!cell.node.contains(node)) {
      continue;
    }
    // Only an output: a click in an editor or a Markdown cell is not a chat view.
    const outputs = cell.model.type === 'code' ? cell.node.querySelector('.jp-OutputArea') : null;
    return outputs && outputs.contains(node) ? { panel, index } : null;
  }
  return null;
}

/** Insert a code cell with `code` below cell `index`, make it the active cell; not run. */
function insertBelow(panel: NotebookPanel, index: number, code: string): boolean {
  const notebook = panel.content;
  const model = notebook.model;
  if (!model || model.readOnly) {
    return false;
  }
  const at = Math.min(index + 1, model.cells.length);
  // As NotebookActions.insertBelow does, but always a code cell and with its source at once
  // (one change, so one undo step and no empty cell in between).
  model.sharedModel.insertCell(at, {
    cell_type: 'code',
    source: code,
    // An empty cell created by the user is trusted; so is one they asked for.
    metadata: { trusted: true }
  });
  notebook.activeCellIndex = at;
  notebook.deselectAll();
  notebook.mode = 'command';
  void notebook.scrollToItem(at, 'auto', 0).catch(() => undefined);
  // Keyboard focus on the notebook, so Shift+Enter runs the new cell.
  notebook.activate();
  return true;
}

/** Where the page's chat view is registered for a run widget's stub. */
const VIEW_KEY = '__hermes_nb_view__';

const chatView: JupyterFrontEndPlugin<void> = {
  id: 'hermes-nb:chat-view',
  description: "The hermes_nb chat view, registered for the widget's loader (no code per run).",
  autoStart: true,
  activate: () => {
    const view: IViewModule = { version: VIEW_PROTOCOL, render };
    (globalThis as Record<string, unknown>)[VIEW_KEY] = view;
  }
};

const insertCell: JupyterFrontEndPlugin<void> = {
  id: 'hermes-nb:insert-cell',
  description: 'Insert below for the hermes_nb chat view (a DOM event) and a command.',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker) => {
    app.commands.addCommand(INSERT_COMMAND, {
      label: 'Insert Code Cell Below (hermes_nb)',
      caption: 'A new code cell with the given code below a cell, selected and not run',
      isEnabled: () => tracker.currentWidget !== null,
      execute: args => {
        const code = args['code'];
        if (typeof code !== 'string') {
          throw new Error(`${INSERT_COMMAND}: args.code must be a string`);
        }
        const panel = tracker.currentWidget;
        if (!panel) {
          return false;
        }
        const cellId = args['cellId'];
        let index = panel.content.activeCellIndex;
        if (typeof cellId === 'string') {
          index = panel.content.widgets.findIndex(c => c.model.id === cellId);
          if (index < 0) {
            return false;
          }
        }
        return insertBelow(panel, index, code);
      }
    });

    document.addEventListener(INSERT_EVENT, (event: Event) => {
      const detail = (event as CustomEvent).detail;
      const code = detail && typeof detail === 'object' ? detail.code : undefined;
      if (typeof code !== 'string' || event.defaultPrevented) {
        return;
      }
      const at = cellAt(tracker, nodeOf(event));
      if (at && insertBelow(at.panel, at.index, code)) {
        event.preventDefault();
      }
    });
    document.addEventListener(PROBE_EVENT, (event: Event) => {
      if (cellAt(tracker, nodeOf(event))) {
        event.preventDefault();
      }
    });
    document.body.dataset.hermesNbExtension = CONTRACT_VERSION;
  }
};

/** The display id the kernel wrote into an output's metadata, if any. */
function displayIdOf(metadata: ReadonlyPartialJSONObject | undefined): string | null {
  const ours = metadata ? metadata['hermes_nb'] : undefined;
  if (!ours || typeof ours !== 'object' || Array.isArray(ours)) {
    return null;
  }
  const id = (ours as ReadonlyPartialJSONObject)['display_id'];
  return typeof id === 'string' && id ? id : null;
}

/** Apply an update_display_data to every output of `panel`'s notebook that carries its id. */
function applyUpdate(panel: NotebookPanel, msg: KernelMessage.IUpdateDisplayDataMsg): number {
  const content = msg.content;
  const displayId = content.transient ? content.transient['display_id'] : undefined;
  const model = panel.content.model;
  if (typeof displayId !== 'string' || !displayId || !model) {
    return 0;
  }
  const output: nbformat.IDisplayData = {
    output_type: 'display_data',
    data: content.data,
    metadata: content.metadata
  };
  let applied = 0;
  for (const cell of model.cells) {
    if (cell.type !== 'code') {
      continue;
    }
    const outputs = (cell as ICodeCellModel).outputs;
    for (let i = 0; i < outputs.length; i++) {
      const item = outputs.get(i);
      if (displayIdOf(item.metadata) !== displayId) {
        continue;
      }
      if (JSONExt.deepEqual(item.data, content.data)) {
        continue; // JupyterLab knew the id and has applied it (or a second view of the notebook)
      }
      outputs.set(i, output);
      applied++;
    }
  }
  return applied;
}

const displayIds: JupyterFrontEndPlugin<void> = {
  id: 'hermes-nb:display-ids',
  description: "Applies a kernel's display updates to hermes_nb outputs restored from a saved page.",
  autoStart: true,
  requires: [INotebookTracker],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker) => {
    const watch = (panel: NotebookPanel) => {
      panel.sessionContext.iopubMessage.connect((_, msg) => {
        if (msg.header.msg_type === 'update_display_data') {
          applyUpdate(panel, msg as KernelMessage.IUpdateDisplayDataMsg);
        }
      });
    };
    tracker.forEach(watch);
    tracker.widgetAdded.connect((_, panel) => watch(panel));
  }
};

const STATIC_REPLY = '.hnb-chat.hnb-static .hnb-reply';
const DECORATED = 'hnbActions';

/**
 * A button whose label is CSS-generated (`style/index.css`, by `data-action`): it adds no text
 * to the reply, so selecting and copying the reply, or reading its `innerText`, gets the reply
 * alone.
 */
function button(action: 'copy' | 'insert', title: string, onClick: () => boolean) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'hnb-ext-action';
  b.dataset.action = action;
  b.title = title;
  b.setAttribute('aria-label', title);
  b.addEventListener('click', event => {
    event.preventDefault();
    event.stopPropagation();
    if (onClick()) {
      b.dataset.done = '1'; // "Copied" / "Inserted" for a moment
      window.setTimeout(() => delete b.dataset.done, 1500);
    }
  });
  return b;
}

function decorate(tracker: INotebookTracker, root: ParentNode) {
  const pres: HTMLElement[] = [];
  root.querySelectorAll(STATIC_REPLY).forEach(reply => pres.push(...codeBlocks(reply)));
  pres.forEach(pre => {
    if (pre.dataset[DECORATED]) {
      return;
    }
    pre.dataset[DECORATED] = '1';
    const bar = document.createElement('div');
    bar.className = 'hnb-ext-actions';
    bar.append(
      button('copy', 'Copy this code', () => {
        Clipboard.copyToSystem(codeOf(pre));
        return true;
      })
    );
    if (cellAt(tracker, pre)) {
      bar.append(
        button('insert', 'Insert this code in a new cell below', () => {
          const at = cellAt(tracker, pre);
          return !!at && insertBelow(at.panel, at.index, codeOf(pre));
        })
      );
    }
    pre.before(bar);
  });
}

/** A live view's root (the settled answer's root has both classes). */
const LIVE_VIEW = '.hnb-chat:not(.hnb-static)';

function whenIdle(callback: () => void) {
  if (typeof window.requestIdleCallback === 'function') {
    window.requestIdleCallback(callback, { timeout: 500 });
  } else {
    setTimeout(callback, 50); // Safari: no requestIdleCallback
  }
}

const staticCodeActions: JupyterFrontEndPlugin<void> = {
  id: 'hermes-nb:static-code-actions',
  description: "Copy and Insert below on the code blocks of a settled hermes_nb run's saved output.",
  autoStart: true,
  requires: [INotebookTracker],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker) => {
    const watch = (panel: NotebookPanel) => {
      const node = panel.content.node;
      let queued = false;
      const observer = new MutationObserver(records => {
        if (queued) {
          return;
        }
        // Settled output only: a live view replaces its <pre> blocks on every frame while
        // code streams, and re-decorating the notebook each time cost a frame's budget. A
        // change inside a live view is passed over by its target alone, before looking at
        // what it added (a block's new HTML: dozens of elements, each searched below).
        const added = records.some(
          r =>
            !(r.target instanceof Element && r.target.closest(LIVE_VIEW)) &&
            Array.from(r.addedNodes).some(
              n =>
                n instanceof Element &&
                (n.matches('.hnb-static') ||
                  (n.matches('pre') && !!n.closest('.hnb-static')) ||
                  !!n.querySelector('.hnb-static'))
            )
        );
        if (added) {
          queued = true;
          // After the settle's own frame, when the page is idle: the answer shows first, and
          // its code blocks' buttons (66 of them in a long reply: their style and layout too)
          // follow a moment later instead of lengthening the frame that renders it.
          whenIdle(() => {
            queued = false;
            decorate(tracker, node);
          });
        }
      });
      observer.observe(node, { childList: true, subtree: true });
      panel.disposed.connect(() => observer.disconnect());
      decorate(tracker, node);
    };
    tracker.forEach(watch);
    tracker.widgetAdded.connect((_, panel) => watch(panel));
  }
};

const plugins: JupyterFrontEndPlugin<void>[] = [
  chatView,
  insertCell,
  displayIds,
  staticCodeActions,
  documentPlugin
];

export default plugins;
