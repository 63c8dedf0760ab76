/**
 * Asking the kernel for a replay: {type: "replay", after, rid}.
 *
 * A fresh view (first render, page reload, second view of the same widget) asks after=0; a view
 * that finds a gap (a frame whose prev is past its cursor) asks after its cursor. Custom
 * messages sent while no view was open are lost, and so can a request or its answer be (a
 * reconnect): without an answer tagged with the request's rid, the view asks again, less and
 * less often, for about five minutes; a later gap asks again.
 */

import { IModel, trySend } from './protocol';

const RETRY_MS = [250, 500, 1000, 2000, 4000, 8000];
const MAX_ATTEMPTS = 40;

export class Replay {
  /**
   * @param viewId this view's id (a rid is `${viewId}:${n}`)
   * @param cursor the seq of the last frame the view applied, when a request is sent
   */
  constructor(
    private readonly model: IModel,
    private readonly viewId: string,
    private readonly cursor: () => number
  ) {}

  /** Ask, unless a request is already waiting for its answer. */
  request(): void {
    if (this.pending === null) {
      this.attempts = 0;
      this.ask();
    }
  }

  /** A frame tagged `rid` arrived: if it answers the waiting request, stop asking. */
  answered(rid: string | null | undefined): void {
    if (rid && rid === this.pending) {
      this.pending = null;
      clearTimeout(this.retryTimer);
    }
  }

  dispose(): void {
    clearTimeout(this.retryTimer);
    this.pending = null;
  }

  /** The rid of the request awaiting an answer. */
  private pending: string | null = null;
  private attempts = 0;
  private ridCount = 0;
  private retryTimer = 0;

  private ask(): void {
    this.pending = `${this.viewId}:${++this.ridCount}`;
    trySend(this.model, { type: 'replay', after: this.cursor(), rid: this.pending }, 'replay request');
    const delay = RETRY_MS[Math.min(this.attempts, RETRY_MS.length - 1)];
    this.attempts += 1;
    clearTimeout(this.retryTimer);
    this.retryTimer = window.setTimeout(() => {
      // No answer with that rid: the request (or its answer) was lost. Ask again.
      if (this.pending !== null && this.attempts < MAX_ATTEMPTS) {
        this.ask();
      } else {
        this.pending = null;
      }
    }, delay);
  }
}
