import { readFile } from 'node:fs/promises';
import { parse } from 'csv-parse/sync';
import { DataFileError } from './errors.js';

/** Reads a whole raw data file as UTF-8, turning a missing file into a `DataFileError` that says how to fix it. */
export async function readRawText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (cause) {
    throw new DataFileError(
      path,
      `cannot read it (${(cause as NodeJS.ErrnoException).code ?? String(cause)}); pass the \`dataDir\` option (CLI: --data-dir) pointing at the shared data directory (../shared/data)`,
      { cause },
    );
  }
}

/** One parsed JSONL line, or the reason it could not be parsed. */
export type JsonlLine = { line: number; value: unknown } | { line: number; error: string };

/**
 * Parses JSONL text line by line (1-based line numbers; blank lines ignored); bad lines are returned,
 * not thrown. Windows line ends (`\r\n`) and a leading UTF-8 byte order mark (which Notepad and
 * PowerShell 5's `Out-File -Encoding utf8` write) are read as the plain text.
 */
export function parseJsonlLines(text: string): JsonlLine[] {
  const out: JsonlLine[] = [];
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.replace(/\r$/, '');
    if (raw.trim() === '') continue;
    try {
      out.push({ line: i + 1, value: JSON.parse(raw) });
    } catch (e) {
      out.push({ line: i + 1, error: `invalid JSON (${(e as Error).message})` });
    }
  }
  return out;
}

/** One CSV record keyed by header name with the line it starts on, or a record csv-parse rejected. */
export type CsvRecord = { line: number; row: Record<string, string> } | { line: number; error: string };

/**
 * Parses CSV text with a header row using csv-parse (quoted multi-line fields, doubled quotes).
 * Records with the wrong column count or bad quoting are returned as errors with their line.
 */
export function parseCsvRecords(text: string): { header: string[]; records: CsvRecord[] } {
  const errors: CsvRecord[] = [];
  const parsed = parse(text, {
    info: true,
    raw: true,
    bom: true,
    relax_column_count: true,
    skip_empty_lines: true,
    skip_records_with_error: true,
    on_skip: (err) => {
      errors.push({
        line: Number(err?.lines ?? 0),
        error: `unparseable CSV (${err?.code ?? 'error'}: ${err?.message ?? ''})`,
      });
      return undefined;
    },
  }) as unknown as { info: { lines: number }; raw: string; record: string[] }[];
  const [head, ...rest] = parsed;
  const header = head?.record ?? [];
  const records: CsvRecord[] = rest.map(({ info, raw, record }) => {
    const line = info.lines - (raw.match(/\n/g)?.length ?? 0) + (raw.endsWith('\n') ? 1 : 0);
    if (record.length !== header.length) {
      return { line, error: `has ${record.length} fields, the header has ${header.length}` };
    }
    return { line, row: Object.fromEntries(header.map((h, j) => [h, record[j]!])) };
  });
  return { header, records: [...records, ...errors].sort((a, b) => a.line - b.line) };
}
