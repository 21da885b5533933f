import { existsSync, readFileSync } from 'node:fs';
import { pythonStrip, shownValue } from '@implicit-it/rules';
import { abortableBatch, keptInJournal } from './abort.js';
import {
  doneRecordDifferences,
  isFinishedAs,
  readDoneRecord,
  startRun,
  writeRecorded,
} from './done-record.js';
import { AdapterContractError, EvalInputError } from './errors.js';
import { sha256 } from './hash.js';
import { headerDifferences } from './journal.js';
import { readJson, writeJson } from './json-file.js';
import type { ProgressCallbacks, ResponseItem, Scorer } from './model-interfaces.js';
import { createRng, pythonRandom } from './rng.js';
import { mean, quantileSorted } from './stats.js';

/**
 * One Alpaca example (`alpaca_data.json` rows).
 *
 * @example
 * const data: AlpacaExample[] = readAlpacaData('alpaca_data.json').filter((x) => x.output.trim() !== '');
 */
export interface AlpacaExample {
  instruction: string;
  input?: string | undefined;
  output: string;
}

/**
 * Options of `rankResponses`.
 *
 * @example
 * const options: RankResponsesOptions = {
 *   scorer, data: 'alpaca_data_2k.json', n: 1000, negatives: 5, out: 'run/ranking/smol.json',
 *   onWarning: (message) => console.warn(message),
 * };
 */
export interface RankResponsesOptions extends ProgressCallbacks {
  scorer: Scorer;
  /** Alpaca examples, or a path to `alpaca_data.json`. */
  data: readonly AlpacaExample[] | string;
  /** Use the first `n` examples (default 1000, as the paper). */
  n?: number | undefined;
  /** Random responses drawn per example (default 5, as the paper). */
  negatives?: number | undefined;
  /** How they are drawn (default `'paper'`: `ratio_eval.py`'s draws, see `NegativeDraw`). */
  draw?: NegativeDraw | undefined;
  /** Seed of the negative draws and of the bootstrap (default 0, as the paper; an integer for draw `'paper'`). */
  seed?: number | string | undefined;
  /** Scored items per `scoreContinuations` call (default 12), rounded to whole examples. */
  batchSize?: number | undefined;
  /** Bootstrap resamples for the confidence interval (default 1000). */
  bootstrap?: number | undefined;
  /** Confidence level (default 0.95). */
  confidence?: number | undefined;
  /** Resume journal; default `${out}.journal.jsonl` when `out` is given, none otherwise. Removed after success. */
  journalPath?: string | undefined;
  /** Where to write the result JSON (optional). */
  out?: string | undefined;
  /**
   * Write over an `out` that holds something else: the finished ranking of other settings (as its
   * `.done` record says) or a file without such a record, and begin again a pending journal of
   * another run (or a damaged one). Default false: refused before any work, naming what differs
   * (an `EvalInputError`; a journal's, a `ResumeMismatchError`). `out`'s own finished result (same settings)
   * is replaced either way.
   */
  replace?: boolean | undefined;
  /** Anything else that identifies the run (model dir...): a journal of a different run is refused. */
  fingerprint?: Record<string, unknown> | undefined;
  /**
   * Stops the ranking: `rankResponses` rejects with `RunAbortedError` wherever the abort lands (before
   * a batch or within one), the journal keeping every batch finished before it. Passed to the scorer.
   */
  signal?: AbortSignal | undefined;
}

/**
 * The scores of one example: the real response and the random ones.
 *
 * @example
 * const { examples } = await rankResponses({ scorer, data, n: 200 });
 * const lost = examples.filter((e: RankedExample) => e.negatives.every((x) => x.score > e.real));
 */
export interface RankedExample {
  i: number;
  real: number;
  negatives: { j: number; score: number }[];
  /** How many of the example's responses (the real one and the random ones) were scored cut short. */
  truncated?: number;
}

/**
 * The result of `rankResponses`.
 *
 * @example
 * const r: RankingResult = await rankResponses({ scorer, data, n: 200, bootstrap: 2000 });
 * console.log(`${r.wins} of ${r.pairs} pairs; mean score ${r.meanReal.toFixed(3)} vs ${r.meanRandom.toFixed(3)}`);
 */
