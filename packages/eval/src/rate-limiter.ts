/**
 * Spaces the starts of calls at least `60000 / requestsPerMinute` ms apart and runs at most
 * `concurrency` at once.
 *
 * @example
 * const limit = createRateLimiter({ requestsPerMinute: 500, concurrency: 4 });
 * await limit(() => fetch(url));
 */
export function createRateLimiter(options: { requestsPerMinute?: number; concurrency?: number } = {}) {
  const interval = options.requestsPerMinute ? 60_000 / options.requestsPerMinute : 0;
  const concurrency = Math.max(1, options.concurrency ?? 4);
  let active = 0;
  let nextStart = 0;
  const queue: (() => void)[] = [];
  const release = () => {
    active--;
    queue.shift()?.();
  };
  return async function limit<T>(fn: () => Promise<T>): Promise<T> {
    if (active >= concurrency) await new Promise<void>((resolve) => queue.push(resolve));
    active++;
    try {
      const now = Date.now();
      const wait = nextStart - now;
      nextStart = Math.max(now, nextStart) + interval;
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      return await fn();
    } finally {
      release();
    }
  };
}
