import { readFileSync } from 'node:fs';
import { shownValue } from '@implicit-it/rules';
import { abortableBatch, keptInJournal } from './abort.js';
import { doneRecordDifferences, isFinishedAs, startRun, writeRecorded } from './done-record.js';
import { AdapterContractError, EvalInputError } from './errors.js';
import { sha256 } from './hash.js';
import { writeJson } from './json-file.js';
import type { ProgressCallbacks, RankSource, TokenRank } from './model-interfaces.js';
import { type ModelOutput, readModelOutputs } from './model-outputs.js';

/**
 * Lin et al. (2023)'s categories of an aligned token by its rank under the base model.
 *
 * @example
 * const tally: Record<ShiftCategory, number> = { unshifted: 0, marginal: 0, shifted: 0 };
 * for (const rank of [1, 1, 2, 9]) tally[shiftCategory(rank)]++;
 */
export type ShiftCategory = 'unshifted' | 'marginal' | 'shifted';

/**
 * The category of a base-model rank: 1 unshifted, 2-3 marginal, more than 3 shifted.
 *
 * @example
 * shiftCategory(2); // 'marginal'
 */
export function shiftCategory(rank: number): ShiftCategory {
  if (!Number.isInteger(rank) || rank < 1)
    throw new AdapterContractError(`token rank must be an integer >= 1, got ${rank}`);
  return rank === 1 ? 'unshifted' : rank <= 3 ? 'marginal' : 'shifted';
}

/**
 * Token counts and percentages of each category.
 *
 * @example
 * const c: ShiftCounts = (await tokenShift({ base: baseRanks, aligned })).overall;
 * console.log(`${c.shifted} of ${c.tokens} tokens shifted (${fmt(c.percent.shifted)}%)`);
 */
export interface ShiftCounts {
  tokens: number;
  unshifted: number;
  marginal: number;
  shifted: number;
  /** Percentages of `tokens` (NaN when there are none). */
  percent: { unshifted: number; marginal: number; shifted: number };
}

/**
 * The result of `tokenShift`.
 *
 * @example
 * const r: ShiftResult = await tokenShift({ base: baseRanks, aligned, topK: 5 });
 * r.topShifted.map((t) => t.text);
 */
export interface ShiftResult {
  /** What was compared, e.g. `llama2-chat vs llama2` or `llama2+rules vs llama2`. */
  label: string;
  outputs: number;
  overall: ShiftCounts;
  /** Counts by response position (0-based token index), in bins `[from, to)`; `to` null is open. */
  byPosition: (ShiftCounts & { from: number; to: number | null })[];
  /** The most frequently shifted tokens (rank > 3), most frequent first: `topK` of them at most. */
  topShifted: { text: string; id: number; count: number; percentOfShifted: number }[];
}

/**
 * Options of `tokenShift`.
 *
 * @example
 * const options: TokenShiftOptions = {
 *   base: runtimeRankSource(baseModel), aligned: 'run/outputs/chat.json', label: 'chat vs base',
 *   positionBins: [0, 10, 100], out: 'run/shift/chat.json',
 * };
 */
export interface TokenShiftOptions extends ProgressCallbacks {
  /**
   * The base model, ranking each token of the aligned outputs after its instruction's prompt. That
   * prompt must be the one the aligned outputs were generated after: `tokenShift` cannot see prompts,
   * so give `runtimeRankSource` the aligned run's `format` and `addBos`, and check that both models
   * build the same prompt (under `chat-template` each model renders its own template; compare
   * `model.prompt(...)` of each, as `implicit-it eval shift` does, which then passes the base model's
   * on as `runtimeRankSource`'s `prompts`). Ranked after another prompt, the shares mix two prompt
   * formats.
   */
  base: RankSource;
  /**
   * The aligned model's greedy outputs (model_outputs.json rows), or a path to them. Rows with
   * `token_ids` (see `generateRun({ tokenIds: true })`) are ranked token by token exactly as generated;
   * others are re-tokenized from their text.
   */
  aligned: readonly Pick<ModelOutput, 'instruction' | 'output' | 'token_ids'>[] | string;
  /** Name of the comparison (default `aligned vs base`). */
  label?: string | undefined;
  /** Outputs per `rankTokens` call (default 8). */
  batchSize?: number | undefined;
  /** Left edges of the position bins (default [0, 1, 2, 5, 10, 20, 50, 100, 200]; the last bin is open). */
  positionBins?: readonly number[] | undefined;
  /** How many shifted tokens to list, an integer >= 0 (default 20; 0 lists none: the statistics only). */
  topK?: number | undefined;
  /** Resume journal; default `${out}.journal.jsonl` when `out` is given, none otherwise. Removed after success. */
  journalPath?: string | undefined;
  /** Where to write the result JSON (optional). */
  out?: string | undefined;
  /**
   * Write over an `out` that holds something else: the finished analysis of other settings (as its
   * `.done` record says) or a file without such a record, and begin again a pending journal of
   * another run (or a damaged one). Default false: refused before any work, naming what differs
   * (an `EvalInputError`; a journal's, a `ResumeMismatchError`). `out`'s own finished result (same settings)
   * is replaced either way.
   */
  replace?: boolean | undefined;
  fingerprint?: Record<string, unknown> | undefined;
  /**
   * Stops the analysis: `tokenShift` rejects with `RunAbortedError` wherever the abort lands (before
   * a batch or within one), the journal keeping every batch finished before it. Passed to `base`.
   */
  signal?: AbortSignal | undefined;
}