export interface RankingResult {
  n: number;
  /** Random responses drawn per example (with draw `'paper'`, an example's own draws are dropped). */
  negatives: number;
  draw: NegativeDraw;
  seed: number | string;
  /** (real, random) pairs compared (pairs with a NaN score are left out). */
  pairs: number;
  /** Pairs in which the real response scores strictly higher. */
  wins: number;
  ties: number;
  /** 100 * wins / pairs. */
  percent: number;
  /** Bootstrap percentile interval of `percent`, resampling the examples that have a scored pair. */
  ci: { low: number; high: number; level: number; resamples: number };
  /** `histogram[k]`: examples whose real response beat exactly k of its random ones (examples with no scored pair left out). */
  histogram: number[];
  /** Mean score of the real and of the random responses. */
  meanReal: number;
  meanRandom: number;
  /**
   * Scored responses cut short by the scorer's maximum length (the paper's runs cut prompt +
   * response at 1,024 tokens): their scores cover their first tokens only.
   */
  truncated: number;
  examples: RankedExample[];
}

/**
 * The prompt text of an Alpaca example: the instruction, and its input after a blank line when there is one.
 *
 * @example
 * alpacaInstruction({ instruction: 'Translate.', input: 'Hallo', output: 'Hello' }); // 'Translate.\n\nHallo'
 */
export function alpacaInstruction(example: AlpacaExample): string {
  return example.input ? `${example.instruction}\n\n${example.input}` : example.instruction;
}

/**
 * Reads Stanford Alpaca's `alpaca_data.json` (`[{instruction, input, output}]`).
 *
 * @example
 * const data = readAlpacaData('../shared/data/alpaca/alpaca_data_2k.json');
 */
export function readAlpacaData(path: string): AlpacaExample[] {
  const data = readJson(path);
  if (!Array.isArray(data))
    throw new EvalInputError(path, 'expected a JSON array of {instruction, input, output}');
  return data.map((row, i) => {
    const r = row as Record<string, unknown>;
    for (const key of ['instruction', 'output']) {
      if (typeof r?.[key] !== 'string') {
        throw new EvalInputError(path, `[${i}].${key} must be a string`, { field: key });
      }
    }
    return {
      instruction: r.instruction as string,
      input: typeof r.input === 'string' ? r.input : '',
      output: r.output as string,
    };
  });
}

/**
 * The response score of the paper: exp(-mean token NLL) = exp(mean log-prob); NaN for no tokens.
 *
 * @example
 * responseScore([Math.log(0.5), Math.log(0.5)]); // 0.5
 * Number.isNaN(responseScore([])); // true: NaN for no tokens
 */
export function responseScore(tokenLogprobs: readonly number[]): number {
  return tokenLogprobs.length === 0 ? Number.NaN : Math.exp(mean(tokenLogprobs));
}

/**
 * How the random responses of each example are drawn:
 * - `'paper'`: as the paper's `ratio_eval.py` draws them: Python's `random.seed(seed)`, then for each
 *   example in order `k` times `random.randint(0, n - 1)`, with replacement; a draw of the example
 *   itself is dropped, as `plot_ratios.py` cannot tell it from the real response, so such an example
 *   has fewer than `k` random responses. The very pairs of the paper, for an integer seed.
 * - `'distinct'`: `k` distinct other examples each, from this package's own seeded generator.
 *
 * @example
 * const draw: NegativeDraw = 'distinct';
 * await rankResponses({ scorer, data, n: 200, draw, seed: 'second-run' });
 */
export type NegativeDraw = 'paper' | 'distinct';

const NEGATIVE_DRAWS: readonly NegativeDraw[] = ['paper', 'distinct'];

/**
 * The negatives of every example among the first `n`: `k` draws each, as `draw` says (default
 * `'paper'`, `ratio_eval.py`'s).
 *
 * @example
 * drawNegatives(1000, 5, 0)[0]; // [864, 394, 776, 911, 430]: random.seed(0); randint(0, 999) x 5
 */
