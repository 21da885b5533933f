import { RuleInputError } from './errors.js';

/**
 * Helpers for the product of experts p_a = p_base * p_rules / Z (rules-spec.md). Because
 * p_rules = softmax(r), log p_a = log_softmax(base + r): applying the rules is adding r to the logits.
 */

/**
 * log_softmax of a row, in float64.
 *
 * @example
 * logSoftmax([0, Math.log(3)]); // Float64Array [log 0.25, log 0.75]
 */
export function logSoftmax(row: ArrayLike<number>): Float64Array {
  const n = row.length;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i++) if (row[i]! > max) max = row[i]!;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp(row[i]! - max);
  const logZ = max + Math.log(sum);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = row[i]! - logZ;
  return out;
}

/**
 * softmax of a row, in float64.
 *
 * @example
 * softmax([0, Math.log(3)]); // Float64Array [0.25, 0.75]
 */
export function softmax(row: ArrayLike<number>): Float64Array {
  const out = logSoftmax(row);
  for (let i = 0; i < out.length; i++) out[i] = Math.exp(out[i]!);
  return out;
}

/**
 * p_base * softmax(r), renormalized: the adapted distribution computed as the paper writes it (a
 * product of two distributions), for checking that `softmax(base + r)` is the same thing.
 *
 * @example
 * const pa = productOfExperts(baseLogits, rules.denseScores(state));
 */
export function productOfExperts(baseLogits: ArrayLike<number>, ruleScores: ArrayLike<number>): Float64Array {
  if (ruleScores.length !== baseLogits.length) {
    throw new RuleInputError(
      `productOfExperts: ${baseLogits.length} base logits but ${ruleScores.length} rule scores`,
    );
  }
  const pBase = softmax(baseLogits);
  const pRules = softmax(ruleScores);
  let z = 0;
  for (let i = 0; i < pBase.length; i++) {
    pBase[i] = pBase[i]! * pRules[i]!;
    z += pBase[i]!;
  }
  for (let i = 0; i < pBase.length; i++) pBase[i] = pBase[i]! / z;
  return pBase;
}

/**
 * Index of the largest entry (the first one on ties), as greedy decoding picks. NaN entries are never
 * picked; a row with nothing above -Infinity gives 0. An empty row has no index: `RuleInputError`.
 *
 * @example
 * argmax([0.1, 2, 2, Number.NaN]); // 1
 */
export function argmax(row: ArrayLike<number>): number {
  if (row.length === 0) throw new RuleInputError('argmax: the row is empty, so it has no largest entry');
  let best = 0;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < row.length; i++) {
    if (row[i]! > max) {
      max = row[i]!;
      best = i;
    }
  }
  return best;
}
