import { existsSync, readFileSync, rmSync } from 'node:fs';
import { EvalInputError } from './errors.js';
import { canonicalJson, headerDifferences, Journal } from './journal.js';
import { writeFileAtomic } from './json-file.js';

/**
 * `${out}.done`: the record of the run that wrote `out` (its settings), written after `out`, so that
 * a later call can tell the finished result of these very settings from one of other settings.
 *
 * @example
 * doneRecordPath('run/ranking/smol.json'); // 'run/ranking/smol.json.done'
 */
export const doneRecordPath = (out: string): string => `${out}.done`;

/**
 * Writes `out` (through `write`) and then the record of the run that wrote it, removing any older
 * record first: a run killed between the two leaves no record that lies about `out`.
 */
export async function writeRecorded(
  out: string,
  record: Record<string, unknown>,
  write: (out: string) => Promise<void>,
): Promise<void> {
  rmSync(doneRecordPath(out), { force: true });
  await write(out);
  await writeFileAtomic(doneRecordPath(out), `${canonicalJson(record)}\n`);
}

/**
 * The record of the run that wrote `out` (`${out}.done`: the settings of `generateRun`,
 * `rankResponses`, `tokenShift` or `judgePairs`, as its journal's header), or undefined (none, or
 * damaged). Lets a caller check outputs against what made them, such as the model whose tokenizer
 * wrote their `token_ids` (`fingerprint.model`).
 *
 * @example
 * const record = readDoneRecord('run/outputs/rules.json');
 * console.log(record?.kind, record?.fingerprint); // 'generate', the fingerprint the run was given
 */
export function readDoneRecord(out: string): Record<string, unknown> | undefined {
  if (!existsSync(doneRecordPath(out))) return undefined;
  try {
    const record: unknown = JSON.parse(readFileSync(doneRecordPath(out), 'utf8'));
    return record && typeof record === 'object' && !Array.isArray(record)
      ? (record as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether `out` holds a finished result of a run with exactly `record`'s settings: the file and its
 * record exist, no journal is pending, and the record is equal.
 */
export function isFinishedAs(out: string, record: Record<string, unknown>, journalPath: string): boolean {
  if (!existsSync(out) || existsSync(journalPath)) return false;
  const stored = readDoneRecord(out);
  return stored !== undefined && canonicalJson(stored) === canonicalJson(record);
}

/**
 * The settings (record key paths, as `headerDifferences`) in which the run recorded for `out` differs
 * from `record`: empty when they are the same, undefined when there is no readable record. Keys in
 * `ignore` (and below them) are what a record says of its result, not settings: never a difference.
 */
export function doneRecordDifferences(
  out: string,
  record: Record<string, unknown>,
  ignore: readonly string[] = [],
): string[] | undefined {
  const stored = readDoneRecord(out);
  if (stored === undefined) return undefined;
  return headerDifferences(record, stored).filter(
    (key) => !ignore.some((i) => key === i || key.startsWith(`${i}.`)),
  );
}

/**
 * Refuses (an `EvalInputError` naming `out`, field `out`) to write over an existing `out` that is not
 * the result of a run with `record`'s settings: the finished result of other settings (naming the
 * settings that differ) or a file without a readable record of the run that wrote it (written some
 * other way: it may be anything). Nothing is refused where `out` does not exist, where a journal is
 * pending for it (the run resumes it, or refuses a journal of another run), or with `replace`.
 */
export function refuseToReplace(
  out: string,
  record: Record<string, unknown>,
  options: {
    journalPath: string | undefined;
    replace: boolean | undefined;
    what: string;
    /** a cheaper way than replacing, for these differences (said first in the message) */
    instead?: (differences: string[]) => string | undefined;
    /** record keys that say what the result holds, not how it was made (see `doneRecordDifferences`) */
    ignore?: readonly string[];
  },
): void {
  if (options.replace === true || !existsSync(out)) return;
  if (options.journalPath !== undefined && existsSync(options.journalPath)) return;
  const diff = doneRecordDifferences(out, record, options.ignore);
  if (diff?.length === 0) return;
  const instead = diff === undefined ? undefined : options.instead?.(diff);
  const fix = `${instead ? `${instead}; or ` : ''}pass replace: true to replace it, or choose another out`;
  throw new EvalInputError(
    out,
    diff === undefined
      ? `exists, with no record of the run that wrote it (${doneRecordPath(out)}): it may be anything, so it is not replaced; ${fix}`
      : `holds the finished ${options.what} of another run (different ${diff.join(', ')}), so it is not replaced; ${fix}`,
    { field: 'out' },
  );
}

/** What `startRun` needs of a resumable step: where its result and journal go, and what identifies it. */
interface RunStart {
  /** the result file, checked by `refuseToReplace` (none: nothing to refuse) */
  out: string | undefined;
  /** the settings `out`'s record will hold (with an `out`) */
  record: Record<string, unknown> | undefined;
  /** the journal (none: the step keeps no journal) */
  journalPath: string | undefined;
  /** the journal's header (with a `journalPath`) */
  header: Record<string, unknown> | undefined;
  /** write over an `out` of another run and begin its journal of another run again */
  replace: boolean | undefined;
  what: string;
  instead?: (differences: string[]) => string | undefined;
}

/**
 * Where a resumable step (`generateRun`, `rankResponses`, `tokenShift`) starts, before any work: an
 * `out` that holds something else is refused (`refuseToReplace`), then the journal is opened, a
 * journal of another run refused too (`ResumeMismatchError`); `replace` covers both, so `out` and its
 * journal are written over together. Returns the journal (none without a `journalPath`).
 */
export function startRun<T>(
  run: RunStart & { journalPath: string; header: Record<string, unknown> },
): Journal<T>;
export function startRun<T>(run: RunStart): Journal<T> | undefined;
export function startRun<T>(run: RunStart): Journal<T> | undefined {
  if (run.out) {
    refuseToReplace(run.out, run.record!, {
      journalPath: run.journalPath,
      replace: run.replace,
      what: run.what,
      ...(run.instead ? { instead: run.instead } : {}),
    });
  }
  return run.journalPath === undefined
    ? undefined
    : Journal.open<T>(run.journalPath, run.header!, { restart: run.replace === true });
}
