import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { EvalInputError } from './errors.js';

/**
 * Writes `text` to `path` atomically: a temporary file beside it, fsync, rename. A reader (or a run
 * killed mid-write) sees the old file or the new one, never half of one.
 *
 * @example
 * await writeFileAtomic('out.json', JSON.stringify(outputs, null, 2));
 */
export async function writeFileAtomic(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/**
 * Writes a value as pretty-printed JSON (2 spaces, trailing newline), atomically. NaN and
 * infinities become `null`, as pandas writes them.
 *
 * @example
 * await writeJson('winrate.json', stats);
 */
export async function writeJson(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Reads a JSON file; the error names the file and what is wrong with it. A leading UTF-8 byte order
 * mark (Notepad's, PowerShell 5's `Out-File -Encoding utf8`) is skipped, as in `.jsonl` files.
 *
 * @example
 * const rows = readJson('annotations.json');
 */
export function readJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new EvalInputError(path, `cannot read the file (${(cause as Error).message})`, { cause });
  }
  try {
    return JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (cause) {
    throw new EvalInputError(path, `is not valid JSON (${(cause as Error).message})`, { cause });
  }
}
