import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeShared, sharedPath } from '@implicit-it/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AdapterContractError,
  drawNegatives,
  EvalInputError,
  finishedRanking,
  finishedRankingDifferences,
  finishedShift,
  finishedShiftDifferences,
  ImplicitItError,
  pythonRandom,
  type RankSource,
  rankResponses,
  readAlpacaData,
  responseScore,
  resummarizeRanking,
  type Scorer,
  shiftCategory,
  tokenShift,
} from '../src/index.js';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'eval-rank-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Words of the response: log-prob 0 when the word occurs in the instruction, -1 otherwise. */
const overlapScorer = (calls: number[] = []): Scorer => ({
  async scoreContinuations(items) {
    calls.push(items.length);
    return items.map(({ instruction, response }) => {
      const known = new Set(instruction.toLowerCase().split(/\W+/));
      return {
        tokenLogprobs: response
          .toLowerCase()
          .split(/\W+/)
          .filter(Boolean)
          .map((w) => (known.has(w) ? 0 : -1)),
      };
    });
  },
});

describe('rankResponses', () => {
  const data = [
    { instruction: 'name a red fruit', output: 'apple is a red fruit' }, // 3/5 known -> exp(-2/5)
    { instruction: 'say hello', output: 'hello' }, // 1/1 known -> 1
    { instruction: 'count to three', input: 'in English', output: 'one two three' }, // 'three' known: exp(-2/3)
  ];

  it('scores exp(-mean NLL) and counts real > random pairs (hand-checked)', async () => {
    expect(drawNegatives(3, 2, 0, 'distinct').map((js) => [...js].sort())).toEqual([
      [1, 2],
      [0, 2],
      [0, 1],
    ]);
    const r = await rankResponses({
      scorer: overlapScorer(),
      data,
      n: 3,
      negatives: 2,
      draw: 'distinct',
      bootstrap: 200,
    });
    // example 0 (red fruit): real exp(-2/5); 'hello' -> exp(-1); 'one two three' -> exp(-1) : 2 wins
    // example 1 (say hello): real 1; 'apple is a red fruit' -> exp(-1); 'one two three' -> exp(-1): 2 wins
    // example 2 (count to three / in English): real exp(-2/3); 'apple is a red fruit' -> exp(-1); 'hello' -> exp(-1): 2 wins
    expect(r.examples.map((e) => e.real)).toEqual([Math.exp(-2 / 5), 1, Math.exp(-2 / 3)]);
    expect(r.pairs).toBe(6);
    expect(r.wins).toBe(6);
    expect(r.percent).toBe(100);
    expect(r.histogram).toEqual([0, 0, 3]);
    expect(r.ci).toMatchObject({ low: 100, high: 100, level: 0.95 });
  });

  it('refuses a confidence given as a percentage, no resamples, and data too small to rank, before scoring', async () => {
    const calls: number[] = [];
    const scorer = overlapScorer(calls);
    const base = { scorer, data, n: 3, negatives: 2, draw: 'distinct' } as const;
    for (const [options, message] of [
      [{ confidence: 95 }, 'confidence must be a number in (0, 1), e.g. 0.95 for a 95% interval, got 95'],
      [{ confidence: 1 }, 'confidence must be a number in (0, 1), e.g. 0.95 for a 95% interval, got 1'],
      [{ bootstrap: 0 }, 'bootstrap must be a positive integer (resamples), got 0'],
      [{ bootstrap: 2.5 }, 'bootstrap must be a positive integer (resamples), got 2.5'],
      // a string (a value read from a form or an environment variable) is quoted: not the number it failed to be
      [
        { bootstrap: '1000' as unknown as number },
        'bootstrap must be a positive integer (resamples), got "1000"',
      ],
      [{ n: '3' as unknown as number }, 'n must be an integer in [2, 3] (the number of examples), got "3"'],
      [{ negatives: '2' as unknown as number }, 'negatives must be a positive integer, got "2"'],
    ] as const) {
      const run = rankResponses({ ...base, ...options });
      await expect(run).rejects.toThrow(EvalInputError);
      await expect(rankResponses({ ...base, ...options })).rejects.toThrow(message);
    }
    await expect(rankResponses({ scorer, data: [], n: 2 })).rejects.toThrow(
      "data holds 0 examples: ranking needs at least 2 (each response is ranked against others')",
    );
    expect(calls).toEqual([]);
  });

  it('counts ties as not higher and reports them', async () => {
    const flat: Scorer = {
      scoreContinuations: async (items) => items.map(() => ({ tokenLogprobs: [-0.5] })),
    };
    const r = await rankResponses({
      scorer: flat,
      data,
      n: 3,
      negatives: 2,
      draw: 'distinct',
      bootstrap: 10,
    });
    expect(r).toMatchObject({ wins: 0, ties: 6, pairs: 6, percent: 0 });
    expect(responseScore([])).toBeNaN();
  });

  it('leaves examples with no scored pair out of the bootstrap and the histogram', async () => {
    // two empty responses: their examples have no pair, and every pair with them as negative is dropped
    const sparse = [...data, { instruction: 'x', output: '' }, { instruction: 'y', output: '' }];
    const r = await rankResponses({
      scorer: overlapScorer(),
      data: sparse,
      n: 5,
      negatives: 4,
      draw: 'distinct',
      bootstrap: 200,
    });
    expect(r.pairs).toBe(6); // the three non-empty examples, each against the two other non-empty ones
    expect(r.histogram).toEqual([0, 0, 3, 0, 0]);
    expect(r.ci).toMatchObject({ low: 100, high: 100 });
  });

  it("refuses a score without tokenLogprobs as the adapter's mistake, naming the runtime's field", async () => {
    const runtimeShaped: Scorer = {
      async scoreContinuations(items) {
        return items.map(() => ({ logprobs: [-1, -2] }) as never);
      },
    };
    const run = rankResponses({ scorer: runtimeShaped, data, n: 3, negatives: 2, draw: 'distinct' });
    await expect(run).rejects.toThrow(AdapterContractError);
    await expect(run).rejects.toThrow(
      "scoreContinuations returned, for item 0 of 9, no tokenLogprobs array (its fields: logprobs): each ContinuationScore is { tokenLogprobs: number[], truncated?: number } (the runtime's score() calls them logprobs: runtimeScorer adapts a runtime model)",
    );
    const strings: Scorer = {
      async scoreContinuations(items) {
        return items.map(() => ({ tokenLogprobs: ['-1'] }) as never);
      },
    };
    await expect(
      rankResponses({ scorer: strings, data, n: 3, negatives: 2, draw: 'distinct' }),
    ).rejects.toThrow('for item 0 of 9, tokenLogprobs that are not all numbers');
    // the base of every error here, from this package
    expect(new AdapterContractError('x')).toBeInstanceOf(ImplicitItError);
  });

  it('warns when no pair could be compared, rather than returning NaN silently', async () => {
    const empty: Scorer = {
      async scoreContinuations(items) {
        return items.map(() => ({ tokenLogprobs: [] }));
      },
    };
    const warnings: string[] = [];
    const r = await rankResponses({
      scorer: empty,
      data,
      n: 3,
      negatives: 2,
      draw: 'distinct',
      onWarning: (m) => warnings.push(m),
    });
    expect(r.pairs).toBe(0);
    expect(r.percent).toBeNaN();
    expect(warnings).toEqual([
      'no pair could be compared: every real or random response scored had no token log-probs (an empty response) or a NaN score, so the percentage and its interval are NaN',
    ]);
  });

  it('batches whole examples and resumes from its journal', async () => {
    const dir = tmp();
    const calls: number[] = [];
    let fail = true;
    const flaky: Scorer = {
      async scoreContinuations(items, o) {
        if (calls.length === 1 && fail) {
          fail = false;
          throw new Error('interrupted');
        }
        return overlapScorer(calls).scoreContinuations(items, o);
      },
    };
    const opts = {
      scorer: flaky,
      data,
      n: 3,
      negatives: 2,
      draw: 'distinct' as const,
      batchSize: 3,
      journalPath: join(dir, 'rank.journal.jsonl'),
      out: join(dir, 'ranking.json'),
    };
    await expect(rankResponses(opts)).rejects.toThrow('interrupted');
    const r = await rankResponses(opts);
    expect(calls).toEqual([3, 3, 3]); // one example (3 items) per call; the first survived the interruption
    expect(r.percent).toBe(100);
    expect(JSON.parse(readFileSync(join(dir, 'ranking.json'), 'utf8')).wins).toBe(6);
  });

  it('replace: true begins a journal of another run again', async () => {
    const dir = tmp();
    const calls: number[] = [];
    const flaky: Scorer = {
      async scoreContinuations(items, o) {
        if (calls.length === 1) throw new Error('interrupted');
        return overlapScorer(calls).scoreContinuations(items, o);
      },
    };
    const opts = {
      data,
      n: 3,
      negatives: 2,
      draw: 'distinct' as const,
      batchSize: 3,
      out: join(dir, 'r.json'),
    };
    await expect(rankResponses({ ...opts, scorer: flaky, fingerprint: { model: 'a' } })).rejects.toThrow(
      'interrupted',
    );
    const other = { ...opts, scorer: overlapScorer(calls), fingerprint: { model: 'b' } };
    await expect(rankResponses(other)).rejects.toThrow(
      `${opts.out}.journal.jsonl: was written by a run with other settings (different fingerprint.model); delete it to start over, or rerun with the options it was written with`,
    );
    const r = await rankResponses({ ...other, replace: true });
    expect(calls).toEqual([3, 3, 3, 3]); // the first run's example, then all three again
    expect(r.percent).toBe(100);
    expect(finishedRanking(other)).toBeDefined();
  });

  it('finishedRanking: the finished result of these very settings, never of others', async () => {
    const dir = tmp();
    const out = join(dir, 'ranking.json');
    const settings = {
      data,
      n: 3,
      negatives: 2,
      draw: 'distinct' as const,
      bootstrap: 50,
      out,
      fingerprint: { model: 'a' },
    };
    expect(finishedRanking(settings)).toBeUndefined(); // nothing yet
    const r = await rankResponses({ ...settings, scorer: overlapScorer() });
    expect(finishedRanking(settings)).toEqual(r);
    expect(finishedRankingDifferences(settings)).toEqual([]);
    expect(finishedRanking({ ...settings, seed: 1 })).toBeUndefined();
    expect(finishedRankingDifferences({ ...settings, seed: 1, bootstrap: 60 })).toEqual([
      'seed',
      'bootstrap',
    ]);
    expect(finishedRankingDifferences({ ...settings, fingerprint: { model: 'b' } })).toEqual([
      'fingerprint.model',
    ]);
    // another interval of the same scores: summarized again from the file, nothing scored
    const written = readFileSync(out, 'utf8');
    expect(await resummarizeRanking(settings)).toBeUndefined(); // nothing differs
    expect(await resummarizeRanking({ ...settings, seed: 1, bootstrap: 60 })).toBeUndefined(); // other scores
    expect(readFileSync(out, 'utf8')).toBe(written);
    const wider = await resummarizeRanking({ ...settings, bootstrap: 60, confidence: 0.5 });
    expect(wider).toMatchObject({ wins: 6, pairs: 6, ci: { resamples: 60, level: 0.5 } });
    expect(wider!.examples).toEqual(r.examples);
    expect(finishedRanking({ ...settings, bootstrap: 60, confidence: 0.5 })).toEqual(wider);
    expect(finishedRanking(settings)).toBeUndefined();
    expect(await resummarizeRanking(settings)).toEqual(r); // and back
    // a file changed since its run is not that run's result
    writeFileSync(out, readFileSync(out, 'utf8').replace('"wins": 6', '"wins": 5'));
    expect(await resummarizeRanking({ ...settings, bootstrap: 60 })).toBeUndefined();
    expect(finishedRanking(settings)).toBeUndefined();
    expect(finishedRankingDifferences(settings)).toEqual([]);
    // no record: a file of unknown origin
    rmSync(`${out}.done`);
    expect(finishedRankingDifferences(settings)).toBeUndefined();
  });

  it('rankResponses refuses to replace a ranking of other settings, or of unknown origin, unless replace: true', async () => {
    const out = join(tmp(), 'ranking.json');
    const settings = { data, n: 3, negatives: 2, draw: 'distinct' as const, bootstrap: 50, out };
    await rankResponses({ ...settings, scorer: overlapScorer(), fingerprint: { model: 'a' } });
    const written = readFileSync(out, 'utf8');
    let scored = 0;
    const counting: Scorer = {
      async scoreContinuations(items, options) {
        scored += items.length;
        return overlapScorer().scoreContinuations(items, options);
      },
    };
    const other = { ...settings, scorer: counting, fingerprint: { model: 'b' } };
    await expect(rankResponses(other)).rejects.toThrow(
      new EvalInputError(
        out,
        'holds the finished ranking of another run (different fingerprint.model), so it is not replaced; pass replace: true to replace it, or choose another out',
        { field: 'out' },
      ),
    );
    expect(scored).toBe(0);
    expect(readFileSync(out, 'utf8')).toBe(written);
    // another interval alone: the refusal names the way that needs no scoring
    const wider = {
      ...settings,
      scorer: counting,
      fingerprint: { model: 'a' },
      bootstrap: 60,
      confidence: 0.5,
    };
    await expect(rankResponses(wider)).rejects.toThrow(
      new EvalInputError(
        out,
        'holds the finished ranking of another run (different bootstrap, confidence), so it is not replaced; resummarizeRanking computes the new interval from its stored scores, without scoring again; or pass replace: true to replace it, or choose another out',
        { field: 'out' },
      ),
    );
    expect(scored).toBe(0);
    expect(await resummarizeRanking(wider)).toMatchObject({ ci: { resamples: 60, level: 0.5 } });
    expect(scored).toBe(0);
    expect(await resummarizeRanking({ ...wider, bootstrap: 50, confidence: undefined })).toBeDefined(); // back
    // the same settings rank again, over their own result
    await rankResponses({ ...settings, scorer: counting, fingerprint: { model: 'a' } });
    expect(scored).toBe(9);
    await rankResponses({ ...other, replace: true });
    expect(finishedRanking(other)).toBeDefined();
    rmSync(`${out}.done`);
    await expect(rankResponses(other)).rejects.toThrow('exists, with no record of the run that wrote it');
  });
});

