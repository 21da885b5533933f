/**
 * Waits `ms` milliseconds, or rejects with `signal.reason` as soon as `signal` aborts (as
 * `signal.throwIfAborted()` throws it), so that a stopped run does not sit out a long wait.
 *
 * @example
 * await abortableDelay(30_000, controller.signal); // rejects at once when controller.abort() is called
 */
export function abortableDelay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * How `createRateLimiter` spaces calls: `requestsPerMinute` (none: no spacing) and `concurrency` (4).
 *
 * @example
 * const options: RateLimiterOptions = { requestsPerMinute: 500, concurrency: 4 };
 * const limit = createRateLimiter(options);
 */
export interface RateLimiterOptions {
  /** Starts at least `60000 / requestsPerMinute` ms apart; none or 0: no spacing. */
  requestsPerMinute?: number | undefined;
  /** Calls running at once (at least 1; default 4). */
  concurrency?: number | undefined;
}

/**
 * What `createRateLimiter` returns: runs `fn` when its turn comes, with what `fn` returns; a call given
 * a `signal` stops waiting for its turn when it aborts (rejecting with `signal.reason`).
 *
 * @example
 * const limit: RateLimiter = createRateLimiter({ concurrency: 1 });
 * await limit(async () => 42); // 42
 */
export type RateLimiter = <T>(fn: () => Promise<T>, signal?: AbortSignal) => Promise<T>;

/**
 * Spaces the starts of calls at least `60000 / requestsPerMinute` ms apart and runs at most
 * `concurrency` at once. A call given a `signal` stops waiting for its turn when it aborts.
 *
 * @example
 * const limit = createRateLimiter({ requestsPerMinute: 500, concurrency: 4 });
 * await limit(() => fetch(url));
 */
export function createRateLimiter(options: RateLimiterOptions = {}): RateLimiter {
  const interval = options.requestsPerMinute ? 60_000 / options.requestsPerMinute : 0;
  const concurrency = Math.max(1, options.concurrency ?? 4);
  let active = 0;
  let nextStart = 0;
  const queue: (() => void)[] = [];
  const release = () => {
    active--;
    queue.shift()?.();
  };
  /** Resolves when a slot is free; an abort takes the caller out of the queue. */
  const slot = (signal?: AbortSignal) =>
    new Promise<void>((resolve, reject) => {
      const take = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        queue.splice(queue.indexOf(take), 1);
        reject(signal!.reason);
      };
      queue.push(take);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  return async function limit<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    signal?.throwIfAborted();
    if (active >= concurrency) await slot(signal);
    active++;
    try {
      const now = Date.now();
      const wait = nextStart - now;
      nextStart = Math.max(now, nextStart) + interval;
      if (wait > 0) await abortableDelay(wait, signal);
      return await fn();
    } finally {
      release();
    }
  };
}
