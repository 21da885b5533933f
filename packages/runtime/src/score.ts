import type { RuleSet, RuleSpec } from '@implicit-it/rules';
import type { Prompt, PromptFormat } from '@implicit-it/tokenizers';
import { type EngineTokenizer, namedTopLogprobs, type TokenLogprob } from './decode-engine.js';
import type { DecoderSession } from './decoder-session.js';
import { GenerationAbortedError, GenerationError } from './errors.js';
import { applyRules } from './logits-processor.js';
import type { GenerateInput } from './options.js';
import { runChunked } from './prefill.js';
import { logProbAt, logSumExp, rankOf, readLogitsRow } from './sampling.js';

/**
 * A prompt and the continuation to score after it: ids, or text, tokenized where it follows the
 * prompt (see `Model.continuationIds`).
 *
 * @example
 * const items: ScoreItem[] = ['Paris.', 'Lyon.'].map((continuation) => ({
 *   prompt: 'What is the capital of France?',
 *   continuation,
 * }));
 * const [paris, lyon] = await model.score(items);
 */
export interface ScoreItem {
  prompt: GenerateInput;
  continuation: string | readonly number[];
}

/**
 * Options of `Model.score`.
 *
 * @example
 * const options: ScoreOptions = { rules: 'hewitt2024', ranks: true, top: 3 };
 * const [blue] = await model.score([{ prompt: 'Name a color.', continuation: 'Blue.' }], options);
 */
export interface ScoreOptions {
  /** How instructions and messages become prompts (see `GenerateOptions.format`). */
  format?: PromptFormat | undefined;
  /** Start each prompt with the BOS token (see `GenerateOptions.addBos`). */
  addBos?: boolean | undefined;
  /** Score under base + rules (default false: the base model, whatever rules the model was loaded with). */
  rules?: RuleSpec | RuleSet | undefined;
  /** Also return each token's rank (1 = the greedy pick). */
  ranks?: boolean | undefined;
  /**
   * Also return the `top` most likely tokens at each continuation position (0-20), most likely first,
   * under the same distribution as `logprobs` (ids ruled out, at -Infinity, are not listed): the
   * alternatives of OpenAI's `top_logprobs`. Default 0: none.
   */
  top?: number | undefined;
  /** Items per forward pass (default 8). */
  batchSize?: number | undefined;
  onProgress?: ((done: number, total: number) => void) | undefined;
  /** Stops scoring at the next onnxruntime run: the call rejects with `GenerationAbortedError`. */
  signal?: AbortSignal | undefined;
}

/**
 * Per-token log-probs of one continuation.
 *
 * @example
 * const results: ScoreResult[] = await model.score(responses.map((continuation) => ({ prompt: instruction, continuation })));
 * // the paper's ranking: the highest exp(mean log-prob) first
 * const best = results.reduce((a, b) => (b.meanLogprob > a.meanLogprob ? b : a));
 */
export interface ScoreResult {
  tokenIds: number[];
  logprobs: number[];
  sumLogprob: number;
  /** Mean token log-prob; exp(meanLogprob) is the paper's ranking score exp(-mean NLL). */
  meanLogprob: number;
  ranks?: number[];
  /**
   * With the `top` option: each position's most likely tokens, most likely first, with their text as
   * `generate()`'s `TokenLogprob.top` gives it.
   */
  top?: TokenLogprob['top'][];
}

