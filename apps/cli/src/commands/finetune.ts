import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { constants } from 'node:os';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import {
  type BuildDatasetOptions,
  type BuildDatasetResult,
  buildDataset,
  DATASET_RECIPE_NAMES,
  DEFAULT_DATA_DIR,
  DEFAULT_LORA,
  datasetSummary,
  EPOCH_CHOICES,
  examplesToJsonl,
  type JobSpec,
  type LengthStats,
  learningRateAt,
  linearSchedule,
  modelContextLength,
  ownDataName,
  type PlanJobOptions,
  type PlanProgress,
  planJob,
  planSweep,
  type RunJobResult,
  readJob,
  runJob,
  SCHEDULE_STEPS,
  type ScheduleSteps,
  SEEDS,
  type SplitOptions,
  TrainingFailedError,
  type TrainingRecipe,
} from '@implicit-it/finetune';
import { isHubId } from '@implicit-it/runtime';
import { type Command, InvalidArgumentError, Option } from 'commander';
import {
  checkOutDirectory,
  checkOutPath,
  checkTokenizerDir,
  collect,
  dtypesArg,
  formerFlag,
  intArg,
  localModelId,
  meantDir,
  numArg,
  renamedFlag,
  type WeightDtype,
} from '../flags.js';
import {
  CliError,
  counted,
  EXIT,
  exitCodeOf,
  inCliTerms,
  note,
  painter,
  printJson,
  shellCommand,
  shellWord,
  usage,
} from '../output.js';
import { type Progress, progressBar, trainingBar } from '../progress.js';
import { sharedDefaultMissing, sharedDir } from '../shared-dir.js';

/**
 * The raw data directory when --data-dir is omitted: `<shared>/data`, else `../shared/data` (a
 * working directory beside a shared/ outside any clone). Neither there is a usage error that says
 * where it was looked for, as the eval commands' defaults say it, rather than a missing file of the
 * recipe under a directory the user never named.
 */
export function defaultDataDir(): string {
  const shared = sharedDir();
  const dir = shared ? join(shared, 'data') : DEFAULT_DATA_DIR;
  if (existsSync(dir)) return dir;
  throw usage(
    `--data-dir: give the directory of the paper's raw datasets: the default, data in the shared directory, is not there (${sharedDefaultMissing('data')})`,
    "set IMPLICIT_IT_SHARED_DIR to the repository's shared/ directory (the one that holds data/), or give --data-dir",
  );
}

/** `--checkpointing epoch|N|off`. */
export const checkpointingArg = (value: string): 'epoch' | number | false => {
  const text = value.trim();
  if (text === 'epoch') return 'epoch';
  if (text === 'off') return false;
  if (/^[1-9][0-9]*$/.test(text)) return Number(text);
  throw new InvalidArgumentError('expected epoch, a number of optimizer steps (1 or more) or off');
};

/** `--validation N|FRACTION`: an integer is a count of examples, a number in (0, 1) a fraction. */
export const splitArg = (value: string): SplitOptions => {
  const text = value.trim();
  if (/^\d+$/.test(text)) return { count: Number(text) };
  const n = Number(text);
  if (text !== '' && Number.isFinite(n) && n > 0 && n < 1) return { fraction: n };
  throw new InvalidArgumentError(
    `expected a count (an integer >= 0) or a fraction in (0, 1), got "${value}"`,
  );
};

/** A comma-separated list of integers in [min, max] (`5,7,10`). */
export const intListArg =
  (min: number, max?: number) =>
  (value: string): number[] => {
    const parts = value.split(',').map((s) => s.trim());
    const out = parts.map((p) => {
      const n = Number(p);
      if (!/^\d+$/.test(p) || !Number.isSafeInteger(n) || n < min || (max !== undefined && n > max)) {
        const range = max === undefined ? `>= ${min}` : `in [${min}, ${max}]`;
        throw new InvalidArgumentError(`expected comma-separated integers ${range}, got "${value}"`);
      }
      return n;
    });
    if (new Set(out).size !== out.length) throw new InvalidArgumentError(`repeated value in "${value}"`);
    return out;
  };

/** A path as the user would type it: relative to the working directory when inside it. */
function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel === '' ? '.' : rel.startsWith('..') || isAbsolute(rel) ? path : rel;
}

/** A status line on stderr, for terminals only (pipes, logs and --json runs stay quiet). */
function status(message: string): void {
  if (process.stderr.isTTY) note(painter(process.stderr)('dim', message));
}

/** The flag of each option that `@implicit-it/finetune`'s errors name (`split.count`, `maxSeqLength`). */
const DATA_FLAGS: Readonly<Record<string, string>> = {
  split: '--validation',
  'split.count': '--validation',
  'split.fraction': '--validation',
  'split.seed': '--validation-seed',
  validation: '--validation',
  'validation.out': '--validation-out',
  recipe: '--recipe',
  data: '--data',
  removeInstructions: '--remove-instructions',
  dataDir: '--data-dir',
};
const JOB_FLAGS: Readonly<Record<string, string>> = {
  ...DATA_FLAGS,
  model: '--model',
  tokenizer: '--tokenizer',
  maxSeqLength: '--max-seq-length',
  gpus: '--gpus',
  nodes: '--nodes',
  zero3: '--zero3',
  learningRate: '--learning-rate',
  warmupRatio: '--warmup-ratio',
  scheduleSteps: '--schedule-steps',
  effectiveBatchSize: '--effective-batch-size',
  perDeviceBatchSize: '--per-device-batch-size',
  epochs: '--epochs',
  seed: '--seed',
  'lora.rank': '--lora-rank',
  'lora.alpha': '--lora-alpha',
  'lora.dropout': '--lora-dropout',
  'lora.targetModules': '--lora-target-modules',
  checkpointing: '--checkpointing',
  keepCheckpoints: '--keep-checkpoints',
};

/**
 * A library message in the CLI's words: option names become the flags that set them (the leading
 * `split.count:` becomes `--validation:`, ``raise `maxSeqLength` (CLI: --max-seq-length)`` becomes
 * `raise --max-seq-length`, as {@link inCliTerms} says it). Names with no flag, and plain words, stay.
 */
export function inFlagTerms(message: string, flags: Readonly<Record<string, string>>): string {
  // longest first: `split.count` before `split`
  const names = Object.keys(flags).sort((a, b) => b.length - a.length);
  const literal = (n: string) => n.replace(/\./g, '\\.');
  // the library's "`NAME` (CLI: --flag)" first: the flag alone, not the name replaced inside it
  let out = inCliTerms(message);
  for (const name of names) {
    const flag = flags[name]!;
    // the leading "NAME: " of every FinetuneOptionError, and camelCase or dotted names in the text
    if (out.startsWith(`${name}: `)) out = `${flag}${out.slice(name.length)}`;
    if (/[A-Z.]/.test(name))
      out = out.replace(new RegExp(`(^|[^\\w.-])${literal(name)}(?![\\w.])`, 'g'), `$1${flag}`);
  }
  return out;
}