export function drawNegatives(
  n: number,
  k: number,
  seed: number | string,
  draw: NegativeDraw = 'paper',
): number[][] {
  if (!NEGATIVE_DRAWS.includes(draw)) {
    throw new EvalInputError(
      '',
      `draw must be one of ${NEGATIVE_DRAWS.join(', ')}, got ${JSON.stringify(draw)}`,
      {
        field: 'draw',
      },
    );
  }
  if (!Number.isInteger(k) || k < 1)
    throw new EvalInputError('', `negatives must be a positive integer, got ${shownValue(k)}`, {
      field: 'negatives',
    });
  if (draw === 'paper') {
    if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) {
      throw new EvalInputError(
        '',
        `draw 'paper' seeds Python's random.seed() with an integer, got ${JSON.stringify(seed)}; use an integer seed or draw 'distinct'`,
        { field: 'seed' },
      );
    }
    const py = pythonRandom(seed);
    return Array.from({ length: n }, (_, i) =>
      Array.from({ length: k }, () => py.randint(0, n - 1)).filter((j) => j !== i),
    );
  }
  if (k > n - 1)
    throw new EvalInputError('', `negatives (${k}) must be at most n - 1 (${n - 1}) with draw 'distinct'`, {
      field: 'negatives',
    });
  const rng = createRng(`negatives:${seed}`);
  return Array.from({ length: n }, (_, i) => {
    const chosen = new Set<number>();
    while (chosen.size < k) {
      const j = rng.int(n);
      if (j !== i) chosen.add(j);
    }
    return [...chosen];
  });
}

function summarize(
  examples: RankedExample[],
  options: {
    n: number;
    negatives: number;
    draw: NegativeDraw;
    seed: number | string;
    bootstrap: number;
    confidence: number;
  },
): RankingResult {
  const perExample = examples.map((e) => {
    let wins = 0;
    let ties = 0;
    let pairs = 0;
    for (const neg of e.negatives) {
      if (Number.isNaN(e.real) || Number.isNaN(neg.score)) continue;
      pairs++;
      if (e.real > neg.score) wins++;
      else if (e.real === neg.score) ties++;
    }
    return { wins, ties, pairs };
  });
  const wins = perExample.reduce((s, e) => s + e.wins, 0);
  const pairs = perExample.reduce((s, e) => s + e.pairs, 0);
  // examples without a single scored pair (e.g. an empty response) carry no evidence: they are left
  // out of the bootstrap (a resample of only those would have no percentage) and of the histogram
  const scored = perExample.filter((e) => e.pairs > 0);
  const rng = createRng(`bootstrap:${options.seed}`);
  const stats: number[] = [];
  for (let b = 0; b < options.bootstrap && scored.length > 0; b++) {
    let w = 0;
    let p = 0;
    for (let k = 0; k < scored.length; k++) {
      const e = scored[rng.int(scored.length)]!;
      w += e.wins;
      p += e.pairs;
    }
    stats.push((100 * w) / p);
  }
  stats.sort((a, b) => a - b);
  const alpha = (1 - options.confidence) / 2;
  const histogram = new Array<number>(options.negatives + 1).fill(0);
  for (const e of scored) histogram[e.wins]!++;
  return {
    n: options.n,
    negatives: options.negatives,
    draw: options.draw,
    seed: options.seed,
    pairs,
    wins,
    ties: perExample.reduce((s, e) => s + e.ties, 0),
    percent: pairs === 0 ? Number.NaN : (100 * wins) / pairs,
    ci: {
      low: quantileSorted(stats, alpha),
      high: quantileSorted(stats, 1 - alpha),
      level: options.confidence,
      resamples: options.bootstrap,
    },
    histogram,
    meanReal: mean(examples.map((e) => e.real).filter((x) => !Number.isNaN(x))),
    meanRandom: mean(
      examples.flatMap((e) => e.negatives.map((x) => x.score)).filter((x) => !Number.isNaN(x)),
    ),
    truncated: examples.reduce((sum, e) => sum + (e.truncated ?? 0), 0),
    examples,
  };
}

/**
 * The response-ranking test of the paper (section 4.2): for each of the first `n` Alpaca examples,
 * its real response and `negatives` responses of random examples (drawn as `ratio_eval.py` draws
 * them by default, see `NegativeDraw`) are scored under the
 * example's instruction as exp(-mean token NLL); the result is the percentage of (real, random) pairs
 * in which the real response scores higher, with a bootstrap confidence interval over examples.
 * Batched through the scorer, resumable through `journalPath`.
 *
 * @example
 * const r = await rankResponses({ scorer, data: '../shared/data/alpaca/alpaca_data_2k.json', n: 1000 });
 * console.log(`${r.percent.toFixed(1)}% [${r.ci.low.toFixed(1)}, ${r.ci.high.toFixed(1)}]`);
 */
