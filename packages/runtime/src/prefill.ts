import type { DecoderSession, StepOutputs } from './decoder-session.js';
import { PresentCache, SlotCache } from './kv-cache.js';

/** Left-padded rows of one forward pass from an empty cache, row-major [batch, width]. */
export interface PaddedRows {
  batch: number;
  width: number;
  ids: readonly number[];
  /** 1 for a real position, 0 for padding. */
  mask: readonly number[];
  positions: readonly number[];
  /**
   * Keys/values the rows go on from (a kept prompt prefix, `PrefixCache`): `width` positions per row,
   * no free slots, and each row's mask over them (`[batch, width]`, 0 = padding). None: an empty cache.
   */
  past?: { cache: SlotCache; mask: readonly number[] };
}

/** How `runChunked` runs the rows. */
export interface ChunkPlan {
  /** Positions per onnxruntime run; 0 or at least `width`: one run. */
  chunk: number;
  /** The first position whose logits are wanted (`width - 1`: the last one only). */
  logitsFrom: number;
  /**
   * `new`: the cache in the engine's buffers (SlotCache); `present`: fed back whole; `none`: no cache
   * (one run only: logits are all that is wanted).
   */
  fetch: 'new' | 'present' | 'none';
  /** The model's sliding window (SlotCache sizing). */
  window: number | null;
  /** The most positions the cache may come to hold (SlotCache sizing). */
  limit: number;
}

/** One run of `runChunked`: positions [at, at + n), their logits from `logitsAt` on, the cache so far. */
export interface ChunkOutputs {
  at: number;
  n: number;
  out: StepOutputs;
  /** Absolute position of the first row of `out.logits` (`out.kept` positions from there). */
  logitsAt: number;
  /** null with `fetch: 'none'` */
  cache: SlotCache | PresentCache | null;
}

/** `xs` as the int64 array of an onnxruntime tensor. */
export const I64 = (xs: ArrayLike<number>): BigInt64Array => {
  const a = new BigInt64Array(xs.length);
  for (let i = 0; i < xs.length; i++) a[i] = BigInt(xs[i]!);
  return a;
};

/**
 * Runs left-padded prompts in chunks of `plan.chunk` positions, each attending to the cache of those
 * before it: attention then skips the scores above the causal diagonal between chunks, and its
 * intermediate tensors are bounded by chunk x width. Until the last chunk the cache keeps no free
 * slots (the next chunk's attention would read each one); chunks before `logitsFrom` ask for no
 * logits (an empty slice of the patched LM head). Yields each run; stop iterating to stop early.
 */
export async function* runChunked(
  session: DecoderSession,
  rows: PaddedRows,
  plan: ChunkPlan,
): AsyncGenerator<ChunkOutputs> {
  const { batch, width } = rows;
  const chunk = plan.chunk > 0 && plan.fetch !== 'none' ? plan.chunk : width;
  let cache: SlotCache | PresentCache | null = rows.past?.cache ?? null;
  if (rows.past && plan.fetch !== 'new') throw new Error('runChunked: a past cache needs fetch "new"');
  const before = rows.past?.cache.width ?? 0;
  for (let at = 0; at < width; at += chunk) {
    const n = Math.min(chunk, width - at);
    const slice = (xs: readonly number[]) => {
      const out: number[] = [];
      for (let b = 0; b < batch; b++) for (let t = 0; t < n; t++) out.push(xs[b * width + at + t]!);
      return out;
    };
    // each row's mask over the past it goes on from, the chunks cached so far, the free slots
    // (hidden), then this chunk
    const past = cache?.width ?? 0;
    const total = past + n;
    const mask = new BigInt64Array(batch * total);
    for (let b = 0; b < batch; b++) {
      for (let t = 0; t < before; t++) if (rows.past!.mask[b * before + t] === 1) mask[b * total + t] = 1n;
      for (let t = 0; t < at; t++) if (rows.mask[b * width + t] === 1) mask[b * total + before + t] = 1n;
      for (let t = 0; t < n; t++) if (rows.mask[b * width + at + t] === 1) mask[b * total + past + t] = 1n;
    }
    const last = at + n === width;
    const localFrom = Math.min(n, Math.max(0, plan.logitsFrom - at));
    const out = await session.run({
      batch,
      seq: n,
      inputIds: I64(slice(rows.ids)),
      attentionMask: mask,
      positionIds: I64(slice(rows.positions)),
      past: cache?.feeds() ?? null,
      logitsFrom: localFrom,
      fetch: plan.fetch,
    });
    if (cache instanceof SlotCache) cache = cache.extend(out.kv, !last, plan.limit);
    else if (plan.fetch === 'new') cache = SlotCache.fromPrefill(out.kv, plan.window, last ? plan.limit : n);
    else if (plan.fetch === 'present') cache = new PresentCache(out.kv);
    yield { at, n, out, logitsAt: at + localFrom, cache };
  }
}