/** Rethrows a finetune option or data error in the CLI's terms (same exit code), others as they are. */
function rethrowInFlagTerms(error: unknown, flags: Readonly<Record<string, string>>): never {
  if (error instanceof Error && (error.name === 'FinetuneOptionError' || error.name === 'DataFileError')) {
    throw new CliError(inFlagTerms(error.message, flags), exitCodeOf(error));
  }
  throw error;
}

/** The options that say what to train on: a recipe, or your own file. */
function addDataOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option('--recipe <name>', "one of the paper's training sets").choices([...DATASET_RECIPE_NAMES]),
    )
    .option('--data <file.jsonl>', 'your own examples instead of a recipe: open-instruct messages rows')
    .option(
      '--remove-instructions',
      'with --data: empty every user turn (response tuning on your own data, as lima-response is LIMA)',
    );
}

/** What --recipe / --data / --remove-instructions ask for, checked: exactly one of recipe and data. */
function dataChoice(
  flags: OwnDataFlags,
): Pick<BuildDatasetOptions, 'recipe' | 'data' | 'removeInstructions'> {
  if (flags.recipe === undefined && flags.data === undefined)
    throw usage(
      "give --recipe NAME (one of the paper's training sets) or --data FILE.jsonl (your own examples)",
      `recipes: ${DATASET_RECIPE_NAMES.join(', ')}; --data reads rows of {"messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}]}`,
    );
  if (flags.recipe !== undefined && flags.data !== undefined)
    throw usage(
      `--recipe ${flags.recipe} and --data: give one (a recipe builds the paper's data, --data reads yours)`,
    );
  if (flags.data !== undefined && flags.dataDir !== undefined)
    throw usage("--data-dir is where the recipes' raw files are: drop it with --data, which names your file");
  if (flags.removeInstructions && flags.data === undefined)
    throw usage(
      '--remove-instructions applies to --data: the recipes say it themselves',
      'for response tuning on LIMA use --recipe lima-response',
    );
  return flags.data !== undefined
    ? { data: flags.data, ...(flags.removeInstructions && { removeInstructions: true }) }
    : { recipe: flags.recipe };
}

/** The name the data goes by: the recipe's, or your file's (`ownDataName`). */
const dataName = (flags: OwnDataFlags) =>
  flags.data !== undefined ? ownDataName(flags.data) : (flags.recipe ?? 'data');

const RECIPES_HELP = `
Recipes (the paper's training sets, from the raw files under --data-dir):
  lima            LIMA instruction-response pairs (instruction tuning: the
                  comparison model)
  lima-response   LIMA responses with every user turn emptied (response tuning)
  gsm             GSM8K math, first 1,000
  mbpp            MBPP Python, task_id 601..974 (374)
  poetry          poems by title (571)
  recipes         recipes by title, first 1,000
  chess           chess games from Elo headers, 1,000
Or your own examples: --data FILE.jsonl, rows of open-instruct messages
  {"messages": [{"role": "user", "content": "..."}, {"role": "assistant",
  "content": "..."}]} (id and dataset optional; the loss is on assistant turns
  only), with --remove-instructions for response tuning on them.`;

// ---------------------------------------------------------------------------------------------
// finetune data

/** The flags of `addDataOptions`, and --data-dir beside them. */
interface OwnDataFlags {
  recipe?: string;
  data?: string;
  removeInstructions?: boolean;
  dataDir?: string;
}

interface DataFlags extends OwnDataFlags {
  out?: string;
  validation?: SplitOptions;
  validationSeed?: number;
  /** --validation-seed's former name (plan's --seed is the training seed) */
  seed?: number;
  validationOut?: string;
  json?: boolean;
}

const statsLine = (s: LengthStats) =>
  `min ${s.min}, p50 ${s.p50}, mean ${s.mean}, p95 ${s.p95}, max ${s.max}`;

/** The issues of a build as `file:line kind: reason` lines, at most `limit` of them. */
export function issueLines(issues: BuildDatasetResult['issues'], limit = 20): string[] {
  const lines = issues.slice(0, limit).map((i) => `${i.file}:${i.line} ${i.kind}: ${i.reason}`);
  if (issues.length > limit) lines.push(`... and ${issues.length - limit} more (--json lists them all)`);
  return lines;
}

async function data(flags: DataFlags): Promise<void> {
  if (flags.validationOut && !flags.validation) throw usage('--validation-out needs --validation');
  // --out -: the JSONL on stdout, the summary on stderr
  const toStdout = flags.out === '-';
  if (toStdout && flags.json) throw usage('--out - writes the examples to stdout: drop --json');
  if (flags.validationOut === '-') throw usage('--validation-out: give a file (only --out may be -)');
  for (const [flag, path] of [
    ['--out', flags.out],
    ['--validation-out', flags.validationOut],
  ] as const) {
    if (path && path !== '-') checkOutPath(path, 'file', flag, { example: `${dataName(flags)}.jsonl` });
  }
  if (toStdout && flags.validation && !flags.validationOut) {
    throw usage('--out - with --validation: give --validation-out FILE for the held-out examples');
  }
  const validationSeed = renamedFlag(flags.validationSeed, flags.seed, '--validation-seed', '--seed') ?? 1;
  // as --validation-out: without a split it would be ignored without a word
  if ((flags.validationSeed !== undefined || flags.seed !== undefined) && !flags.validation)
    throw usage('--validation-seed needs --validation (the seed of the held-out split)');
  const choice = dataChoice(flags);
  // no examples (an empty or unusable raw file, a split that holds out all) is an error: exit 1 or 2
  const result = await buildDataset({
    ...choice,
    ...(choice.recipe !== undefined && { dataDir: flags.dataDir ?? defaultDataDir() }),
    out: toStdout ? undefined : flags.out,
    validation: flags.validation
      ? { ...flags.validation, seed: validationSeed, out: flags.validationOut }
      : undefined,
    onProgress: (e) => {
      if (!flags.json) status(e.message);
    },
  }).catch((error: unknown) => rethrowInFlagTerms(error, DATA_FLAGS));
  // a split of no examples (--validation 0) writes no validation file, as the library does with --out FILE
  const validationOut = result.validation.length > 0 ? flags.validationOut : undefined;
  if (toStdout) {
    // the folder first: nothing goes to stdout when the held-out file cannot be written
    if (validationOut) await mkdir(dirname(resolve(validationOut)), { recursive: true });
    process.stdout.write(examplesToJsonl(result.train));
    if (validationOut) await writeFile(validationOut, examplesToJsonl(result.validation));
  }
  printNotes(result.notes, DATA_FLAGS);
  const summary = datasetSummary(result);
  if (flags.json) {
    printJson(summary);
    return;
  }
  const p = painter();
  let out =
    `${p('bold', summary.recipe)}: ${summary.count} examples` +
    `${summary.validationCount ? ` + ${summary.validationCount} validation` : ''}` +
    (summary.source
      ? ` (${summary.total} built from ${summary.rawCount} rows of ${summary.source.file}, ${summary.skipped} left out${summary.source.removeInstructions ? '; user turns emptied' : ''})\n`
      : ` (${summary.total} built, paper ${summary.expected}; ${summary.rawCount} raw records, ${summary.skipped} skipped)\n`);
  if (summary.total !== summary.expected && !summary.source) {
    // the rows below only where there are any (a raw file of fewer records has none to show)
    const rows = summary.issues.length > 0 ? ': see the rows below' : '';
    out += p('yellow', `  ${summary.total} is not the paper's ${summary.expected}${rows}\n`);
  }
  out += `  user chars       ${statsLine(summary.stats.userChars)}\n`;
  out += `  assistant chars  ${statsLine(summary.stats.assistantChars)}\n`;
  out += `  example chars    ${statsLine(summary.stats.totalChars)}\n`;
  for (const line of issueLines(summary.issues)) out += `  ${p('yellow', line)}\n`;
  if (summary.files.train) out += `${p('green', 'wrote')} ${summary.files.train}\n`;
  if (summary.files.validation) out += `${p('green', 'wrote')} ${summary.files.validation}\n`;
  if (toStdout) {
    out += `${p('green', 'wrote')} ${result.count} examples to stdout\n`;
    if (validationOut) out += `${p('green', 'wrote')} ${validationOut}\n`;
  }
  if (!flags.out) out += p('dim', '  (no --out: nothing written)\n');
  // with --out - the examples own stdout: the summary goes to stderr
  (toStdout ? process.stderr : process.stdout).write(out);
}

