import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  codePointLength,
  discreteWinRate,
  EvalInputError,
  formatWinRate,
  readAnnotations,
  roundHalfEven,
  standardError,
  WIN_RATE_KEYS,
  winRate,
} from '../src/index.js';

describe('winRate (alpaca_eval semantics, hand-checked)', () => {
  it('averages preference - 1, counts wins, losses and draws, drops NaN', () => {
    const s = winRate([
      { preference: 2, output_2: 'ab' },
      { preference: 1, output_2: 'abcd' },
      { preference: 1.5, output_2: '' },
      { preference: 0, output_2: 'x' }, // legacy draw
      { preference: null, output_2: 'xyz' }, // no judgement: out of n_total, still in avg_length
      { preference: 1.75, output_2: 'a' },
    ]);
    // shifted values: 1, 0, 0.5, 0.5, 0.75 -> mean 0.55
    expect(s.win_rate).toBeCloseTo(55, 12);
    expect(s.n_total).toBe(5);
    expect(s.n_wins).toBe(2);
    expect(s.n_wins_base).toBe(1);
    expect(s.n_draws).toBe(2);
    // sample sd of [1,0,.5,.5,.75]: squares .2025+.3025+.0025+.0025+.04 = .55 -> sqrt(.55/4)/sqrt(5)
    expect(s.standard_error).toBeCloseTo((Math.sqrt(0.55 / 4) / Math.sqrt(5)) * 100, 12);
    // discrete: 1, 0, .5, .5, 1 (1.75 -> 2) -> 0.6
    expect(s.discrete_win_rate).toBeCloseTo(60, 12);
    expect(s.avg_length).toBe(Math.trunc((2 + 4 + 0 + 1 + 3 + 1) / 6));
  });

  it('leaves NaN (no judgement, as pandas writes it) out of both rates', () => {
    const s = winRate([{ preference: 2 }, { preference: Number.NaN }]);
    expect(s.n_total).toBe(1);
    expect(s.win_rate).toBe(100);
    expect(s.discrete_win_rate).toBe(100);
    expect(Number.isNaN(s.standard_error)).toBe(true); // ddof = 1 with one value
  });

  it('refuses a preference outside [1, 2], naming it: alpaca_eval would drop it from win_rate and round it into discrete_win_rate', () => {
    const expected = (where: string, got: string) =>
      `${where} must be a number in [1, 2] (1: output_1 is better, 2: output_2, 1.5 a draw), 0 (a draw, as older files write it) or null (no judgement), got ${got}`;
    for (const [bad, got] of [
      [2.4, '2.4'],
      [0.7, '0.7'],
      [-1, '-1'],
      [Number.POSITIVE_INFINITY, 'Infinity'],
      ['2', '"2"'],
    ] as const) {
      const annotations = [{ preference: 2 }, { preference: bad as number }];
      expect(() => winRate(annotations)).toThrow(EvalInputError);
      expect(() => winRate(annotations)).toThrow(expected('annotations[1].preference', got));
      expect(() => discreteWinRate([1, bad as number])).toThrow(expected('preferences[1]', got));
    }
  });

  it('rounds half to even in the discrete rate, with exact 1.5 a draw', () => {
    expect(discreteWinRate([1.5])).toBe(50);
    expect(discreteWinRate([1.5000001])).toBe(100);
    expect(discreteWinRate([1.4999999])).toBe(0);
    expect(roundHalfEven(2.5)).toBe(2);
    expect(roundHalfEven(-1.5)).toBe(-2);
    expect(roundHalfEven(0.5)).toBe(0);
  });

  it('empty input gives NaN rates and zero counts', () => {
    const s = winRate([]);
    expect(s.n_total).toBe(0);
    expect(Number.isNaN(s.win_rate)).toBe(true);
    expect(Number.isNaN(s.avg_length)).toBe(true);
  });

  it('counts lengths in code points, like Python', () => {
    expect(codePointLength('héllo 👋')).toBe(7);
    expect(standardError([1, 2, 3, 4])).toBeCloseTo(0.6454972243679028, 15);
    // equal values: exactly 0, not the rounding error of their mean
    expect(standardError([0.1, 0.1, 0.1])).toBe(0);
    expect(
      winRate(Array.from({ length: 7 }, () => ({ preference: 1.3, output_2: 'a' }))).standard_error,
    ).toBe(0);
  });
});

describe('formatWinRate (the eval winrate command)', () => {
  it('--json prints one object with exactly the leaderboard keys, NaN as null', () => {
    const json = JSON.parse(formatWinRate(winRate([{ preference: 2, output_2: 'abc' }]), { json: true }));
    expect(Object.keys(json)).toEqual([...WIN_RATE_KEYS]);
    expect(json).toEqual({
      win_rate: 100,
      standard_error: null,
      n_wins: 1,
      n_wins_base: 0,
      n_draws: 0,
      n_total: 1,
      discrete_win_rate: 100,
      avg_length: 3,
    });
  });
  it('prints one aligned line per statistic otherwise', () => {
    const text = formatWinRate(winRate([{ preference: 1.25 }, { preference: 2 }]));
    expect(text.split('\n')).toHaveLength(8);
    expect(text).toMatch(/^win_rate {11}62\.500000$/m);
    expect(text).toMatch(/^n_total {12}2$/m);
  });
});

describe('readAnnotations', () => {
  const row = (preference: unknown) => ({ instruction: 'i', output_1: 'a', output_2: 'b', preference });
  const withRows = (rows: unknown[], check: (file: string) => void) => {
    const dir = mkdtempSync(join(tmpdir(), 'eval-annotations-'));
    try {
      const file = join(dir, 'annotations.json');
      writeFileSync(file, JSON.stringify(rows));
      check(file);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it("accepts alpaca_eval's preferences: [1, 2] (weighted judges), 0 (a legacy draw), null or none", () => {
    withRows(
      [row(1), row(1.37), row(1.5), row(2), row(0), row(null), { ...row(1), preference: undefined }],
      (f) => expect(readAnnotations(f).map((a) => a.preference)).toEqual([1, 1.37, 1.5, 2, 0, null, null]),
    );
  });

  it('refuses any other preference, naming the annotation, instead of dropping it from the statistics', () => {
    for (const bad of [7, 2.5, 0.5, -1, '2']) {
      withRows([row(2), row(bad)], (f) => {
        expect(() => readAnnotations(f)).toThrow(EvalInputError);
        expect(() => readAnnotations(f)).toThrow(
          `${f}: [1].preference must be a number in [1, 2] (1: output_1 is better, 2: output_2, 1.5 a draw), 0 (a draw, as older files write it) or null (no judgement), got ${JSON.stringify(bad)}`,
        );
      });
    }
  });

  it('says when the file holds model outputs, not annotations', () => {
    withRows([{ instruction: 'i', output: 'o', generator: 'm' }], (f) => {
      expect(() => readAnnotations(f)).toThrow(
        `${f}: [0].output_1 must be a string, got undefined: this looks like model outputs ({instruction, output, generator}), not annotations; judge them against a baseline first with \`judgePairs\` (CLI: implicit-it eval judge), which writes annotations`,
      );
    });
  });
});