export async function rankResponses(options: RankResponsesOptions): Promise<RankingResult> {
  const data = typeof options.data === 'string' ? readAlpacaData(options.data) : options.data;
  // the defaults, with bootstrap and confidence checked here: refused before any scoring, not after it
  const { n, negatives: k, seed, draw } = summaryOptions(options);
  if (data.length < 2) {
    throw new EvalInputError(
      typeof options.data === 'string' ? options.data : '',
      `data holds ${data.length} example${data.length === 1 ? '' : 's'}: ranking needs at least 2 (each response is ranked against others')`,
      { field: 'data' },
    );
  }
  if (!Number.isInteger(n) || n < 2 || n > data.length) {
    throw new EvalInputError(
      '',
      `n must be an integer in [2, ${data.length}] (the number of examples), got ${shownValue(n)}`,
      { field: 'n' },
    );
  }
  const negatives = drawNegatives(n, k, seed, draw);
  const journalPath = options.journalPath ?? (options.out ? `${options.out}.journal.jsonl` : undefined);
  // the journal's header, and the settings `out`'s record will hold (the same, with the summary's):
  // the data hashed once for both; the record checked now, written at the end
  const header = journalPath !== undefined || options.out ? rankHeader(options, data) : undefined;
  const record = options.out ? rankRecord(options, data, header) : undefined;
  const journal = startRun<RankedExample>({
    out: options.out,
    record,
    journalPath,
    header,
    replace: options.replace,
    what: 'ranking',
    instead: (diff) =>
      diff.every((k) => SUMMARY_KEYS.includes(k))
        ? 'resummarizeRanking computes the new interval from its stored scores, without scoring again'
        : undefined,
  });
  try {
    const done = new Map<number, RankedExample>();
    for (const e of journal?.entries ?? []) done.set(e.i, revived(e));
    const resumed = done.size;
    const pending = Array.from({ length: n }, (_, i) => i).filter((i) => !done.has(i));
    const perBatch = Math.max(1, Math.floor((options.batchSize ?? 12) / (k + 1)));
    options.onProgress?.({ phase: 'rank', done: done.size, total: n, resumed });
    const kept = () => keptInJournal(done.size, n, 'examples', journalPath);
    for (let start = 0; start < pending.length; start += perBatch) {
      const group = pending.slice(start, start + perBatch);
      // ratio_eval.py strips every message's content, with Python's str.strip
      const items: ResponseItem[] = group.flatMap((i) => {
        const instruction = pythonStrip(alpacaInstruction(data[i]!));
        return [i, ...negatives[i]!].map((j) => ({ instruction, response: pythonStrip(data[j]!.output) }));
      });
      const scores = await abortableBatch(options.signal, 'ranking', kept, () =>
        options.scorer.scoreContinuations(items, options.signal ? { signal: options.signal } : {}),
      );
      if (!Array.isArray(scores) || scores.length !== items.length) {
        throw new AdapterContractError(
          `scoreContinuations returned ${scores?.length} scores for ${items.length} items`,
        );
      }
      for (const [k, x] of scores.entries()) {
        const lp = (x as { tokenLogprobs?: unknown } | null)?.tokenLogprobs;
        if (!Array.isArray(lp) || lp.some((v) => typeof v !== 'number')) {
          const keys = x !== null && typeof x === 'object' ? Object.keys(x) : [];
          throw new AdapterContractError(
            `scoreContinuations returned, for item ${k} of ${items.length}, ${
              Array.isArray(lp)
                ? 'tokenLogprobs that are not all numbers'
                : `no tokenLogprobs array (${keys.length > 0 ? `its fields: ${keys.join(', ')}` : (JSON.stringify(x) ?? 'undefined')})`
            }: each ContinuationScore is { tokenLogprobs: number[], truncated?: number }${
              keys.includes('logprobs')
                ? " (the runtime's score() calls them logprobs: runtimeScorer adapts a runtime model)"
                : ''
            }`,
          );
        }
      }
      let at = 0;
      const ranked = group.map((i): RankedExample => {
        const own = scores.slice(at, at + 1 + negatives[i]!.length);
        at += own.length;
        const s = own.map((x) => responseScore(x.tokenLogprobs));
        const truncated = own.filter((x) => (x.truncated ?? 0) > 0).length;
        return {
          i,
          real: s[0]!,
          negatives: negatives[i]!.map((j, m) => ({ j, score: s[m + 1]! })),
          ...(truncated > 0 ? { truncated } : {}),
        };
      });
      journal?.append(ranked);
      for (const r of ranked) done.set(r.i, r);
      options.onProgress?.({ phase: 'rank', done: done.size, total: n, resumed });
    }
    const result = summarize(
      Array.from({ length: n }, (_, i) => done.get(i)!),
      summaryOptions(options),
    );
    if (result.pairs === 0) {
      options.onWarning?.(
        `no pair could be compared: every real or random response scored had no token log-probs (an empty response) or a NaN score, so the percentage and its interval are NaN`,
      );
    }
    if (result.truncated > 0) {
      options.onWarning?.(
        `${result.truncated} of the ${negatives.reduce((sum, js) => sum + 1 + js.length, 0)} scored responses were longer than the scorer's maximum length with their prompt: their scores cover their first tokens, as ratio_eval.py's --max_seq_length cuts them`,
      );
    }
    if (options.out) {
      await writeRecorded(options.out, record!, (out) => writeJson(out, result));
    }
    journal?.remove();
    return result;
  } finally {
    journal?.close();
  }
}