// ---------------------------------------------------------------------------------------------
// finetune plan / sweep

interface JobFlags extends OwnDataFlags {
  model: string;
  out: string;
  gpus: number;
  nodes: number;
  tokenizer?: string;
  dataDir?: string;
  learningRate?: number;
  warmupRatio?: number;
  scheduleSteps?: ScheduleSteps;
  effectiveBatchSize?: number;
  perDeviceBatchSize?: number;
  maxSeqLength?: number;
  bf16: boolean;
  gradientCheckpointing?: boolean;
  lora?: boolean;
  loraRank?: number;
  loraAlpha?: number;
  loraDropout?: number;
  loraTargetModules?: string[];
  validation?: SplitOptions;
  validationSeed: number;
  zero3?: boolean;
  exportOnnx: boolean;
  addBos?: boolean;
  checkpointing: 'epoch' | number | false;
  keepCheckpoints: number;
  replace?: boolean;
  json?: boolean;
}

interface PlanFlags extends JobFlags {
  epochs?: number;
  seed?: number;
}

interface SweepFlags extends JobFlags {
  epochs?: number[];
  seeds?: number[];
}

function addJobOptions(cmd: Command): Command {
  return addDataOptions(cmd)
    .requiredOption(
      '-m, --model <dir|hub-id>',
      'base model: a local Hugging Face directory, or a hub id the training machine resolves',
    )
    .option('--gpus <n>', 'GPUs per node; 0 trains on CPU', intArg(0, 1024), 1)
    .option('--nodes <n>', 'nodes (run launch.sh on each)', intArg(1, 4096), 1)
    .option('--tokenizer <dir>', 'tokenizer directory (default: --model, which must then be a directory)')
    .option('--data-dir <dir>', 'raw data directory (default: ../shared/data)')
    .option('--learning-rate <lr>', 'peak learning rate (paper: 1e-5)', numArg(0, 1, { min: true }))
    .option(
      '--warmup-ratio <r>',
      'linear warmup share of the steps (paper: 0.03)',
      numArg(0, 1, { max: true }),
    )
    .addOption(
      new Option(
        '--schedule-steps <how>',
        "what the linear schedule is sized for: reference (the paper's: the steps finetune.py counts over the unsplit data, advanced once per process each optimizer step; its last steps can train at lr 0) or run (this run's steps: 0 after the last); the same with one process",
      ).choices([...SCHEDULE_STEPS]),
    )
    .option('--effective-batch-size <n>', 'examples per optimizer step (paper: 64)', intArg(1))
    .option('--per-device-batch-size <n>', 'examples per device per forward pass (paper: 1)', intArg(1))
    .option(
      '--max-seq-length <n>',
      "truncate examples to this many tokens (paper: 2048; at most the model's context)",
      intArg(2, undefined, 'a token is trained on as the prediction after at least one token before it'),
    )
    .option('--no-bf16', 'train in fp32 on GPUs (default: bf16, as the paper)')
    .option('--gradient-checkpointing', 'trade compute for memory')
    .option(
      '--lora',
      `LoRA instead of full finetuning (open-instruct's defaults: rank ${DEFAULT_LORA.rank}, alpha ${DEFAULT_LORA.alpha}, dropout ${DEFAULT_LORA.dropout})`,
    )
    .option('--lora-rank <n>', 'LoRA rank (implies --lora)', intArg(1))
    .option('--lora-alpha <n>', 'LoRA alpha (implies --lora)', numArg(0, 1e6, { min: true }))
    .option('--lora-dropout <p>', 'LoRA dropout (implies --lora)', numArg(0, 1, { max: true }))
    .option('--lora-target-modules <names>', 'comma-separated module names (implies --lora)', (v: string) =>
      v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    )
    .option(
      '--validation <n|fraction>',
      'hold out a seeded validation split (evaluated every epoch, never trained on)',
      splitArg,
    )
    .option('--validation-seed <n>', 'seed of the validation split', intArg(0, 2 ** 32 - 1), 1)
    .option('--zero3', 'DeepSpeed ZeRO-3 (default with GPUs)')
    .option('--no-zero3', 'plain data parallelism on GPUs, without DeepSpeed')
    .option(
      '--no-export-onnx',
      'skip the ONNX export after training (by optimum when installed, else by modelkit)',
    )
    .option(
      '--add-bos',
      "put the BOS text in front (open-instruct's --add_bos); a tokenizer without one (OLMo) gets its EOS, named the trained model's bos_token",
    )
    .option(
      '--checkpointing <epoch|N|off>',
      'save a checkpoint to resume from (`finetune run --resume`) at each epoch end, also every N optimizer steps, or never',
      checkpointingArg,
      'epoch' as const,
    )
    .option('--keep-checkpoints <n>', 'how many of the newest checkpoints to keep', intArg(1), 1)
    .option(
      '--replace',
      "plan over what a run of an earlier plan left in --out (its trained model, result.json, checkpoints, train logs; a sweep's jobs outside the new grid), removing it",
    )
    .option('--json', 'print what was written as one JSON object');
}

