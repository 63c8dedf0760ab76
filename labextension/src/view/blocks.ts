/**
 * A view's blocks: what it holds for each (the HTML patches apply to) and their elements.
 *
 * A frame's blocks are taken at once (accept: the HTML each block shows, so replay and patches
 * stay exact), and the elements they change are written later, in one DOM update (flush), with
 * whatever came since. Blocks are upserted by id, or patched from an offset only when the view
 * holds exactly the HTML the patch starts from (cursor === prev); never appended blindly, so a
 * replay can never duplicate text (DESIGN.md §3, invariants 1, 2 and 4). Block HTML is
 * sanitised in the kernel before it is sent.
 */

import { decorateCode } from './codeActions';
import { IBlock, IFrame } from './protocol';
import { blockIndex, FLOW, SEGMENT, segmentOf, SLOTS } from './layout';

/** A block's element, with the HTML written into it. */
interface IBlockNode extends HTMLElement {
  hnbHtml?: string;
}

export class Blocks {
  /** Characters of HTML taken since the last DOM update. */
  waiting = 0;

  /**
   * @param root the view's root element (its skeleton in place)
   * @param onCard called after a prompt card's HTML was written (`wasOpen`: it was open before)
   */
  constructor(
    private readonly root: HTMLElement,
    private readonly onCard: (node: HTMLElement, wasOpen: boolean) => void
  ) {}

  /** Whether the kernel has sent a status block (else the view shows the synced status). */
  hasStatus(): boolean {
    return this.nodes.has('status');
  }

  /** Whether some block waits for the next DOM update. */
  get pending(): boolean {
    return this.dirty.size > 0;
  }

  /**
   * Whether every tail patch of `msg` applies: a patch ({at}) replaces the block's HTML from
   * UTF-16 offset `at`, valid only for the exact HTML the kernel had at the frame's prev, which
   * this view holds iff cursor === prev.
   */
  patchable(msg: IFrame, cursor: number): boolean {
    return msg.blocks.every(
      b =>
        b.at === undefined ||
        (cursor === msg.prev && (this.htmlById.get(b.id)?.length ?? -1) >= b.at)
    );
  }

  /**
   * Take a frame's block: the HTML this view now holds for it (what the next patch applies
   * to), and a note that its element needs writing (in the next DOM update).
   */
  accept(block: IBlock): void {
    const html =
      block.at === undefined
        ? block.html
        : (this.htmlById.get(block.id) ?? '').slice(0, block.at) + block.html;
    if (!html) {
      if (this.htmlById.delete(block.id) || this.nodes.has(block.id)) {
        this.dirty.set(block.id, block.kind);
      }
      return;
    }
    // The same HTML again (a replay): leave the node alone, with whatever the person was
    // typing into a card or had opened.
    if (this.htmlById.get(block.id) === html) {
      return;
    }
    if (!this.nodes.has(block.id) && !FLOW[block.kind] && !SLOTS[block.kind]) {
      return;
    }
    this.htmlById.set(block.id, html);
    this.dirty.set(block.id, block.kind);
    this.waiting += block.html.length;
  }

  /**
   * Write every block changed since the last update. `probe()` says whether Insert below works
   * here: asked at most once per update.
   */
  flush(probe: (node: Element) => boolean): void {
    this.waiting = 0;
    const changed = Array.from(this.dirty);
    this.dirty.clear();
    for (const [id, kind] of changed) {
      this.write(id, kind, probe);
    }
  }

  /** Block id → element (its HTML as written: node.hnbHtml). */
  private readonly nodes = new Map<string, IBlockNode>();
  /** Block id → the HTML it shows (patches apply to this string). */
  private readonly htmlById = new Map<string, string>();
  /** Block id → kind: changed by frames since the last DOM update. */
  private readonly dirty = new Map<string, string>();

  private $(selector: string): HTMLElement | null {
    return this.root.querySelector<HTMLElement>(selector);
  }