type RankSettings = Pick<
  RankResponsesOptions,
  'n' | 'negatives' | 'draw' | 'seed' | 'bootstrap' | 'confidence' | 'fingerprint'
>;

function summaryOptions(options: RankSettings) {
  const bootstrap = options.bootstrap ?? 1000;
  const confidence = options.confidence ?? 0.95;
  if (!Number.isInteger(bootstrap) || bootstrap < 1) {
    throw new EvalInputError(
      '',
      `bootstrap must be a positive integer (resamples), got ${shownValue(bootstrap)}`,
      {
        field: 'bootstrap',
      },
    );
  }
  if (typeof confidence !== 'number' || !(confidence > 0 && confidence < 1)) {
    throw new EvalInputError(
      '',
      `confidence must be a number in (0, 1), e.g. 0.95 for a 95% interval, got ${JSON.stringify(confidence)}`,
      { field: 'confidence' },
    );
  }
  return {
    n: options.n ?? 1000,
    negatives: options.negatives ?? 5,
    draw: options.draw ?? 'paper',
    seed: options.seed ?? 0,
    bootstrap,
    confidence,
  };
}

/** What identifies a ranking run's scores: its journal's header. */
function rankHeader(options: RankSettings, data: readonly AlpacaExample[]): Record<string, unknown> {
  const { n, negatives, draw, seed } = summaryOptions(options);
  return {
    kind: 'rank',
    // 2: instructions and responses are stripped, as ratio_eval.py strips each message
    version: 2,
    n,
    negatives,
    draw,
    seed,
    data: sha256(data.slice(0, n)),
    fingerprint: options.fingerprint ?? null,
  };
}

/** What identifies a finished ranking (`${out}.done`): the scores' settings and the summary's. */
function rankRecord(
  options: RankSettings,
  data: readonly AlpacaExample[],
  header = rankHeader(options, data),
): Record<string, unknown> {
  const { bootstrap, confidence } = summaryOptions(options);
  return { ...header, bootstrap, confidence };
}

/**
 * Options of `finishedRanking`: `rankResponses`'s, without the scorer, with `out` required.
 *
 * @example
 * const settings: FinishedRankingOptions = { data, n: 1000, out: 'run/ranking/smol.json' };
 * const result = finishedRanking(settings) ?? (await rankResponses({ ...settings, scorer }));
 */
export type FinishedRankingOptions = RankSettings & {
  data: readonly AlpacaExample[];
  out: string;
  journalPath?: string | undefined;
};

