/** Frees a slot taken from a `WorkQueue`; calling it more than once is harmless. */
export type Release = () => void;

interface Waiter {
  grant: (release: Release) => void;
}

/**
 * A bounded queue in front of the model: at most `concurrency` generations run at once, at most
 * `maxQueued` more wait; `acquire` answers `null` when both are full (the server answers 429).
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

  /** Generations running now. */
  get active(): number {
    return this.running;
  }

  /** Requests waiting for a slot. */
  get depth(): number {
    return this.waiting.length;
  }

  /** Every slot taken and the queue full: `acquire` would answer `null`. */
  get full(): boolean {
    return this.running >= this.concurrency && this.waiting.length >= this.maxQueued;
  }

  private release(): Release {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.waiting.shift();
      if (next) next.grant(this.release());
      else this.running--;
    };
  }

  /**
   * A slot: at once when one is free, after waiting when the queue has room, `null` when it has none.
   * Rejects with the signal's reason when `signal` aborts while waiting (the client went away).
   */
  acquire(signal?: AbortSignal): Promise<Release | null> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.running < this.concurrency) {
      this.running++;
      return Promise.resolve(this.release());
    }
    if (this.waiting.length >= this.maxQueued) return Promise.resolve(null);
    return new Promise<Release | null>((resolve, reject) => {
      const onAbort = () => {
        const i = this.waiting.indexOf(waiter);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(signal?.reason);
      };
      const waiter: Waiter = {
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
