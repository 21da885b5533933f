import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { shownValue } from '@implicit-it/rules';
import { EvalInputError } from './errors.js';
import { readJson, writeJson } from './json-file.js';

/**
 * One instruction of an evaluation set (alpaca_eval.jsonl rows have these fields and more).
 *
 * @example
 * const instructions: EvalInstruction[] = [{ instruction: 'Name a prime.', dataset: 'demo' }];
 * await generateRun({ generator, generatorName: 'smollm2', out: 'run/outputs/demo.json', instructions });
 */
export interface EvalInstruction {
  instruction: string;
  dataset?: string | undefined;
}

/**
 * One row of alpaca_eval's `model_outputs.json`.
 *
 * @example
 * const empty = readModelOutputs('run/outputs/rules.json').filter((o: ModelOutput) => o.output === '');
 */
export interface ModelOutput {
  instruction: string;
  output: string;
  generator: string;
  dataset?: string | undefined;
  /**
   * The generated token ids (an extra field, written only when `generateRun` is asked for it; alpaca_eval
   * ignores it). Token-shift analysis ranks exactly these tokens when they are present.
   */
  token_ids?: number[] | undefined;
}

function checkRows(
  rows: readonly Row[],
  file: string,
  required: readonly string[],
): Record<string, unknown>[] {
  return rows.map(({ value, where }) => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new EvalInputError(file, `${where} is not an object`, { field: where });
    }
    const r = value as Record<string, unknown>;
    for (const key of required) {
      if (typeof r[key] !== 'string') {
        throw new EvalInputError(file, `${where}: "${key}" must be a string, got ${JSON.stringify(r[key])}`, {
          field: key,
        });
      }
    }
    return r;
  });
}

/** One row of an input file, with where it is: `line N` of a `.jsonl` file (1-based), `[i]` of a JSON array. */
interface Row {
  value: unknown;
  where: string;
}

/**
 * The rows of a `.jsonl` file (one JSON value a line, blank lines skipped) or of a JSON array file;
 * anything else is an `EvalInputError` saying `expected`.
 */
function readRows(path: string, expected: string): Row[] {
  if (!path.endsWith('.jsonl')) {
    const data = readJson(path);
    if (!Array.isArray(data)) throw new EvalInputError(path, expected);
    return data.map((value, i) => ({ value, where: `[${i}]` }));
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new EvalInputError(path, `cannot read the file (${(cause as Error).message})`, { cause });
  }
  return text
    .split('\n')
    .map((line, i) => [line.trim(), i] as const)
    .filter(([line]) => line.length > 0)
    .map(([line, i]) => {
      try {
        return { value: JSON.parse(line) as unknown, where: `line ${i + 1}` };
      } catch (cause) {
        throw new EvalInputError(
          path,
          `line ${i + 1} is not valid JSON (a .jsonl file holds one object a line)`,
          {
            cause,
          },
        );
      }
    });
}

/**
 * Reads instructions from a `.jsonl` file (one JSON object per line, like alpaca_eval.jsonl) or a
 * `.json` array. Each row needs a string `instruction`; `dataset` is kept when present.
 *
 * @example
 * const instructions = readInstructions('../shared/data/alpaca_eval/alpaca_eval.jsonl'); // 805 rows
 */
export function readInstructions(path: string): EvalInstruction[] {
  const rows = readRows(path, 'expected a JSON array of {instruction} objects, or a .jsonl file');
  return checkRows(rows, path, ['instruction']).map((r) =>
    typeof r.dataset === 'string'
      ? { instruction: r.instruction as string, dataset: r.dataset }
      : { instruction: r.instruction as string },
  );
}

/**
 * The `instructions` option of `generateRun` / `planAblations`: a file read with `readInstructions`, or
 * the rows given, each checked to be an object with a string `instruction` (a plain string, the common
 * slip, is named with how to write it) before any work.
 */
export function instructionsOption(
  instructions: readonly EvalInstruction[] | string,
): readonly EvalInstruction[] {
  if (typeof instructions === 'string') return readInstructions(instructions);
  if (!Array.isArray(instructions)) {
    throw new EvalInputError(
      '',
      `instructions: expected an array of { instruction } objects or the path of a .jsonl / .json file of them, got ${shownValue(instructions).slice(0, 80)}`,
      { field: 'instructions' },
    );
  }
  instructions.forEach((row: unknown, i) => {
    if (typeof row === 'object' && row !== null && typeof (row as EvalInstruction).instruction === 'string')
      return;
    throw new EvalInputError(
      '',
      typeof row === 'string'
        ? `instructions[${i}]: expected an { instruction } object, got the string ${JSON.stringify(row.slice(0, 60))} (write it as { instruction: ${JSON.stringify(row.slice(0, 60))} })`
        : `instructions[${i}]: expected an object with a string "instruction", got ${shownValue(row).slice(0, 80)}`,
      { field: 'instructions' },
    );
  });
  return instructions;
}

/**
 * Reads alpaca_eval's `model_outputs.json` (a JSON array of `{instruction, output, generator, dataset}`),
 * or the same rows one a line in a `.jsonl` file.
 * A row without a `generator` is named after the file (`val-gpt3.5.json`: `val-gpt3.5`), so that
 * annotations against it say whose outputs they are.
 *
 * @example
 * const reference = readModelOutputs('../shared/data/alpaca_eval/gpt4_1106_preview.model_outputs.json');
 */
export function readModelOutputs(path: string): ModelOutput[] {
  const fileName = basename(path).replace(/(\.model_outputs)?\.jsonl?$/, '');
  const data = readRows(
    path,
    'expected a JSON array of {instruction, output, generator} (model_outputs.json), or a .jsonl file of them',
  );
  return checkRows(data, path, ['instruction', 'output']).map((r) => ({
    instruction: r.instruction as string,
    output: r.output as string,
    generator: typeof r.generator === 'string' ? r.generator : fileName,
    ...(typeof r.dataset === 'string' ? { dataset: r.dataset } : {}),
    ...(Array.isArray(r.token_ids) && r.token_ids.every((x) => Number.isInteger(x))
      ? { token_ids: r.token_ids as number[] }
      : {}),
  }));
}

/**
 * Writes outputs in alpaca_eval's `model_outputs.json` format, atomically.
 *
 * @example
 * await writeModelOutputs('outputs.json', [{ instruction: 'Hi', output: 'Hello!', generator: 'm', dataset: 'x' }]);
 */
export async function writeModelOutputs(path: string, outputs: readonly ModelOutput[]): Promise<void> {
  await writeJson(path, outputs);
}