const DEFAULT_BINS = [0, 1, 2, 5, 10, 20, 50, 100, 200];

function counts(ranks: readonly number[]): ShiftCounts {
  const c = { unshifted: 0, marginal: 0, shifted: 0 };
  for (const r of ranks) c[shiftCategory(r)]++;
  const pct = (x: number) => (ranks.length === 0 ? Number.NaN : (100 * x) / ranks.length);
  return {
    tokens: ranks.length,
    ...c,
    percent: { unshifted: pct(c.unshifted), marginal: pct(c.marginal), shifted: pct(c.shifted) },
  };
}

/**
 * Token-distribution shift (Lin et al., 2023, "The Unlocking Spell on Base LLMs"): for every token of
 * the aligned model's greedy output, its rank under the base model given the same prefix; tokens are
 * unshifted (rank 1), marginal (2-3) or shifted (> 3). Reports the percentages overall and by
 * position, and the most frequently shifted tokens. Use it twice to compare an instruction-tuned model
 * with its base, and base+rules with base (which shows which tokens the rules change).
 *
 * @example
 * const r = await tokenShift({ base: baseRanks, aligned: 'run/outputs/eos-uniform-diversity.json', label: 'rules vs base' });
 * console.log(r.overall.percent.shifted);
 */
export async function tokenShift(options: TokenShiftOptions): Promise<ShiftResult> {
  const aligned = typeof options.aligned === 'string' ? readModelOutputs(options.aligned) : options.aligned;
  const bins = [...(options.positionBins ?? DEFAULT_BINS)];
  if (bins[0] !== 0 || bins.some((b, i) => i > 0 && b <= bins[i - 1]!)) {
    throw new EvalInputError('', `positionBins must start at 0 and increase, got [${bins.join(', ')}]`, {
      field: 'positionBins',
    });
  }
  const topK = options.topK ?? 20;
  if (!Number.isSafeInteger(topK) || topK < 0) {
    throw new EvalInputError(
      '',
      `topK must be an integer >= 0 (0 lists no tokens: the statistics only), got ${shownValue(topK)}`,
      {
        field: 'topK',
      },
    );
  }
  const batchSize = options.batchSize ?? 8;
  const journalPath = options.journalPath ?? (options.out ? `${options.out}.journal.jsonl` : undefined);
  // the journal's header, and the settings `out`'s record will hold (the same, with the summary's):
  // the outputs hashed once for both; the record checked now, written at the end
  const header = journalPath !== undefined || options.out ? shiftHeader(options, aligned) : undefined;
  const record = options.out ? shiftRecord(options, aligned, header) : undefined;
  const journal = startRun<{ i: number; tokens: TokenRank[] }>({
    out: options.out,
    record,
    journalPath,
    header,
    replace: options.replace,
    what: 'analysis',
  });
  try {
    const done = new Map<number, TokenRank[]>();
    for (const e of journal?.entries ?? []) done.set(e.i, e.tokens);
    const resumed = done.size;
    const pending = aligned.map((_, i) => i).filter((i) => !done.has(i));
    const progress = () =>
      options.onProgress?.({
        phase: 'shift',
        done: done.size,
        total: aligned.length,
        resumed,
        ...(options.label ? { label: options.label } : {}),
      });
    progress();
    const kept = () => keptInJournal(done.size, aligned.length, 'outputs', journalPath);
    for (let start = 0; start < pending.length; start += batchSize) {
      const group = pending.slice(start, start + batchSize);
      const ranked = await abortableBatch(options.signal, 'token shift', kept, () =>
        options.base.rankTokens(
          group.map((i) => {
            const a = aligned[i]!;
            return {
              instruction: a.instruction,
              response: a.output,
              ...(a.token_ids ? { responseIds: a.token_ids } : {}),
            };
          }),
          options.signal ? { signal: options.signal } : {},
        ),
      );
      if (!Array.isArray(ranked) || ranked.length !== group.length) {
        throw new AdapterContractError(
          `rankTokens returned ${ranked?.length} results for ${group.length} outputs`,
        );
      }
      const entries = group.map((i, g) => ({ i, tokens: ranked[g]!.tokens }));
      for (const e of entries) for (const t of e.tokens) shiftCategory(t.rank); // validate before journaling
      journal?.append(entries);
      for (const e of entries) done.set(e.i, e.tokens);
      progress();
    }
    const all = aligned.map((_, i) => done.get(i)!);
    const ranks = all.flatMap((tokens) => tokens.map((t) => t.rank));
    const byPosition = bins.map((from, b) => {
      const to = b + 1 < bins.length ? bins[b + 1]! : null;
      const inBin = all.flatMap((tokens) =>
        tokens.filter((_, p) => p >= from && (to === null || p < to)).map((t) => t.rank),
      );
      return { from, to, ...counts(inBin) };
    });
    const shiftedTokens = new Map<string, { text: string; id: number; count: number }>();
    for (const tokens of all) {
      for (const t of tokens) {
        if (t.rank <= 3) continue;
        const key = `${t.id}`;
        const entry = shiftedTokens.get(key) ?? { text: t.text, id: t.id, count: 0 };
        entry.count++;
        shiftedTokens.set(key, entry);
      }
    }
    const overall = counts(ranks);
    const topShifted = [...shiftedTokens.values()]
      .sort((a, b) => b.count - a.count || a.id - b.id)
      .slice(0, topK)
      .map((t) => ({ ...t, percentOfShifted: (100 * t.count) / overall.shifted }));
    const result: ShiftResult = {
      label: options.label ?? 'aligned vs base',
      outputs: aligned.length,
      overall,
      byPosition,
      topShifted,
    };
    if (options.out) {
      await writeRecorded(options.out, record!, (out) => writeJson(out, result));
    }
    journal?.remove();
    return result;
  } finally {
    journal?.close();
  }
}

