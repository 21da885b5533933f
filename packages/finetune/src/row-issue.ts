/**
 * A raw row the build did not turn into an example: `skipped` when the paper's recipe drops it on
 * purpose (a poem without a name), `malformed` when it cannot be parsed. `line` is 1-based: the
 * JSONL line, the line where a CSV record starts, the line of a PGN game's first header.
 *
 * @example
 * const issue: RowIssue = { kind: 'skipped', file: 'poetry/poems.csv', line: 12, reason: 'empty "poem name"' };
 */
export interface RowIssue {
  kind: 'skipped' | 'malformed';
  file: string;
  line: number;
  reason: string;
}