/** @internal */
export async function scoreBatch(
  session: DecoderSession,
  /** The pad id of batch rows, and the text of each alternative of `top`. */
  tokenizer: Pick<EngineTokenizer, 'tokenText'> & { padId: number },
  items: readonly { prompt: Prompt; continuation: number[] }[],
  rules: RuleSet | null,
  options: ScoreOptions,
  /** Positions per onnxruntime run (`ModelInfo.prefillChunk`); 0: each batch in one run. */
  prefillChunk = 0,
  /**
   * Ids the tokenizer has (`ModelInfo.tokenCount`): the logits of a padded LM head beyond them are left
   * out of the softmax, as generation leaves them out. Default: every logit.
   */
  tokenCount = Number.POSITIVE_INFINITY,
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
  const top = options.top ?? 0;
  const results: ScoreResult[] = new Array(items.length);
  let row = new Float32Array(0);
  // applyRules' scratch, where the rules cover ids past the LM head (allocated then only)
  let wide: Float32Array | undefined;
  const { signal } = options;
  const checkAbort = () => {
    if (signal?.aborted) throw new GenerationAbortedError(signal.reason);
  };
  for (let start = 0; start < order.length; start += batchSize) {
    checkAbort();
    const group = order.slice(start, start + batchSize).map((i) => ({ i, ...items[i]! }));
    const width = Math.max(...group.map(total));
    const maxCont = Math.max(...group.map((c) => c.continuation.length));
    const ids: number[] = [];
    const mask: number[] = [];
    const positions: number[] = [];
    for (const c of group) {
      const seq = [...c.prompt.ids, ...c.continuation];
      const pad = width - seq.length;
      for (let t = 0; t < width; t++) {
        const real = t >= pad;
        ids.push(real ? seq[t - pad]! : tokenizer.padId);
        mask.push(real ? 1 : 0);
        positions.push(real ? t - pad : 1);
      }
    }
    const scored = group.map((c) => ({
      state:
        rules?.createState({
          promptIds: c.prompt.ids,
          scopeStart: c.prompt.scopeStart,
          promptLength: c.prompt.ids.length,
        }) ?? null,
      logprobs: [] as number[],
      ranks: [] as number[],
      top: [] as TokenLogprob['top'][],
    }));
    // logits from the position predicting the first continuation token of the longest one; long rows
    // run in chunks (their logits are consumed chunk by chunk, never held for the whole sequence)
    const plan = {
      chunk: prefillChunk,
      logitsFrom: width - maxCont - 1,
      fetch: prefillChunk > 0 ? ('new' as const) : ('none' as const),
      window: null,
      limit: width,
    };
    for await (const { out, logitsAt } of runChunked(
      session,
      { batch: group.length, width, ids, mask, positions },
      plan,
    )) {
      checkAbort();
      if (out.kept === 0) continue; // a chunk before the first position scored
      const V = out.vocab;
      if (row.length !== V) row = new Float32Array(V);
      for (const [b, c] of group.entries()) {
        const n = c.continuation.length;
        const s = scored[b]!;
        // the positions of this row that predict a continuation token (j = 0 .. n - 1)
        const first = Math.max(0, width - n - 1 - logitsAt);
        const end = Math.min(out.kept, width - 1 - logitsAt);
        if (end <= first) continue;
        // under the base model, their log-sum-exps at once in onnxruntime (rules change each row
        // first, so those rows are summed here one by one)
        const rowAt = b * out.kept;
        const sums = rules
          ? null
          : await session.logSumExp(out.logits, V, rowAt + first, rowAt + end, tokenCount);
        for (let k = first; k < end; k++) {
          const j = logitsAt + k - (width - n - 1); // the continuation token predicted here
          const tok = c.continuation[j]!;
          const at = rowAt + k;
          // onnxruntime's sum where it is finite (NaN or infinite logits: summed below, row by row)
          const sum = sums?.[k - first];
          const known = sum !== undefined && Number.isFinite(sum) ? sum : undefined;
          if (known !== undefined && tok < tokenCount && !options.ranks && top === 0) {
            s.logprobs.push(out.logits[at * V + tok]! - known);
            continue;
          }
          readLogitsRow(row, out.logits, at, tokenCount);
          if (s.state) wide = applyRules(rules!, row, s.state, wide);
          const lse = known ?? logSumExp(row);
          s.logprobs.push(logProbAt(row, tok, lse));
          if (options.ranks) s.ranks.push(rankOf(row, tok));
          if (top > 0) s.top.push(namedTopLogprobs(row, top, lse, tokenizer));
          s.state?.append(tok);
        }
      }
    }
    for (const [b, c] of group.entries()) {
      const { logprobs, ranks, top: alternatives } = scored[b]!;
      const sum = logprobs.reduce((a, x) => a + x, 0);
      results[c.i] = {
        tokenIds: c.continuation,
        logprobs,
        sumLogprob: sum,
        meanLogprob: sum / logprobs.length,
        ...(options.ranks ? { ranks } : {}),
        ...(top > 0 ? { top: alternatives } : {}),
      };
    }
    options.onProgress?.(Math.min(start + batchSize, order.length), order.length);
  }
  return results;
}

const total = (x: { prompt: Prompt; continuation: number[] }) => x.prompt.ids.length + x.continuation.length;