/**
 * The result in `out` of a `rankResponses` run that finished with these very settings (same data,
 * n, negatives, seed, bootstrap, fingerprint...), or undefined: no result or no record of its run
 * (`${out}.done`), a journal still pending, a record of other settings, or a file changed since.
 * Lets a caller reuse a finished ranking instead of scoring it again, as `finishedRun` does for outputs.
 *
 * @example
 * const done = finishedRanking({ data, n: 1000, out: 'run/ranking/smol.json', fingerprint });
 * const result = done ?? (await rankResponses({ scorer, data, n: 1000, out: 'run/ranking/smol.json', fingerprint }));
 */
export function finishedRanking(options: FinishedRankingOptions): RankingResult | undefined {
  const journalPath = options.journalPath ?? `${options.out}.journal.jsonl`;
  if (!isFinishedAs(options.out, rankRecord(options, options.data), journalPath)) return undefined;
  return storedRanking(options.out, options);
}

/** A ranked example as JSON gives it back (JSON wrote NaN scores as null). */
function revived(e: RankedExample): RankedExample {
  const num = (x: number | null) => (x === null ? Number.NaN : x);
  return { ...e, real: num(e.real), negatives: e.negatives.map((x) => ({ j: x.j, score: num(x.score) })) };
}

/**
 * The result stored in `out` by a run summarized with `settings`, or undefined: unreadable, or not
 * the very file that run wrote (its summary, computed again from its scores, differs).
 */
function storedRanking(out: string, settings: RankSettings): RankingResult | undefined {
  let text: string;
  let stored: RankingResult;
  try {
    text = readFileSync(out, 'utf8');
    stored = JSON.parse(text) as RankingResult;
  } catch {
    return undefined;
  }
  const summary = summaryOptions(settings);
  if (!Array.isArray(stored?.examples) || stored.examples.length !== summary.n) return undefined;
  // the summary again from the stored scores: the very file, or it was changed since
  const result = summarize(stored.examples.map(revived), summary);
  return `${JSON.stringify(result, null, 2)}\n` === text ? result : undefined;
}

/** The summary settings of a ranking: recomputing its interval needs no scoring. */
const SUMMARY_KEYS = ['bootstrap', 'confidence'];

/**
 * A finished ranking in `out` whose scores are those of these settings (same data, n, negatives,
 * draw, seed, fingerprint) but whose interval was computed with another `bootstrap` or
 * `confidence`: summarized again from its stored scores with these, and written back to `out`
 * with its record, so that a new interval costs no scoring. Undefined, and `out` untouched, where
 * anything else differs, a journal is pending, or the file was changed since its run.
 *
 * @example
 * const r = resummarizeRanking({ data, n: 1000, bootstrap: 10_000, out: 'run/ranking/smol.json', fingerprint });
 */
export async function resummarizeRanking(
  options: FinishedRankingOptions,
): Promise<RankingResult | undefined> {
  const journalPath = options.journalPath ?? `${options.out}.journal.jsonl`;
  if (existsSync(journalPath)) return undefined;
  const stored = readDoneRecord(options.out);
  if (!stored) return undefined;
  const differences = headerDifferences(rankRecord(options, options.data), stored);
  if (!differences.length || differences.some((k) => !SUMMARY_KEYS.includes(k))) return undefined;
  const before = storedRanking(options.out, {
    ...options,
    bootstrap: stored.bootstrap as number,
    confidence: stored.confidence as number,
  });
  if (!before) return undefined;
  const result = summarize(before.examples, summaryOptions(options));
  await writeRecorded(options.out, rankRecord(options, options.data), (out) => writeJson(out, result));
  return result;
}

/**
 * How the ranking run recorded in `${out}.done` differs from one with these settings: the record's
 * keys that differ (`n`, `negatives`, `seed`, `data`, `bootstrap`, `fingerprint.KEY`...), an empty
 * list when it is the same run, undefined without a readable record.
 *
 * @example
 * const diff = finishedRankingDifferences({ data, n: 20, out });
 * if (diff?.length) throw new Error(`${out} was ranked with another ${diff.join(', ')}`);
 */
export function finishedRankingDifferences(options: FinishedRankingOptions): string[] | undefined {
  return doneRecordDifferences(options.out, rankRecord(options, options.data));
}
