import type { RuleSet } from '@implicit-it/rules';
import * as ort from 'onnxruntime-node';
import type { DecoderSession } from './decoder-session.js';
import { GenerationAbortedError } from './errors.js';
import type { LogitsProcessor } from './logits-processor.js';
import { RulesProcessor } from './logits-processor.js';
import { createRng, logSumExp, rankOf, type SamplingOptions, sampleToken, topEntries } from './sampling.js';
import { StopMatcher } from './stop-matcher.js';

/** Why a row stopped: EOS or a stop string, the token limit, or its AbortSignal. */
export type FinishReason = 'stop' | 'length' | 'abort';

/** The log-probability of a generated token and its top alternatives (under the adapted distribution). */
export interface TokenLogprob {
  id: number;
  token: string;
  logprob: number;
  top: { id: number; token: string; logprob: number }[];
}

/** One generated token, as streamed. */
export interface TokenEvent {
  id: number;
  /** Text this token made safe to show (may be '' mid-character or while a stop string may follow). */
  text: string;
  logprob?: TokenLogprob;
  /**
   * Rank of the token under the base model alone (before the logit bias and the rules): 1 = the base
   * model's own top-1. With `trace`.
   */
  baseRank?: number;
}

/** One row of a batch, prepared. */
export interface RowRequest {
  promptIds: readonly number[];
  scopeStart: number;
  maxNewTokens: number;
  /** Keep going past EOS (benchmarks). */
  ignoreEos: boolean;
  stop: readonly string[];
  rules: RuleSet | null;
  processors: readonly LogitsProcessor[];
  sampling: SamplingOptions;
  /** null: no log-probs; k: the chosen token's and the top k alternatives'. */
  logprobs: number | null;
  logitBias: ReadonlyMap<number, number> | null;
  trace: boolean;
  signal?: AbortSignal;
  onToken?: (event: TokenEvent) => void;
}

/** What one row produced. */
export interface RowResult {
  text: string;
  tokenIds: number[];
  finishReason: FinishReason;
  promptTokens: number;
  completionTokens: number;
  logprobs?: TokenLogprob[];
  baseRanks?: number[];
}

/** What the loop needs from the tokenizer. */
export interface LoopTokenizer {
  createDetokenizer(options?: { skipSpecialTokens?: boolean }): { push(id: number): string; flush(): string };
  /** The text of one token, for log-probs (e.g. decode([id])). */
  tokenText(id: number): string;
}

interface Row {
  req: RowRequest;
  index: number;
  out: number[];
  rules: RulesProcessor | null;
  detok: { push(id: number): string; flush(): string };
  stop: StopMatcher;
  rng: () => number;
  logprobs: TokenLogprob[];
  baseRanks: number[];
  finish: FinishReason | null;
  /** position id of the next token */
  nextPos: number;
  /** attention mask of this row so far */
  mask: number[];
}

const I64 = (xs: ArrayLike<number>) => {
  const a = new BigInt64Array(xs.length);
  for (let i = 0; i < xs.length; i++) a[i] = BigInt(xs[i]!);
  return a;
};

/** Keeps the given batch rows of each KV tensor [batch, heads, T, dim]. */
function gatherRows(tensors: ort.Tensor[], keep: number[]): ort.Tensor[] {
  return tensors.map((t) => {
    const [, h, len, d] = t.dims as number[];
    const block = h! * len! * d!;
    const src = t.data as Float32Array | Uint16Array;
    const dst = new (src.constructor as { new (n: number): Float32Array | Uint16Array })(keep.length * block);
    for (const [i, b] of keep.entries()) dst.set(src.subarray(b * block, (b + 1) * block), i * block);
    return new ort.Tensor(t.type as 'float32', dst as Float32Array, [keep.length, h!, len!, d!]);
  });
}

/**
 * Generates for a batch of rows with one shared KV cache: left-padded prefill (logits only for the
 * last position), then one token per row per step. Rows stop on their own (EOS, stop string, limit,
 * abort) and are removed from the cache, so finished rows cost nothing.
 */