function trainingOverrides(flags: JobFlags): Partial<TrainingRecipe> {
  const t: Partial<TrainingRecipe> = {};
  if (flags.learningRate !== undefined) t.learningRate = flags.learningRate;
  if (flags.warmupRatio !== undefined) t.warmupRatio = flags.warmupRatio;
  if (flags.scheduleSteps !== undefined) t.scheduleSteps = flags.scheduleSteps;
  if (flags.effectiveBatchSize !== undefined) t.effectiveBatchSize = flags.effectiveBatchSize;
  if (flags.perDeviceBatchSize !== undefined) t.perDeviceBatchSize = flags.perDeviceBatchSize;
  if (flags.maxSeqLength !== undefined) t.maxSeqLength = flags.maxSeqLength;
  if (flags.bf16 === false) t.bf16 = false;
  if (flags.gradientCheckpointing) t.gradientCheckpointing = true;
  const lora =
    flags.lora ||
    flags.loraRank !== undefined ||
    flags.loraAlpha !== undefined ||
    flags.loraDropout !== undefined ||
    flags.loraTargetModules !== undefined;
  if (lora) {
    t.lora = {
      rank: flags.loraRank ?? DEFAULT_LORA.rank,
      alpha: flags.loraAlpha ?? DEFAULT_LORA.alpha,
      dropout: flags.loraDropout ?? DEFAULT_LORA.dropout,
      targetModules: flags.loraTargetModules ?? [...DEFAULT_LORA.targetModules],
    };
  }
  return t;
}

/** Reports planning on stderr (terminals only): data messages as lines, encoding as a bar. */
function planReporter(quiet: boolean): { onProgress: (e: PlanProgress) => void; stop: () => void } {
  let bar: Progress | undefined;
  let barLabel = '';
  const stop = () => {
    bar?.stop();
    bar = undefined;
  };
  return {
    onProgress(e) {
      if (quiet || !process.stderr.isTTY) return;
      if (e.stage === 'encode' && e.total !== undefined) {
        if (!bar || barLabel !== e.message) {
          stop();
          barLabel = e.message;
          bar = progressBar(e.message, e.total, 'examples');
        }
        bar.update(e.done ?? 0, e.total);
        return;
      }
      stop();
      status(e.message);
    },
    stop,
  };
}

function jobOptions(
  flags: JobFlags,
  training: Partial<TrainingRecipe>,
  onProgress: PlanJobOptions['onProgress'],
) {
  if (flags.out === '-') throw usage('--out: a job is a directory; give its path, not -');
  checkOutDirectory(flags.out, 'a job is a directory');
  if (flags.zero3 === true && flags.gpus === 0) {
    throw usage(
      '--zero3 with --gpus 0: DeepSpeed ZeRO-3 shards a model across GPUs, and a CPU job trains in one plain process',
      'drop --zero3 for a CPU job, or give --gpus N',
    );
  }
  const context = modelContextLength(flags.model);
  if (context && flags.maxSeqLength !== undefined && flags.maxSeqLength > context.positions) {
    throw usage(
      `--max-seq-length ${flags.maxSeqLength} is more than the model's context of ${context.positions} positions (max_position_embeddings in ${context.file})`,
      `give --max-seq-length ${context.positions} or less`,
    );
  }
  if (!existsSync(flags.model) && !isHubId(flags.model)) {
    throw new CliError(
      `--model: "${flags.model}" is neither a directory nor a hub id (owner/name)${meantDir(flags.model)}`,
      EXIT.load,
    );
  }
  // `models/Llama-2-7b-hf` where ./models exists but holds no such directory: most likely a typo of a
  // local path, which would plan a job the training machine then tries to download
  const owner = flags.model.split('/')[0]!;
  if (!existsSync(flags.model) && existsSync(owner) && statSync(owner).isDirectory())
    note(
      `note: --model ${flags.model}: no such directory here (though ./${owner} is one), so it is planned as a hub id, which the training machine downloads${meantDir(flags.model)}`,
    );
  if (flags.tokenizer === undefined && !existsSync(flags.model)) {
    // a hub id (checked above): the training machine downloads the model, but planning tokenizes the data here
    throw usage(
      `--model ${flags.model} is not a directory here, so planning has no tokenizer to encode the data with`,
      `give --tokenizer DIR, a directory with the tokenizer files of ${flags.model} (the training machine downloads the model itself)`,
    );
  }
  if (flags.tokenizer) checkTokenizerDir(flags.tokenizer);
  const choice = dataChoice(flags);
  return {
    ...choice,
    model: flags.model,
    out: flags.out,
    gpus: flags.gpus,
    nodes: flags.nodes,
    ...(choice.recipe !== undefined && { dataDir: flags.dataDir ?? defaultDataDir() }),
    ...(flags.tokenizer ? { tokenizer: flags.tokenizer } : {}),
    training,
    ...(flags.validation ? { validation: { ...flags.validation, seed: flags.validationSeed } } : {}),
    ...(flags.zero3 !== undefined ? { zero3: flags.zero3 } : {}),
    exportOnnx: flags.exportOnnx,
    ...(flags.addBos ? { addBos: true } : {}),
    checkpointing: flags.checkpointing,
    keepCheckpoints: flags.keepCheckpoints,
    ...(flags.replace ? { replace: true } : {}),
    onProgress,
  } satisfies PlanJobOptions;
}

/** One line about a job's hyperparameters. */
export function describeTraining(job: JobSpec): string {
  const t = job.training;
  const l = job.launch;
  const how = t.lora ? `LoRA rank ${t.lora.rank} alpha ${t.lora.alpha}` : 'full finetuning';
  return (
    `${counted(t.epochs, 'epoch')}, seed ${t.seed}, lr ${t.learningRate < 1e-3 ? t.learningRate.toExponential() : t.learningRate}, warmup ${t.warmupRatio}, ` +
    `batch ${t.effectiveBatchSize} = ${t.perDeviceBatchSize} x ${counted(l.processes, 'process', 'processes')} x ${t.gradientAccumulationSteps} accumulation, ` +
    `${t.maxSeqLength} tokens, ${l.bf16 ? 'bf16' : 'fp32'}, ${how}`
  );
}

/**
 * A job's learning-rate schedule, as train.py computes it: `mode`, what it is sized for (the same for
 * every job of a sweep), and `steps`, its length, how far each optimizer step advances it and where
 * its rate reaches 0 (which differ by epoch count).
 */
export function describeSchedule(job: JobSpec): { mode: string; steps: string } {
  const t = job.training;
  const processes = job.launch.processes;
  const s = linearSchedule({
    examples: job.counts.train,
    recipe: t,
    accumulation: t.gradientAccumulationSteps,
    processes,
  });
  const mode =
    t.scheduleSteps === 'reference'
      ? `reference (the paper's${processes === 1 ? '; with one process the same as run' : ''})`
      : t.scheduleSteps;
  // the first step past warmup whose schedule step is at or past the end: it trains at rate 0
  const zeroFrom = Math.ceil(s.scheduleTotal / s.advance) + 1;
  const end =
    zeroFrom <= s.totalSteps
      ? `lr 0 from step ${zeroFrom}`
      : `lr ${learningRateAt(s, t.learningRate, s.totalSteps + 1)} after the last`;
  return {
    mode,
    steps:
      `${s.scheduleTotal} steps, ${s.warmupSteps} warmup, advanced ${s.advance} per optimizer step; ` +
      `${s.totalSteps} optimizer steps, ${end}`,
  };
}

