/**
 * Prompt cards: a run's approvals and questions for the person.
 *
 * A card (a block of kind "ask") carries buttons and a text field; one delegated listener on the
 * view's root sends {type: "answer", prompt_id, value}. The card stays as sent ("Sending…")
 * until the kernel's frame replaces it with the decision; its countdown ticks here, against the
 * kernel's clock (meta.clock), so the kernel sends nothing per second.
 */

import { formatLeft } from './layout';
import { IModel, trySend } from './protocol';

const ANSWER_RETRY_MS = 5000; // no decision by then: the card's controls work again

export class Cards {
  /** The kernel's epoch seconds minus this page's, from the last frame's meta. */
  clockSkew = 0;

  /**
   * @param suffix added to element ids inside a card (two views of a run share the page)
   * @param announce says a text in the view's live region
   */
  constructor(
    private readonly root: HTMLElement,
    private readonly model: IModel,
    private readonly suffix: string,
    private readonly announce: (text: string) => void
  ) {}

  /** A card's HTML was just written (`wasOpen`: the block showed an open card before). */
  onCard(node: HTMLElement, wasOpen: boolean): void {
    this.localizeIds(node);
    const card = node.querySelector<HTMLElement>('.hnb-ask');
    if (!card) {
      return;
    }
    const id = card.dataset.prompt ?? '';
    if (card.dataset.state === 'open') {
      if (this.sent.has(id)) {
        markSending(card); // a replay of a card this view already answered
      }
      this.tickCountdowns();
      return;
    }
    const was = this.sent.get(id);
    if (was) {
      clearTimeout(was.timer);
    }
    this.sent.delete(id);
    const decided = card.querySelector('.hnb-ask-decision');
    if (decided && (wasOpen || was)) {
      // Said once, in the view's own live region (the card's was just replaced).
      const text = card.querySelector('.hnb-ask-text')?.textContent ?? '';
      this.announce(`${text} ${decided.textContent}`);
    }
  }

  /** A click on `button` inside a card: an answer's button or the text field's Send. */
  onClick(button: HTMLElement): void {
    const card = button.closest<HTMLElement>('.hnb-ask');
    if (!card) {
      return;
    }
    if (button.dataset.answer !== undefined) {
      this.answer(card, button.dataset.answer);
    } else if (button.classList.contains('hnb-ask-send')) {
      this.sendTyped(card);
    }
  }

  /** Enter in a card's text field sends it; true iff the key was the card's. */
  onKey(event: KeyboardEvent): boolean {
    if (event.key !== 'Enter' || event.isComposing) {
      return false;
    }
    const input = (event.target as Element | null)?.closest?.('.hnb-ask-input');
    if (!input) {
      return false;
    }
    event.preventDefault();
    event.stopPropagation(); // not the notebook's Enter (edit mode, run cell)
    this.sendTyped(input.closest<HTMLElement>('.hnb-ask')!);
    return true;
  }

  tickCountdowns(): void {
    const now = Date.now() / 1000 + this.clockSkew;
    for (const el of Array.from(
      this.root.querySelectorAll<HTMLElement>('.hnb-countdown[data-deadline]')
    )) {
      const left = Number(el.dataset.deadline) - now;
      el.textContent = left > 0 ? formatLeft(left) : 'Time is up';
      el.dataset.urgent = left < 30 ? 'true' : 'false';
    }
  }

  dispose(): void {
    for (const entry of this.sent.values()) {
      clearTimeout(entry.timer);
    }
  }

  /** Prompt id → answered here, decision not shown yet. */
  private readonly sent = new Map<string, { value: string; timer: number }>();

  /** Element ids inside a card get this view's suffix (two views of a run share the page). */
  private localizeIds(node: HTMLElement): void {
    for (const el of Array.from(node.querySelectorAll('[id]'))) {
      el.id = `${el.id}-${this.suffix}`;
    }
    for (const el of Array.from(node.querySelectorAll('[aria-labelledby]'))) {
      const ids = (el.getAttribute('aria-labelledby') ?? '').split(/\s+/);
      el.setAttribute('aria-labelledby', ids.map(i => `${i}-${this.suffix}`).join(' '));
    }
  }

  private answer(card: HTMLElement, value: string): void {
    const id = card.dataset.prompt;
    if (!id || card.dataset.state !== 'open' || card.dataset.sending === 'true') {
      return;
    }
    if (!trySend(this.model, { type: 'answer', prompt_id: id, value }, 'answer')) {
      return;
    }
    const timer = window.setTimeout(() => {
      // No decision yet (a busy kernel without subshells, a reconnect): allow another try.
      const entry = this.sent.get(id);
      if (!entry || entry.timer !== timer) {
        return;
      }
      this.sent.delete(id);
      const now = this.root.querySelector<HTMLElement>(
        `.hnb-ask[data-prompt="${CSS.escape(id)}"]`
      );
      if (!now || now.dataset.state !== 'open') {
        return;
      }
      for (const el of controls(now)) {
        el.disabled = false;
      }
      delete now.dataset.sending;
      const status = now.querySelector('.hnb-ask-decision');
      if (status) {
        status.textContent = 'No reply from the kernel yet — you can try again.';
      }
    }, ANSWER_RETRY_MS);
    this.sent.set(id, { value, timer });
    markSending(card);
  }

  private sendTyped(card: HTMLElement): void {
    const input = card.querySelector<HTMLInputElement>('.hnb-ask-input');
    const value = input ? input.value.trim() : '';
    if (!input || !value) {
      input?.setAttribute('aria-invalid', 'true');
      input?.focus();
      return;
    }
    input.removeAttribute('aria-invalid');
    this.answer(card, value);
  }
}

function controls(card: HTMLElement): HTMLInputElement[] {
  return Array.from(card.querySelectorAll<HTMLInputElement>('button, input'));
}

function markSending(card: HTMLElement): void {
  for (const el of controls(card)) {
    el.disabled = true;
  }
  card.dataset.sending = 'true';
  const status = card.querySelector('.hnb-ask-decision');
  if (status) {
    status.textContent = 'Sending…';
  }
}
