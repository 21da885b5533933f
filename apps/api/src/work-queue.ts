/**
 * Frees slots taken from a `WorkQueue`: `count` of them (a request whose choices finish one by one),
 * or without it all those still held. Freeing more than are held frees what is left: calling it again
 * is harmless.
 */
export type Release = (count?: number) => void;

interface Waiter {
  slots: number;
  grant: (release: Release) => void;
}

/**
 * A bounded queue in front of the model: at most `concurrency` generations (batch rows) run at once,
 * at most `maxQueued` more requests wait; `acquire` answers `null` when both are full (the server
 * answers 429). A request with several choices (`n`, a list of prompts) takes a slot per choice, up
 * to `concurrency`, all at once, and may free them one by one; waiting requests are served in
 * arrival order, so a large one is not passed over for ever.
 *
 * @example
 * const queue = new WorkQueue({ concurrency: 4, maxQueued: 32 });
 * const release = await queue.acquire(signal);
 * if (!release) return tooBusy();
 * try { await work(); } finally { release(); }
 */
export class WorkQueue {
  readonly concurrency: number;
  readonly maxQueued: number;
  private running = 0;
  private readonly waiting: Waiter[] = [];

  constructor(options: { concurrency: number; maxQueued: number }) {
    this.concurrency = options.concurrency;
    this.maxQueued = options.maxQueued;
  }

  /** Generations (slots) running now. */
  get active(): number {
    return this.running;
  }

  /** Requests waiting for their slots. */
  get depth(): number {
    return this.waiting.length;
  }

  /** Every slot taken and the queue full: `acquire` would answer `null`. */
  get full(): boolean {
    return this.running >= this.concurrency && this.waiting.length >= this.maxQueued;
  }

  private release(slots: number): Release {
    let held = slots;
    return (count = held) => {
      const freed = Math.min(held, Math.max(0, Math.floor(count)));
      if (freed === 0) return;
      held -= freed;
      this.running -= freed;
      this.grantWaiting();
    };
  }

  /** Grants waiting requests in order while the first one's slots are free. */
  private grantWaiting(): void {
    while (this.waiting.length > 0 && this.running + this.waiting[0]!.slots <= this.concurrency) {
      const next = this.waiting.shift()!;
      this.running += next.slots;
      next.grant(this.release(next.slots));
    }
  }

  /**
   * `slots` slots (default 1, at most `concurrency`): at once when they are free and nobody waits,
   * after waiting when the queue has room, `null` when it has none. Rejects with the signal's reason
   * when `signal` aborts while waiting (the client went away).
   */
  acquire(signal?: AbortSignal, slots = 1): Promise<Release | null> {
    if (!Number.isInteger(slots) || slots < 1 || slots > this.concurrency) {
      return Promise.reject(
        new RangeError(`slots: expected an integer in [1, ${this.concurrency}], got ${slots}`),
      );
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.waiting.length === 0 && this.running + slots <= this.concurrency) {
      this.running += slots;
      return Promise.resolve(this.release(slots));
    }
    if (this.waiting.length >= this.maxQueued) return Promise.resolve(null);
    return new Promise<Release | null>((resolve, reject) => {
      const onAbort = () => {
        const i = this.waiting.indexOf(waiter);
        if (i >= 0) this.waiting.splice(i, 1);
        // the first in line leaving may let the ones behind it in
        if (i === 0) this.grantWaiting();
        reject(signal?.reason);
      };
      const waiter: Waiter = {
        slots,
        grant: (release) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(release);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(waiter);
    });
  }
}
