import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { getDatasetRecipe } from './dataset-recipes.js';
import { DataFileError, FinetuneOptionError } from './errors.js';
import { type LengthStats, lengthStats } from './length-stats.js';
import type { ChatExample } from './messages.js';
import { buildOwnData, type DataSource, ownDataName } from './own-data.js';
import type { RecipeOutput } from './recipe-output.js';
import type { RowIssue } from './row-issue.js';
import { type SplitOptions, splitTrainValidation } from './split.js';
import { checkKeys } from './training-recipe.js';

/**
 * Default raw data directory: `../shared/data` relative to the working directory.
 *
 * @example
 * await buildDataset({ recipe: 'chess', dataDir: process.env.IMPLICIT_IT_DATA ?? DEFAULT_DATA_DIR });
 */
export const DEFAULT_DATA_DIR = '../shared/data';

/**
 * Options of {@link buildDataset}.
 *
 * @example
 * const options: BuildDatasetOptions = { recipe: 'poetry', out: 'out/poetry.jsonl', validation: { count: 50, seed: 2 } };
 * const { files } = await buildDataset(options); // files.validation: the absolute path of out/poetry.val.jsonl
 */
export interface BuildDatasetOptions {
  /** A dataset recipe name (see `DATASET_RECIPE_NAMES`); or `data`, your own examples. */
  recipe?: string | undefined;
  /**
   * Your own examples instead of a recipe: a JSONL file of open-instruct `messages` rows
   * (`{"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}`,
   * `id` and `dataset` optional). Rows are checked as the recipes' are: a malformed one is left out
   * and listed in `issues` (see `buildOwnData`). The result's `recipe` is the file's name
   * (`ownDataName`) and its `source` the file with its SHA-256.
   */
  data?: string | undefined;
  /** With `data`: empty every user turn, as `lima-response` does LIMA's (response tuning). */
  removeInstructions?: boolean | undefined;
  /** Raw data directory of the recipes (default `../shared/data`). */
  dataDir?: string | undefined;
  /** Where to write the training JSONL; nothing is written when omitted. */
  out?: string | undefined;
  /**
   * Hold out a seeded validation split, written to `validation.out` (default: `out` with `.val.jsonl`;
   * the CLI's `--validation-out`). A split of no examples (`count: 0`) writes no validation file.
   */
  validation?: (SplitOptions & { out?: string | undefined }) | undefined;
  /** Called as the build advances. */
  onProgress?: ((event: { stage: 'read' | 'split' | 'write'; message: string }) => void) | undefined;
}

/**
 * What {@link buildDataset} made: the examples plus a summary that is also the CLI's `--json` output.
 *
 * @example
 * const result: BuildDatasetResult = await buildDataset({ recipe: 'poetry' });
 * for (const issue of result.issues) console.warn(`${issue.file}:${issue.line}: ${issue.reason}`);
 */
export interface BuildDatasetResult {
  /** The recipe's name, or the name your own data goes by (`ownDataName`). */
  recipe: string;
  /** Your own data's file (with `data`); undefined for a recipe's. */
  source?: DataSource;
  /** Examples in the training output (after any validation split). */
  count: number;
  /** Examples in the validation output (0 without a split). */
  validationCount: number;
  /** Examples the recipe produced before the split. */
  total: number;
  /**
   * The paper's count for this recipe (for your own data: its rows); `total !== expected` means rows
   * were skipped or malformed.
   */
  expected: number;
  /** Raw records read. */
  rawCount: number;
  /** Rows not turned into examples (skipped + malformed). */
  skipped: number;
  /** Each such row with its file, line and reason. */
  issues: RowIssue[];
  /** Character lengths of user content, assistant content, and whole examples. */
  stats: { userChars: LengthStats; assistantChars: LengthStats; totalChars: LengthStats };
  /** Files written. */
  files: { train?: string; validation?: string };
  /**
   * What the caller should know of the files: a validation file of an earlier build where this one
   * writes none (no split, or a split of no examples), left as it was.
   */
  notes: string[];
  train: ChatExample[];
  validation: ChatExample[];
}

/**
 * Serializes examples as JSONL in the open-instruct `messages` format (`{dataset, id, messages}`).
 *
 * @example
 * examplesToJsonl([{ dataset: 'gsm8k', id: 'gsm8k_0', messages: [{ role: 'user', content: '2+2?' }] }]);
 * // '{"dataset":"gsm8k","id":"gsm8k_0","messages":[{"role":"user","content":"2+2?"}]}\n'
 */
export function examplesToJsonl(examples: ChatExample[]): string {
  return examples
    .map((e) => `${JSON.stringify({ dataset: e.dataset, id: e.id, messages: e.messages })}\n`)
    .join('');
}

