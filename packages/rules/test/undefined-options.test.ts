import { describe, expect, it } from 'vitest';
import {
  compileRules,
  createVocabulary,
  idVocabulary,
  parseRuleSetConfig,
  RuleInputError,
  type RuleSetConfig,
} from '../src/index.js';

// A field or option given as undefined (a spread of optional settings, a TypeScript consumer's
// `T | undefined`) is one not given: the same config, set and state as without it.
describe('undefined fields are fields not given', () => {
  const vocab = idVocabulary({ size: 100, eosIds: [2] });
  const scoresOf = (config: RuleSetConfig, options?: Parameters<typeof compileRules>[2]) => {
    const set = compileRules(config, vocab, options);
    const state = set.createState({ promptIds: [1, 5, 7], scopeStart: 1, promptLength: undefined });
    state.append(7);
    return [...set.scores(state)].sort((a, b) => a[0] - b[0]);
  };

  it('in a rule-set config, at every level', () => {
    const given: RuleSetConfig = {
      eos: { rampLength: undefined, maxBonus: 10, afterRamp: undefined, ids: undefined },
      uniform: { entries: [{ id: 7, score: 1, text: undefined }] },
      used: { penalty: undefined, scope: undefined },
      start: undefined,
    };
    const plain: RuleSetConfig = {
      eos: { maxBonus: 10 },
      uniform: { entries: [{ id: 7, score: 1 }] },
      used: {},
    };
    expect(parseRuleSetConfig(given)).toEqual(plain);
    expect(JSON.stringify(parseRuleSetConfig(given))).toBe(JSON.stringify(plain));
    expect(scoresOf(given)).toEqual(scoresOf(plain));
    expect(compileRules(given, vocab).enabled).toEqual(['eos', 'uniform', 'diversity']);
  });

  it('a uniform entry by text with id undefined is by text, one by id with text undefined is by id', () => {
    const surfaces = createVocabulary({ surfaces: ['<eos>', ' I', 'I'], eosIds: [0], pieceOf: undefined });
    const byText = { uniform: { entries: [{ text: ' I', score: -5, id: undefined }] } } as RuleSetConfig;
    expect(parseRuleSetConfig(byText)).toEqual({ uniform: { entries: [{ text: ' I', score: -5 }] } });
    expect(compileRules(byText, surfaces).unresolved).toEqual([]);
    expect(parseRuleSetConfig({ uniform: { entries: [{ id: 1, score: -5, text: undefined }] } })).toEqual({
      uniform: { entries: [{ id: 1, score: -5 }] },
    });
  });

  it('in compile options, createState and createVocabulary: an undefined key is no unknown option', () => {
    expect(scoresOf({ used: {} }, { custom: undefined })).toEqual(scoresOf({ used: {} }));
    const set = compileRules('eos', vocab);
    const state = set.createState({ promptIds: [1, 5], scopeStart: 0, promptLength: undefined });
    expect(state.promptLength).toBe(2);
    // a misspelt field with a value is still refused
    expect(() => set.createState({ promptIds: [1], scopeStart: 0, promptLenght: 1 } as never)).toThrow(
      RuleInputError,
    );
    expect(() =>
      set.createState({ promptIds: [1], scopeStart: 0, promptLenght: undefined } as never),
    ).not.toThrow();
    expect(() =>
      parseRuleSetConfig({ eos: { rampLenght: undefined }, diversity: undefined } as RuleSetConfig),
    ).not.toThrow();
  });
});
