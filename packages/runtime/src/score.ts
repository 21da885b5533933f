import type { RuleSet, RuleSpec } from '@implicit-it/rules';
import type { Prompt } from '@implicit-it/tokenizers';
import type { DecoderSession } from './decoder-session.js';
import { GenerationError } from './errors.js';
import type { GenerateInput } from './options.js';
import { logSumExp, rankOf } from './sampling.js';

/** A prompt and the continuation to score after it (text, or ids). */
export interface ScoreItem {
  prompt: GenerateInput;
  continuation: string | readonly number[];
}

/** Options of `Model.score`. */
export interface ScoreOptions {
  format?: 'tulu' | 'chat-template' | 'raw';
  /** Score under base + rules (default false: the base model). */
  rules?: RuleSpec | RuleSet;
  /** Also return each token's rank (1 = the greedy pick). */
  ranks?: boolean;
  /** Items per forward pass (default 8). */
  batchSize?: number;
  onProgress?: (done: number, total: number) => void;
}

/** Per-token log-probs of one continuation. */
export interface ScoreResult {
  tokenIds: number[];
  logprobs: number[];
  sumLogprob: number;
  /** Mean token log-prob; exp(meanLogprob) is the paper's ranking score exp(-mean NLL). */
  meanLogprob: number;
  ranks?: number[];
}

/** @internal */
export async function scoreBatch(
  session: DecoderSession,
  padId: number,
  items: readonly { prompt: Prompt; continuation: number[] }[],
  rules: RuleSet | null,
  options: ScoreOptions,
): Promise<ScoreResult[]> {
  items.forEach((item, i) => {
    if (item.continuation.length === 0) {
      throw new GenerationError(
        'runtime.empty_continuation',
        `items[${i}].continuation has no tokens to score`,
        'continuation',
      );
    }
  });
  const order = items.map((_, i) => i).sort((a, b) => total(items[a]!) - total(items[b]!));
  const batchSize = options.batchSize ?? 8;
  const results: ScoreResult[] = new Array(items.length);
  for (let start = 0; start < order.length; start += batchSize) {
    const chunk = order.slice(start, start + batchSize).map((i) => ({ i, ...items[i]! }));
    const width = Math.max(...chunk.map(total));
    const maxCont = Math.max(...chunk.map((c) => c.continuation.length));
    const ids = new BigInt64Array(chunk.length * width);
    const mask = new BigInt64Array(chunk.length * width);
    const pos = new BigInt64Array(chunk.length * width);
    chunk.forEach((c, b) => {
      const seq = [...c.prompt.ids, ...c.continuation];
      const pad = width - seq.length;
      for (let t = 0; t < width; t++) {
        const real = t >= pad;
        ids[b * width + t] = BigInt(real ? seq[t - pad]! : padId);
        mask[b * width + t] = real ? 1n : 0n;
        pos[b * width + t] = BigInt(real ? t - pad : 1);
      }
    });
    const from = width - maxCont - 1;
    const step = await session.run({
      batch: chunk.length,
      seq: width,
      inputIds: ids,
      attentionMask: mask,
      positionIds: pos,
      past: null,
      logitsFrom: from,
      fetch: 'none',
    });
    const V = step.vocab;
    const row = new Float32Array(V);
    chunk.forEach((c, b) => {
      const n = c.continuation.length;
      const state =
        rules?.createState({
          promptIds: c.prompt.ids,
          scopeStart: c.prompt.scopeStart,
          promptLength: c.prompt.ids.length,
        }) ?? null;
      const logprobs: number[] = [];
      const ranks: number[] = [];
      for (let j = 0; j < n; j++) {
        const at = width - n - 1 + j - from; // position predicting continuation token j
        row.set(step.logits.subarray((b * step.kept + at) * V, (b * step.kept + at + 1) * V));
        if (state) rules!.apply(row, state);
        const tok = c.continuation[j]!;
        logprobs.push(row[tok]! - logSumExp(row));
        if (options.ranks) ranks.push(rankOf(row, tok));
        state?.append(tok);
      }
      const sum = logprobs.reduce((a, x) => a + x, 0);
      results[c.i] = {
        tokenIds: c.continuation,
        logprobs,
        sumLogprob: sum,
        meanLogprob: sum / n,
        ...(options.ranks ? { ranks } : {}),
      };
    });
    options.onProgress?.(Math.min(start + batchSize, order.length), order.length);
  }
  return results;
}

const total = (x: { prompt: Prompt; continuation: number[] }) => x.prompt.ids.length + x.continuation.length;