describe("the paper's negatives: ratio_eval.py's draws", () => {
  it('pythonRandom gives the numbers CPython gives (values printed by CPython 3.11)', () => {
    const take = (seed: number, count: number, f: (py: ReturnType<typeof pythonRandom>) => number) => {
      const py = pythonRandom(seed);
      return Array.from({ length: count }, () => f(py));
    };
    // random.seed(0); [random.randint(0, 999) for _ in range(12)]
    expect(take(0, 12, (py) => py.randint(0, 999))).toEqual([
      864, 394, 776, 911, 430, 41, 265, 988, 523, 497, 414, 940,
    ]);
    expect(take(0, 4, (py) => py.getrandbits(32))).toEqual([3626764237, 1654615998, 3255389356, 3823568514]);
    expect(take(0, 16, (py) => py.randint(0, 1))).toEqual([1, 1, 0, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 0, 1, 0]);
    // seeds of two 32-bit words, the largest one-word seed, negative seeds (Python seeds with |n|)
    expect(take(12345678901, 8, (py) => py.randint(0, 15))).toEqual([10, 12, 11, 3, 5, 10, 11, 6]);
    expect(take(2 ** 32 - 1, 6, (py) => py.randint(5, 7))).toEqual([7, 7, 5, 5, 7, 7]);
    expect(take(-7, 3, (py) => py.randint(0, 2 ** 32 - 2))).toEqual([1390851128, 4071050724, 647892279]);
    expect(() => pythonRandom(0).randint(0, 2 ** 32 - 1)).toThrow(
      'pythonRandom: randint takes integers a <= b less than 2^32 - 1 apart, got 0, 4294967295',
    );
    // past the first 624 words: the generator's state is regenerated as CPython regenerates it
    expect(take(0, 5000, (py) => py.randint(0, 999)).slice(4990)).toEqual([
      582, 761, 529, 199, 164, 857, 7, 273, 109, 859,
    ]);
    expect(() => pythonRandom(0.5)).toThrow('pythonRandom: the seed must be a safe integer, got 0.5');
  });

  // the same on 300 more seeds (up to 2^43) and ranges (up to 2^32 - 1 values), 50 draws each, against
  // the CPython on this machine where there is one
  const python = process.env.IMPLICIT_IT_PYTHON ?? 'python3';
  const hasPython = spawnSync(python, ['-c', 'import random'], { stdio: 'ignore' }).status === 0;
  if (!hasPython) console.warn(`[skip] pythonRandom vs CPython: no ${python} (set IMPLICIT_IT_PYTHON)`);
  it.skipIf(!hasPython)(
    "pythonRandom gives what this machine's CPython gives, on many seeds and ranges",
    () => {
      let x = 12345;
      const next = () => {
        x = (x * 1103515245 + 12345) % 2 ** 31;
        return x;
      };
      const cases = Array.from({ length: 300 }, (_, i) => {
        const seed = i % 3 === 0 ? next() * 4096 + next() : next();
        const a = (next() % 1000) - 500;
        const span = [1, 2, 3, 7, 1000, 65536, 2 ** 31, 2 ** 32 - 2, next()][i % 9]!;
        return [seed, a, a + span] as const;
      });
      const script = [
        'import json, random, sys',
        'out = []',
        'for s, a, b in json.load(sys.stdin):',
        '    random.seed(s)',
        '    out.append([random.randint(a, b) for _ in range(50)])',
        'print(json.dumps(out))',
      ].join('\n');
      const expected = JSON.parse(
        execFileSync(python, ['-c', script], { input: JSON.stringify(cases) }).toString(),
      );
      const got = cases.map(([seed, a, b]) => {
        const py = pythonRandom(seed);
        return Array.from({ length: 50 }, () => py.randint(a, b));
      });
      expect(got).toEqual(expected);
    },
  );

  it("draws 5 per example with replacement, in order, and drops an example's own draws, as plot_ratios.py does", () => {
    // random.seed(0); [[random.randint(0, 999) for _ in range(5)] for i in range(1000)]
    const paper = drawNegatives(1000, 5, 0);
    expect(paper.slice(0, 3)).toEqual([
      [864, 394, 776, 911, 430],
      [41, 265, 988, 523, 497],
      [414, 940, 802, 849, 310],
    ]);
    expect(paper[999]).toEqual([857, 7, 273, 109, 859]);
    // CPython drew 6 of the 5000 as the example itself (examples 59, 366, 571, 803, 891, 896)
    expect(paper.flatMap((js, i) => (js.length < 5 ? [i] : []))).toEqual([59, 366, 571, 803, 891, 896]);
    expect(paper.flat().length).toBe(4994);
    // and kept duplicates: 11 examples drew some response twice
    expect(paper.filter((js) => new Set(js).size < js.length).length).toBe(11);
    // more draws than other examples is fine with replacement; not with distinct draws
    expect(drawNegatives(3, 4, 0)).toEqual(
      [
        [1, 1, 1],
        [2, 1, 1],
        [1, 1, 2, 0],
      ].map((js, i) => js.filter((j) => j !== i)),
    );
    expect(() => drawNegatives(3, 4, 0, 'distinct')).toThrow(
      "negatives (4) must be at most n - 1 (2) with draw 'distinct'",
    );
    expect(() => drawNegatives(3, 2, 'a')).toThrow(
      `draw 'paper' seeds Python's random.seed() with an integer, got "a"; use an integer seed or draw 'distinct'`,
    );
    expect(() => drawNegatives(3, 2, 0, 'shuffled' as never)).toThrow(
      'draw must be one of paper, distinct, got "shuffled"',
    );
    expect(() => drawNegatives(3, 0, 0)).toThrow('negatives must be a positive integer, got 0');
  });

  it('rankResponses uses them by default and records the draw', async () => {
    const data = [
      { instruction: 'name a red fruit', output: 'apple is a red fruit' },
      { instruction: 'say hello', output: 'hello' },
      { instruction: 'count to three', input: 'in English', output: 'one two three' },
    ];
    const out = join(tmp(), 'ranking.json');
    const r = await rankResponses({ scorer: overlapScorer(), data, n: 3, negatives: 2, bootstrap: 20, out });
    // random.seed(0): [1, 1], [0, 1], [2, 1]; example 1 drew itself once, example 2 once
    expect(r.examples.map((e) => e.negatives.map((x) => x.j))).toEqual([[1, 1], [0], [1]]);
    // example 0 beats 'hello' twice; example 1 beats 'apple...'; example 2 beats 'hello'
    expect(r).toMatchObject({
      draw: 'paper',
      negatives: 2,
      pairs: 4,
      wins: 4,
      percent: 100,
      histogram: [0, 2, 1],
    });
    expect(finishedRankingDifferences({ data, n: 3, negatives: 2, bootstrap: 20, out })).toEqual([]);
    expect(
      finishedRankingDifferences({ data, n: 3, negatives: 2, bootstrap: 20, out, draw: 'distinct' }),
    ).toEqual(['draw']);
  });
});