function describeLaunch(job: JobSpec): string {
  const l = job.launch;
  if (l.gpusPerNode === 0) return 'CPU, 1 process';
  return `${l.nodes} node${l.nodes > 1 ? 's' : ''} x ${l.gpusPerNode} GPU${l.gpusPerNode > 1 ? 's' : ''}${l.zero3 ? ', DeepSpeed ZeRO-3' : ''}`;
}

/**
 * A build's or a plan's notes (an earlier build's validation file left as it was, the paper's 2048
 * tokens lowered to the model's context) on stderr, always, in terms of the command's `flags`.
 */
function printNotes(notes: readonly string[], flags: Readonly<Record<string, string>> = JOB_FLAGS): void {
  for (const n of notes) note(painter(process.stderr)('yellow', `note: ${inFlagTerms(n, flags)}`));
}

async function plan(flags: PlanFlags): Promise<void> {
  const training = trainingOverrides(flags);
  if (flags.epochs !== undefined) training.epochs = flags.epochs;
  if (flags.seed !== undefined) training.seed = flags.seed;
  const reporter = planReporter(flags.json === true);
  let result: Awaited<ReturnType<typeof planJob>>;
  try {
    result = await planJob(jobOptions(flags, training, reporter.onProgress)).catch((error: unknown) =>
      rethrowInFlagTerms(error, JOB_FLAGS),
    );
  } finally {
    reporter.stop();
  }
  const { jobDir, job, files, notes } = result;
  printNotes(notes);
  if (flags.json) {
    printJson({ jobDir, files, job, notes: notes.map((n) => inFlagTerms(n, JOB_FLAGS)) });
    return;
  }
  const p = painter();
  const c = job.counts;
  const rel = shown(jobDir);
  const schedule = describeSchedule(job);
  process.stdout.write(
    `${p('green', 'planned')} ${jobDir}\n` +
      `  data      ${job.recipe}${job.source ? ` (${job.source.file}${job.source.removeInstructions ? ', user turns emptied' : ''})` : ''}: ${c.train} train examples (${c.trainTokens} tokens, ${c.trainedTokens} trained), ` +
      `${c.validation} validation, ${c.dropped} dropped, ${c.truncated} truncated\n` +
      // job.tokenizerDir is the job's own copy ("tokenizer"): name where it was copied from
      `  model     ${job.model}${job.tokenizerDir ? ` (tokenizer ${flags.tokenizer ?? flags.model}, copied to ${join(rel, job.tokenizerDir)})` : ''}\n` +
      `  training  ${describeTraining(job)}\n` +
      `  schedule  ${schedule.mode}: ${schedule.steps}\n` +
      `  launch    ${describeLaunch(job)}\n` +
      `  files     ${files.join(', ')}\n` +
      planNext(rel, job.launch.nodes),
  );
}

/**
 * The `next:` line of `finetune plan` for the job in `rel`: the command that trains it, for the shell
 * of `platform`, with how to start `launch.sh` on each node of a cluster (a bash command line, its
 * `VAR=value` words sh's: quoted for sh on every platform), or here (not on Windows, where the `bash`
 * is WSL's and `finetune run` starts the training without the script).
 */
export function planNext(rel: string, nodes: number, platform: NodeJS.Platform = process.platform): string {
  const run = `next: ${shellCommand(['implicit-it', 'finetune', 'run', rel], platform)}`;
  if (nodes > 1)
    return `${run}\n      or on each node: MACHINE_RANK=<0..${nodes - 1}> MAIN_PROCESS_IP=<node 0> bash ${shellWord(rel, 'linux')}/launch.sh\n`;
  return platform === 'win32' ? `${run}\n` : `${run}   (or: bash ${shellWord(rel, platform)}/launch.sh)\n`;
}

/**
 * The command that runs `finetune run` on every job directory of the sweep in `dir`, for the shell of
 * `platform`: a POSIX `for` loop over `dir/*\/` (its variable named `name`), or on Windows PowerShell's
 * `Get-ChildItem -Directory` piped to `ForEach-Object` (cmd.exe's `for /d` would be another command).
 */
export function eachJobCommand(
  dir: string,
  name = 'j',
  platform: NodeJS.Platform = process.platform,
): string {
  return platform === 'win32'
    ? `Get-ChildItem -Directory -LiteralPath ${shellWord(dir, platform)} | ForEach-Object { implicit-it finetune run $_.FullName }`
    : `for ${name} in ${shellWord(dir, platform)}/*/; do implicit-it finetune run "$${name}"; done`;
}

async function sweep(flags: SweepFlags): Promise<void> {
  const reporter = planReporter(flags.json === true);
  let result: Awaited<ReturnType<typeof planSweep>>;
  try {
    result = await planSweep({
      ...jobOptions(flags, trainingOverrides(flags), reporter.onProgress),
      epochs: flags.epochs,
      seeds: flags.seeds,
    }).catch((error: unknown) => rethrowInFlagTerms(error, JOB_FLAGS));
  } finally {
    reporter.stop();
  }
  const epochs = flags.epochs ?? [...EPOCH_CHOICES];
  const seeds = flags.seeds ?? [...SEEDS];
  printNotes(result.notes);
  if (flags.json) {
    printJson({
      sweepDir: result.sweepDir,
      recipe: result.jobs[0]!.job.recipe,
      epochs,
      seeds,
      jobs: result.jobs.map((j) => ({ name: j.name, epochs: j.epochs, seed: j.seed, jobDir: j.jobDir })),
      notes: result.notes.map((n) => inFlagTerms(n, JOB_FLAGS)),
    });
    return;
  }
  const p = painter();
  const first = result.jobs[0]!.job;
  const rel = shown(result.sweepDir);
  let out =
    `${p('green', 'planned')} ${result.jobs.length} jobs in ${result.sweepDir} (sweep.json lists them)\n` +
    `  epochs ${epochs.join(', ')} x seeds ${seeds.join(', ')}; ${first.counts.train} train examples, ` +
    `${first.counts.validation} validation; ${describeLaunch(first)}\n`;
  // the schedule's length differs by epoch count (not by seed): one line for each
  out += `  schedule  ${describeSchedule(first).mode}\n`;
  const width = Math.max(...epochs.map((e) => String(e).length));
  for (const e of epochs) {
    const job = result.jobs.find((j) => j.epochs === e)!.job;
    out += `    ${String(e).padStart(width)} epochs  ${describeSchedule(job).steps}\n`;
  }
  for (const j of result.jobs) out += `  ${j.name}\n`;
  out += `next: ${eachJobCommand(rel)}\n`;
  process.stdout.write(out);
}

// ---------------------------------------------------------------------------------------------
// finetune run

interface RunFlags {
  python?: string;
  replace?: boolean;
  onnxDtypes?: WeightDtype[];
  maxSteps?: number;
  resume?: boolean;
  env?: string[];
  verbose?: boolean;
  json?: boolean;
}

function parseEnv(pairs: string[] = []): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw usage(`--env: expected KEY=VALUE, got "${pair}"`);
    env[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return env;
}

