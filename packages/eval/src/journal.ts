import {
  closeSync,
  existsSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { ResumeMismatchError } from './errors.js';

/**
 * An append-only JSONL journal: a header line that identifies the run, then one line per finished
 * item. Every `append` is written and fsynced before it returns, so a run killed at any moment
 * (kill -9 included) loses nothing it reported as done. On reopening, a torn or unparsable last line
 * (the process or the machine died mid-write) is cut off; a header that differs from this run's, or
 * a damaged line before the last, is a `ResumeMismatchError`.
 *
 * @example
 * const j = Journal.open<{ i: number; output: string }>('out.json.journal.jsonl', { model: 'm' });
 * j.append([{ i: 0, output: 'hi' }]);
 * j.entries; // everything appended so far, this run and earlier ones
 */
export class Journal<T> {
  readonly path: string;
  readonly entries: T[];
  private fd: number;

  private constructor(path: string, fd: number, entries: T[]) {
    this.path = path;
    this.fd = fd;
    this.entries = entries;
  }

  /**
   * Opens (or creates) the journal at `path` for a run identified by `header`. `restart`: a journal
   * of another run (another header) or a damaged one is emptied and begun again for this run, instead
   * of refused; this run's own journal is resumed either way.
   */
  static open<T>(
    path: string,
    header: Record<string, unknown>,
    options: { restart?: boolean } = {},
  ): Journal<T> {
    mkdirSync(dirname(path), { recursive: true });
    const headerLine = canonicalJson({ journal: header });
    let entries: T[] = [];
    let keepBytes = 0;
    if (existsSync(path)) {
      try {
        ({ entries, keepBytes } = Journal.read<T>(path, header, headerLine));
      } catch (error) {
        // begun again: nothing kept (entries and keepBytes are assigned on success only)
        if (options.restart !== true || !ResumeMismatchError.isInstance(error)) throw error;
      }
    }
    const fd = openSync(path, existsSync(path) ? 'r+' : 'w+');
    ftruncateSync(fd, keepBytes);
    const journal = new Journal<T>(path, fd, entries);
    if (keepBytes === 0) journal.writeLines([headerLine]);
    return journal;
  }

  /**
   * The header of the journal at `path` (what `open` was given: the settings of the run that began
   * it), or undefined: no journal there, or a first line that is not a header (a torn or damaged
   * file). Lets a caller see what a pending run recorded before it opens the journal.
   *
   * @example
   * const header = Journal.header('run/outputs/rules.json.journal.jsonl');
   * console.log(header?.generator, header?.fingerprint); // the run's generator name and fingerprint
   */
  static header(path: string): Record<string, unknown> | undefined {
    if (!existsSync(path)) return undefined;
    const line = firstLine(path);
    if (line === undefined) return undefined;
    try {
      const stored = (JSON.parse(line) as { journal?: unknown } | null)?.journal;
      return isObject(stored) ? stored : undefined;
    } catch {
      return undefined;
    }
  }

  /** The entries of this run's journal at `path`, and how many of its bytes to keep (a torn end cut off). */
  private static read<T>(
    path: string,
    header: Record<string, unknown>,
    headerLine: string,
  ): { entries: T[]; keepBytes: number } {
    const entries: T[] = [];
    let keepBytes = 0;
    const buf = readFileSync(path);
    let start = 0;
    let line = 0;
    while (start < buf.length) {
      const nl = buf.indexOf(10, start);
      if (nl < 0) break; // torn last line: no newline, cut it off
      const text = buf.subarray(start, nl).toString('utf8');
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        // the last line: a write that never completed (power loss can leave garbage ending in a
        // newline); cut it off like a torn line. Damage before it is not ours to guess about.
        if (nl === buf.length - 1) break;
        throw new ResumeMismatchError(path, `line ${line + 1} is not valid JSON (the file is damaged)`);
      }
      if (line === 0) {
        if (canonicalJson(value) !== headerLine) {
          const stored = (value as { journal?: unknown } | null)?.journal;
          const diff = headerDifferences(header, isObject(stored) ? stored : {});
          throw new ResumeMismatchError(
            path,
            `was written by a run with other settings (different ${diff.join(', ') || 'header'})`,
            { differences: diff, ...(isObject(stored) ? { stored } : {}) },
          );
        }
      } else {
        entries.push(value as T);
      }
      line++;
      start = nl + 1;
      keepBytes = start;
    }
    return { entries, keepBytes };
  }

  /** Appends entries durably (written and fsynced before returning). */
  append(items: readonly T[]): void {
    if (items.length === 0) return;
    this.writeLines(items.map((item) => JSON.stringify(item)));
    this.entries.push(...items);
  }

  /** Closes the file; the journal stays on disk. */
  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  /** Closes and deletes the journal (after the run's final output is safely written). */
  remove(): void {
    this.close();
    rmSync(this.path, { force: true });
  }

  private writeLines(lines: string[]): void {
    // explicit position: the file is opened r+, not O_APPEND
    let position = fstatSync(this.fd).size;
    const bytes = Buffer.from(`${lines.join('\n')}\n`, 'utf8');
    let offset = 0;
    while (offset < bytes.length) {
      const n = writeSync(this.fd, bytes, offset, bytes.length - offset, position);
      offset += n;
      position += n;
    }
    fsyncSync(this.fd);
  }
}

/** JSON with object keys sorted at every level, so equal headers compare equal whatever their key order. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : v,
  );
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  !!v && typeof v === 'object' && !Array.isArray(v);

/**
 * The settings in which two run headers differ, as key paths: top-level keys, and within a
 * `fingerprint` object the paths down to the values that differ (`fingerprint.rules`,
 * `fingerprint.model.files.tokenizer.json`), so that a caller can name the option behind each. A path
 * stops where either side holds no object there (a key only one side has, a string against an object).
 *
 * @example
 * headerDifferences({ n: 10, fingerprint: { rules: 'off' } }, { n: 20, fingerprint: { rules: 'hewitt2024' } });
 * // ['n', 'fingerprint.rules']
 */
export function headerDifferences(run: Record<string, unknown>, stored: Record<string, unknown>): string[] {
  const differs = (a: unknown, b: unknown) => canonicalJson(a ?? null) !== canonicalJson(b ?? null);
  const out: string[] = [];
  const compare = (mine: Record<string, unknown>, theirs: Record<string, unknown>, path: string) => {
    for (const key of new Set([...Object.keys(mine), ...Object.keys(theirs)])) {
      const [a, b] = [mine[key], theirs[key]];
      if (!differs(a, b)) continue;
      if ((path !== '' || key === 'fingerprint') && isObject(a) && isObject(b))
        compare(a, b, `${path}${key}.`);
      else out.push(`${path}${key}`);
    }
  };
  compare(run, stored, '');
  return out;
}

/**
 * The first line of the file at `path` without its newline, or undefined when it has none: read in
 * chunks, so a header costs the same whether the journal holds ten items or ten thousand.
 */
function firstLine(path: string): string | undefined {
  const fd = openSync(path, 'r');
  try {
    const chunks: Buffer[] = [];
    const chunk = Buffer.alloc(64 * 1024);
    for (;;) {
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) return undefined;
      const nl = chunk.subarray(0, n).indexOf(10);
      chunks.push(Buffer.from(chunk.subarray(0, nl < 0 ? n : nl)));
      if (nl >= 0) return Buffer.concat(chunks).toString('utf8');
    }
  } finally {
    closeSync(fd);
  }
}