/**
 * Builds one of the paper's training sets from the raw files, optionally holds out a seeded
 * validation split, and writes JSONL. Malformed rows never throw: they are listed in `issues` with
 * their line numbers and counted in `skipped`; a missing raw file, or one that makes no example,
 * throws `DataFileError`, and a validation split that holds out every example `FinetuneOptionError`
 * (field `validation`): nothing is written then. So does an option it does not have (`valdation`,
 * `validation.fracton`, named with the option meant) or a `validation` that is not an object, before
 * any data is read: either would otherwise hold out nothing without a word.
 *
 * @example
 * const r = await buildDataset({ recipe: 'mbpp', dataDir: '../shared/data', out: 'mbpp.jsonl' });
 * r.count; // 374
 * r.skipped; // 0
 */
export async function buildDataset(options: BuildDatasetOptions): Promise<BuildDatasetResult> {
  checkBuildOptions(options);
  const progress = options.onProgress ?? (() => {});
  const { built, name, file, fix, source } = await readExamples(options, progress);
  // nothing to train on is an error, not an empty file
  if (built.examples.length === 0) {
    const first = built.issues[0];
    throw new DataFileError(
      file,
      built.rawCount === 0
        ? `holds no records: ${fix}`
        : `none of its ${built.rawCount} records makes a ${name} example (${built.issues.length} skipped${first ? `, the first at line ${first.line}: ${first.reason}` : ''}): ${fix}`,
    );
  }
  const asked = options.validation?.count;
  if (typeof asked === 'number' && Number.isInteger(asked) && asked > built.examples.length) {
    // the split's own range, [0, n], would name n, which leaves nothing to train on
    const n = built.examples.length;
    throw new FinetuneOptionError(
      'validation',
      `asks to hold out ${asked} of the ${n} ${name} examples; give a count of at most ${n - 1} (leaving one or more to train on), or a fraction`,
    );
  }
  const { train, validation } = options.validation
    ? splitTrainValidation(built.examples, options.validation)
    : { train: built.examples, validation: [] as ChatExample[] };
  if (train.length === 0) {
    const n = built.examples.length;
    throw new FinetuneOptionError(
      'validation',
      `holds out all ${n} ${name} examples, which leaves nothing to train on; hold out fewer (a count below ${n}, or a smaller fraction)`,
    );
  }
  if (options.validation)
    progress({ stage: 'split', message: `${train.length} train, ${validation.length} validation` });

  // where the held-out examples go: validation.out, else beside out (with or without a split: the file
  // an earlier build's split wrote there)
  const valPath = options.validation?.out
    ? resolve(options.validation.out)
    : options.out
      ? resolve(options.out).replace(/(\.jsonl)?$/, '.val.jsonl')
      : undefined;
  // a split of no examples writes no validation file, as planJob writes no data/validation: an empty
  // file, or none reported, would read as a validation set. An earlier build's is not this build's
  // output to remove (written over only by a split that holds examples out): it is left, and said.
  const notes =
    validation.length === 0 && valPath !== undefined && existsSync(valPath)
      ? [
          `${valPath} is left as it was, not this build's validation set: this build holds out no examples (all ${train.length} are in the training set)`,
        ]
      : [];
  const files: BuildDatasetResult['files'] = {};
  if (options.out) {
    const out = resolve(options.out);
    const valOut = options.validation && validation.length > 0 ? valPath : undefined;
    if (options.validation && valPath === out) {
      throw new FinetuneOptionError(
        'validation.out',
        `is the training output ${out}: the held-out examples would overwrite the training set; give another file`,
      );
    }
    // both folders before either file: a validation output that cannot be written leaves no training file
    await makeFolder(out, 'out');
    if (valOut !== undefined) await makeFolder(valOut, 'validation.out');
    await writeFile(out, examplesToJsonl(train));
    files.train = out;
    if (valOut !== undefined) {
      await writeFile(valOut, examplesToJsonl(validation));
      files.validation = valOut;
    }
    progress({ stage: 'write', message: `wrote ${Object.values(files).join(', ')}` });
  }

  const sum = (e: ChatExample, role?: string) =>
    e.messages.filter((m) => !role || m.role === role).reduce((n, m) => n + m.content.length, 0);
  return {
    recipe: name,
    ...(source && { source }),
    count: train.length,
    validationCount: validation.length,
    total: built.examples.length,
    expected: built.expected,
    rawCount: built.rawCount,
    skipped: built.issues.length,
    issues: built.issues,
    stats: {
      userChars: lengthStats(built.examples.map((e) => sum(e, 'user'))),
      assistantChars: lengthStats(built.examples.map((e) => sum(e, 'assistant'))),
      totalChars: lengthStats(built.examples.map((e) => sum(e))),
    },
    files,
    notes,
    train,
    validation,
  };
}

/**
 * The examples of `recipe` or `data` (exactly one), with the name they go by, the file(s) read and
 * what to do where they make none.
 */