/** The usage error of `finetune run` on a directory without job.json, with what the directory is instead. */
function notAJob(jobDir: string): CliError {
  const isDir = existsSync(jobDir) && statSync(jobDir).isDirectory();
  const entries = isDir ? readdirSync(jobDir) : [];
  // a sweep: one job directory per setting
  const jobs = entries.filter((e) => existsSync(join(jobDir, e, 'job.json'))).sort();
  if (jobs.length > 0) {
    return usage(
      `${jobDir}: a sweep of ${jobs.length} training jobs, not one job (no job.json)`,
      `run each job: ${shellCommand(['implicit-it', 'finetune', 'run', join(jobDir, jobs[0]!)])}${jobs.length > 1 ? `, and so on (${eachJobCommand(jobDir, 'job')})` : ''}`,
    );
  }
  if (entries.includes('config.json'))
    return usage(
      `${jobDir}: a model directory, not a training job (no job.json)`,
      `plan a job that trains it: implicit-it finetune plan --recipe NAME --model ${shellWord(jobDir)} --out jobs/NAME`,
    );
  return usage(
    `${jobDir}: not a training job (no job.json)`,
    `give a directory written by \`implicit-it finetune plan\` (or one job of \`finetune sweep\`)${entries.length === 0 ? `; write one with: implicit-it finetune plan --recipe NAME --model DIR --out ${shellWord(jobDir)}` : ''}`,
  );
}

/**
 * The command that resumes an interrupted `finetune run`: the job, `--resume`, and every flag given
 * that still applies (`--python`, `--env`, `--max-steps`, which the checkpoint was sized for,
 * `--onnx-dtypes`, `--verbose`, `--json`, the arguments for train.py), each word quoted for the shell
 * of `platform` (`shellWord`: POSIX single quotes, or Windows double quotes).
 */
export function resumeCommand(
  jobDir: string,
  trainArgs: readonly string[],
  flags: RunFlags,
  platform: NodeJS.Platform = process.platform,
): string {
  const words = ['implicit-it', 'finetune', 'run', jobDir, '--resume'];
  if (flags.python) words.push('--python', flags.python);
  for (const pair of flags.env ?? []) words.push('--env', pair);
  if (flags.maxSteps !== undefined) words.push('--max-steps', String(flags.maxSteps));
  if (flags.onnxDtypes) words.push('--onnx-dtypes', flags.onnxDtypes.join(','));
  if (flags.verbose) words.push('--verbose');
  if (flags.json) words.push('--json');
  if (trainArgs.length > 0) words.push('--', ...trainArgs);
  return shellCommand(words, platform);
}

/**
 * The `next:` lines of `finetune run` for the trained model in `out` (as shown), which goes by `name`
 * (`localModelId`: the job's name, its eval runs' generator): try it with `generate`, and generate its
 * evaluation outputs with `eval generate` without rules (as the paper evaluates a finetuned model),
 * into `run/outputs/NAME.json` for `eval judge --run-dir run`. Both load its ONNX graph: a model with
 * only a quantized one (`--onnx-dtypes q4`) gets that `--dtype`; one without any is exported first,
 * with `model export` where nothing tried to (the job planned with --no-export-onnx), or as the
 * `onnx` line says where the export failed. Commands for the shell of `platform` (`shellCommand`).
 */
export function runNext(
  out: string,
  name: string,
  onnx: RunJobResult['onnx'],
  platform: NodeJS.Platform = process.platform,
): string {
  const only = onnx?.exported && onnx.dtypes && !onnx.dtypes.includes('fp32') ? onnx.dtypes[0] : undefined;
  const model = ['--model', out, ...(only ? ['--dtype', only] : [])];
  const generate = `${shellCommand(['implicit-it', 'generate', ...model], platform)} "INSTRUCTION"`;
  const evaluate = shellCommand(
    ['implicit-it', 'eval', 'generate', ...model, '--rules', 'off', '--out', `run/outputs/${name}.json`],
    platform,
  );
  if (onnx?.exported) return `next: ${generate}\n      ${evaluate}\n`;
  const first =
    onnx === undefined
      ? `${shellCommand(['implicit-it', 'model', 'export', out], platform)}   (no ONNX graph was written; generate and eval load one), then:`
      : `give ${out} an ONNX graph (the onnx line says why it has none), then:`;
  return `next: ${first}\n      ${generate}\n      ${evaluate}\n`;
}

/** The signals that stop a run as Ctrl-C does, with the exit code each ends it with (128 + its number). */
const STOP_SIGNALS = [
  ['SIGINT', EXIT.interrupted],
  ['SIGTERM', 128 + constants.signals.SIGTERM],
  ['SIGHUP', 128 + constants.signals.SIGHUP],
] as const;

/** What to do after a run stopped before its first checkpoint, from how the job saves them. */
function noCheckpointHint(job: JobSpec | undefined, jobDir: string): string {
  const replan = `plan the job again with --checkpointing N (implicit-it finetune plan ... --out ${shellWord(jobDir)} --checkpointing N)`;
  const every = job?.checkpointing?.every;
  if (job && !job.checkpointing)
    return `the job saves no checkpoints: a rerun starts from the beginning; to be able to resume, ${replan} to save one every N optimizer steps`;
  if (typeof every === 'number')
    return `it saves one every ${every} optimizer steps and at each epoch's end: a rerun starts from the beginning`;
  return `it saves one at each epoch's end only: a rerun starts from the beginning; to lose less of a long epoch, ${replan} to save one every N optimizer steps too`;
}

