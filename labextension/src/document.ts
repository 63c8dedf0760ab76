/**
 * `hermes-nb:document` — the notebook on the page, for the kernel: the agent reads it (unsaved
 * changes included) and changes it where the person accepted a change.
 *
 * Every notebook panel's kernel connection gets the comm target `hermes_nb.document`. The
 * kernel opens a comm to it when hermes_nb loads; this page answers the opening `hello`. A page
 * that connects to a kernel where hermes_nb is already loaded (a reload, a second tab, a
 * notebook opened later) announces itself: it asks the kernel (`comm_info`) whether a
 * `hermes_nb.document` comm is open and, if so, opens its own comm to the kernel's target of
 * that name with its hello as the data — so no request waits for a page that reloaded. Then
 * it answers the requests addressed to it, on the comm they came on:
 *
 *   kernel → page  {op, req, page, ...}          op: hello | read | cell | insert | edit | delete | run
 *   page → kernel  {req, ok: true, result}       (a hello, answered or announced, also has `hello: true`)
 *                  {req, ok: false, error, message}
 *
 * `page` is this panel's random id, given in the hello's reply: a second page on the same
 * kernel ignores requests that are not its own. No message has a top-level `id` key (ipykernel
 * 7.4 routes replies by it). Cells are addressed by their nbformat id. A change carries the
 * source the kernel's card was made from (`expect`): a cell that no longer has it is left
 * alone and the kernel is told (`changed`), so the person never accepts one thing and gets
 * another. Changes go through the shared model (the document's Yjs model), so the notebook's
 * undo takes them back: Ctrl+Z in the cell for an edit, Z (command mode) for an insert or a
 * delete. What a read sends is nbformat JSON with long data cut: an image keeps its first
 * kilobyte (its header: the kernel reads the size from it) and says its full length in
 * `hermes_nb_cut`.
 */

import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Cell, CodeCell, MarkdownCell } from '@jupyterlab/cells';
import * as nbformat from '@jupyterlab/nbformat';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { CommsOverSubshells, Kernel, KernelMessage } from '@jupyterlab/services';
import { JSONObject } from '@lumino/coreutils';

const TARGET = 'hermes_nb.document';
const PROTOCOL = 1;
const OPS = ['read', 'cell', 'insert', 'edit', 'delete', 'run'];
/** Longer strings in an output are cut before they are sent (the kernel cuts further). */
const TEXT_LIMIT = 20_000;
const IMAGE_KEEP = 1024;

/** A refusal: its `code` and one sentence for the model. */
class Refusal extends Error {
  constructor(
    readonly code: string,
    message: string
  ) {
    super(message);
  }
}

type Request = { op: string; req: string; page?: string; [key: string]: unknown };

function cutText(value: unknown): unknown {
  const text = Array.isArray(value) ? value.join('') : value;
  if (typeof text === 'string' && text.length > TEXT_LIMIT) {
    return text.slice(0, TEXT_LIMIT) + `\n[… cut on the page: ${text.length - TEXT_LIMIT} more characters]`;
  }
  return text;
}

/** An output as nbformat JSON, its long data cut (images to their header, with the length). */
function trimOutput(output: nbformat.IOutput): JSONObject {
  const out = { ...(output as JSONObject) };
  if ('text' in out) {
    out.text = cutText(out.text) as string;
  }
  const data = out.data as JSONObject | undefined;
  if (data && typeof data === 'object') {
    const kept: JSONObject = {};
    const cut: JSONObject = {};
    for (const [mime, value] of Object.entries(data)) {
      const text = Array.isArray(value) ? value.join('') : value;
      if (mime.startsWith('image/') && mime !== 'image/svg+xml' && typeof text === 'string') {
        kept[mime] = text.slice(0, IMAGE_KEEP);
        if (text.length > IMAGE_KEEP) {
          cut[mime] = text.length;
        }
      } else {
        kept[mime] = cutText(value) as string;
      }
    }
    out.data = kept;
    if (Object.keys(cut).length) {
      out.hermes_nb_cut = cut;
    }
  }
  return out;
}

