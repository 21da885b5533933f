import { describe, expect, it } from 'vitest';
import {
  compileRules,
  createVocabulary,
  idVocabulary,
  RuleConfigError,
  RuleInputError,
  scoreString,
} from '../src/index.js';

describe('scoreString (start rule)', () => {
  it.each([
    [' ', 0],
    ['', 0],
    ['Okay', 10],
    [' Okay', 10],
    ['I', -3],
    [' I', -3],
    ['Hello', 1],
    [' hello', 1],
    ['é', 1],
    ['中', 1],
    ['Ж', 1],
    ['か', 1],
    ['한', 1],
    ['.', -1],
    [' #', -1],
    ['\\', -1],
    ['7', 0],
    ['  x', 0], // only one leading space is stripped
    ['\n', 0],
  ])('%j scores %d', (s, want) => {
    expect(scoreString(s)).toBe(want);
  });

  it("'ASCII punctuation' is the reference code's 31 characters: '_' is not among them", () => {
    // score_string's `s[0] in ".,:;!?<>[]{}()\"'`~@#$%^&*-=+\\|/"`: Python's string.punctuation
    // less '_', so `_`, `__init__` and ` _` score 0 (the spec keeps the reference code's quirks)
    const reference = '.,:;!?<>[]{}()"\'`~@#$%^&*-=+\\|/';
    expect(reference).toHaveLength(31);
    for (const c of reference) expect([c, scoreString(c), scoreString(` ${c}`)]).toEqual([c, -1, -1]);
    expect(['_', '__init__', ' _'].map(scoreString)).toEqual([0, 0, 0]);
  });

  it('refuses what is not a string, saying what it got', () => {
    expect(() => scoreString(undefined as never)).toThrow(RuleInputError);
    expect(() => scoreString(undefined as never)).toThrow(
      "scoreString: expected a token's surface text (a string), got undefined",
    );
    expect(() => scoreString(29871 as never)).toThrow(
      "scoreString: expected a token's surface text (a string), got 29871",
    );
  });
});

describe('start rule in a rule set', () => {
  const vocab = createVocabulary({ surfaces: ['</s>', 'Okay', '!', '\n', ' I', '.', '7'], eosIds: [0] });
  const set = compileRules({ start: true }, vocab);
  const state = set.createState({ promptIds: [6], scopeStart: 0 });

  it('t = 0: weight 5 times scoreString on every item', () => {
    // '</s>' starts with '<' (ASCII punctuation): the reference code scores special tokens by their text too
    expect(Object.fromEntries(set.scores(state))).toEqual({ 0: -5, 1: 50, 2: -5, 4: -15, 5: -5 });
  });
  it('t = 1: +15 for "!"; t = 2: -10 for "\\n"; later: nothing', () => {
    state.append(6);
    expect(Object.fromEntries(set.scores(state))).toEqual({ 2: 15 });
    state.append(6);
    expect(Object.fromEntries(set.scores(state))).toEqual({ 3: -10 });
    state.append(6);
    expect(set.scores(state).size).toBe(0);
  });
  it('a weight that float32 cannot hold is scored as given, as every other rule is', () => {
    const tenth = compileRules({ start: { weight: 0.1 } }, vocab);
    const first = tenth.createState({ promptIds: [6], scopeStart: 0 });
    expect(Object.fromEntries(tenth.scores(first))).toEqual({
      0: -0.1,
      1: 1,
      2: -0.1,
      4: -0.30000000000000004,
      5: -0.1,
    });
    expect(tenth.denseScores(first)[0]).toBe(-0.1);
  });
  it('the subset string can add it: eos-uniform-diversity-start', () => {
    expect(compileRules('eos-uniform-diversity-start', vocab).enabled).toEqual([
      'eos',
      'uniform',
      'diversity',
      'start',
    ]);
  });
});

describe('start rule on a vocabulary with pieces (pieceOf)', () => {
  // Llama-2-like: the reference scores raw pieces, so </s> and every byte piece start with '<'
  const pieces = ['<unk>', '</s>', '<0x0A>', '<0x41>', '<0xE4>', '\u2581Hello', '\u2581I', 'Okay', '.'];
  const surfaces = [undefined, undefined, '\n', 'A', undefined, ' Hello', ' I', 'Okay', '.'];
  const vocab = createVocabulary({ surfaces, eosIds: [1], pieceOf: (id: number) => pieces[id] });
  it('scores a token without surface text, and byte-fallback pieces, by their piece', () => {
    const set = compileRules({ start: true }, vocab);
    const state = set.createState({ promptIds: [5], scopeStart: 0 });
    expect(Object.fromEntries(set.scores(state))).toEqual({
      0: -5, // '<unk>'
      1: -5, // '</s>': the empty reply is discouraged at t = 0, as in the reference
      2: -5, // '<0x0A>', not '\n' (0)
      3: -5, // '<0x41>', not 'A' (+5)
      4: -5, // '<0xE4>': part of a character, no surface
      5: 5,
      6: -15,
      7: 50,
      8: -5,
    });
  });
  it('without pieceOf, surfaces only: ids with none score 0', () => {
    const set = compileRules({ start: true }, createVocabulary({ surfaces, eosIds: [1] }));
    const state = set.createState({ promptIds: [5], scopeStart: 0 });
    expect(Object.fromEntries(set.scores(state))).toEqual({ 3: 5, 5: 5, 6: -15, 7: 50, 8: -5 });
  });
});

describe('start rule at t = 0 through apply', () => {
  it('adds the dense vector to the row: the same row as adding scores()', () => {
    const surfaces = Array.from({ length: 5000 }, (_, i) =>
      i % 3 === 0 ? ` w${i}` : i % 3 === 1 ? `.${i}` : `${i}`,
    );
    const set = compileRules({ start: true, used: true }, createVocabulary({ surfaces, eosIds: [0] }));
    const state = set.createState({ promptIds: [4, 7], scopeStart: 0 });
    const row = Float32Array.from({ length: 5002 }, (_, i) => Math.sin(i));
    const expected = Float32Array.from(row);
    for (const [id, score] of set.scores(state)) expected[id]! += score;
    set.apply(row, state);
    expect(row).toEqual(expected);
  });
});

describe('start rule on a vocabulary without token texts', () => {
  it('is a config error naming the rule and the fix, not a rule that scores nothing', () => {
    const ids = idVocabulary({ size: 32000, eosIds: [2] });
    const message =
      "start: the start rule scores token texts, and this vocabulary has none (an idVocabulary knows only ids): compile it against a tokenizer's vocabulary (createVocabulary, or @implicit-it/tokenizers) or turn the rule off";
    for (const spec of [{ start: true }, { start: { weight: 2 } }, 'eos-uniform-diversity-start'] as const) {
      expect(() => compileRules(spec, ids)).toThrow(RuleConfigError);
      expect(() => compileRules(spec, ids)).toThrow(message);
    }
    // a vocabulary with texts for some ids only is fine
    expect(
      compileRules({ start: true }, createVocabulary({ surfaces: [null, 'Okay'], eosIds: [0] })).enabled,
    ).toEqual(['start']);
  });
});
