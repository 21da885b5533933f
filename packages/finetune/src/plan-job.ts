import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { chmod, copyFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { type ListsEveryKey, meantOption } from '@implicit-it/rules';
import { TOKENIZER_FILE_NAMES } from '@implicit-it/tokenizers';
import { buildDataset } from './build-dataset.js';
import { type PlannedIdentity, refuseReplan, removeEarlierRun } from './earlier-run.js';
import { encodeDataset } from './encode-dataset.js';
import type { EncodedExample } from './encode-messages.js';
import type { ShardManifest } from './encoded-shard.js';
import { writeEncodedShard } from './encoded-shard.js';
import type { EncodingTokenizer } from './encoding-tokenizer.js';
import { FinetuneOptionError } from './errors.js';
import {
  accelerateConfigYaml,
  deepspeedZero3Config,
  type LaunchTopology,
  launchScript,
} from './launch-configs.js';
import { loadEncodingTokenizer } from './load-encoding-tokenizer.js';
import type { DataSource } from './own-data.js';
import { trainEntryPointPath } from './package-files.js';
import { readJob } from './run-job.js';
import type { SplitOptions } from './split.js';
import {
  checkKeys,
  gradientAccumulationSteps,
  PAPER_TRAINING,
  RECIPE_KEYS,
  type TrainingRecipe,
  trainingRecipe,
} from './training-recipe.js';

/**
 * Format tag of job.json.
 *
 * @example
 * (await readJob('jobs/res')).format === JOB_FORMAT; // true: readJob refuses any other
 */
export const JOB_FORMAT = 'implicit-it/finetune-job@1';

/**
 * A progress event of planning: building data, encoding (with counts), writing.
 *
 * @example
 * const onProgress = (p: PlanProgress) => console.log(p.total ? `${p.stage} ${p.done}/${p.total}` : p.message);
 * await planJob({ recipe: 'gsm', model: 'models/Llama-2-7b-hf', out: 'jobs/gsm', onProgress });
 */
export interface PlanProgress {
  stage: 'data' | 'encode' | 'write';
  message: string;
  done?: number;
  total?: number;
}

/**
 * Options of {@link planJob}.
 *
 * @example
 * const options: PlanJobOptions = { recipe: 'gsm', model: 'models/OLMo-7B-hf', out: 'jobs/gsm-olmo', gpus: 4, addBos: true };
 * await planJob(options);
 */
export interface PlanJobOptions {
  /** Dataset recipe name (`lima-response`, `gsm`, ...); or `data`. */
  recipe?: string | undefined;
  /**
   * Your own examples instead of a recipe: a JSONL file of open-instruct `messages` rows, built as
   * `buildDataset`'s `data` (job.json's `recipe` is the file's name, its `source` the file and its
   * SHA-256).
   */
  data?: string | undefined;
  /** With `data`: empty every user turn (response tuning on your own data). */
  removeInstructions?: boolean | undefined;
  /**
   * Base model: a local Hugging Face directory with PyTorch weights (`*.safetensors` or
   * `pytorch_model*.bin`), or a hub id (resolved by the training machine). job.json stores a local
   * directory as the absolute path it has on the planning machine.
   */
  model: string;
  /** The job directory to write. */
  out: string;
  /** GPUs per node (default 1); 0 trains on CPU. */
  gpus?: number | undefined;
  /** Nodes (default 1). */
  nodes?: number | undefined;
  /** Raw data directory (default ../shared/data). */
  dataDir?: string | undefined;
  /** Tokenizer directory or instance (default: the model directory). */
  tokenizer?: string | EncodingTokenizer | undefined;
  /** Overrides of the paper's hyperparameters. */
  training?: { [K in keyof TrainingRecipe]?: TrainingRecipe[K] | undefined } | undefined;
  /** Hold out a seeded validation split, trained on never, evaluated every epoch. */
  validation?: SplitOptions | undefined;
  /** DeepSpeed ZeRO-3 (default: true when gpus > 0; refused with gpus 0, a CPU job). */
  zero3?: boolean | undefined;
  /** Export the trained model to ONNX when optimum is installed (default true). */
  exportOnnx?: boolean | undefined;
  /**
   * Force BOS text in front (open-instruct --add_bos, for OLMo-style tokenizers). A tokenizer without a
   * BOS gets its EOS in front, and the trained model's tokenizer_config.json names it as `bos_token`
   * (as open-instruct saves it) with `add_bos_token: true`, so `buildPrompt`'s Tulu prompts (and
   * Python's tokenizer) start the same way.
   */
  addBos?: boolean | undefined;
  /**
   * When train.py saves a checkpoint to resume from (`runJob(dir, { resume: true })`): at each epoch's
   * end (`'epoch'`, the default), every N optimizer steps and at each epoch's end (a number), or never
   * (`false`). Checkpoints hold the optimizer state too (about 3x the weights in fp32, 12 bytes per
   * parameter); they are removed once the trained model is saved.
   */
  checkpointing?: 'epoch' | number | false | undefined;
  /** How many of the newest checkpoints to keep while training (default 1). */
  keepCheckpoints?: number | undefined;
  /**
   * Plan over a job directory an earlier plan's run left results in: its trained model (`output/`,
   * `result.json`), checkpoints and train logs are removed. Without it, such a directory is refused
   * (`JobError`), but for checkpoints of the same settings as this plan, which stay to be resumed.
   */
  replace?: boolean | undefined;
  onProgress?: ((event: PlanProgress) => void) | undefined;
}

/** The options of {@link planJob}, for telling a misspelt one (`gpu`, `epochs`) from a known one. */
export const PLAN_JOB_OPTIONS = [
  'recipe',
  'data',
  'removeInstructions',
  'model',
  'out',
  'gpus',
  'nodes',
  'dataDir',
  'tokenizer',
  'training',
  'validation',
  'zero3',
  'exportOnnx',
  'addBos',
  'checkpointing',
  'keepCheckpoints',
  'replace',
  'onProgress',
] as const satisfies readonly (keyof PlanJobOptions)[];

// every option is listed (a new one missing here would be refused as unknown)
const _allPlanJobOptionsListed: ListsEveryKey<PlanJobOptions, typeof PLAN_JOB_OPTIONS> = true;
void _allPlanJobOptionsListed;

/**
 * Refuses an option of `call` that is not one of `known`, as `trainingRecipe` refuses its own: a
 * misspelt `gpu: 8` would plan a one-GPU job. A training option given at the top level (`seed: 3`) is
 * told to go in `training`, unless it is a near miss of one of `known` (planSweep's `seeds`).
 */
export function checkPlanOptions(options: object, known: readonly string[], call: string): void {
  if (typeof options !== 'object' || options === null || Array.isArray(options))
    throw new FinetuneOptionError('options', `expected an object of ${call} options`);
  for (const [key, value] of Object.entries(options)) {
    const misplaced = !known.includes(key) && RECIPE_KEYS.includes(key) && !meantOption(key, known);
    if (value !== undefined && misplaced) {
      throw new FinetuneOptionError(
        key,
        `a training option, not an option of ${call}: give it in training (training: { ${key}: ${JSON.stringify(value)} })`,
      );
    }
  }
  checkKeys(options, known, '', `an option of ${call}`);
}

/** When a job saves checkpoints: `every` epoch or N optimizer steps (and each epoch's end), the newest `keep` kept. */
export interface CheckpointingSpec {
  every: 'epoch' | number;
  keep: number;
}

/**
 * The content of job.json: everything train.py needs.
 *
 * @example
 * const job: JobSpec = await readJob('jobs/res');
 * console.log(job.training.epochs, job.launch.processes, job.counts.trainedTokens);
 */
export interface JobSpec {
  format: typeof JOB_FORMAT;
  /** The recipe's name, or the name your own data goes by (`ownDataName`). */
  recipe: string;
  /** Your own data (`data`): the file it was built from, with its SHA-256; absent for a recipe's. */
  source?: DataSource;
  /**
   * The base model `train.py` loads: a hub id, or a local directory as the absolute path it had on the
   * planning machine (a job copied elsewhere needs the model at that path, or this field edited).
   */
  model: string;
  /**
   * The tokenizer files copied into the output model: `tokenizer` (the job's own copy, relative to the
   * job directory); jobs planned before 0.x name an absolute directory.
   */
  tokenizerDir?: string;
  data: { train: string; validation?: string };
  training: TrainingRecipe & { gradientAccumulationSteps: number };
  launch: LaunchTopology & { processes: number };
  outputDir: string;
  exportOnnx: boolean;
  /** null: no checkpoints (jobs planned before checkpoints existed have none either). */
  checkpointing?: CheckpointingSpec | null;
  counts: {
    train: number;
    validation: number;
    trainTokens: number;
    trainedTokens: number;
    dropped: number;
    truncated: number;
  };
}

/**
 * What {@link planJob} wrote.
 *
 * @example
 * const planned: PlanJobResult = await planJob({ recipe: 'mbpp', model: 'models/tiny-llama', gpus: 0, out: 'jobs/mbpp-cpu' });
 * for (const note of planned.notes) console.log(note); // e.g. maxSeqLength lowered to the model's context
 */
export interface PlanJobResult {
  jobDir: string;
  job: JobSpec;
  files: string[];
  train: ShardManifest;
  validation?: ShardManifest;
  /**
   * What planning decided that the options did not say, for the user to read: the paper's 2048-token
   * `maxSeqLength` lowered to a shorter model context.
   */
  notes: string[];
}

/**
 * The config.json of a local model directory, parsed, and its path; undefined for a hub id (no such
 * directory here) or a config.json that is missing or not JSON (not ours to judge here: the training
 * machine's transformers reports it).
 */
function localModelConfig(model: string): { config: Record<string, unknown>; file: string } | undefined {
  const file = resolve(model, 'config.json');
  if (!existsSync(model) || !statSync(model).isDirectory() || !existsSync(file)) return undefined;
  try {
    return { config: JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>, file };
  } catch {
    return undefined;
  }
}

/**
 * The context length a local model directory declares: `max_position_embeddings` in its config.json
 * (`n_positions` in GPT-2's). Undefined for a hub id (the training machine resolves it) or a
 * config.json without either.
 *
 * @example
 * modelContextLength('models/tiny'); // { positions: 512, file: '/abs/models/tiny/config.json' }
 */
export function modelContextLength(model: string): { positions: number; file: string } | undefined {
  const local = localModelConfig(model);
  if (!local) return undefined;
  const { config, file } = local;
  const positions = config.max_position_embeddings ?? config.n_positions;
  return typeof positions === 'number' && Number.isInteger(positions) && positions > 0
    ? { positions, file }
    : undefined;
}

/**
 * The training overrides fitted to a local model's context: a `maxSeqLength` above it is refused
 * (`FinetuneOptionError`, field `maxSeqLength`); without one, the paper's 2048 is lowered to the
 * context when that is shorter, with a note saying so (it changes which examples are truncated).
 * @internal
 */
export function fitModelContext(options: PlanJobOptions): {
  training: Partial<TrainingRecipe>;
  notes: string[];
} {
  const training = { ...options.training };
  const context = modelContextLength(options.model);
  if (!context) return { training, notes: [] };
  const { positions, file } = context;
  if (training.maxSeqLength !== undefined) {
    if (training.maxSeqLength > positions)
      throw new FinetuneOptionError(
        'maxSeqLength',
        `${training.maxSeqLength} tokens is more than the model's context of ${positions} positions (max_position_embeddings in ${file}); use ${positions} or less`,
      );
    return { training, notes: [] };
  }
  if (PAPER_TRAINING.maxSeqLength <= positions) return { training, notes: [] };
  training.maxSeqLength = positions;
  return {
    training,
    notes: [
      `maxSeqLength ${positions}, not the paper's ${PAPER_TRAINING.maxSeqLength}: the model's context is ${positions} positions (max_position_embeddings in ${file}); examples are truncated to ${positions} tokens`,
    ],
  };
}

/**
 * Refuses encoded data with a token id the local model has no embedding row for (`vocab_size` in its
 * config.json): the tokenizer is not the model's (`FinetuneOptionError`, field `tokenizer`), which
 * train.py would otherwise find at its first batch, as an index error on the embedding. A hub id, or a
 * config.json without `vocab_size`, is not checked.
 * @internal
 */
export function checkModelVocabulary(
  options: Pick<PlanJobOptions, 'model' | 'tokenizer'>,
  tokenizerName: string,
  encoded: readonly EncodedExample[],
): void {
  const local = localModelConfig(options.model);
  if (!local) return;
  const { file } = local;
  const vocab = local.config.vocab_size;
  if (typeof vocab !== 'number' || !Number.isInteger(vocab) || vocab <= 0) return;
  let largest = -1;
  let example = '';
  for (const e of encoded) {
    for (const id of e.inputIds) {
      if (id > largest) {
        largest = id;
        example = e.id;
      }
    }
  }
  if (largest < vocab) return;
  const fix =
    options.tokenizer === undefined
      ? `its directory holds another model's tokenizer.json; restore the model's own, or give it with the \`tokenizer\` option (CLI: --tokenizer DIR)`
      : `give the tokenizer of "${options.model}" with the \`tokenizer\` option (CLI: --tokenizer DIR), or leave it out to use the model directory's own`;
  throw new FinetuneOptionError(
    'tokenizer',
    `${tokenizerName} encodes token id ${largest} (in example ${example}), which the model has no embedding for: its vocabulary is ${vocab} tokens (vocab_size in ${file}); it is not this model's tokenizer: ${fix}`,
  );
}

/** Weight files `from_pretrained` loads: safetensors (sharded or not), PyTorch bins, or their index. */
const WEIGHT_FILE = /^(?!adapter_).*\.safetensors(\.index\.json)?$|^pytorch_model.*\.bin(\.index\.json)?$/;

/**
 * Refuses a local `model` that `train.py` cannot load: a path that is not a directory, or a directory
 * without PyTorch weights (`*.safetensors`, `pytorch_model*.bin` or their `.index.json`), such as an
 * `implicit-it model create` directory without `--safetensors`, which holds only ONNX graphs (`FinetuneOptionError`, field
 * `model`). A hub id (no such path here) is left to the training machine.
 * @internal
 */
export function checkModelWeights(model: string): void {
  if (!existsSync(model)) return;
  const dir = resolve(model);
  if (!statSync(dir).isDirectory())
    throw new FinetuneOptionError(
      'model',
      `${dir} is a file; give a Hugging Face model directory (config.json and its weights) or a hub id`,
    );
  if (readdirSync(dir).some((name) => WEIGHT_FILE.test(name))) return;
  const onnx = existsSync(join(dir, 'onnx'));
  throw new FinetuneOptionError(
    'model',
    `${dir} has no PyTorch weights for train.py to load${onnx ? ' (it holds ONNX graphs only, as `implicit-it model create` writes them without --safetensors)' : ''}: expected *.safetensors or pytorch_model*.bin (or their .index.json) beside config.json; give a Hugging Face checkpoint directory, or a hub id with a tokenizer directory${onnx ? ' (a random-weights model to try the mechanics: `implicit-it model create --safetensors`, or createModel with safetensors: true)' : ''}`,
  );
}

/** Encoded data shared by the jobs of a sweep. @internal */
export interface PreparedData {
  recipe: string;
  source?: DataSource;
  tokenizer: EncodingTokenizer;
  tokenizerDir?: string;
  train: { encoded: EncodedExample[]; dropped: string[] };
  validation?: { encoded: EncodedExample[]; dropped: string[] };
}

/** Builds and encodes a recipe's data once. @internal */
export async function prepareData(options: PlanJobOptions, maxSeqLength: number): Promise<PreparedData> {
  const progress = options.onProgress ?? (() => {});
  let tokenizer: EncodingTokenizer;
  let tokenizerDir: string | undefined;
  if (typeof options.tokenizer === 'object') {
    tokenizer = options.tokenizer;
  } else {
    tokenizerDir = resolve(options.tokenizer ?? options.model);
    // the tokenizer.json file itself, given for its directory: "has no tokenizer.json" would read wrong
    if (options.tokenizer !== undefined && existsSync(tokenizerDir) && !statSync(tokenizerDir).isDirectory())
      throw new FinetuneOptionError(
        'tokenizer',
        `${tokenizerDir} is a file; give the directory that holds the tokenizer files (${dirname(tokenizerDir)})`,
      );
    if (!existsSync(join(tokenizerDir, 'tokenizer.json'))) {
      throw new FinetuneOptionError(
        'tokenizer',
        options.tokenizer === undefined
          ? `${tokenizerDir} has no tokenizer.json: "${options.model}" is read as a local model directory here; for a hub model, give the \`tokenizer\` option (CLI: --tokenizer DIR), a directory with the tokenizer files of "${options.model}"`
          : `${tokenizerDir} has no tokenizer.json; give a tokenizer directory that matches the model "${options.model}"`,
      );
    }
    tokenizer = await loadEncodingTokenizer(tokenizerDir);
  }
  const built = await buildDataset({
    recipe: options.recipe,
    data: options.data,
    removeInstructions: options.removeInstructions,
    dataDir: options.dataDir,
    validation: options.validation,
    onProgress: (e) => progress({ stage: 'data', message: e.message }),
  });
  progress({
    stage: 'data',
    message: `${built.recipe}: ${built.count} train, ${built.validationCount} validation, ${built.skipped} skipped`,
  });
  const encode = async (examples: typeof built.train, split: 'train' | 'validation') => {
    const r = await encodeDataset({
      examples,
      tokenizer,
      recipe: built.recipe,
      split,
      maxSeqLength,
      addBos: options.addBos,
      onProgress: (done, total) => progress({ stage: 'encode', message: `encoding ${split}`, done, total }),
    });
    return { encoded: r.encoded, dropped: r.dropped };
  };
  const train = await encode(built.train, 'train');
  const validation = built.validationCount > 0 ? await encode(built.validation, 'validation') : undefined;
  checkModelVocabulary(options, tokenizerDir ?? `the tokenizer ${tokenizer.name ?? 'given'}`, [
    ...train.encoded,
    ...(validation?.encoded ?? []),
  ]);
  return { recipe: built.recipe, source: built.source, tokenizer, tokenizerDir, train, validation };
}

/** Validates `checkpointing` and `keepCheckpoints` (before any data is built). @internal */
export function checkpointingSpec(options: PlanJobOptions): CheckpointingSpec | null {
  const every = options.checkpointing ?? 'epoch';
  const keep = options.keepCheckpoints ?? 1;
  if (!(every === 'epoch' || every === false || (Number.isInteger(every) && every >= 1)))
    throw new FinetuneOptionError(
      'checkpointing',
      `must be 'epoch', a positive integer (optimizer steps) or false, got ${JSON.stringify(every)}`,
    );
  if (!(Number.isInteger(keep) && keep >= 1))
    throw new FinetuneOptionError('keepCheckpoints', `must be a positive integer, got ${keep}`);
  return every === false ? null : { every, keep };
}

/** Where a job keeps its copy of the tokenizer, relative to the job directory. */
const JOB_TOKENIZER_DIR = 'tokenizer';

/**
 * Validates where a job runs, before any data is built or file written: GPUs, nodes, ZeRO-3, and the
 * gradient accumulation that makes the effective batch exact on that many devices. @internal
 */
export function checkTopology(
  options: PlanJobOptions,
  recipe: TrainingRecipe,
): { gpus: number; nodes: number; processes: number; accumulation: number } {
  const gpus = options.gpus ?? 1;
  const nodes = options.nodes ?? 1;
  if (!(Number.isInteger(gpus) && gpus >= 0))
    throw new FinetuneOptionError('gpus', `must be an integer >= 0, got ${gpus}`);
  if (!(Number.isInteger(nodes) && nodes >= 1))
    throw new FinetuneOptionError('nodes', `must be an integer >= 1, got ${nodes}`);
  if (gpus === 0 && nodes > 1) throw new FinetuneOptionError('nodes', 'CPU jobs (gpus 0) run on one node');
  if (gpus === 0 && options.zero3 === true)
    throw new FinetuneOptionError(
      'zero3',
      'DeepSpeed ZeRO-3 shards a model across GPUs, and a CPU job (gpus 0) trains in one plain process; leave zero3 out, or give gpus',
    );
  const processes = Math.max(1, gpus) * nodes;
  return { gpus, nodes, processes, accumulation: gradientAccumulationSteps(recipe, processes) };
}

/** What of job.json a plan writes that a checkpoint's settings are compared with. @internal */
export function plannedJob(
  options: PlanJobOptions,
  recipe: TrainingRecipe,
  accumulation: number,
  processes: number,
): PlannedIdentity {
  return {
    model: existsSync(options.model) ? resolve(options.model) : options.model,
    training: { ...recipe, gradientAccumulationSteps: accumulation },
    launch: { processes },
    data: { train: 'data/train' },
  };
}

/** Writes one job directory from prepared data. @internal */
export async function writeJob(
  data: PreparedData,
  options: PlanJobOptions,
  recipe: TrainingRecipe,
): Promise<PlanJobResult> {
  const { gpus, nodes, processes, accumulation } = checkTopology(options, recipe);
  const topology: LaunchTopology = {
    gpusPerNode: gpus,
    nodes,
    zero3: options.zero3 ?? gpus > 0,
    bf16: recipe.bf16 && gpus > 0,
  };
  if (data.train.encoded.length === 0) {
    const dropped = data.train.dropped.length;
    throw new FinetuneOptionError(
      dropped > 0 ? 'maxSeqLength' : 'validation',
      dropped > 0
        ? `no training example is left: all ${dropped} were dropped (no response token fits in ${recipe.maxSeqLength} tokens); raise \`maxSeqLength\` (CLI: --max-seq-length)`
        : 'no training example is left (the validation split took them all); hold out fewer with the `validation` option (CLI: --validation N)',
    );
  }
  const checkpointing = checkpointingSpec(options);
  const jobDir = resolve(options.out);
  const progress = options.onProgress ?? (() => {});
  await mkdir(jobDir, { recursive: true });
  // a job planned here before: what it wrote and this plan does not write goes, or it would mix with
  // this job (its tokenizer copy's chat_template.jinja beside another tokenizer's files), or look as
  // if this job used it (ds_zero3.json on a CPU job, data/validation without a split)
  // (readJob refuses a directory without a job.json in this package's format: its files stay)
  const earlier = await readJob(jobDir).catch(() => undefined);
  if (earlier !== undefined) {
    // an earlier run's model or checkpoints of other settings would carry this plan's label: refused
    // unless `replace`, which removes them (checkpoints of this plan's settings stay, to be resumed)
    await refuseReplan(jobDir, earlier, options.replace, {
      job: plannedJob(options, recipe, accumulation, processes),
      examples: data.train.encoded,
    });
    if (options.replace) await removeEarlierRun(jobDir, earlier.outputDir, true);
    await rm(join(jobDir, JOB_TOKENIZER_DIR), { recursive: true, force: true });
    await rm(join(jobDir, 'ds_zero3.json'), { force: true });
    await rm(join(jobDir, 'data/validation'), { recursive: true, force: true });
  }

  const meta = (dropped: string[]) => ({
    recipe: data.recipe,
    dropped,
    maxSeqLength: recipe.maxSeqLength,
    addBos: options.addBos ?? false,
    tokenizer: {
      name: data.tokenizer.name,
      hash: data.tokenizer.hash,
      addsBos: data.tokenizer.addsBos,
      bosId: data.tokenizer.bosId,
      eosToken: data.tokenizer.eosToken,
    },
  });
  const train = await writeEncodedShard(join(jobDir, 'data/train'), data.train.encoded, {
    ...meta(data.train.dropped),
    split: 'train',
  });
  const validation = data.validation
    ? await writeEncodedShard(join(jobDir, 'data/validation'), data.validation.encoded, {
        ...meta(data.validation.dropped),
        split: 'validation',
      })
    : undefined;

  const job: JobSpec = {
    format: JOB_FORMAT,
    recipe: data.recipe,
    ...(data.source && { source: data.source }),
    model: existsSync(options.model) ? resolve(options.model) : options.model,
    // a copy inside the job: the job directory moves to the training machine whole
    tokenizerDir: data.tokenizerDir === undefined ? undefined : JOB_TOKENIZER_DIR,
    data: { train: 'data/train', ...(validation ? { validation: 'data/validation' } : {}) },
    training: { ...recipe, gradientAccumulationSteps: accumulation },
    launch: { ...topology, processes },
    outputDir: 'output',
    exportOnnx: options.exportOnnx ?? true,
    checkpointing,
    counts: {
      train: train.count,
      validation: validation?.count ?? 0,
      trainTokens: train.tokens,
      trainedTokens: train.trainedTokens,
      dropped: train.dropped.length,
      truncated: train.truncated,
    },
  };
  const files = ['job.json', 'accelerate.yaml', 'launch.sh', 'train.py', 'data/train/manifest.json'];
  if (data.tokenizerDir !== undefined) {
    await mkdir(join(jobDir, JOB_TOKENIZER_DIR), { recursive: true });
    // what the tokenizer loader reads (generation_config.json included: the EOS ids)
    for (const name of Object.values(TOKENIZER_FILE_NAMES)) {
      if (!existsSync(join(data.tokenizerDir, name))) continue;
      await copyFile(join(data.tokenizerDir, name), join(jobDir, JOB_TOKENIZER_DIR, name));
      files.push(`${JOB_TOKENIZER_DIR}/${name}`);
    }
  }
  await writeFile(join(jobDir, 'job.json'), `${JSON.stringify(job, null, 2)}\n`);
  await writeFile(join(jobDir, 'accelerate.yaml'), accelerateConfigYaml(topology, 'ds_zero3.json'));
  if (topology.zero3) {
    await writeFile(
      join(jobDir, 'ds_zero3.json'),
      `${JSON.stringify(deepspeedZero3Config(topology.bf16), null, 2)}\n`,
    );
    files.push('ds_zero3.json');
  }
  await writeFile(join(jobDir, 'launch.sh'), launchScript(topology));
  await chmod(join(jobDir, 'launch.sh'), 0o755);
  await copyFile(trainEntryPointPath(), join(jobDir, 'train.py'));
  if (validation) files.push('data/validation/manifest.json');
  progress({ stage: 'write', message: `wrote ${jobDir}` });
  return { jobDir, job, files, train, validation, notes: [] };
}

/**
 * Writes a self-contained training job directory for the paper's PyTorch stack: the encoded data
 * (ids + loss masks, see `writeEncodedShard`), `accelerate.yaml` (CPU, multi-GPU or multi-node),
 * `ds_zero3.json` (DeepSpeed ZeRO-3, with GPUs), `launch.sh`, `train.py` and `job.json`. A local model
 * directory must hold PyTorch weights (`*.safetensors` or `pytorch_model*.bin`): an ONNX-only one, as
 * `implicit-it model create` writes, is refused (field `model`). With a local
 * model directory, `maxSeqLength` must fit its context (config.json's `max_position_embeddings`); the
 * paper's 2048 is lowered to a shorter context, as `notes` says. Planned again into the same
 * directory, it removes what the earlier plan wrote and this one does not (its tokenizer copy,
 * `ds_zero3.json`, `data/validation`); what a run of it left is not removed without `replace`: a
 * finished run's model (`output/`, `result.json`), or checkpoints of other settings than this plan's,
 * are refused (`JobError`), and checkpoints of the same settings stay, for `runJob`'s `resume`.
 *
 * @example
 * const { jobDir } = await planJob({ recipe: 'lima-response', model: 'models/Llama-2-7b-hf', gpus: 8, nodes: 1, out: 'jobs/res' });
 * // then: await runJob(jobDir)   or on the cluster: bash jobs/res/launch.sh
 */
export async function planJob(options: PlanJobOptions): Promise<PlanJobResult> {
  checkPlanOptions(options, PLAN_JOB_OPTIONS, 'planJob');
  checkModelWeights(options.model);
  const { training, notes } = fitModelContext(options);
  const recipe = trainingRecipe(training);
  checkTopology(options, recipe);
  checkpointingSpec(options);
  // a finished job in `out` is refused before any data is built (checkpoints once it is encoded)
  const earlier = await readJob(options.out).catch(() => undefined);
  if (earlier) await refuseReplan(options.out, earlier, options.replace);
  const data = await prepareData(options, recipe.maxSeqLength);
  return { ...(await writeJob(data, options, recipe)), notes };
}