export async function decodeLoop(
  session: DecoderSession,
  tokenizer: LoopTokenizer,
  eosIds: ReadonlySet<number>,
  padId: number,
  requests: readonly RowRequest[],
  maxPositions: number | undefined,
): Promise<RowResult[]> {
  const rows: Row[] = requests.map((req, index) => ({
    req,
    index,
    out: [],
    rules: req.rules
      ? new RulesProcessor(req.rules, {
          promptIds: req.promptIds,
          scopeStart: req.scopeStart,
          promptLength: req.promptIds.length,
        })
      : null,
    detok: tokenizer.createDetokenizer({ skipSpecialTokens: true }),
    stop: new StopMatcher(req.stop),
    rng: createRng(req.sampling.seed ?? 0),
    logprobs: [],
    baseRanks: [],
    finish: req.maxNewTokens <= 0 ? 'length' : null,
    nextPos: req.promptIds.length,
    mask: [],
  }));

  // prefill: left padding, positions counted over real tokens (pads get position 1, as transformers does)
  let active = rows.filter((r) => r.finish === null);
  const width = Math.max(0, ...active.map((r) => r.req.promptIds.length));
  const ids: number[] = [];
  const pos: number[] = [];
  for (const r of active) {
    const pad = width - r.req.promptIds.length;
    r.mask = [...new Array(pad).fill(0), ...new Array(r.req.promptIds.length).fill(1)];
    ids.push(...new Array(pad).fill(padId), ...r.req.promptIds);
    pos.push(...new Array(pad).fill(1), ...r.req.promptIds.map((_, i) => i));
  }
  let past: ort.Tensor[] | null = null;
  let inputIds = I64(ids);
  let positions = I64(pos);
  let seq = width;
  let row = new Float32Array(0);
  let base = new Float32Array(0);

  while (active.length > 0) {
    for (const r of active) {
      if (r.req.signal?.aborted) r.finish = 'abort';
    }
    if (active.every((r) => r.finish !== null)) break;
    const mask = I64(active.flatMap((r) => r.mask));
    const step = await session.run({
      batch: active.length,
      seq,
      inputIds,
      attentionMask: mask,
      positionIds: positions,
      past,
      logitsFrom: -1,
    });
    const V = step.vocab;
    if (row.length !== V) {
      row = new Float32Array(V);
      base = new Float32Array(V);
    }
    for (let b = 0; b < active.length; b++) {
      const r = active[b]!;
      if (r.finish !== null) continue;
      // logits of this row's last position
      row.set(step.logits.subarray((b * step.kept + step.kept - 1) * V, (b * step.kept + step.kept) * V));
      if (r.req.trace) base.set(row);
      if (r.req.logitBias) for (const [id, bias] of r.req.logitBias) if (id < V) row[id]! += bias;
      r.rules?.apply(row);
      if (r.req.processors.length > 0) {
        const ctx = { row: r.index, step: r.out.length, promptIds: r.req.promptIds, responseIds: r.out };
        for (const p of r.req.processors) p.process(row, ctx);
      }
      const id = sampleToken(row, r.req.sampling, r.rng);
      const event: TokenEvent = { id, text: '' };
      if (r.req.logprobs !== null) {
        const lse = logSumExp(row);
        event.logprob = {
          id,
          token: tokenizer.tokenText(id),
          logprob: row[id]! - lse,
          top: topEntries(row, r.req.logprobs).map(([tid, v]) => ({
            id: tid,
            token: tokenizer.tokenText(tid),
            logprob: v - lse,
          })),
        };
        r.logprobs.push(event.logprob);
      }
      if (r.req.trace) {
        event.baseRank = rankOf(base, id);
        r.baseRanks.push(event.baseRank);
      }
      r.rules?.append(id);
      r.out.push(id);
      if (eosIds.has(id) && !r.req.ignoreEos) {
        r.finish = 'stop';
        event.text = r.stop.push(r.detok.flush()).emit + r.stop.finish();
      } else {
        const pushed = r.stop.push(r.detok.push(id));
        event.text = pushed.emit;
        if (pushed.stopped) r.finish = 'stop';
        else if (
          r.out.length >= r.req.maxNewTokens ||
          (maxPositions !== undefined && r.nextPos + 1 >= maxPositions)
        ) {
          r.finish = 'length';
          event.text += r.stop.push(r.detok.flush()).emit + r.stop.finish();
        }
      }
      r.nextPos++;
      r.req.onToken?.(event);
    }
    // drop finished rows from the batch and the cache
    const keep = active.map((r, b) => (r.finish === null ? b : -1)).filter((b) => b >= 0);
    if (keep.length === 0) break;
    past = keep.length === active.length ? step.present : gatherRows(step.present, keep);
    active = keep.map((b) => active[b]!);
    for (const r of active) r.mask.push(1);
    inputIds = I64(active.map((r) => r.out[r.out.length - 1]!));
    positions = I64(active.map((r) => r.nextPos - 1));
    seq = 1;
  }

  if (rows.length > 0 && rows.every((r) => r.finish === 'abort')) {
    throw new GenerationAbortedError(requests[0]!.signal?.reason);
  }
  return rows.map((r) => ({
    text: r.stop.value,
    tokenIds: r.out,
    finishReason: r.finish ?? 'length',
    promptTokens: r.req.promptIds.length,
    completionTokens: r.out.length,
    ...(r.req.logprobs !== null ? { logprobs: r.logprobs } : {}),
    ...(r.req.trace ? { baseRanks: r.baseRanks } : {}),
  }));
}
