/** The callbacks waiting on each signal, behind the one listener `whenAborted` adds to it. */
const waiting = new WeakMap<AbortSignal, Set<() => void>>();

/**
 * Calls `fn` once when `signal` aborts (at once if it already has), and returns what unlinks it.
 * However many calls wait on one signal (a caller may pass the same signal to many concurrent
 * requests), the signal gets a single listener: Node warns of a leak past 10 listeners on one signal.
 */
export function whenAborted(signal: AbortSignal, fn: () => void): () => void {
  if (signal.aborted) {
    fn();
    return () => {};
  }
  let callbacks = waiting.get(signal);
  if (callbacks === undefined) {
    const set = new Set<() => void>();
    callbacks = set;
    waiting.set(signal, set);
    signal.addEventListener(
      'abort',
      () => {
        waiting.delete(signal);
        for (const callback of [...set]) callback();
      },
      { once: true },
    );
  }
  // a wrapper per call: the same function passed twice is two waits, each unlinked on its own
  const entry = () => fn();
  callbacks.add(entry);
  const set = callbacks;
  return () => set.delete(entry);
}
