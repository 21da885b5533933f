import type { OpenAIJudgeOptions } from '@implicit-it/eval';

/** What the judge client says before a retry (`openAIJudge`'s `onRetry`). */
type RetryInfo = Parameters<NonNullable<OpenAIJudgeOptions['onRetry']>>[0];

/**
 * The judge's `onRetry` for a terminal: the retries that requests in flight make alike within
 * `windowMs` (a closed port or a 503 fails them all at once) are one line, `judge: retry 1 for each
 * of 16 requests in 0.3-0.5 s: HTTP 503`, not one line each. `flush()` writes what is still held (call it
 * before the command's last word, so that an error comes after its retries).
 *
 * @example
 * import { judgePairs, openAIJudge, runPaths } from '@implicit-it/eval';
 *
 * const notes = retryNotes((line) => process.stderr.write(`${line}\n`));
 * const judge = openAIJudge({ baseURL: 'http://127.0.0.1:8000/v1', model: 'judge', onRetry: notes.onRetry });
 * const p = runPaths('runs/llama2');
 * try {
 *   await judgePairs({
 *     judge, baseline: p.output('tulu'), model: p.output('rules'), cacheDir: p.judgeCache, out: p.annotation('rules'),
 *   });
 * } finally {
 *   notes.flush();
 * }
 */
export function retryNotes(
  write: (line: string) => void,
  windowMs = 200,
): { onRetry: (info: RetryInfo) => void; flush: () => void } {
  const held = new Map<string, { attempt: number; what: string; delays: number[]; timer: NodeJS.Timeout }>();
  const emit = (key: string) => {
    const group = held.get(key);
    if (!group) return;
    held.delete(key);
    clearTimeout(group.timer);
    const [lo, hi] = [Math.min(...group.delays), Math.max(...group.delays)].map((ms) =>
      (ms / 1000).toFixed(1),
    );
    const requests = group.delays.length > 1 ? ` for each of ${group.delays.length} requests` : '';
    write(`judge: retry ${group.attempt}${requests} in ${lo === hi ? lo : `${lo}-${hi}`} s: ${group.what}`);
  };
  return {
    onRetry(info) {
      const what = info.status ? `HTTP ${info.status}` : info.error;
      const key = `${info.attempt}\n${what}`;
      const group = held.get(key);
      if (group) group.delays.push(info.delayMs);
      else
        held.set(key, {
          attempt: info.attempt,
          what,
          delays: [info.delayMs],
          timer: setTimeout(() => emit(key), windowMs),
        });
    },
    flush() {
      for (const key of [...held.keys()]) emit(key);
    },
  };
}
