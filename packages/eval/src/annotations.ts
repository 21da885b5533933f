import { EvalInputError } from './errors.js';
import { readJson, writeJson } from './json-file.js';
import { preferenceProblem } from './win-rate.js';

/**
 * One pairwise judgement in alpaca_eval's `annotations.json` format. `output_1` is the baseline
 * (reference), `output_2` the model being evaluated; `preference` is in [1, 2]: 1 means output_1 is
 * better, 2 means output_2 is better, 1.5 (or the legacy 0) a draw, `null` no judgement (NaN).
 * Fields alpaca_eval does not know (`preference_source`, `is_switched_outputs`) are ignored by it.
 *
 * @example
 * const a: Annotation = {
 *   instruction: 'Name a prime.', output_1: '7', generator_1: 'gpt4_1106_preview',
 *   output_2: 'Nine.', generator_2: 'rules', annotator: 'weighted_judge:gpt-4-turbo', preference: 1.2,
 * };
 * winRate([a]).n_wins_base; // 1
 */
export interface Annotation {
  instruction: string;
  output_1: string;
  generator_1: string;
  output_2: string;
  generator_2: string;
  annotator: string;
  preference: number | null;
  dataset?: string;
  /**
   * How the preference was obtained: from `top_logprobs`, from the discrete one-token answer, not at
   * all (null preference: an answer without m or M), without a judge because both outputs are
   * identical (a draw), or not at all because the judge refused the request (null preference, the
   * judge's message in `judge_error`).
   */
  preference_source?: 'logprobs' | 'discrete' | 'none' | 'identical' | 'refused';
  /** The judge's refusal of the request (`preference_source: 'refused'`): its HTTP status and message. */
  judge_error?: string;
  /** True when the judge saw output_2 first (labelled `m`). */
  is_switched_outputs?: boolean;
  raw_completion?: unknown;
  price_per_example?: number;
  time_per_example?: number;
  [extra: string]: unknown;
}

/**
 * Whether an annotation is a pair the judge refused (`judgePairs` writes it so when the judge answers
 * its request with HTTP 400, 413 or 422): `preference_source: 'refused'` and no preference (null).
 * Such a pair is not judged: `winRate` leaves it out, as it leaves out every null preference, and a
 * rerun of `judgePairs` asks the judge for it again. A preference given since (a file edited by hand)
 * makes it a judgement like any other, counted in the win rate: not refused. `writeReport` lists these
 * pairs under "not judged", and `implicit-it eval winrate` counts them apart from judgements that could
 * not be read (`preference_source: 'none'`).
 *
 * @example
 * const row = { preference: null, preference_source: 'refused' as const, judge_error: 'HTTP 400' };
 * isRefusedPair(row); // true
 * isRefusedPair({ ...row, preference: 2 }); // false
 */
export function isRefusedPair(annotation: Pick<Annotation, 'preference' | 'preference_source'>): boolean {
  return annotation.preference_source === 'refused' && annotation.preference === null;
}

/**
 * Reads an alpaca_eval `annotations.json` (ours or theirs) and checks the fields the statistics use:
 * a preference outside [1, 2], 0 and null is refused, naming its annotation, rather than silently left
 * out of the statistics.
 *
 * @example
 * const annotations = readAnnotations('results/claude-2/weighted_alpaca_eval_gpt4_turbo/annotations.json');
 */
export function readAnnotations(path: string): Annotation[] {
  const data = readJson(path);
  if (!Array.isArray(data)) {
    throw new EvalInputError(path, 'expected a JSON array of annotations (alpaca_eval annotations.json)');
  }
  data.forEach((row, i) => {
    if (typeof row !== 'object' || row === null || Array.isArray(row)) {
      throw new EvalInputError(path, `annotation ${i} is not an object`, { field: `[${i}]` });
    }
    const r = row as Record<string, unknown>;
    // alpaca_eval's values: [1, 2] (weighted judges give any number between), 0 a legacy draw, null none
    const problem = preferenceProblem(r.preference, `[${i}].preference`);
    if (problem) throw new EvalInputError(path, problem, { field: 'preference' });
    if (r.preference === undefined) r.preference = null;
    for (const key of ['instruction', 'output_1', 'output_2'] as const) {
      if (typeof r[key] !== 'string') {
        // the outputs of a model, not judgements of them: say so rather than name a missing field
        const outputs =
          r.output_1 === undefined && r.output_2 === undefined && typeof r.output === 'string'
            ? ': this looks like model outputs ({instruction, output, generator}), not annotations; judge them against a baseline first with `judgePairs` (CLI: implicit-it eval judge), which writes annotations'
            : '';
        throw new EvalInputError(
          path,
          `[${i}].${key} must be a string, got ${JSON.stringify(r[key])}${outputs}`,
          { field: key },
        );
      }
    }
  });
  return data as Annotation[];
}

/**
 * Writes annotations in alpaca_eval's `annotations.json` format (a JSON array, 2-space indent), atomically.
 *
 * @example
 * await writeAnnotations('run/annotations/model.json', annotations);
 */
export async function writeAnnotations(path: string, annotations: readonly Annotation[]): Promise<void> {
  await writeJson(path, annotations);
}