function cellJSON(cell: Cell | { model: Cell['model'] }): JSONObject {
  const json = cell.model.toJSON() as JSONObject;
  if (Array.isArray(json.outputs)) {
    json.outputs = (json.outputs as nbformat.IOutput[]).map(trimOutput);
  }
  if ('attachments' in json) {
    delete json.attachments;
  }
  return json;
}

/** Answers the kernel's requests for one notebook panel. */
class DocumentPage {
  readonly page = `p${Math.random().toString(36).slice(2, 10)}${Date.now().toString(36)}`;

  constructor(private readonly panel: NotebookPanel) {}

  hello(): JSONObject {
    return {
      page: this.page,
      v: PROTOCOL,
      path: this.panel.context.path,
      ops: OPS,
      ui: document.body.dataset.notebook ? 'notebook7' : 'lab'
    };
  }

  private find(cellId: unknown): { index: number; cell: Cell } {
    const id = String(cellId ?? '');
    const cells = this.panel.content.widgets;
    const index = cells.findIndex(c => c.model.id === id);
    if (index < 0) {
      throw new Refusal(
        'unknown_cell',
        `There is no cell with id '${id}' in the notebook; read_notebook lists the cells and their ids.`
      );
    }
    return { index, cell: cells[index] };
  }

  private writable(): void {
    const model = this.panel.content.model;
    if (!model || model.readOnly) {
      throw new Refusal('read_only', 'The notebook is read-only on the page, so it cannot be changed.');
    }
  }

  private unchanged(cell: Cell, expect: unknown): void {
    if (typeof expect === 'string' && cell.model.sharedModel.getSource() !== expect) {
      throw new Refusal(
        'changed',
        `Cell ${cell.model.id} changed since it was read (it was edited on the page), so it was ` +
          'not touched; call read_notebook to see it as it is now, then try again.'
      );
    }
  }

  async handle(msg: Request): Promise<JSONObject> {
    const content = this.panel.content;
    const model = content.model;
    if (!model) {
      throw new Refusal('no_model', 'The notebook is not loaded on the page yet.');
    }
    switch (msg.op) {
      case 'read':
        return {
          path: this.panel.context.path,
          dirty: this.panel.context.model.dirty,
          cells: content.widgets.map(cellJSON)
        };
      case 'cell': {
        const { index, cell } = this.find(msg.cell_id);
        return {
          index,
          cell_type: cell.model.type,
          source: cell.model.sharedModel.getSource()
        };
      }
      case 'insert': {
        this.writable();
        const after = String(msg.after ?? '');
        const index = after ? this.find(after).index + 1 : model.sharedModel.cells.length;
        const type = String(msg.cell_type || 'code') as nbformat.CellType;
        const shared = model.sharedModel.insertCell(index, {
          cell_type: type,
          source: String(msg.source ?? ''),
          metadata: {}
        } as any);
        return { cell_id: shared.id, index };
      }
      case 'edit': {
        this.writable();
        const { index, cell } = this.find(msg.cell_id);
        this.unchanged(cell, msg.expect);
        const shared = cell.model.sharedModel as any;
        // Its own undo step: not merged with the person's typing just before or after.
        shared.undoManager?.stopCapturing?.();
        cell.model.sharedModel.setSource(String(msg.source ?? ''));
        shared.undoManager?.stopCapturing?.();
        return { index };
      }
      case 'delete': {
        this.writable();
        const { index, cell } = this.find(msg.cell_id);
        this.unchanged(cell, msg.expect);
        model.sharedModel.deleteCell(index);
        return { index };
      }
      case 'run': {
        const { index, cell } = this.find(msg.cell_id);
        this.unchanged(cell, msg.expect);
        if (cell instanceof MarkdownCell) {
          cell.rendered = true;
          return { index, outputs: [], execution_count: null };
        }
        if (!(cell instanceof CodeCell)) {
          return { index, outputs: [], execution_count: null };
        }
        const reply = (await CodeCell.execute(cell, this.panel.sessionContext)) as
          | KernelMessage.IExecuteReplyMsg
          | undefined;
        return {
          index,
          status: reply?.content.status ?? 'unknown',
          execution_count: cell.model.executionCount,
          outputs: (cell.model.outputs.toJSON() as nbformat.IOutput[]).map(trimOutput)
        };
      }
      default:
        throw new Refusal('unknown_op', `The notebook page does not know the request '${msg.op}'.`);
    }
  }
}

