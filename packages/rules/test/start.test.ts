import { describe, expect, it } from 'vitest';
import { compileRules, createVocabulary, scoreString } from '../src/index.js';

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
  it('the subset string can add it: eos-uniform-diversity-start', () => {
    expect(compileRules('eos-uniform-diversity-start', vocab).enabled).toEqual([
      'eos',
      'uniform',
      'diversity',
      'start',
    ]);
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
