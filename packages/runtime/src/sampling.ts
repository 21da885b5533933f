import { argmax } from '@implicit-it/rules';
import { GenerationError } from './errors.js';

/**
 * Sampling options; `temperature` 0 (default) is greedy.
 *
 * @example
 * const options: SamplingOptions = { temperature: 0.8, topK: 40, topP: 0.95, seed: 3 };
 * const next = sampleToken(logits, options, createRng(options.seed ?? 0));
 */
export interface SamplingOptions {
  temperature?: number | undefined;
  topK?: number | undefined;
  topP?: number | undefined;
  seed?: number | undefined;
}

/**
 * A seeded PRNG (mulberry32): the same seed gives the same samples.
 *
 * @example
 * const rng = createRng(42);
 * const first = rng();
 * createRng(42)() === first; // true
 */
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

/**
 * log(sum(exp(row))), stable. NaN logits count as no probability, as `sampleToken` never picks them
 * (a processor that wrote one NaN would otherwise make every log-prob of the row NaN).
 */
export function logSumExp(row: Float32Array): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
  if (max === Number.NEGATIVE_INFINITY || max === Number.POSITIVE_INFINITY) return max;
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  if (Number.isNaN(sum)) {
    // the rare row with NaN logits: summed again without them (no cost to the others)
    sum = 0;
    for (let i = 0; i < row.length; i++) if (!Number.isNaN(row[i]!)) sum += Math.exp(row[i]! - max);
  }
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

/**
 * Copies row `index` of a [rows, V] logits array into `row` (V long), the ids from `tokenCount` on (an LM
 * head padded wider than the tokenizer) at -Infinity: never picked, scored or listed.
 */
export function readLogitsRow(
  row: Float32Array,
  logits: Float32Array,
  index: number,
  tokenCount: number,
): void {
  const V = row.length;
  row.set(logits.subarray(index * V, (index + 1) * V));
  if (tokenCount < V) row.fill(Number.NEGATIVE_INFINITY, tokenCount);
}

/**
 * The `k` most likely ids under softmax(`row`) with their log-probs (`lse = logSumExp(row)`), most
 * likely first. Ids with no probability (ruled out at -Infinity, or besides ids a processor forced to
 * +Infinity) are not listed.
 */
export function topLogprobs(row: Float32Array, k: number, lse: number): { id: number; logprob: number }[] {
  return topEntries(row, k)
    .map(([id]) => ({ id, logprob: logProbAt(row, id, lse) }))
    .filter((alt) => alt.logprob > Number.NEGATIVE_INFINITY);
}

/**
 * The `k` largest entries as [index, value], descending; among equal values the lower index first.
 * NaN entries are left out (no probability, as `sampleToken` never picks them). One pass over the
 * row with the entries kept so far in two small typed arrays: an entry not above the least of them is
 * passed over at the cost of one comparison (O(V) typical, O(V * k) at worst).
 *
 * @example
 * topEntries(Float32Array.of(0.1, 2, 0.5), 2); // [[1, 2], [2, 0.5]]
 * topEntries(Float32Array.of(1, NaN, 1, 3), 5); // [[3, 3], [0, 1], [2, 1]]
 */
export function topEntries(row: Float32Array, k: number): [number, number][] {
  const size = Math.min(Math.floor(k), row.length); // a fractional k counts its whole entries
  if (!(size > 0)) return [];
  const ids = new Int32Array(size);
  const values = new Float64Array(size);
  let kept = 0;
  let floor = Number.NEGATIVE_INFINITY; // the least value kept, once `size` are
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!;
    // full: only a value above the least kept gets in (NaN never does); else any but NaN
    if (kept === size ? !(v > floor) : Number.isNaN(v)) continue;
    if (kept < size) kept++;
    // the new entry goes after the values not below it, the last kept one falling out when full
    let at = kept - 1;
    for (; at > 0 && values[at - 1]! < v; at--) {
      values[at] = values[at - 1]!;
      ids[at] = ids[at - 1]!;
    }
    values[at] = v;
    ids[at] = i;
    if (kept === size) floor = values[size - 1]!;
  }
  const top: [number, number][] = [];
  for (let j = 0; j < kept; j++) top.push([ids[j]!, values[j]!]);
  return top;
}

/**
 * 1 + the number of entries strictly larger than row[id]: the rank greedy decoding gives `id`.
 *
 * @example
 * rankOf(Float32Array.of(0.1, 2, 0.5), 2); // 2: one logit is larger
 */
export function rankOf(row: Float32Array, id: number): number {
  const v = row[id]!;
  let rank = 1;
  for (let i = 0; i < row.length; i++) if (row[i]! > v) rank++;
  return rank;
}

/** Scratch buffers of `sampleToken`, grown to the largest vocabulary seen (no allocation per token). */
let weights = new Float64Array(0);
let sorted = new Float32Array(0);

/** The `k`-th largest of the non-NaN `row` values (k >= 1), by a native numeric sort of a copy. */
function kthLargest(row: Float32Array, k: number): number {
  if (sorted.length < row.length) sorted = new Float32Array(row.length);
  let n = 0;
  for (let i = 0; i < row.length; i++) if (!Number.isNaN(row[i]!)) sorted[n++] = row[i]!;
  const values = sorted.subarray(0, n).sort(); // ascending
  return values[Math.max(0, n - k)]!;
}

