import { argmax } from '@implicit-it/rules';
import { GenerationError } from './errors.js';

/** Sampling options; `temperature` 0 (default) is greedy. */
export interface SamplingOptions {
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
}

/** A seeded PRNG (mulberry32): the same seed gives the same samples. */
export function createRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** log(sum(exp(row))), stable. */
export function logSumExp(row: Float32Array): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
  if (max === Number.NEGATIVE_INFINITY || max === Number.POSITIVE_INFINITY) return max;
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  return max + Math.log(sum);
}

/**
 * The log-prob of `id` under softmax(`row`), given `lse = logSumExp(row)`. Where a processor forced
 * ids to +Infinity (`lse` is +Infinity), each of the n forced ids has -log n and every other id
 * -Infinity, as `sampleToken` picks among them (the plain difference would be NaN).
 */
export function logProbAt(row: Float32Array, id: number, lse: number): number {
  if (lse !== Number.POSITIVE_INFINITY) return row[id]! - lse;
  if (row[id] !== Number.POSITIVE_INFINITY) return Number.NEGATIVE_INFINITY;
  let n = 0;
  for (let i = 0; i < row.length; i++) if (row[i] === Number.POSITIVE_INFINITY) n++;
  return n === 1 ? 0 : -Math.log(n); // not -0
}

/** The `k` largest entries as [index, value], descending (k small: O(V * k) worst, O(V) typical). */
export function topEntries(row: Float32Array, k: number): [number, number][] {
  const top: [number, number][] = [];
  if (k <= 0) return top;
  let floor = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!;
    if (top.length === k && v <= floor) continue;
    let at = top.length;
    while (at > 0 && top[at - 1]![1] < v) at--;
    top.splice(at, 0, [i, v]);
    if (top.length > k) top.pop();
    floor = top[top.length - 1]![1];
  }
  return top;
}

/** 1 + the number of entries strictly larger than row[id]: the rank greedy decoding gives `id`. */
export function rankOf(row: Float32Array, id: number): number {
  const v = row[id]!;
  let rank = 1;
  for (let i = 0; i < row.length; i++) if (row[i]! > v) rank++;
  return rank;
}

/**
 * Picks the next token from a processed logits row. Greedy when temperature is 0; otherwise softmax
 * at the temperature, restricted to the top-k and then the top-p nucleus, sampled with `rng`.
 */
export function sampleToken(row: Float32Array, options: SamplingOptions, rng: () => number): number {
  const temperature = options.temperature ?? 0;
  if (temperature <= 0) {
    const id = argmax(row); // never a NaN logit
    if (!(row[id]! > Number.NEGATIVE_INFINITY)) throw noToken();
    return id;
  }
  const topK = options.topK && options.topK > 0 ? Math.min(options.topK, row.length) : row.length;
  const topP = options.topP ?? 1;
  // candidates: the top-k (or every id with a non-negligible probability), descending
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
  if (max === Number.NEGATIVE_INFINITY) throw noToken(); // NaN never compares greater: all NaN too
  if (max === Number.POSITIVE_INFINITY) {
    // a processor forced several ids to +Infinity: each is equally likely (exp(inf - inf) is NaN)
    const forced: number[] = [];
    for (let i = 0; i < row.length; i++) if (row[i] === max) forced.push(i);
    return forced[Math.min(forced.length - 1, Math.floor(rng() * forced.length))]!;
  }
  let candidates: [number, number][];
  if (topK < row.length) {
    candidates = topEntries(row, topK);
    // ids tied with the k-th stay candidates, as in transformers' TopKLogitsWarper (scores < k-th removed)
    const kth = candidates[candidates.length - 1]![1];
    const taken = new Set(candidates.map(([i]) => i));
    for (let i = 0; i < row.length; i++) if (row[i] === kth && !taken.has(i)) candidates.push([i, kth]);
  } else {
    // ids more than 30 nats (times temperature) below the max have p < 1e-13: never sampled in float64
    const cutoff = max - 30 * temperature;
    candidates = [];
    for (let i = 0; i < row.length; i++) if (row[i]! >= cutoff) candidates.push([i, row[i]!]);
    candidates.sort((a, b) => b[1] - a[1] || a[0] - b[0]);
  }
  const probs = candidates.map(([, v]) => Math.exp((v - max) / temperature));
  let total = probs.reduce((a, b) => a + b, 0);
  if (topP < 1) {
    let cum = 0;
    let keep = 0;
    while (keep < probs.length) {
      cum += probs[keep]! / total;
      keep++;
      if (cum >= topP) break;
    }
    candidates = candidates.slice(0, keep);
    probs.length = keep;
    total = probs.reduce((a, b) => a + b, 0);
  }
  let u = rng() * total;
  for (let i = 0; i < probs.length; i++) {
    u -= probs[i]!;
    if (u < 0) return candidates[i]![0];
  }
  return candidates[candidates.length - 1]![0];
}

const noToken = () =>
  new GenerationError(
    'runtime.no_token',
    'no token can be picked: every logit is -Infinity or NaN after the logit bias, the rules and the logits processors',
    'processors',
  );
