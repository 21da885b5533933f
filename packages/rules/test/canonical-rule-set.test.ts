import { describe, expect, it } from 'vitest';
import {
  canonicalRuleSet,
  compileRules,
  createVocabulary,
  HEWITT2024_UNIFORM,
  RuleConfigError,
  type RuleSpec,
} from '../src/index.js';
import { toRecord } from './fixtures.js';

const json = (spec: RuleSpec) => JSON.stringify(canonicalRuleSet(spec));
const HEWITT_TEXT = HEWITT2024_UNIFORM.map(({ text, score }) => ({ text, score }));

describe('canonicalRuleSet', () => {
  it('gives one JSON for every spelling of the same rules: a name or its JSON, any key order, defaults spelled out', () => {
    const groups: RuleSpec[][] = [
      [
        'diversity',
        'used',
        { used: true },
        { used: {} },
        { used: { penalty: -1.5 } },
        { used: { scope: 'conversation', penalty: -1.5 } },
        { eos: false, used: true, start: false },
      ],
      [
        'hewitt2024',
        'eos-uniform-diversity',
        'uniform-used-eos',
        { eos: true, uniform: true, used: true },
        { used: {}, uniform: { entries: [...HEWITT_TEXT].reverse() }, eos: { rampLength: 250 } },
        {
          eos: { afterRamp: 'zero', maxBonus: 15, rampLength: 250 },
          uniform: {},
          used: { scope: 'conversation' },
        },
      ],
      ['eos-start', { start: { weight: 5, newlinePenalty: -10 }, eos: { maxBonus: 15 } }],
      [{ eos: { ids: [5, 2, 5] } }, { eos: { ids: [2, 5], afterRamp: 'zero' } }],
      [false, 'none', 'off', {}, { eos: false, uniform: false }],
    ];
    for (const group of groups) {
      const [first, ...rest] = group.map(json);
      for (const [i, other] of rest.entries()) expect(other, JSON.stringify(group[i + 1])).toBe(first);
    }
    // the groups differ from one another
    expect(new Set(groups.map((g) => json(g[0]!))).size).toBe(groups.length);
  });

  it('spells out every option, in one key order', () => {
    expect(canonicalRuleSet('hewitt2024-prose')).toEqual({
      eos: { rampLength: 250, maxBonus: 15, afterRamp: 'hold' },
      uniform: {
        entries: HEWITT_TEXT.map((e) => (e.text === 'What' ? { ...e, score: -3 } : e)).sort((a, b) =>
          a.text < b.text ? -1 : 1,
        ),
      },
      used: { penalty: -1.5, scope: 'response' },
    });
    expect(
      json({
        start: true,
        uniform: {
          entries: [
            { score: 2, id: 7, text: 'x' },
            { score: 1, text: 'b' },
          ],
        },
      }),
    ).toBe(
      '{"uniform":{"entries":[{"text":"b","score":1},{"id":7,"score":2,"text":"x"}]},' +
        '"start":{"weight":5,"exclamationBonus":15,"newlinePenalty":-10}}',
    );
  });

  it('keeps apart rule sets that differ in one weight, one token, the EOS ramp or its ids', () => {
    const base = json('hewitt2024');
    const variants: RuleSpec[] = [
      { eos: true, uniform: true, used: { penalty: -1.4 } },
      { eos: true, uniform: { entries: HEWITT_TEXT.slice(1) }, used: true },
      { eos: true, uniform: { entries: [...HEWITT_TEXT.slice(1), { text: '<', score: -3 }] }, used: true },
      { eos: true, uniform: { entries: [...HEWITT_TEXT.slice(1), { text: '<<', score: -4 }] }, used: true },
      { eos: { rampLength: 200 }, uniform: true, used: true },
      { eos: { afterRamp: 'hold' }, uniform: true, used: true },
      { eos: { ids: [2] }, uniform: true, used: true },
      { eos: true, uniform: true, used: { scope: 'response' } },
      'hewitt2024-llama2-ids',
      'eos-uniform-diversity-start',
      'uniform-diversity',
    ];
    const seen = new Set([base]);
    for (const v of variants) {
      expect(json(v), JSON.stringify(v)).not.toBe(base);
      seen.add(json(v));
    }
    expect(seen.size).toBe(variants.length + 1);
  });

  it('compiles to the rule set the spec does', () => {
    const surfaces = ['</s>', ' I', 'I', '\n', ' Sure', '!', 'What', ' *'];
    const vocab = createVocabulary({ surfaces, eosIds: [0] });
    const response = [4, 1, 3];
    const scoresOf = (spec: RuleSpec) => {
      const set = compileRules(spec, vocab);
      const state = set.createState({ promptIds: [1, 2, 6], scopeStart: 1 });
      const out = [toRecord(set.scores(state))];
      for (const id of response) {
        state.append(id);
        out.push(toRecord(set.scores(state)));
      }
      return { scores: out, unresolved: set.unresolved.map((u) => u.text).sort(), enabled: set.enabled };
    };
    for (const spec of [
      'hewitt2024',
      'hewitt2024-prose',
      'eos-start',
      { eos: { ids: [3, 0] }, used: true },
    ] as const)
      expect(scoresOf(canonicalRuleSet(spec)), JSON.stringify(spec)).toEqual(scoresOf(spec));
  });

  it('returns a config of its own, and refuses what resolveRuleSpec refuses', () => {
    const config = canonicalRuleSet('hewitt2024');
    const entries = (config.uniform as { entries: { text: string; score: number }[] }).entries;
    entries[0]!.score = 99;
    expect(HEWITT2024_UNIFORM.every((e) => e.score !== 99)).toBe(true);
    expect(json('hewitt2024')).not.toContain('99');
    expect(() => canonicalRuleSet('hewit2024')).toThrow(RuleConfigError);
    expect(() => canonicalRuleSet('hewit2024')).toThrow('did you mean "hewitt2024"?');
    expect(() => canonicalRuleSet({ used: { penalty: 'high' } } as never)).toThrow(
      'used.penalty: expected a finite number, got "high"',
    );
  });
});