describe('rankResponses as ratio_eval.py prepares its items', () => {
  it('strips instructions and responses, and counts and reports responses the scorer cut short', async () => {
    const seen: { instruction: string; response: string }[] = [];
    // cuts every response after its first word, and says how many it left out
    const cutting: Scorer = {
      async scoreContinuations(items) {
        seen.push(...items.map(({ instruction, response }) => ({ instruction, response })));
        return items.map(({ response }) => {
          const words = response.split(' ');
          return {
            tokenLogprobs: [-words.length],
            ...(words.length > 1 ? { truncated: words.length - 1 } : {}),
          };
        });
      },
    };
    const warnings: string[] = [];
    const r = await rankResponses({
      scorer: cutting,
      data: [
        { instruction: '  say hi\n', output: '\nhi there  ' },
        { instruction: 'count', input: 'to two ', output: 'one two\n' },
        // Python's str.strip: U+001C and U+0085 go, the BOM (U+FEFF) stays; String.trim does the opposite
        { instruction: 'nod\x1c', output: '\ufeffyes\x85' },
      ],
      n: 3,
      negatives: 1,
      draw: 'distinct',
      bootstrap: 10,
      onWarning: (w) => warnings.push(w),
    });
    expect(seen.map((x) => x.instruction)).toEqual([
      'say hi',
      'say hi',
      'count\n\nto two',
      'count\n\nto two',
      'nod',
      'nod',
    ]);
    expect(new Set(seen.map((x) => x.response))).toEqual(new Set(['hi there', 'one two', '\ufeffyes']));
    // 'hi there' and 'one two' are cut wherever they are scored: 2 of each example's 2, less 'yes'
    const cut = seen.filter((x) => x.response !== '\ufeffyes').length;
    expect(r.truncated).toBe(cut);
    expect(r.examples.map((e) => e.truncated ?? 0).reduce((a, b) => a + b, 0)).toBe(cut);
    expect(warnings).toEqual([
      `${cut} of the 6 scored responses were longer than the scorer's maximum length with their prompt: their scores cover their first tokens, as ratio_eval.py's --max_seq_length cuts them`,
    ]);
  });
});