async function runTraining(jobDir: string, trainArgs: string[], flags: RunFlags): Promise<void> {
  const env = parseEnv(flags.env);
  if (flags.resume && flags.replace)
    throw usage(
      '--resume continues the checkpoints of an earlier run and --replace discards them: give one of them',
    );
  const args = [
    ...(flags.maxSteps !== undefined ? ['--max-steps', String(flags.maxSteps)] : []),
    ...trainArgs,
  ];
  if (!existsSync(join(jobDir, 'job.json'))) throw notAJob(jobDir);
  const job = await readJob(jobDir).catch(() => undefined); // runJob says what is wrong with it
  // Ctrl-C, SIGTERM (kill, systemd, a batch scheduler) and SIGHUP (the terminal closed) stop the
  // training alike: the launch's process group stopped, then the resume hint. One handler per signal
  // until the run has ended (as serve's): a second signal lands on it, not on Node's default action,
  // which would end this process before the training's processes are stopped.
  const abort = new AbortController();
  let stoppedBy: (typeof STOP_SIGNALS)[number] | undefined;
  const handlers = STOP_SIGNALS.map((entry) => {
    const handler = () => {
      stoppedBy ??= entry;
      abort.abort(new Error('interrupted'));
    };
    process.on(entry[0], handler);
    return [entry[0], handler] as const;
  });
  // Raw log lines (--verbose) and a redrawn bar do not mix: the bar only without --verbose.
  const bar = flags.verbose ? { begin() {}, update() {}, stop() {} } : trainingBar();
  // the export after training (modelkit, when optimum did not) gets a bar of its own
  let exportBar: Progress | undefined;
  let result: RunJobResult;
  try {
    result = await runJob(jobDir, {
      // runJob makes a relative --python absolute (launch.sh runs in the job directory)
      ...(flags.python ? { python: flags.python } : {}),
      args,
      env,
      ...(flags.resume ? { resume: true } : {}),
      ...(flags.replace ? { replace: true } : {}),
      ...(flags.onnxDtypes ? { onnxDtypes: flags.onnxDtypes } : {}),
      signal: abort.signal,
      onLine: flags.verbose ? (line) => process.stderr.write(`${line}\n`) : undefined,
      // the steps to take are known from the start, before the first optimizer step
      onEvent: (e) => {
        if (e.type === 'start') bar.begin(e.step, e.totalSteps);
      },
      onProgress: (p) => bar.update(p.step, p.totalSteps, p.loss, p.etaSeconds),
      onExportProgress: ({ index, count }) => {
        if (!exportBar) {
          bar.stop();
          exportBar = flags.verbose
            ? { update() {}, stop() {} }
            : progressBar('exporting ONNX', count, 'tensors');
        }
        exportBar.update(index + 1, count);
      },
    });
  } catch (error) {
    const saved = TrainingFailedError.isInstance(error) ? error.checkpoint : undefined;
    const resume = resumeCommand(jobDir, trainArgs, flags);
    if (abort.signal.aborted) {
      const how = stoppedBy && stoppedBy[0] !== 'SIGINT' ? `stopped by ${stoppedBy[0]}` : 'interrupted';
      throw new CliError(
        saved
          ? `${how}; continue from the checkpoint at step ${saved.step} with: ${resume}`
          : `${how} before a checkpoint was saved (${noCheckpointHint(job, jobDir)}); the partial log is in ${join(jobDir, 'train.log')}`,
        stoppedBy?.[1] ?? EXIT.interrupted,
      );
    }
    // a crash after a checkpoint: the library's message, resumed by the command that keeps the flags
    if (saved && TrainingFailedError.isInstance(error)) {
      const { jobDir: dir, exitCode, logTail, aborted } = error;
      const message = new TrainingFailedError(dir, exitCode, logTail, {
        aborted,
        checkpoint: saved,
        resumeWith: resume,
      }).message;
      throw new CliError(message, exitCodeOf(error));
    }
    throw error;
  } finally {
    bar.stop();
    exportBar?.stop();
    for (const [signal, handler] of handlers) process.off(signal, handler);
  }
  if (flags.json) {
    printJson(result);
    return;
  }
  const p = painter();
  const loss =
    result.finalLoss === undefined ? 'no loss reported' : `final loss ${result.finalLoss.toFixed(4)}`;
  const device = result.device
    ? ` on ${result.device.name}${result.device.mixedPrecision !== 'no' ? ` (${result.device.mixedPrecision})` : ''}`
    : '';
  let out = `${p('green', 'trained')} ${result.jobDir}: ${result.steps}/${result.totalSteps} steps in ${result.durationSeconds.toFixed(1)} s${device}, ${loss}\n`;
  if (result.valLosses.length)
    out += `  validation loss by epoch  ${result.valLosses.map((v) => v.toFixed(4)).join(', ')}\n`;
  if (result.resumedFrom) out += `  resumed   from step ${result.resumedFrom.step}\n`;
  out += `  model     ${result.outputDir}\n`;
  const onnx = result.onnx;
  if (onnx) {
    // modelkit exports where optimum did not: say why (the first clause of train.py's reason)
    const why = onnx.mergedInto
      ? `modelkit: the LoRA adapter merged into ${onnx.mergedInto}`
      : `modelkit; ${onnx.reason?.split(';')[0] ?? 'optimum did not export'}`;
    const graphs = onnx.dtypes?.some((d) => d !== 'fp32') ? ` [${onnx.dtypes.join(', ')}]` : '';
    out += `  onnx      ${
      !onnx.exported
        ? p('yellow', `not exported: ${onnx.reason ?? 'unknown reason'}`)
        : onnx.by === 'modelkit'
          ? `${onnx.path}${graphs} ${p('dim', `(${why})`)}`
          : `${onnx.path}${graphs}${onnx.reason ? ` ${p('yellow', `(${onnx.reason})`)}` : ''}`
    }\n`;
  }
  if (onnx?.removed)
    out += `  removed   ${onnx.removed.join(', ')} ${p('dim', "(an earlier run's graphs, of other dtypes)")}\n`;
  out += `  log       ${result.logFile}\n`;
  out += runNext(shown(result.outputDir), localModelId(result.outputDir), onnx);
  process.stdout.write(out);
}

// ---------------------------------------------------------------------------------------------

