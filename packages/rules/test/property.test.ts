import { describe, expect, it } from 'vitest';
import {
  argmax,
  compileRules,
  createVocabulary,
  HEWITT2024_UNIFORM,
  logSoftmax,
  productOfExperts,
  type RuleContext,
  softmax,
} from '../src/index.js';

/** A small deterministic PRNG (mulberry32) so failures reproduce. */
function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const V = 512;
const surfaces = Array.from({ length: V }, (_, i) => `tok${i}`);
// place the spec's surfaces so every uniform entry resolves
for (const [i, { text: s }] of HEWITT2024_UNIFORM.entries()) {
  surfaces[10 + i] = s;
}
const vocab = createVocabulary({ surfaces, eosIds: [0] });
const rules = compileRules('hewitt2024', vocab);

describe('product of experts (property, 200 random cases)', () => {
  it('softmax(base + r) equals p_base * softmax(r) / Z to 1e-6, and greedy is unchanged by the log_softmax shift', () => {
    const rand = rng(42);
    for (let trial = 0; trial < 200; trial++) {
      const prompt = Array.from({ length: 5 + Math.floor(rand() * 40) }, () => Math.floor(rand() * V));
      const state = rules.createState({ promptIds: prompt, scopeStart: Math.floor(rand() * prompt.length) });
      const t = Math.floor(rand() * 300);
      for (let i = 0; i < t; i++) state.append(Math.floor(rand() * V));
      const base = new Float32Array(V).map(() => (rand() - 0.5) * 20);

      const combined = Float32Array.from(base);
      rules.apply(combined, state);
      const pa = softmax(combined);
      const product = productOfExperts(base, rules.denseScores(state));
      for (let i = 0; i < V; i++) expect(Math.abs(pa[i]! - product[i]!)).toBeLessThan(1e-6);

      // the reference code adds log_softmax(base) + log_softmax(rules): same argmax as base + r
      const lb = logSoftmax(base);
      const lr = logSoftmax(rules.denseScores(state));
      const reference = lb.map((x, i) => x + lr[i]!);
      expect(argmax(reference)).toBe(argmax(combined));
    }
  }, 60_000); // 200 cases over 512-wide rows: seconds when the machine is busy
});

describe('apply is base + r, rounded once (float32 rows)', () => {
  // r(w) = r_eos + r_uniform + r_used (+ start, custom): an id scored by several rules gets their sum,
  // added to its logit once. Adding each rule's score to a float32 logit in turn rounds after every
  // add and lands an ulp away from base + r, which can flip a greedy near-tie.
  const withStart = compileRules('eos-uniform-diversity-start', vocab, {
    custom: [{ name: 'again', score: (ctx, add) => ctx.t % 2 === 1 && add(10 + 13, 0.3) }],
  });
  it.each([
    ['hewitt2024', rules],
    ['hewitt2024-prose (EOS held, response scope)', compileRules('hewitt2024-prose', vocab)],
    [
      'an EOS id that is also uniform and used',
      compileRules({ eos: { ids: [23] }, uniform: true, used: true }, vocab),
    ],
    ['with the start rule', compileRules('eos-uniform-diversity-start', vocab)],
    ['all rules, start and a custom one', withStart],
  ])(
    '%s: every entry equals fround(base + scores) exactly, at every t',
    (_name, set) => {
      const rand = rng(7);
      for (let trial = 0; trial < 40; trial++) {
        // the uniform ids (10..24) and the EOS (0) in the prompt: scored by two or three rules
        const prompt = [0, ...Array.from({ length: 15 }, (_, i) => 10 + i), 300, 301];
        const state = set.createState({ promptIds: prompt, scopeStart: 0 });
        for (let t = 0; t < 8; t++) {
          const base = new Float32Array(V).map(() => (rand() - 0.5) * 40);
          const row = Float32Array.from(base);
          set.apply(row, state);
          const r = set.denseScores(state);
          const want = base.map((x, i) => x + r[i]!); // Float32Array: one rounding per entry
          expect(row).toEqual(want);
          const sparse = Float32Array.from(base);
          for (const [id, score] of set.scores(state)) sparse[id]! += score;
          expect(row).toEqual(sparse);
          state.append(rand() < 0.5 ? 10 + (t % 15) : 400 + t);
        }
      }
      // 640 whole-row comparisons: 1.2-2.9 s alone, 5.2 s once in a CI run beside seven packages' tests
    },
    20_000,
  );
});