describeShared('rankResponses on the shared Alpaca data', ['data/alpaca/alpaca_data_2k.json'], () => {
  it('real responses overlap their own instruction more than random ones (n = 1000, seeded)', async () => {
    const data = readAlpacaData(sharedPath('data/alpaca/alpaca_data_2k.json'));
    expect(data.length).toBe(2000);
    const a = await rankResponses({ scorer: overlapScorer(), data, n: 1000, batchSize: 60, bootstrap: 300 });
    const b = await rankResponses({ scorer: overlapScorer(), data, n: 1000, batchSize: 60, bootstrap: 300 });
    // ratio_eval.py's 5,000 draws less the 6 of an example itself
    expect(a.pairs + a.examples.flatMap((e) => e.negatives).filter((x) => Number.isNaN(x.score)).length).toBe(
      4994,
    );
    expect(a.percent).toBeGreaterThan(60);
    expect(a.ci.low).toBeLessThan(a.percent);
    expect(a.ci.high).toBeGreaterThan(a.percent);
    expect(b).toEqual(a); // seeded: same negatives, same bootstrap
  });
});

/** Tokens are characters: rank 1 for lowercase letters, 2 for digits, 7 for anything else. */
const charRanks: RankSource = {
  async rankTokens(items) {
    return items.map(({ response }) => ({
      tokens: [...response].map((c) => ({
        id: c.codePointAt(0)!,
        text: c,
        rank: /[a-z]/.test(c) ? 1 : /\d/.test(c) ? 2 : 7,
      })),
    }));
  },
};