  /** Bring one block's element up to date with the HTML this view holds for it. */
  private write(id: string, kind: string, probe: (node: Element) => boolean): void {
    let node = this.nodes.get(id);
    const html = this.htmlById.get(id);
    if (!html) {
      if (node) {
        unplace(node);
      }
      this.nodes.delete(id);
      return;
    }
    if (node?.hnbHtml === html) {
      return;
    }
    const slot = node ? null : this.slotFor(id, kind);
    if (!node && !slot) {
      return;
    }
    const open = node ? Array.from(node.querySelectorAll('details')).map(d => d.open) : [];
    const wasOpen = node?.querySelector('.hnb-ask[data-state="open"]') != null;
    if (!node) {
      if (kind === 'status') {
        slot!.replaceChildren();
      }
      node = document.createElement('div') as IBlockNode;
      node.className = 'hnb-block';
      node.dataset.block = id;
      place(slot!, node, id, CHUNKED.has(kind));
      this.nodes.set(id, node);
    }
    node.innerHTML = html;
    node.hnbHtml = html;
    if (kind === 'reply') {
      decorateCode(node, probe);
    }
    // Keep a tool call the user opened open while it updates.
    if (open.length) {
      node.querySelectorAll('details').forEach((d, i) => {
        if (open[i]) {
          d.open = true;
        }
      });
    }
    if (kind === 'reasoning') {
      this.$('.hnb-reasoning')!.hidden = false;
    }
    if (kind === 'ask') {
      this.onCard(node, wasOpen);
    }
  }

  private segment(n: number): HTMLElement {
    const flow = this.$('.hnb-flow')!;
    let seg = flow.querySelector<HTMLElement>(`:scope > .hnb-seg[data-seg="${n}"]`);
    if (seg) {
      return seg;
    }
    seg = document.createElement('div');
    seg.className = 'hnb-seg';
    seg.dataset.seg = String(n);
    seg.innerHTML = SEGMENT;
    const after = Array.from(flow.children).find(
      s => Number((s as HTMLElement).dataset.seg) > n
    );
    flow.insertBefore(seg, after ?? null);
    return seg;
  }

  private slotFor(id: string, kind: string): HTMLElement | null {
    if (FLOW[kind]) {
      return this.segment(segmentOf(id)).querySelector<HTMLElement>(FLOW[kind]);
    }
    return SLOTS[kind] ? this.$(SLOTS[kind]) : null;
  }
}

/**
 * Numbered blocks (a reply's, its reasoning's) go into chunks of this many, in order: a chunk
 * the last frames did not touch is one child for the browser to step over when a reply's growing
 * end is styled, laid out and painted, however long the reply. With every block a child of the
 * slot, each DOM update cost the page time in proportion to the whole reply (2-3 times more at
 * its end than at its start: benchmarks/bench_browser.py --follow --trace).
 */
export const CHUNK = 16;
/** The kinds whose blocks go into chunks: the long ones. */
const CHUNKED = new Set(['reply', 'reasoning']);

/** The chunk of `slot` that holds block `index` (made, in order, if it is not there yet). */
function chunkFor(slot: HTMLElement, index: number): HTMLElement {
  const n = Math.floor(index / CHUNK);
  const last = slot.lastElementChild as HTMLElement | null;
  if (last && Number(last.dataset.chunk) === n) {
    return last; // the usual case: the reply's growing end
  }
  let after: Element | null = null;
  for (const child of Array.from(slot.children) as HTMLElement[]) {
    const other = Number(child.dataset.chunk);
    if (other === n) {
      return child;
    }
    if (other > n) {
      after = child;
      break;
    }
  }
  const chunk = document.createElement('div');
  chunk.className = 'hnb-chunk';
  chunk.dataset.chunk = String(n);
  slot.insertBefore(chunk, after);
  return chunk;
}

/**
 * Put a block's new element in its slot: a numbered block by its index among its siblings (in
 * its chunk if `chunked`), else last.
 */
function place(slot: HTMLElement, node: HTMLElement, id: string, chunked: boolean): void {
  const index = blockIndex(id);
  if (index === null) {
    slot.appendChild(node);
    return;
  }
  const chunk = chunked ? chunkFor(slot, index) : slot;
  // Blocks mostly arrive in order: after the last one, without looking at the others.
  const last = blockIndex((chunk.lastElementChild as HTMLElement | null)?.dataset.block || '');
  if (last === null || last < index) {
    chunk.appendChild(node);
    return;
  }
  for (const sibling of Array.from(chunk.children)) {
    const other = blockIndex((sibling as HTMLElement).dataset.block || '');
    if (other !== null && other > index) {
      chunk.insertBefore(node, sibling);
      return;
    }
  }
  chunk.appendChild(node);
}

/** Take a block's element out, and its chunk with it once that is empty. */
function unplace(node: HTMLElement): void {
  const parent = node.parentElement;
  node.remove();
  if (parent?.classList.contains('hnb-chunk') && !parent.firstElementChild) {
    parent.remove();
  }
}
