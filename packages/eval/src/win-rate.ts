import { EvalInputError } from './errors.js';
import { mean, roundHalfEven, standardError } from './stats.js';

/**
 * The statistics alpaca_eval's leaderboard reports for one model against the baseline, with the same
 * keys. NaN (e.g. `standard_error` of a single judgement) is kept as NaN here and written as `null`
 * in JSON.
 *
 * @example
 * const stats: WinRateStats = winRate([{ preference: 2, output_2: 'Yes.' }, { preference: 1, output_2: 'No.' }]);
 * stats.win_rate; // 50
 * stats.avg_length; // 3
 */
export interface WinRateStats {
  /** Mean of (preference - 1), times 100; draws count as 1.5. */
  win_rate: number;
  /** Standard error of that mean (sample standard deviation, ddof = 1), times 100. */
  standard_error: number;
  /** Judgements with preference > 1.5 (the model wins). */
  n_wins: number;
  /** Judgements with preference < 1.5 (the baseline wins). */
  n_wins_base: number;
  /** Judgements with preference exactly 1.5 (or the legacy 0). */
  n_draws: number;
  /** Judgements with a valid preference in [1, 2] (NaN / null are left out). */
  n_total: number;
  /** Win rate after rounding every preference to 1, 1.5 or 2. */
  discrete_win_rate: number;
  /** Mean length in characters (Unicode code points) of the model's outputs, truncated to an integer. */
  avg_length: number;
}

/**
 * The keys of `WinRateStats`, in the order alpaca_eval's leaderboard prints them.
 *
 * @example
 * console.log(WIN_RATE_KEYS.map((key) => fmt(stats[key])).join('\t'));
 */
export const WIN_RATE_KEYS = [
  'win_rate',
  'standard_error',
  'n_wins',
  'n_wins_base',
  'n_draws',
  'n_total',
  'discrete_win_rate',
  'avg_length',
] as const satisfies readonly (keyof WinRateStats)[];

type PreferenceLike = number | null | undefined;

const isValid = (p: number) => p >= 1 && p <= 2; // NaN fails both comparisons

/**
 * What is wrong with a preference, or undefined when it is one alpaca_eval holds: a number in [1, 2]
 * (weighted judges give any number between), 0 (a legacy draw), or null / undefined / NaN (no
 * judgement, as pandas writes it). The message follows `where` (`[3].preference`).
 */
export function preferenceProblem(p: unknown, where: string): string | undefined {
  if (p === null || p === undefined) return undefined;
  if (typeof p === 'number' && (p === 0 || isValid(p) || Number.isNaN(p))) return undefined;
  return `${where} must be a number in [1, 2] (1: output_1 is better, 2: output_2, 1.5 a draw), 0 (a draw, as older files write it) or null (no judgement), got ${typeof p === 'number' ? String(p) : JSON.stringify(p)}`;
}

/** Throws EvalInputError on the first preference alpaca_eval does not hold (it would be dropped from one rate and counted in the other). */
function checkPreferences(preferences: readonly unknown[], where: (i: number) => string): void {
  preferences.forEach((p, i) => {
    const problem = preferenceProblem(p, where(i));
    if (problem) throw new EvalInputError('', problem, { field: 'preference' });
  });
}

/** Continuous preferences as alpaca_eval's AbsoluteScoringRule sees them: 0 -> 1.5, invalid dropped. */
function describe(preferences: readonly PreferenceLike[]) {
  const values = preferences.map((p) => (p === null || p === undefined ? Number.NaN : p));
  const n_draws = values.filter((p) => p === 1.5 || p === 0).length;
  const shifted = values
    .map((p) => (p === 0 ? 1.5 : p))
    .filter(isValid)
    .map((p) => p - 1);
  return {
    win_rate: mean(shifted) * 100,
    standard_error: standardError(shifted) * 100,
    n_wins: shifted.filter((p) => p > 0.5).length,
    n_wins_base: shifted.filter((p) => p < 0.5).length,
    n_draws,
    n_total: shifted.length,
  };
}

/**
 * The discrete win rate, as alpaca_eval's ZeroOneScoringRule: 1.5 -> draw, everything else rounded
 * half-to-even to 1 or 2, draws counted as 1.5. A preference outside [1, 2] other than 0 (a draw)
 * and null / NaN (none), such as 2.4, throws `EvalInputError` naming it.
 *
 * @example
 * discreteWinRate([1.2, 1.9, 1.5]); // 50
 */
export function discreteWinRate(preferences: readonly PreferenceLike[]): number {
  checkPreferences(preferences, (i) => `preferences[${i}]`);
  const rounded = preferences.map((p) => {
    if (p === null || p === undefined || Number.isNaN(p)) return Number.NaN;
    const r = roundHalfEven(p === 1.5 ? 0 : p);
    return r === 0 ? 1.5 : r;
  });
  return describe(rounded).win_rate;
}

/**
 * Code-point length of a string (what Python's `len` counts), not UTF-16 units.
 *
 * @example
 * codePointLength('héllo 👋'); // 7
 */
export function codePointLength(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

/**
 * alpaca_eval's leaderboard statistics from pairwise annotations in which `output_2` is the model and
 * `output_1` the baseline. `avg_length` is over `output_2` of every annotation (what alpaca_eval
 * computes from the model's outputs), unless `outputs` gives the model's outputs explicitly. A
 * preference outside [1, 2] other than 0 (a draw) and null / NaN (none), such as 2.4 or a string,
 * throws `EvalInputError` naming its annotation: left out of `win_rate` and rounded into `discrete_win_rate`, it would make the two
 * disagree without a word (`readAnnotations` refuses such files the same way).
 *
 * @example
 * const stats = winRate(readAnnotations('annotations.json'));
 * console.log(stats.win_rate.toFixed(2), '±', stats.standard_error.toFixed(2));
 */
export function winRate(
  annotations: readonly { preference?: PreferenceLike; output_2?: string }[],
  options: { outputs?: readonly string[] | undefined } = {},
): WinRateStats {
  const preferences = annotations.map((a) => a.preference);
  checkPreferences(preferences, (i) => `annotations[${i}].preference`);
  const texts = options.outputs ?? annotations.map((a) => a.output_2 ?? '');
  const lengths = texts.map(codePointLength);
  return {
    ...describe(preferences),
    discrete_win_rate: discreteWinRate(preferences),
    avg_length: lengths.length === 0 ? Number.NaN : Math.trunc(mean(lengths)),
  };
}

/**
 * The statistics as the `eval winrate` command prints them: one `key value` line each, or with
 * `json` one JSON object with exactly the keys of `WIN_RATE_KEYS` (NaN as null).
 *
 * @example
 * console.log(formatWinRate(winRate(readAnnotations('annotations.json')), { json: true }));
 */
export function formatWinRate(stats: WinRateStats, options: { json?: boolean | undefined } = {}): string {
  const entries = WIN_RATE_KEYS.map((k) => [k, Number.isFinite(stats[k]) ? stats[k] : null] as const);
  if (options.json) return JSON.stringify(Object.fromEntries(entries));
  const width = Math.max(...WIN_RATE_KEYS.map((k) => k.length));
  return entries
    .map(
      ([k, v]) =>
        `${k.padEnd(width)}  ${v === null ? 'n/a' : Number.isInteger(v) ? String(v) : v.toFixed(6)}`,
    )
    .join('\n');
}