describe('apply when a custom rule throws or applies another rule set', () => {
  it('leaves the row as it was, and the next apply exact', () => {
    let fail = true;
    const set = compileRules('hewitt2024', vocab, {
      custom: [
        {
          name: 'flaky',
          score: () => {
            if (fail) throw new Error('flaky');
          },
        },
      ],
    });
    const state = set.createState({ promptIds: [0, 10, 23], scopeStart: 0 });
    state.append(5);
    const row = new Float32Array(V).fill(0.1);
    expect(() => set.apply(row, state)).toThrow('flaky');
    expect(row).toEqual(new Float32Array(V).fill(0.1)); // nothing half-added
    fail = false;
    set.apply(row, state);
    const want = new Float32Array(V).fill(0.1);
    for (const [id, score] of set.scores(state)) want[id]! += score;
    expect(row).toEqual(want);
  });

  it('a custom rule that applies another set inside score does not disturb the outer apply', () => {
    const inner = compileRules('eos-diversity', vocab);
    const innerState = inner.createState({ promptIds: [7, 8], scopeStart: 0 });
    const innerRow = new Float32Array(V);
    const outer = compileRules('hewitt2024', vocab, {
      custom: [{ name: 'nested', score: () => inner.apply(innerRow, innerState) }],
    });
    const state = outer.createState({ promptIds: [0, 10, 23], scopeStart: 0 });
    const row = new Float32Array(V);
    outer.apply(row, state);
    expect([innerRow[7], innerRow[8], innerRow[9]]).toEqual([-1.5, -1.5, 0]);
    expect(Float64Array.from(row)).toEqual(outer.denseScores(state).map((x) => Math.fround(x)));
  });
});

describe('argmax', () => {
  it('picks the first largest entry, never a NaN one; 0 when nothing is above -Infinity', () => {
    expect(argmax([1, 3, 3, 2])).toBe(1);
    expect(argmax(new Float32Array([Number.NaN, 1, 3, 2]))).toBe(2);
    expect(argmax([2, Number.NaN, 1])).toBe(0);
    expect(argmax([Number.NEGATIVE_INFINITY, Number.NaN])).toBe(0);
    expect(argmax([Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY])).toBe(1);
  });

  it('gives a Float32Array (its own four-lane loop) the index a plain scan gives', () => {
    /** The definition: the first index whose entry is above every earlier one's and -Infinity. */
    const reference = (row: ArrayLike<number>) => {
      let best = 0;
      for (let i = 0, max = Number.NEGATIVE_INFINITY; i < row.length; i++)
        if (row[i]! > max) [best, max] = [i, row[i]!];
      return best;
    };
    const random = rng(7);
    // few distinct values, so that ties across lanes, NaN and infinities meet in every position
    const pool = [0, 1, 1, 2, 2, -1, Number.NaN, Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY];
    for (let trial = 0; trial < 20_000; trial++) {
      const length = 1 + Math.floor(random() * (trial < 19_000 ? 13 : 300));
      const row = Float32Array.from({ length }, () => pool[Math.floor(random() * pool.length)]!);
      expect(argmax(row), `[${row.join(', ')}]`).toBe(reference(row));
      expect(argmax(Array.from(row))).toBe(reference(row));
    }
    // the tie between lanes goes to the lower index, whichever lane holds it
    expect(argmax(Float32Array.of(0, 0, 0, 5, 5, 0, 0, 0))).toBe(3);
    expect(argmax(Float32Array.of(0, 5, 0, 0, 0, 0, 0, 5, 5))).toBe(1);
    expect(argmax(Float32Array.of(Number.NaN, Number.NaN, Number.NaN, Number.NaN, -1))).toBe(4);
    expect(argmax(new Float32Array(9).fill(Number.NEGATIVE_INFINITY))).toBe(0);
  });
});

