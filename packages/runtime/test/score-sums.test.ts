// Scoring under the base model sums each position's exp(logits) in onnxruntime (DecoderSession.logSumExp,
// float64), all positions of a run at once; under rules, each changed row is summed in JS (logSumExp).
// The two must give the same log-probs, to float64 rounding. Generation's log-probs sum the processed
// rows of each step at once, the same way.
import { createTinyModel } from '@implicit-it/modelkit/test';
import { describe, expect, it } from 'vitest';
import { loadModel, type Model } from '../src/index.js';
import { logSumExp, topLogprobs } from '../src/sampling.js';
import { PROMPTS, tinyModel } from './helpers.js';

/** A rule set that changes no logit: scoring under it takes the row-by-row way, with the same log-probs. */
const UNCHANGED = { uniform: { entries: [] } };

/** The largest difference between the numbers of `a` and `b` (arrays of the same shape). */
function largestDifference(a: unknown, b: unknown): number {
  if (typeof a === 'number' && typeof b === 'number') return a === b ? 0 : Math.abs(a - b);
  if (Array.isArray(a) && Array.isArray(b)) {
    expect(a.length).toBe(b.length);
    return Math.max(0, ...a.map((x, i) => largestDifference(x, b[i])));
  }
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
    return Math.max(0, ...Object.keys(a).map((k) => largestDifference((a as never)[k], (b as never)[k])));
  }
  expect(a).toBe(b);
  return 0;
}

/** score() under the base model and under UNCHANGED: the same results (ids, text, ranks exact). */
async function expectSameScores(model: Model, options: { ranks?: boolean; top?: number } = {}) {
  const items = PROMPTS.map((prompt, i) => ({ prompt, continuation: PROMPTS[(i + 1) % PROMPTS.length]! }));
  const base = await model.score(items, options);
  const rowByRow = await model.score(items, { ...options, rules: UNCHANGED });
  expect(largestDifference(base, rowByRow)).toBeLessThan(1e-12);
  return base;
}

describe('log-sum-exp in onnxruntime (scoring under the base model)', () => {
  it('DecoderSession.logSumExp gives logSumExp of each row, to 1e-12, over the first ids asked', async () => {
    const model = await tinyModel();
    const V = 300;
    const logits = Float32Array.from({ length: 5 * V }, (_, i) => Math.sin(i) * 30);
    logits[V + 7] = Number.NEGATIVE_INFINITY; // an id ruled out
    logits.fill(Number.NEGATIVE_INFINITY, 2 * V, 3 * V);
    logits[2 * V + 3] = 1.5; // a row with one id left
    logits[4 * V + 5] = Number.NaN;
    const row = (r: number, ids = V) => logits.subarray(r * V, r * V + ids);
    const sums = await model.session.logSumExp(logits, V, 0, 5);
    expect(sums).toBeInstanceOf(Float64Array);
    expect(sums).toHaveLength(5);
    for (const r of [0, 1, 3]) expect(Math.abs(sums[r]! - logSumExp(row(r)))).toBeLessThan(1e-12);
    expect(sums[2]).toBe(1.5);
    expect(sums[4]).toBeNaN(); // scoring sums such a row in JS (logSumExp leaves its NaNs out)
    // a padded LM head: the logits past the tokenizer's ids are left out
    const first = await model.session.logSumExp(logits, V, 0, 2, 200);
    expect(first).toHaveLength(2);
    for (const r of [0, 1]) expect(Math.abs(first[r]! - logSumExp(row(r, 200)))).toBeLessThan(1e-12);
    // some of the rows the array holds: only those
    expect(await model.session.logSumExp(logits, V, 0, 1)).toEqual(sums.subarray(0, 1));
    expect(await model.session.logSumExp(logits, V, 1, 4)).toEqual(sums.subarray(1, 4));
    // 16 rows or more run on the session's threads (a second session): each row's sum is the very one
    // it has alone or among fewer rows (a batch's log-probs are its rows' own, to the last bit)
    const many = Float32Array.from({ length: 20 * V }, (_, i) => Math.cos(i * 0.7) * 25);
    const pooled = await model.session.logSumExp(many, V, 0, 20);
    expect(pooled).toHaveLength(20);
    expect(await model.session.logSumExp(many, V, 3, 10)).toEqual(pooled.subarray(3, 10));
    for (let r = 0; r < 20; r++) {
      expect(await model.session.logSumExp(many, V, r, r + 1)).toEqual(pooled.subarray(r, r + 1));
      expect(Math.abs(pooled[r]! - logSumExp(many.subarray(r * V, (r + 1) * V)))).toBeLessThan(1e-12);
    }
  });

  it('score() gives the log-probs, ranks and alternatives of the row-by-row way', async () => {
    const model = await tinyModel();
    const plain = await expectSameScores(model);
    expect(plain[0]!.logprobs.length).toBeGreaterThan(3);
    const full = await expectSameScores(model, { ranks: true, top: 3 });
    expect(full[0]!.ranks).toHaveLength(full[0]!.logprobs.length);
    expect(full[0]!.top![0]).toHaveLength(3);
  });

  it('score() with a padded LM head sums over the tokenizer ids only, as the row-by-row way', async () => {
    const { dir } = await createTinyModel({ seed: 1, initScale: 10, vocabSize: 640 });
    const model = await loadModel(dir, { log: () => {} });
    try {
      expect(model.info.tokenCount).toBeLessThan(640);
      await expectSameScores(model);
      await expectSameScores(model, { ranks: true, top: 2 });
    } finally {
      await model.dispose();
    }
  });
});

