/**
 * The chat view's side of the widget protocol (hermes_nb/view/_protocol.py is the source of
 * truth for the messages) and of anywidget's render contract, as types.
 *
 * The view is plain DOM: nothing here (or anywhere under src/view/) imports JupyterLab, so the
 * same source builds the extension's view and the self-contained fallback module
 * (hermes_nb/view/static/view.js, for pages without the extension: VS Code, Colab).
 */

/**
 * The version of the contract between the kernel's widget and this view: the messages below and
 * the block HTML's classes. Every run's stub (hermes_nb/view/static/stub.js) renders with the
 * extension's view only when the extension registered this same number; otherwise the kernel's
 * loader widget (loader.js) fetches the fallback module the kernel ships. Raise it with any
 * change a kernel of the previous version would not understand (or vice versa), in stub.js and
 * loader.js too.
 */
export const VIEW_PROTOCOL = 2; // 2: a live frame's meta carries only what changed

/** One transcript part; upserted by id, or patched from UTF-16 offset `at`. */
export interface IBlock {
  id: string;
  kind: string;
  html: string;
  at?: number;
}

/**
 * What the status line needs between frames. A replay's meta is whole; a live frame's carries
 * only the keys that changed since the kernel's previous live frame (the others keep their value).
 */
export interface IFrameMeta {
  bot_name?: string;
  model?: string;
  elapsed?: number;
  tokens?: number;
  live?: boolean;
  clock?: number;
}

/** Kernel → view: the blocks that changed in (prev, seq]. */
export interface IFrame {
  type: 'frame';
  seq: number;
  prev: number;
  status: string;
  blocks: IBlock[];
  rid?: string | null;
  meta?: IFrameMeta;
}

/** The part of an anywidget model the view uses. */
export interface IModel {
  get(name: string): unknown;
  send(content: Record<string, unknown>): void;
  on(name: string, handler: (...args: any[]) => void): void;
  off(name: string, handler: (...args: any[]) => void): void;
}

/** anywidget's `render` argument. */
export interface IRenderProps {
  model: IModel;
  el: HTMLElement;
}

/** What `render` returns: called when the view is removed. */
export type Cleanup = () => void;

/** What the extension registers on the page, and the fallback module exports by default. */
export interface IViewModule {
  version: number;
  render(props: IRenderProps): Cleanup;
}

/** Send `content` to the kernel; false when the model is closing (nothing to tell). */
export function trySend(model: IModel, content: Record<string, unknown>, what?: string): boolean {
  try {
    model.send(content);
    return true;
  } catch (err) {
    if (what) {
      console.warn(`hermes_nb: ${what} not sent`, err);
    }
    return false;
  }
}
