import { describe, expect, it } from 'vitest';
import {
  ABLATIONS,
  compileRules,
  createVocabulary,
  type EosRuleOptions,
  eosBonus,
  HEWITT2024_UNIFORM,
  RULE_DEFAULTS,
  resolveRuleSpec,
} from '../src/index.js';
import { llama2, P, S, TIRAMISU, toRecord, UNIFORM_LLAMA2 } from './fixtures.js';

it('the fixture prompt has P = 26 ids', () => expect(TIRAMISU.length).toBe(P));

const rules = compileRules('hewitt2024-llama2-ids', llama2);

function stateAt(response: number[], set = rules) {
  const state = set.createState({ promptIds: TIRAMISU, scopeStart: S });
  for (const id of response) state.append(id);
  return state;
}

describe('the worked example of rules-spec.md (Llama-2 ids, hewitt2024, t = 3)', () => {
  it('scores every id exactly as the spec computes them', () => {
    const scores = rules.scores(stateAt([323, 2126, 275]));
    // written out by hand from the spec: EOS 15*3/250, the uniform table, -1.5 for every distinct id in context[7:29]
    expect(toRecord(scores)).toEqual({
      2: 0.18,
      13: -0.5, // "\n": +1 uniform, -1.5 used
      263: -1.5,
      275: -1.5,
      306: -5,
      314: -1.5,
      323: -1.5,
      334: 1,
      363: -1.5,
      396: 1,
      412: -1.5,
      444: 1,
      448: 1,
      465: -1.5,
      529: -4, // " <" is before S = 7: uniform only
      573: -1.5,
      592: -1.5,
      881: -6,
      1334: -3,
      1678: 1,
      2126: -1.5,
      5618: -5,
      9522: -1.5,
      19493: -1.5,
      22137: -1.5,
      28311: -1.5,
      29889: -1.5,
      29902: -5,
      29954: -1.5,
      29958: -1.5,
      29966: -5.5, // "<": -4 uniform, -1.5 used
      29989: -5.5, // "|": -4 uniform, -1.5 used
      29991: 1,
    });
  });

  it('apply adds exactly the sparse scores to a logits row, in place', () => {
    const state = stateAt([323, 2126, 275]);
    const logits = new Float32Array(32000).fill(0.25);
    rules.apply(logits, state);
    const want = new Float32Array(32000).fill(0.25);
    for (const [id, score] of rules.scores(state)) want[id] = 0.25 + score;
    expect(logits).toEqual(want);
  });
});

describe('the tiramisu prompt at several t (hand computation)', () => {
  // used ids of context[7:26]: the instruction and the assistant tag
  const promptUsed = [
    29954, 573, 592, 263, 9522, 412, 363, 19493, 314, 28311, 29889, 13, 29966, 29989, 465, 22137, 29958,
  ];
  const expected = (response: number[], eos: number) => {
    const out: Record<number, number> = { ...UNIFORM_LLAMA2 };
    for (const id of new Set([...promptUsed, ...response])) out[id] = (out[id] ?? 0) - 1.5;
    if (eos !== 0) out[2] = (out[2] ?? 0) + eos;
    return out;
  };

  it('t = 0: no EOS bonus; the instruction and assistant tag are already penalized', () => {
    expect(toRecord(rules.scores(stateAt([])))).toEqual(expected([], 0));
  });

  it('t = 1 and t = 2, a response that repeats an id counts it once', () => {
    expect(toRecord(rules.scores(stateAt([1678])))).toEqual(expected([1678], 15 / 250));
    const twice = toRecord(rules.scores(stateAt([1678, 1678])));
    expect(twice).toEqual(expected([1678], 30 / 250));
    expect(twice[1678]).toBe(-0.5);
  });

  it('t = 249 and t = 250: the ramp peaks at 14.94, then the bonus drops to 0', () => {
    const long = Array.from({ length: 250 }, (_, i) => 100 + i);
    expect(rules.scores(stateAt(long.slice(0, 249))).get(2)).toBeCloseTo(14.94, 12);
    expect(rules.scores(stateAt(long)).has(2)).toBe(false);
  });

  it('the state knows S and P', () => {
    const state = stateAt([5, 6]);
    expect([state.scopeStart, state.promptLength, state.t]).toEqual([7, 26, 2]);
    expect(state.responseIds()).toEqual([5, 6]);
  });
});