describe('state', () => {
  it('fork gives an independent copy', () => {
    const a = rules.createState({ promptIds: [1, 2, 3], scopeStart: 1 });
    a.append(50);
    const b = a.fork();
    b.append(60);
    expect([a.t, b.t]).toEqual([1, 2]);
    expect(a.isUsed(60)).toBe(false);
    expect(b.isUsed(60)).toBe(true);
    expect(b.isUsed(50)).toBe(true);
    expect(rules.scores(a).get(60)).toBeUndefined();
    expect(rules.scores(b).get(60)).toBe(-1.5);
  });

  it('grows past its initial capacity without losing tokens', () => {
    const s = rules.createState({ promptIds: [1], scopeStart: 0 });
    for (let i = 0; i < 5000; i++) s.append(i % V);
    expect(s.t).toBe(5000);
    expect(s.usedSize).toBe(V);
    expect(s.tokenAt(1 + 4999)).toBe(4999 % V);
  });

  it('ids beyond the vocabulary (padded logits rows) are recorded but never scored', () => {
    const s = rules.createState({ promptIds: [1], scopeStart: 0 });
    s.append(V + 3);
    expect(s.t).toBe(1);
    const logits = new Float32Array(V + 8);
    rules.apply(logits, s);
    expect(logits[V + 3]).toBe(0);
  });

  it('response ids given with the prompt are taken as append takes them, past the vocabulary included', () => {
    const given = rules.createState({ promptIds: [1, 2, V + 3, 7, V], scopeStart: 0, promptLength: 2 });
    const appended = rules.createState({ promptIds: [1, 2], scopeStart: 0 });
    for (const id of [V + 3, 7, V]) appended.append(id);
    expect(given.responseIds()).toEqual([V + 3, 7, V]);
    expect(given.usedSize).toBe(3); // 1, 2, 7: the ids past the vocabulary are not used ids
    expect(given.isUsed(V + 3)).toBe(false);
    const [a, b] = [new Float32Array(V + 8), new Float32Array(V + 8)];
    rules.apply(a, given);
    rules.apply(b, appended);
    expect(a).toEqual(b);
    expect([a[V], a[V + 3], a[7]]).toEqual([0, 0, b[7]]);
    expect(a[7]).not.toBe(0);
  });

  it('a prompt with part of the response (promptLength < ids) counts the rest as response', () => {
    const s = rules.createState({ promptIds: [1, 2, 3, 4], scopeStart: 0, promptLength: 2 });
    expect(s.t).toBe(2);
    expect(s.responseIds()).toEqual([3, 4]);
  });
});

describe('custom rules', () => {
  it('add next to the built-in ones and see the state', () => {
    const set = compileRules('none', vocab, {
      custom: [
        {
          name: 'ban-last',
          score: (ctx, add) => {
            if (ctx.t > 0) add(ctx.tokenAt(ctx.promptLength + ctx.t - 1), -100);
            add(-1, 5); // outside the vocabulary: ignored
            add(V + 10, 5);
          },
        },
      ],
    });
    expect(set.enabled).toEqual(['ban-last']);
    const s = set.createState({ promptIds: [1, 2], scopeStart: 0 });
    expect(set.scores(s).size).toBe(0);
    s.append(42);
    expect([...set.scores(s)]).toEqual([[42, -100]]);
    const logits = new Float32Array(V);
    set.apply(logits, s);
    expect(logits[42]).toBe(-100);
  });

  it('read isUsed in a rule set without the used rule (its default scope, conversation)', () => {
    // a researcher's own used-token penalty on the eos-uniform subset
    const ownPenalty = {
      name: 'own-used',
      score: (ctx: RuleContext, add: (id: number, s: number) => void) => {
        for (const id of [1, 2, 3, 50]) if (ctx.isUsed(id)) add(id, -2);
      },
    };
    const set = compileRules('eos-uniform', vocab, { custom: [ownPenalty] });
    const s = set.createState({ promptIds: [1, 2, 3], scopeStart: 1 });
    s.append(50);
    expect([1, 2, 3, 50].map((id) => s.isUsed(id))).toEqual([false, true, true, true]);
    expect(set.scores(s).get(2)).toBe(-2);
    expect(set.scores(s).get(50)).toBe(-2);
    expect(set.scores(s).has(1)).toBe(false);
    expect(s.fork().isUsed(50)).toBe(true);
  });

  it('combine with a preset', () => {
    const set = compileRules('eos', vocab, { custom: [{ name: 'x', score: (_c, add) => add(0, 1) }] });
    const s = set.createState({ promptIds: [5], scopeStart: 0 });
    s.append(7);
    expect(set.scores(s).get(0)).toBe(1 + 15 / 250);
  });
});