/**
 * Moves the `m` largest of `a[0, n)` to its end, `a[n - m, n)`, in no particular order (Hoare's
 * selection, median-of-three pivots: O(n) expected).
 */
function selectLargest(a: Float32Array, n: number, m: number): void {
  const k = n - m; // the index a sort would give the smallest of them
  let lo = 0;
  let hi = n - 1;
  while (hi > lo) {
    const x = a[lo]!;
    const y = a[(lo + hi) >>> 1]!;
    const z = a[hi]!;
    const pivot = Math.max(Math.min(x, y), Math.min(Math.max(x, y), z)); // the median of the three
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i++] = a[j]!;
        a[j--] = t;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return;
  }
}

/**
 * Picks the next token from a processed logits row. Greedy when temperature is 0; otherwise softmax
 * at the temperature, restricted to the top-k (ids tied with the k-th kept, as transformers'
 * TopKLogitsWarper) and then to the top-p nucleus (the fewest most likely ids whose probability
 * reaches p, ties taken by lower id), sampled with `rng`. The draw walks the kept ids in id order: a
 * row that differs by float rounding (batched or alone) then rarely changes the pick, as an order by
 * value would reshuffle near-equal ids. O(V), plus for top-p < 1 a numeric sort of the largest
 * candidates, as many as the nucleus needs (all of them for a flat row).
 *
 * @example
 * sampleToken(Float32Array.of(0.1, 2, 0.5), { temperature: 0 }, Math.random); // 1 (greedy)
 * const sampled = sampleToken(logits, { temperature: 1, topK: 50 }, createRng(7));
 */
export function sampleToken(row: Float32Array, options: SamplingOptions, rng: () => number): number {
  const temperature = options.temperature ?? 0;
  if (temperature <= 0) {
    const id = argmax(row); // never a NaN logit
    if (!(row[id]! > Number.NEGATIVE_INFINITY)) throw noToken();
    return id;
  }
  const V = row.length;
  const topK = options.topK && options.topK > 0 ? Math.min(options.topK, V) : V;
  const topP = options.topP ?? 1;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < V; i++) if (row[i]! > max) max = row[i]!;
  if (max === Number.NEGATIVE_INFINITY) throw noToken(); // NaN never compares greater: all NaN too
  if (max === Number.POSITIVE_INFINITY) {
    // a processor forced several ids to +Infinity: each is equally likely (exp(inf - inf) is NaN)
    const forced: number[] = [];
    for (let i = 0; i < V; i++) if (row[i] === max) forced.push(i);
    return forced[Math.min(forced.length - 1, Math.floor(rng() * forced.length))]!;
  }
  // candidates: the top-k with ties, or every id not more than 30 nats (times temperature) below the
  // max (below, p < 1e-13: never sampled in float64)
  const floor =
    topK >= V
      ? max - 30 * temperature
      : topK <= 256
        ? topEntries(row, topK).at(-1)![1] // O(V) for a small k
        : kthLargest(row, topK);
  if (weights.length < V) weights = new Float64Array(V);
  if (sorted.length < V) sorted = new Float32Array(V);
  const w = weights;
  const scale = 1 / temperature;
  let total = 0;
  let count = 0;
  const nucleus = topP < 1;
  for (let i = 0; i < V; i++) {
    const v = row[i]!;
    if (v >= floor) {
      const e = Math.exp((v - max) * scale);
      w[i] = e;
      total += e;
      if (nucleus) sorted[count++] = v; // only top-p sorts the candidates
    } else w[i] = 0;
  }
  if (nucleus) {
    // the nucleus: candidates by value, descending, until their probability reaches topP. Only the
    // largest are put in order, 64 first, then 64 times more each round: a peaked row's nucleus is
    // found without sorting its whole tail (the values and their order are those of a full sort)
    const values = sorted;
    let cum = 0;
    let keep = 0;
    let cut = Number.NaN;
    let ordered = 0; // values[count - ordered, count) hold the largest, ascending
    do {
      let more = Math.max(64, ordered * 64);
      if (more * 4 >= count) more = count; // most of the row: sort it all
      if (more < count) selectLargest(values, count - ordered, more - ordered);
      values.subarray(count - more, count - ordered).sort();
      ordered = more;
      while (keep < ordered) {
        cut = values[count - 1 - keep]!;
        cum += Math.exp((cut - max) * scale) / total;
        keep++;
        if (cum >= topP) break;
      }
    } while (keep < count && !(cum >= topP)); // the first round keeps at least the largest
    // every id above the cut value, and of those at it the lowest, up to `keep` in all
    let above = 0;
    for (let k = count - 1; k >= 0 && values[k]! > cut; k--) above++;
    let atCut = keep - above;
    total = 0;
    for (let i = 0; i < V; i++) {
      if (w[i] === 0) continue;
      const v = row[i]!;
      if (v < cut || (v === cut && atCut-- <= 0)) w[i] = 0;
      else total += w[i]!;
    }
  }
  let u = rng() * total;
  let last = -1;
  for (let i = 0; i < V; i++) {
    if (w[i] === 0) continue;
    last = i;
    u -= w[i]!;
    if (u < 0) return i;
  }
  return last;
}

const noToken = () =>
  new GenerationError(
    'runtime.no_token',
    'no token can be picked: every logit is -Infinity or NaN after the logit bias, the rules and the logits processors',
    'processors',
  );
