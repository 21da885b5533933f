import { RunAbortedError } from './errors.js';

/** What stopped a run, from its signal's reason: the reason's message (a `DOMException`'s too), or the reason itself. */
const reasonText = (reason: unknown) =>
  reason instanceof Error ? reason.message : reason === undefined ? '' : String(reason);

/**
 * One batch of a run that `signal` can stop, wherever the abort lands: aborted before the batch
 * starts, or while it runs (the adapter then stops with an error of its own, whichever), it rejects
 * with `RunAbortedError`, its `cause` the signal's reason: `${what} aborted: REASON; ${kept()}`.
 * Other errors, thrown while the signal is not aborted, are the batch's own and pass unchanged.
 */
export async function abortableBatch<T>(
  signal: AbortSignal | undefined,
  what: string,
  kept: () => string,
  batch: () => Promise<T>,
): Promise<T> {
  try {
    throwIfRunAborted(signal, what, kept);
    return await batch();
  } catch (error) {
    if (signal?.aborted && !RunAbortedError.isInstance(error)) throw runAborted(signal, what, kept);
    throw error;
  }
}

/** Throws `RunAbortedError` (as `abortableBatch`) where `signal` has aborted: between the steps of a run. */
export function throwIfRunAborted(signal: AbortSignal | undefined, what: string, kept: () => string): void {
  if (signal?.aborted) throw runAborted(signal, what, kept);
}

function runAborted(signal: AbortSignal, what: string, kept: () => string): RunAbortedError {
  const why = reasonText(signal.reason);
  return new RunAbortedError(`${what} aborted${why ? `: ${why}` : ''}; ${kept()}`, { cause: signal.reason });
}

/**
 * What an aborted run keeps, for its message: the `done` of `total` `unit` finished before the abort,
 * in `journalPath`, from which the same call resumes; without a journal, nothing.
 */
export function keptInJournal(
  done: number,
  total: number,
  unit: string,
  journalPath: string | undefined,
): string {
  if (journalPath === undefined)
    return `nothing is kept (no journal: give out or journalPath to resume a stopped run)`;
  return `${done} of ${total} ${unit} ${done === 1 ? 'is' : 'are'} kept in ${journalPath}, from which the same call resumes`;
}