describe('tokenShift', () => {
  it('classifies ranks as Lin et al. do', () => {
    expect([1, 2, 3, 4, 100].map(shiftCategory)).toEqual([
      'unshifted',
      'marginal',
      'marginal',
      'shifted',
      'shifted',
    ]);
    expect(() => shiftCategory(0)).toThrow(/rank must be/);
  });

  it('reports percentages overall, by position and the top shifted tokens (hand-checked)', async () => {
    const progress: unknown[] = [];
    const r = await tokenShift({
      base: charRanks,
      aligned: [
        { instruction: 'q1', output: 'Hi 2 you!' }, // H,' ',' ','!' shifted (4); i,y,o,u unshifted (4); 2 marginal
        { instruction: 'q2', output: 'ok.' }, // o,k unshifted; . shifted
      ],
      label: 'toy vs base',
      positionBins: [0, 2, 5],
      batchSize: 1,
      onProgress: (p) => progress.push(p),
    });
    expect(progress).toEqual(
      [0, 1, 2].map((done) => ({ phase: 'shift', done, total: 2, resumed: 0, label: 'toy vs base' })),
    );
    expect(r.overall).toEqual({
      tokens: 12,
      unshifted: 6,
      marginal: 1,
      shifted: 5,
      percent: { unshifted: 50, marginal: (100 * 1) / 12, shifted: (100 * 5) / 12 },
    });
    // positions 0-1: H i | o k -> 1 shifted, 3 unshifted; 2-4: ' ' 2 ' ' | . -> 3 shifted, 1 marginal; 5+: y o u ! -> 3 unshifted, 1 shifted
    expect(r.byPosition.map((b) => [b.from, b.to, b.unshifted, b.marginal, b.shifted])).toEqual([
      [0, 2, 3, 0, 1],
      [2, 5, 0, 1, 3],
      [5, null, 3, 0, 1],
    ]);
    expect(r.topShifted[0]).toEqual({ text: ' ', id: 32, count: 2, percentOfShifted: 40 });
    expect(r.topShifted.map((t) => t.text)).toEqual([' ', '!', '.', 'H']);
  });

  it('topK 0 lists no tokens, the statistics only; topK must be an integer >= 0', async () => {
    const aligned = [{ instruction: 'q1', output: 'Hi 2 you!' }];
    const all = await tokenShift({ base: charRanks, aligned });
    expect(all.topShifted.map((t) => t.text)).toEqual([' ', '!', 'H']);
    const none = await tokenShift({ base: charRanks, aligned, topK: 0 });
    expect(none).toEqual({ ...all, topShifted: [] });
    expect((await tokenShift({ base: charRanks, aligned, topK: 2 })).topShifted.map((t) => t.text)).toEqual([
      ' ',
      '!',
    ]);
    for (const [topK, shown] of [
      [-1, '-1'],
      [1.5, '1.5'],
      [Number.NaN, 'NaN'],
      ['3', '"3"'],
    ] as const) {
      const out = join(tmp(), 'shift.json');
      const refused = tokenShift({ base: charRanks, aligned, topK: topK as number, out });
      await expect(refused).rejects.toThrow(EvalInputError);
      await expect(refused).rejects.toThrow(
        `topK must be an integer >= 0 (0 lists no tokens: the statistics only), got ${shown}`,
      );
      expect(existsSync(`${out}.journal.jsonl`)).toBe(false); // refused before any work
    }
  });

  it('finishedShift: the finished result of these very settings, never of others', async () => {
    const out = join(tmp(), 'shift.json');
    const aligned = [{ instruction: 'q1', output: 'Hi 2 you!' }];
    const settings = { aligned, out, label: 'toy vs base', fingerprint: { base: 'a' } };
    expect(finishedShift(settings)).toBeUndefined();
    const r = await tokenShift({ ...settings, base: charRanks });
    expect(finishedShift(settings)).toEqual(r);
    expect(finishedShift({ ...settings, topK: 3 })).toBeUndefined();
    expect(finishedShiftDifferences({ ...settings, topK: 3, label: 'other' })).toEqual(['label', 'topK']);
    expect(finishedShiftDifferences({ ...settings, aligned: [{ instruction: 'q1', output: 'Hi' }] })).toEqual(
      ['outputs'],
    );
  });

  it('tokenShift refuses to replace an analysis of other settings unless replace: true', async () => {
    const out = join(tmp(), 'shift.json');
    const aligned = [{ instruction: 'q1', output: 'Hi 2 you!' }];
    await tokenShift({ aligned, out, label: 'toy vs base', base: charRanks });
    await expect(tokenShift({ aligned, out, label: 'other', base: charRanks })).rejects.toThrow(
      `${out}: holds the finished analysis of another run (different label), so it is not replaced; pass replace: true to replace it, or choose another out`,
    );
    const r = await tokenShift({ aligned, out, label: 'other', base: charRanks, replace: true });
    expect(finishedShift({ aligned, out, label: 'other' })).toEqual(r);
  });

  it('tokenShift with replace: true begins a journal of another run again', async () => {
    const out = join(tmp(), 'shift.json');
    const aligned = [
      { instruction: 'q1', output: 'Hi 2 you!' },
      { instruction: 'q2', output: 'ok.' },
    ];
    let ranked = 0;
    const failSecond: RankSource = {
      async rankTokens(items, o) {
        if (++ranked === 2) throw new Error('interrupted');
        return charRanks.rankTokens(items, o);
      },
    };
    const settings = { aligned, out, batchSize: 1, label: 'toy vs base' };
    await expect(tokenShift({ ...settings, base: failSecond, fingerprint: { base: 'a' } })).rejects.toThrow(
      'interrupted',
    );
    const other = { ...settings, fingerprint: { base: 'b' } };
    await expect(tokenShift({ ...other, base: charRanks })).rejects.toThrow(
      `${out}.journal.jsonl: was written by a run with other settings (different fingerprint.base)`,
    );
    ranked = 0;
    const r = await tokenShift({
      ...other,
      base: {
        rankTokens(items, o) {
          ranked++;
          return charRanks.rankTokens(items, o);
        },
      },
      replace: true,
    });
    expect(ranked).toBe(2); // both outputs ranked again, the first run's one included
    expect(r.overall.tokens).toBe(12);
    expect(finishedShift(other)).toEqual(r);
    expect(existsSync(`${out}.journal.jsonl`)).toBe(false);
  });
});
