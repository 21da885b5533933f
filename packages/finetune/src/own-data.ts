import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { DATASET_RECIPE_NAMES } from './dataset-recipes.js';
import { DataFileError } from './errors.js';
import type { ChatExample } from './messages.js';
import { parseJsonlLines } from './raw-files.js';
import type { RecipeOutput } from './recipe-output.js';
import { toChatExample } from './recipes-lima.js';
import type { RowIssue } from './row-issue.js';

/**
 * Where a build's examples came from when they are your own (`buildDataset`'s `data`): the file,
 * its SHA-256 (the job records which data it was planned on) and whether the user turns were emptied.
 *
 * @example
 * const { source } = await buildDataset({ data: 'my-chats.jsonl' });
 * if (source) console.log(`built from ${source.file} (sha256 ${source.sha256.slice(0, 12)})`);
 */
export interface DataSource {
  /** The JSONL file, as an absolute path. */
  file: string;
  sha256: string;
  removeInstructions: boolean;
}

/**
 * The name a file of your own examples goes by (a job's `recipe`, a sweep's job directories, each
 * example's `dataset` where the row names none): its name without `.jsonl`, with characters other
 * than letters, digits, `.`, `_` and `-` as `-`; one that is also a recipe's name (`gsm.jsonl`) gets
 * `-data` after it, so that a job of your data never reads as one of the paper's.
 *
 * @example
 * ownDataName('data/my chats.jsonl'); // 'my-chats'
 * ownDataName('gsm.jsonl'); // 'gsm-data'
 */
export function ownDataName(file: string): string {
  const stem =
    basename(file)
      .replace(/\.jsonl$/i, '')
      .replace(/[^\w.-]+/g, '-') || 'data';
  return (DATASET_RECIPE_NAMES as readonly string[]).includes(stem) ? `${stem}-data` : stem;
}

/** Fields of the row formats people convert from, with how to write them as messages. */
const OTHER_FORMATS: readonly [readonly string[], string][] = [
  [
    ['instruction', 'output'],
    'an Alpaca row ({instruction, input, output}): write it as {"messages": [{"role": "user", "content": instruction (and input)}, {"role": "assistant", "content": output}]}',
  ],
  [
    ['prompt', 'completion'],
    'a prompt/completion row: write it as {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]}',
  ],
  [
    ['prompt', 'response'],
    'a prompt/response row: write it as {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]}',
  ],
];

/** Why a row without `messages` is not one, where it looks like a row of another common format. */
function otherFormat(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || 'messages' in value) return undefined;
  return OTHER_FORMATS.find(([keys]) => keys.every((k) => k in value))?.[1];
}

/** One row of your own as an example, or why it is left out (its id not checked against others'). */
function ownExample(value: unknown, id: string, dataset: string): ChatExample | string {
  const other = otherFormat(value);
  if (other !== undefined) return `not a messages row but ${other}`;
  const ex = toChatExample(value, { id, dataset });
  if (typeof ex === 'string') return ex;
  if (!ex.messages.some((m) => m.role === 'assistant' && m.content.length > 0))
    return 'no assistant message with content: nothing to train on (the loss is on assistant turns only)';
  return ex;
}

/**
 * Your own training examples: a JSONL file of open-instruct `messages` rows (`{"messages": [{"role":
 * "user", "content": ...}, {"role": "assistant", "content": ...}]}`, `id` and `dataset` optional). A
 * row without an `id` gets `<name>_<n>` (`n` its 0-based row); one whose id an earlier row has, or
 * with no assistant message that has content (nothing to train on: the loss is on assistant turns
 * only), is left out as `malformed`, with its line. `removeInstructions` empties every user turn, as
 * the `lima-response` recipe does LIMA's (response tuning). `expected` is every row read: your data
 * has no paper's count. `buildDataset({ data })` builds it with a validation split and output files.
 *
 * @example
 * const built = await buildOwnData('my-chats.jsonl', false);
 * for (const issue of built.issues) console.warn(`${issue.file}:${issue.line}: ${issue.reason}`);
 * console.log(`${built.name}: ${built.examples.length} of ${built.rawCount} rows`);
 */
export async function buildOwnData(
  path: string,
  removeInstructions: boolean,
): Promise<RecipeOutput & { name: string; source: DataSource }> {
  const file = resolve(path);
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new DataFileError(
      file,
      `cannot read it (${code ?? String(cause)}); give \`data\` (CLI: --data) a JSONL file of {"messages": [...]} rows`,
      { cause },
    );
  }
  const name = ownDataName(file);
  const lines = parseJsonlLines(bytes.toString('utf8'));
  const examples: ChatExample[] = [];
  const issues: RowIssue[] = [];
  const firstLine = new Map<string, number>();
  const shown = basename(file);
  for (const [n, l] of lines.entries()) {
    let ex = 'error' in l ? l.error : ownExample(l.value, `${name}_${n}`, name);
    if (typeof ex !== 'string' && firstLine.has(ex.id))
      ex = `id ${JSON.stringify(ex.id)} is the id of line ${firstLine.get(ex.id)} too: ids name one example each`;
    if (typeof ex === 'string') {
      issues.push({ kind: 'malformed', file: shown, line: l.line, reason: ex });
      continue;
    }
    firstLine.set(ex.id, l.line);
    if (removeInstructions)
      ex.messages = ex.messages.map((m) => (m.role === 'user' ? { role: 'user', content: '' } : m));
    examples.push(ex);
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  return {
    examples,
    issues,
    rawCount: lines.length,
    expected: lines.length,
    name,
    source: { file, sha256, removeInstructions },
  };
}