type AlignedRows = readonly Pick<ModelOutput, 'instruction' | 'output' | 'token_ids'>[];
type ShiftSettings = Pick<TokenShiftOptions, 'fingerprint' | 'label' | 'topK' | 'positionBins'>;

/** What identifies a token-shift run's ranks: its journal's header. */
function shiftHeader(options: ShiftSettings, aligned: AlignedRows): Record<string, unknown> {
  return {
    kind: 'shift',
    version: 1,
    outputs: sha256(aligned.map((a) => [a.instruction, a.output, a.token_ids ?? null])),
    fingerprint: options.fingerprint ?? null,
  };
}

/** What identifies a finished token shift (`${out}.done`): the ranks' settings and the summary's. */
function shiftRecord(
  options: ShiftSettings,
  aligned: AlignedRows,
  header = shiftHeader(options, aligned),
): Record<string, unknown> {
  return {
    ...header,
    label: options.label ?? 'aligned vs base',
    topK: options.topK ?? 20,
    positionBins: [...(options.positionBins ?? DEFAULT_BINS)],
  };
}

/**
 * Options of `finishedShift`: `tokenShift`'s, without the base model, with `out` required.
 *
 * @example
 * const settings: FinishedShiftOptions = { aligned, out: 'run/shift/rules.json', label: 'rules vs base' };
 * const shift = finishedShift(settings) ?? (await tokenShift({ ...settings, base: baseRanks }));
 */
export type FinishedShiftOptions = ShiftSettings & {
  aligned: AlignedRows;
  out: string;
  journalPath?: string | undefined;
};

/**
 * The result in `out` of a `tokenShift` run that finished with these very settings (same aligned
 * outputs, fingerprint, label, top-k, bins), or undefined: no result or no record of its run
 * (`${out}.done`), a journal still pending, a record of other settings, or a file that is not such a
 * result.
 *
 * @example
 * const done = finishedShift({ aligned, out: 'run/shift/rules.json', label: 'rules vs base', fingerprint });
 */
export function finishedShift(options: FinishedShiftOptions): ShiftResult | undefined {
  const journalPath = options.journalPath ?? `${options.out}.journal.jsonl`;
  if (!isFinishedAs(options.out, shiftRecord(options, options.aligned), journalPath)) return undefined;
  let stored: ShiftResult;
  try {
    stored = JSON.parse(readFileSync(options.out, 'utf8')) as ShiftResult;
  } catch {
    return undefined;
  }
  const same =
    stored?.label === (options.label ?? 'aligned vs base') &&
    stored.outputs === options.aligned.length &&
    typeof stored.overall?.tokens === 'number' &&
    Array.isArray(stored.byPosition) &&
    Array.isArray(stored.topShifted);
  if (!same) return undefined;
  // JSON wrote NaN (percentages of no tokens) as null
  const nan = <T extends ShiftCounts>(c: T): T => ({
    ...c,
    percent: Object.fromEntries(
      Object.entries(c.percent).map(([k, v]) => [k, v === null ? Number.NaN : v]),
    ) as ShiftCounts['percent'],
  });
  return { ...stored, overall: nan(stored.overall), byPosition: stored.byPosition.map(nan) };
}

/**
 * How the token-shift run recorded in `${out}.done` differs from one with these settings (`outputs`,
 * `label`, `topK`, `positionBins`, `fingerprint.KEY`...): empty when the same, undefined without a
 * readable record.
 *
 * @example
 * const diff = finishedShiftDifferences({ aligned, out, label });
 */
export function finishedShiftDifferences(options: FinishedShiftOptions): string[] | undefined {
  return doneRecordDifferences(options.out, shiftRecord(options, options.aligned));
}