describe('RuleSet#inert', () => {
  const vocab = createVocabulary({ surfaces: ['</s>', ' I', '\n'], eosIds: [0] });
  const noEos = createVocabulary({ surfaces: ['a', ' I', '\n'], eosIds: [] });
  const sure = { text: 'Sure!', score: 5 };

  it('names a uniform rule none of whose entries is a token, and an EOS rule with no id to raise', () => {
    const cases: [RuleSpec, typeof vocab, string[]][] = [
      [{ uniform: { entries: [sure] } }, vocab, ['uniform']],
      [{ uniform: { entries: [sure, { text: 'Yes!', score: 1 }] }, used: true }, vocab, ['uniform']],
      [{ eos: true, uniform: { entries: [sure] } }, noEos, ['eos', 'uniform']],
      ['eos-diversity', noEos, ['eos']],
      // some entries resolve: those that do not are `unresolved`, the rule is not inert
      [{ uniform: { entries: [sure, { text: ' I', score: -5 }] } }, vocab, []],
      [{ uniform: { entries: [sure, { id: 2, score: 1 }] } }, vocab, []],
      // nothing asked of the vocabulary: no entries, or the EOS ids given
      [{ uniform: { entries: [] } }, vocab, []],
      [{ eos: { ids: [0] } }, noEos, []],
      ['hewitt2024', vocab, []],
      [false, noEos, []],
    ];
    for (const [spec, v, inert] of cases) {
      const set = compileRules(spec, v);
      expect(set.inert, JSON.stringify(spec)).toEqual(inert);
      expect(Object.isFrozen(set.inert)).toBe(true);
    }
  });
});