/** Answer the kernel's requests for `page` on `comm` (one the kernel opened, or this page's own). */
function serve(page: DocumentPage, comm: Kernel.IComm): void {
  const reply = (data: JSONObject) => {
    if (!comm.isDisposed) {
      comm.send(data);
    }
  };
  comm.onMsg = msg => {
    const request = msg.content.data as Request;
    if (!request || request.page !== page.page) {
      return; // another page's request
    }
    page.handle(request).then(
      result => reply({ req: request.req, ok: true, result }),
      (error: unknown) =>
        reply({
          req: request.req,
          ok: false,
          error: error instanceof Refusal ? error.code : 'failed',
          message:
            error instanceof Refusal
              ? error.message
              : `The notebook page could not do it (${String((error as Error)?.message ?? error)}).`
        })
    );
  };
}

/**
 * Tell the kernel this page is here, if hermes_nb is loaded in it: it has a
 * `hermes_nb.document` comm open then. Asked on the subshell this target's comms use (so a
 * running cell does not hold it back), and only then is a comm opened: a kernel without
 * hermes_nb would log an unknown comm target as an error.
 */
async function announce(page: DocumentPage, kernel: Kernel.IKernelConnection): Promise<void> {
  // JupyterLab's comm (CommHandler) says which subshell it uses; IComm does not declare it.
  let comm: Kernel.IComm & { subshellStarted?: Promise<void>; subshellId?: string | null };
  try {
    comm = kernel.createComm(TARGET);
  } catch {
    return; // a connection that does not handle comms
  }
  try {
    await kernel.info;
    const sub = comm.commsOverSubshells !== CommsOverSubshells.Disabled && kernel.supportsSubshells;
    if (sub && comm.subshellStarted) {
      await comm.subshellStarted.catch(() => undefined); // none: the main shell answers
    }
    const ask = KernelMessage.createMessage({
      msgType: 'comm_info_request',
      channel: 'shell',
      session: kernel.clientId,
      username: kernel.username,
      subshellId: comm.subshellId ?? kernel.subshellId,
      content: { target_name: TARGET }
    });
    const info = (await kernel.sendShellMessage(ask, true, true).done) as KernelMessage.ICommInfoReplyMsg;
    const comms = info.content.status === 'ok' ? info.content.comms : {};
    if (comm.isDisposed || kernel.isDisposed || !Object.keys(comms).length) {
      comm.dispose(); // hermes_nb is not loaded there (it greets this page when it loads)
      return;
    }
    serve(page, comm);
    comm.open({ hello: true, ok: true, req: '', result: page.hello() });
  } catch {
    // A kernel going away or restarting: it greets this page when hermes_nb loads in it.
    if (!comm.isDisposed) {
      comm.dispose();
    }
  }
}

function connect(page: DocumentPage, kernel: Kernel.IKernelConnection): void {
  kernel.registerCommTarget(TARGET, (comm, open) => {
    const hello = open.content.data as Request;
    serve(page, comm);
    comm.send({ req: String(hello.req ?? ''), ok: true, hello: true, result: page.hello() });
  });
  void announce(page, kernel);
}

const documentPlugin: JupyterFrontEndPlugin<void> = {
  id: 'hermes-nb:document',
  description: 'The notebook on the page for the kernel: read it, and apply the changes the person accepted.',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (_app: JupyterFrontEnd, tracker: INotebookTracker) => {
    const watch = (panel: NotebookPanel) => {
      const page = new DocumentPage(panel);
      let connected: Kernel.IKernelConnection | null = null;
      const hook = () => {
        const kernel = panel.sessionContext.session?.kernel ?? null;
        if (kernel && kernel !== connected && !kernel.isDisposed) {
          connected = kernel;
          connect(page, kernel);
        }
      };
      panel.sessionContext.kernelChanged.connect(hook);
      void panel.sessionContext.ready.then(hook);
    };
    tracker.forEach(watch);
    tracker.widgetAdded.connect((_, panel) => watch(panel));
  }
};

export default documentPlugin;