async function readExamples(
  options: BuildDatasetOptions,
  progress: NonNullable<BuildDatasetOptions['onProgress']>,
): Promise<{ built: RecipeOutput; name: string; file: string; fix: string; source?: DataSource }> {
  const { recipe: recipeName, data, removeInstructions } = options;
  checkDataChoice(options);
  if (data !== undefined) {
    progress({ stage: 'read', message: `reading ${resolve(data)}` });
    const { name, source, ...built } = await buildOwnData(data, removeInstructions ?? false);
    const fix =
      'nothing to train on; give a JSONL file of {"messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}]} rows';
    return { built, name, file: source.file, fix, source };
  }
  const recipe = getDatasetRecipe(recipeName!);
  const dataDir = resolve(options.dataDir ?? DEFAULT_DATA_DIR);
  progress({ stage: 'read', message: `reading ${recipe.files.join(', ')} from ${dataDir}` });
  const built = await recipe.build(dataDir);
  return {
    built,
    name: recipe.name,
    file: recipe.files.map((f) => join(dataDir, f)).join(', '),
    fix: 'nothing to train on; restore the file, or pass the `dataDir` option (CLI: --data-dir) pointing at a complete copy of the shared data (../shared/data)',
  };
}

/**
 * The name a build of `recipe` or `data` goes by (a sweep's job directories are named after it),
 * known before anything is read: the recipe's, or your file's (`ownDataName`). Refuses what
 * `buildDataset` refuses of the two. @internal
 */
export function datasetName(
  options: Pick<BuildDatasetOptions, 'recipe' | 'data' | 'removeInstructions'>,
): string {
  checkDataChoice(options);
  return options.data !== undefined ? ownDataName(options.data) : getDatasetRecipe(options.recipe!).name;
}

/** The options of {@link buildDataset}, and of its `validation`. */
const BUILD_DATASET_OPTIONS = [
  'recipe',
  'data',
  'removeInstructions',
  'dataDir',
  'out',
  'validation',
  'onProgress',
] as const satisfies readonly (keyof BuildDatasetOptions)[];
const VALIDATION_OPTIONS = ['fraction', 'count', 'seed', 'out'] as const;

/**
 * Refuses an option `buildDataset` does not have, and a `validation` that is not an object of its
 * own: a misspelt `valdation` or `{ fracton: 0.05 }`, or `validation: 0.05`, would hold out nothing
 * without a word, and the job would train on the examples meant for validation.
 */
function checkBuildOptions(options: BuildDatasetOptions): void {
  if (typeof options !== 'object' || options === null || Array.isArray(options))
    throw new FinetuneOptionError('options', 'expected an object of buildDataset options');
  checkKeys(options, BUILD_DATASET_OPTIONS, '', 'an option of buildDataset');
  const { validation } = options;
  if (validation === undefined) return;
  if (typeof validation !== 'object' || validation === null || Array.isArray(validation))
    throw new FinetuneOptionError(
      'validation',
      `expected an object such as { fraction: 0.05, seed: 1 } or { count: 50 }, got ${JSON.stringify(validation)}`,
    );
  checkKeys(validation, VALIDATION_OPTIONS, 'validation.', 'an option of the validation split');
}

/** Exactly one of `recipe` and `data`, and `removeInstructions` only with `data` (`FinetuneOptionError`). */
function checkDataChoice(options: Pick<BuildDatasetOptions, 'recipe' | 'data' | 'removeInstructions'>): void {
  const { recipe: recipeName, data, removeInstructions } = options;
  if ((recipeName === undefined) === (data === undefined))
    throw new FinetuneOptionError(
      recipeName === undefined ? 'recipe' : 'data',
      recipeName === undefined
        ? 'give a dataset recipe (one of the paper\'s training sets), or `data`: a JSONL file of your own {"messages": [...]} rows'
        : 'give either a recipe or `data` (your own examples), not both',
    );
  if (removeInstructions !== undefined && typeof removeInstructions !== 'boolean')
    throw new FinetuneOptionError(
      'removeInstructions',
      `must be true or false, got ${JSON.stringify(removeInstructions)}`,
    );
  if (data !== undefined && (typeof data !== 'string' || data.length === 0))
    throw new FinetuneOptionError('data', `must be the path of a JSONL file, got ${JSON.stringify(data)}`);
  if (data === undefined && removeInstructions)
    throw new FinetuneOptionError(
      'removeInstructions',
      'applies to your own `data`; the recipes say it themselves (lima-response is LIMA with its instructions removed)',
    );
}

/** Creates the folder of an output file, or says which option names an unusable one. */
async function makeFolder(file: string, field: string): Promise<void> {
  try {
    await mkdir(dirname(file), { recursive: true });
  } catch (cause) {
    throw new FinetuneOptionError(
      field,
      `cannot create the folder of ${file} (${cause instanceof Error ? cause.message : String(cause)}); give a file in a folder that can be written`,
    );
  }
}

/**
 * The JSON summary of a build (no examples): what `implicit-it finetune data --json` prints.
 *
 * @example
 * console.log(JSON.stringify(datasetSummary(await buildDataset({ recipe: 'gsm' }))));
 */
export function datasetSummary(result: BuildDatasetResult): Omit<BuildDatasetResult, 'train' | 'validation'> {
  const { train: _t, validation: _v, ...summary } = result;
  return summary;
}