describe("generation's log-probs, each step's rows summed at once in onnxruntime", () => {
  /** A last processor that keeps a copy of each row it sees: the row the token and log-probs come from. */
  const recorder = () => {
    const rows: Float32Array[] = [];
    return { rows, process: (row: Float32Array) => void rows.push(Float32Array.from(row)) };
  };

  it('are the JS sums of each processed row, in a batch with rows that report none and a row that fails', async () => {
    const model = await tinyModel();
    const [a, b, c, failing] = [recorder(), recorder(), recorder(), recorder()];
    let calls = 0;
    const thrower = {
      process: () => {
        if (++calls === 3) throw new Error('processor failed at its third step');
      },
    };
    const options = { maxNewTokens: 6, ignoreEos: true } as const;
    // issued together: one batch, whose reporting rows are not all the batch's first or contiguous
    const runs = Promise.allSettled([
      model.generate(PROMPTS[0]!, { ...options, processors: [b] }),
      model.generate(PROMPTS[1]!, { ...options, processors: [thrower, failing], logprobs: 2 }),
      model.generate(PROMPTS[2]!, { ...options, processors: [a], logprobs: 3, rules: 'hewitt2024' }),
      model.generate(PROMPTS[3]!, { ...options, processors: [c], logprobs: true, temperature: 1, seed: 5 }),
    ]);
    const [plain, failed, ruled, sampled] = await runs;
    expect(failed).toMatchObject({
      status: 'rejected',
      reason: { message: 'processor failed at its third step' },
    });
    expect(failing.rows).toHaveLength(2);
    expect(plain).toMatchObject({ status: 'fulfilled' });
    expect(b.rows).toHaveLength(6);
    for (const [settled, seen, k] of [
      [ruled, a, 3],
      [sampled, c, 0],
    ] as const) {
      if (settled.status !== 'fulfilled') throw settled.reason;
      const { tokenIds, logprobs } = settled.value[0]!;
      expect(logprobs).toHaveLength(6);
      for (const [step, lp] of logprobs!.entries()) {
        const row = seen.rows[step]!;
        const lse = logSumExp(row);
        expect(lp.id).toBe(tokenIds[step]);
        expect(Math.abs(lp.logprob - (row[lp.id]! - lse))).toBeLessThan(1e-12);
        const top = topLogprobs(row, k, lse);
        expect(lp.top.map((t) => t.id)).toEqual(top.map((t) => t.id));
        for (const [j, t] of lp.top.entries())
          expect(Math.abs(t.logprob - top[j]!.logprob)).toBeLessThan(1e-12);
      }
    }
  });
});