describe('EOS ramp', () => {
  const ts = [0, 1, 125, 249, 250, 300];
  it("afterRamp 'zero' (reference code)", () => {
    expect(ts.map((t) => eosBonus(t))).toEqual([0, 15 / 250, 7.5, (15 * 249) / 250, 0, 0]);
  });
  it("afterRamp 'hold'", () => {
    expect(ts.map((t) => eosBonus(t, { afterRamp: 'hold' }))).toEqual([
      0,
      15 / 250,
      7.5,
      (15 * 249) / 250,
      15,
      15,
    ]);
  });
  it('the rule set applies the same ramp to the EOS id', () => {
    for (const afterRamp of ['zero', 'hold'] as const) {
      const set = compileRules({ eos: { afterRamp } }, llama2);
      for (const t of ts) {
        const state = set.createState({ promptIds: TIRAMISU, scopeStart: S });
        for (let i = 0; i < t; i++) state.append(100);
        expect(set.scores(state).get(2) ?? 0).toBe(eosBonus(t, { afterRamp }));
      }
    }
  });
  it('custom ramp length and bonus', () => {
    expect(eosBonus(50, { rampLength: 100, maxBonus: 10 })).toBe(5);
    // an option given as undefined keeps its default; t and rampLength are checked
    expect(eosBonus(125, { rampLength: undefined, maxBonus: undefined })).toBe(7.5);
    expect(() => eosBonus(Number.NaN)).toThrow('eosBonus: t must be a finite number, got NaN');
    // checked as a config's eos field: a compiled set's config.eos passes (its ids change no bonus)
    expect(() => eosBonus(10, { rampLength: 0 })).toThrow(
      'eosBonus: options.rampLength: expected a positive number, got 0',
    );
    expect(eosBonus(125, rules.config.eos as EosRuleOptions)).toBe(7.5);
    for (const [options, message] of [
      [{ rampLength: '10' }, 'eosBonus: options.rampLength: expected a finite number, got "10"'],
      [{ rampLength: 2.5 }, 'eosBonus: options.rampLength: expected an integer, got 2.5'],
      [{ maxBonus: 1e9 }, 'eosBonus: options.maxBonus: expected a number in [-1e6, 1e6]'],
    ] as const)
      expect(() => eosBonus(1, options as never)).toThrow(message);
    // a misspelt afterRamp or a non-number bonus is an error, not a silent 0 or NaN
    expect(() => eosBonus(300, { afterRamp: 'Hold' as never })).toThrow(
      'eosBonus: options.afterRamp: expected one of "zero", "hold", got "Hold"',
    );
    expect(() => eosBonus(10, { maxBonus: Number.NaN })).toThrow(
      'eosBonus: options.maxBonus: expected a finite number, got number NaN',
    );
    expect(() => eosBonus(10, { maxBonus: '15' as never })).toThrow('got "15"');
  });
});

describe('ablation subsets', () => {
  // a vocabulary with the spec's surface texts at their Llama-2 ids: named subsets resolve text
  const surfaces: (string | undefined)[] = new Array(32000);
  for (const { text, llama2Id } of HEWITT2024_UNIFORM) surfaces[llama2Id] = text;
  const vocab = createVocabulary({ surfaces, eosIds: [2] });
  const response = [323, 2126, 275];
  const used = new Set([...TIRAMISU.slice(S), ...response]);

  it('names every subset of the paper, plus none', () => {
    expect(ABLATIONS).toEqual([
      'eos-uniform-diversity',
      'uniform-diversity',
      'eos-uniform',
      'eos-diversity',
      'none',
    ]);
    expect(resolveRuleSpec('eos-uniform-diversity')).toEqual(resolveRuleSpec('hewitt2024'));
  });

  it.each([
    ['eos-uniform-diversity', ['eos', 'uniform', 'diversity']],
    ['uniform-diversity', ['uniform', 'diversity']],
    ['eos-uniform', ['eos', 'uniform']],
    ['eos-diversity', ['eos', 'diversity']],
    ['none', []],
  ])('%s scores exactly the enabled rules', (name, on) => {
    const set = compileRules(name, vocab);
    expect(set.enabled).toEqual(on);
    expect(set.unresolved).toEqual([]);
    const state = set.createState({ promptIds: TIRAMISU, scopeStart: S });
    for (const id of response) state.append(id);
    const want = new Map<number, number>();
    const add = (id: number, v: number) => want.set(id, (want.get(id) ?? 0) + v);
    if (on.includes('eos')) add(2, 0.18);
    if (on.includes('uniform')) for (const [id, v] of Object.entries(UNIFORM_LLAMA2)) add(+id, v);
    if (on.includes('diversity')) for (const id of used) add(id, -1.5);
    expect(toRecord(set.scores(state))).toEqual(toRecord(want));
  });

  it('the full subset on surface text equals the reference ids preset', () => {
    const a = compileRules('hewitt2024', vocab);
    const sa = a.createState({ promptIds: TIRAMISU, scopeStart: S });
    const sb = rules.createState({ promptIds: TIRAMISU, scopeStart: S });
    expect(toRecord(a.scores(sa))).toEqual(toRecord(rules.scores(sb)));
  });
});

describe('uniform + used overlap', () => {
  it('"\\n" in the context scores +1 - 1.5 = -0.5', () => {
    const s = rules.createState({ promptIds: TIRAMISU, scopeStart: S });
    expect(rules.scores(s).get(13)).toBe(-0.5);
  });
  it("scope 'response' does not penalize the instruction", () => {
    const resp = compileRules({ ...rules.config, used: { scope: 'response' } }, llama2);
    const s = resp.createState({ promptIds: TIRAMISU, scopeStart: S });
    expect(resp.scores(s).get(13)).toBe(1);
    s.append(13);
    expect(resp.scores(s).get(13)).toBe(-0.5);
  });
  it('the shared hewitt2024 table cannot be edited in place (every preset reads it)', () => {
    const what = HEWITT2024_UNIFORM.find((e) => e.text === 'What') as { score: number };
    try {
      expect(() => {
        what.score = -3;
      }).toThrow(TypeError);
    } finally {
      if (!Object.isFrozen(what)) what.score = -5; // repairs the table for the other tests
    }
    const set = compileRules(
      { uniform: true },
      createVocabulary({ surfaces: ['</s>', 'What'], eosIds: [0] }),
    );
    expect(set.scores(set.createState({ promptIds: [0], scopeStart: 0 })).get(1)).toBe(-5);
  });

  it('defaults are the spec values', () => {
    expect(RULE_DEFAULTS).toEqual({
      eos: { rampLength: 250, maxBonus: 15, afterRamp: 'zero' },
      used: { penalty: -1.5, scope: 'conversation' },
      start: { weight: 5, exclamationBonus: 15, newlinePenalty: -10 },
    });
  });
});