export function registerFinetune(program: Command): void {
  const finetune = program
    .command('finetune')
    .description("the paper's finetuning: build its training sets, plan PyTorch jobs, run them")
    .addHelpText(
      'after',
      `
Examples:
  $ implicit-it finetune data --recipe mbpp --out data/mbpp.jsonl
  $ implicit-it finetune plan --recipe lima-response \\
      --model models/Llama-2-7b-hf --gpus 8 --out jobs/res
  $ implicit-it finetune sweep --recipe gsm --model models/Llama-2-7b-hf \\
      --gpus 2 --out jobs/gsm-sweep
  $ implicit-it finetune run jobs/res`,
    );

  addDataOptions(
    finetune
      .command('data')
      .description(
        "build one of the paper's training sets (or check your own) as open-instruct messages JSONL, with a summary",
      ),
  )
    .option('--data-dir <dir>', 'raw data directory (default: ../shared/data)')
    .option('-o, --out <file.jsonl>', 'where to write the training examples (without it: summary only)')
    .option(
      '--validation <n|fraction>',
      'hold out a seeded validation split: a count or a fraction',
      splitArg,
    )
    .option('--validation-seed <n>', 'seed of the validation split (default 1)', intArg(0, 2 ** 32 - 1))
    .addOption(formerFlag('--seed <n>', '--validation-seed', intArg(0, 2 ** 32 - 1)))
    .option('--validation-out <file.jsonl>', 'where to write the validation split (default: OUT.val.jsonl)')
    .option(
      '--json',
      'print the summary as ONE JSON object (recipe, count, skipped, issues with line numbers, ...)',
    )
    .addHelpText(
      'after',
      `${RECIPES_HELP}

Rows the recipe cannot use are never fatal: each is listed with its file and
line number (skipped on purpose, or malformed) and counted in "skipped".

Examples:
  $ implicit-it finetune data --recipe mbpp --out data/mbpp.jsonl
  $ implicit-it finetune data --recipe poetry --json \\
      | jq '.count, .skipped, .issues'
  $ implicit-it finetune data --recipe lima-response --out data/res.jsonl \\
      --validation 0.05 --validation-seed 1
  $ implicit-it finetune data --recipe gsm --data-dir ../shared/data \\
      --validation 100 --out data/gsm.jsonl`,
    )
    .action(async (flags: DataFlags) => data(flags));

  addJobOptions(
    finetune
      .command('plan')
      .description(
        'write a self-contained training job directory: encoded data, accelerate/DeepSpeed configs, launch.sh, train.py',
      )
      .requiredOption('-o, --out <job-dir>', 'the job directory to write'),
  )
    .option('--epochs <n>', `epochs (paper: chosen from ${EPOCH_CHOICES.join(', ')}; default 5)`, intArg(1))
    .option('--seed <n>', `training seed (paper: ${SEEDS.join(', ')}; default 1)`, intArg(0, 2 ** 32 - 1))
    .addHelpText(
      'after',
      `
Hyperparameters default to the paper's: lr 1e-5, linear schedule, warmup 0.03,
weight decay 0, effective batch 64, 2048 tokens, bf16. The schedule is sized as
the paper's finetune.py sizes it (--schedule-steps reference): for all the data
before it is split across processes, advanced once per process at each
optimizer step, so with several GPUs its last steps can train at lr 0; the
summary shows its steps. With a local --model whose config.json gives a shorter
context (max_position_embeddings), examples are truncated to that context
instead, with a note saying so, and a longer --max-seq-length is refused. A
local --model needs PyTorch weights (*.safetensors or pytorch_model*.bin) for
train.py: a \`model create\` directory (ONNX only) is refused. --zero3 needs
GPUs (not --gpus 0). The tokenizer must be local: --model DIR, or --tokenizer
DIR for a hub id. Train with \`implicit-it finetune run JOB_DIR\`, or copy the
directory to a cluster and run launch.sh on every node (MACHINE_RANK,
MAIN_PROCESS_IP).
${RECIPES_HELP}

Examples:
  $ implicit-it finetune plan --recipe lima-response \\
      --model models/Llama-2-7b-hf --gpus 8 --nodes 1 --out jobs/res
  $ implicit-it finetune plan --recipe gsm --model meta-llama/Llama-2-7b-hf \\
      --tokenizer ../shared/fixtures/tokenizers/llama2 --gpus 4 --nodes 2 \\
      --epochs 10 --seed 3 --out jobs/gsm
  $ implicit-it finetune plan --recipe mbpp --model ./models/SmolLM2-135M \\
      --gpus 0 --max-seq-length 512 --validation 0.1 --lora --lora-rank 16 \\
      --out jobs/mbpp-lora --json`,
    )
    .action(async (flags: PlanFlags) => plan(flags));

  addJobOptions(
    finetune
      .command('sweep')
      .description('write the epoch x seed grid of jobs (<recipe>-ep<E>-seed<S>/), encoding the data once')
      .requiredOption('-o, --out <sweep-dir>', 'the directory to write the jobs and sweep.json into'),
  )
    .option('--epochs <list>', `epoch counts (default the paper's ${EPOCH_CHOICES.join(',')})`, intListArg(1))
    // the range of plan's --seed (accelerate's set_seed): the library's refusal would name --seed
    .option('--seeds <list>', `seeds (default ${SEEDS.join(',')})`, intListArg(0, 2 ** 32 - 1))
    .addHelpText(
      'after',
      `
The paper picks the epoch count by AlpacaEval win rate on its validation set
(../shared/data/val, against GPT-3.5's outputs), then reports seeds 1..5: the
CLI README's "Choosing the epoch count" does it with eval generate and eval
judge. Every other option is the same as \`finetune plan\`'s.

Examples:
  $ implicit-it finetune sweep --recipe gsm --model models/Llama-2-7b-hf \\
      --gpus 2 --out jobs/gsm-sweep
  $ implicit-it finetune sweep --recipe poetry --model ./models/SmolLM2-135M \\
      --gpus 0 --epochs 5,7 --seeds 1,2 --validation 50 \\
      --out jobs/poetry-sweep --json | jq '.jobs[].name'`,
    )
    .action(async (flags: SweepFlags) => sweep(flags));

  finetune
    .command('run')
    .description(
      'train a planned job here: launch.sh with a progress bar (steps, loss, ETA); log in train.log',
    )
    .argument('<job-dir>', 'a directory written by `finetune plan` (or one job of a sweep)')
    .argument('[train-args...]', 'extra arguments for train.py, after --')
    .option(
      '--python <path>',
      'the interpreter (default: $IMPLICIT_IT_PYTHON, else python3; python on Windows)',
    )
    .option('--max-steps <n>', 'stop after n optimizer steps (a smoke test)', intArg(1))
    .option(
      '--resume',
      "continue an interrupted run from the newest checkpoint in the job's checkpoints/ directory",
    )
    .option(
      '--replace',
      'train a finished job (or one holding checkpoints) again from the start: its result.json and checkpoints are removed, its model written over',
    )
    .option(
      '--env <KEY=VALUE>',
      'environment for the launch, repeatable (MACHINE_RANK, CUDA_VISIBLE_DEVICES, ...)',
      collect,
    )
    .option(
      '--onnx-dtypes <list>',
      'ONNX graphs after training, comma-separated: fp32 (optimum or modelkit), q4 (modelkit: onnx/model_q4.onnx, 4-bit linear layers), q8 (modelkit: onnx/model_quantized.onnx, 8-bit)',
      dtypesArg,
    )
    .option('-v, --verbose', 'echo the training log to stderr (instead of the progress bar)')
    .option('--json', 'print the result as one JSON object (steps, losses, validation losses, output, onnx)')
    .addHelpText(
      'after',
      `
Needs Python with torch, transformers and accelerate (plus deepspeed for ZeRO-3
on GPUs, peft for LoRA). When any is missing, nothing starts: the error lists
exactly what to install (exit 1). The trained model goes to JOB_DIR/output, and
its ONNX graph to JOB_DIR/output/onnx (by optimum when installed, else by
modelkit for llama / qwen2 models; see \`implicit-it model export\`); the summary
ends with next: lines that try it (\`generate --model JOB_DIR/output\`) and
generate its outputs for \`eval judge\` (\`eval generate ... --rules off\`, named
after the job), with what to do first where it has no ONNX graph. Checkpoints
(each epoch's end by default; see \`finetune plan --checkpointing\`) go to
JOB_DIR/checkpoints until the model is saved: after an interruption or a crash,
--resume continues with the same batches, schedule and RNG states as a run that
never stopped. A finished job, checkpoints without --resume, or checkpoints of
other settings than job.json's are refused before Python starts (exit 2):
--replace trains again from the start. Ctrl-C, SIGTERM and SIGHUP stop the
training and print the command that resumes it (exit 130, 143, 129).

Examples:
  $ implicit-it finetune run jobs/res
  $ implicit-it finetune run jobs/mbpp-lora --max-steps 3 --json
  $ implicit-it finetune run jobs/res --resume
  $ IMPLICIT_IT_PYTHON=~/venvs/torch/bin/python \\
      implicit-it finetune run jobs/res --verbose
  $ implicit-it finetune run jobs/gsm --env MACHINE_RANK=1 \\
      --env MAIN_PROCESS_IP=10.0.0.1`,
    )
    .action(async (jobDir: string, trainArgs: string[], flags: RunFlags) =>
      runTraining(jobDir, trainArgs, flags),
    );
}
