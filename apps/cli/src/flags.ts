import { closeSync, existsSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { CONFIG_INPUT_OPTIONS, DTYPE_FILES, type WeightDtype } from '@implicit-it/modelkit';
import { ImplicitItError, meantOption, type RuleSpec, resolveRuleSpec } from '@implicit-it/rules';
import {
  type BaseModel,
  DEFAULT_PREFILL_CHUNK,
  type ExecutionProvider,
  isHubId,
  type LoadOptions,
  loadModel,
  type Model,
  type ModelDtype,
  nearMiss,
  ONNX_LOG_LEVELS,
  type OnnxLogLevel,
} from '@implicit-it/runtime';
import type { PromptFormat } from '@implicit-it/tokenizers';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { resolveDefaultModel } from './default-model.js';
import { CliError, EXIT, note, usage } from './output.js';
import { notedByRuntime } from './rule-notes.js';

/**
 * Refuses, before any work, an output path that cannot be written as `kind`: a directory where a
 * file goes (`example` names a file to suggest in it), a file where a directory goes (`why` says what
 * it is for), a path below an existing file, one in a directory where no file can be created
 * (`--out: cannot write PATH: REASON`), or a `.jsonl` name for a file that is one JSON value (`json`
 * says what the file is). Usage error (exit 2) naming `flag`.
 */
export function checkOutPath(
  path: string,
  kind: 'file' | 'directory',
  flag = '--out',
  explain: { why?: string; example?: string; json?: string } = {},
): void {
  // an empty path resolves to the current directory, whose files would be replaced
  if (path.trim() === '') throw usage(`${flag}: expected a path, got ${JSON.stringify(path)}`);
  if (explain.json !== undefined && /\.jsonl$/i.test(path))
    throw usage(
      `${flag}: ${path} ends in .jsonl, but ${explain.json} is one JSON value, not JSON Lines: give a .json path`,
    );
  if (existsSync(path)) {
    const isDir = statSync(path).isDirectory();
    if (kind === 'file' && isDir) {
      throw usage(
        `${flag}: ${path} is a directory; give a file path${explain.example ? ` (e.g. ${join(path, explain.example)})` : ''}`,
      );
    }
    if (kind === 'directory' && !isDir)
      throw usage(`${flag}: ${path} is a file; ${explain.why ?? 'give a directory'}`);
    // files are written in a directory: the file's (atomically, through a temporary file beside it)
    checkCreates(kind === 'directory' ? resolve(path) : dirname(resolve(path)), path, flag);
    return;
  }
  // the nearest existing ancestor must be a directory, or nothing can be created below it
  for (let up = dirname(resolve(path)); ; up = dirname(up)) {
    if (existsSync(up)) {
      if (!statSync(up).isDirectory()) throw usage(`${flag}: ${up} is a file, so ${path} cannot be created`);
      checkCreates(up, path, flag);
      return;
    }
    if (dirname(up) === up) return;
  }
}

/**
 * Refuses an output path when files cannot be created in `dir` (a directory that exists: where the
 * output goes, or the nearest one above it, where its missing directories are made): read-only,
 * another user's, or a file system that takes no new files (/proc). Tried by creating an empty file
 * there and removing it, which no permission bits can mislead (root writes past them, a read-only
 * mount does not let it), and before any work: else the error comes at the end of a long run, as a
 * bare errno naming a temporary file. Nothing is left behind, and no directory is created.
 */
function checkCreates(dir: string, path: string, flag: string): void {
  const probe = join(dir, `.implicit-it-write-check-${process.pid}-${Date.now()}`);
  try {
    closeSync(openSync(probe, 'wx'));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'EACCES' || code === 'EPERM'
        ? `${dir} is not writable (permission denied)`
        : code === 'EROFS'
          ? `${dir} is on a read-only file system`
          : `files cannot be created in ${dir} (${(error as Error).message.replace(/, open .*$/, '')})`;
    throw usage(
      `${flag}: cannot write ${path}: ${why}`,
      `give ${flag} a path in a directory you can write to`,
    );
  }
  rmSync(probe, { force: true });
}

/** Refuses an `--out` that must be a directory but names an existing file (usage error, `why` says what it is for). */
export function checkOutDirectory(out: string, why: string, flag = '--out'): void {
  checkOutPath(out, 'directory', flag, { why });
}

/**
 * A commander parser for an integer in [min, max]; without `max`, any integer >= min (as large as
 * a number holds exactly), which the message says as such ("expected an integer >= 1"), not as the
 * stand-in bound 9007199254740991. `why` says why the range is what it is, where a bound is not the
 * obvious one (a `--limit` of at least 2), after the value.
 *
 * @example
 * intArg(1)('0'); // throws InvalidArgumentError: expected an integer >= 1, got "0"
 * intArg(2, undefined, 'each needs another')('1'); // throws InvalidArgumentError: expected an integer >= 2, got "1": each needs another
 */
export const intArg =
  (min: number, max?: number, why?: string) =>
  (value: string): number => {
    const n = Number(value);
    const top = max ?? Number.MAX_SAFE_INTEGER;
    if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > top) {
      const range = max === undefined ? `>= ${min}` : `in [${min}, ${max}]`;
      throw new InvalidArgumentError(`expected an integer ${range}, got "${value}"${why ? `: ${why}` : ''}`);
    }
    return n;
  };

/**
 * A commander parser for a number in [min, max]; `open.min` / `open.max` leave that bound out, so
 * that the message says what is meant ("(0, 1]", not a stand-in such as Number.MIN_VALUE).
 *
 * @example
 * numArg(0, 1, { min: true })('0'); // throws InvalidArgumentError: expected a number in (0, 1], got "0"
 */
export const numArg =
  (min: number, max: number, open: { min?: boolean; max?: boolean } = {}) =>
  (value: string): number => {
    const n = Number(value);
    const above = open.min ? n > min : n >= min;
    const below = open.max ? n < max : n <= max;
    if (value.trim() === '' || !Number.isFinite(n) || !above || !below) {
      const range = `${open.min ? '(' : '['}${min}, ${max}${open.max ? ')' : ']'}`;
      throw new InvalidArgumentError(`expected a number in ${range}, got "${value}"`);
    }
    return n;
  };

/** A commander parser for a comma-separated list of token ids. */
export const idsArg = (value: string): number[] => {
  const parts = value.split(',').map((s) => s.trim());
  if (value.trim() === '') return [];
  return parts.map((p) => {
    if (!/^\d+$/.test(p)) throw new InvalidArgumentError(`expected comma-separated token ids, got "${p}"`);
    return Number(p);
  });
};

/** The config fields `model create --set` changes over the preset's (modelkit's names; on the command line, config.json's). */
export type Settable = Exclude<(typeof CONFIG_INPUT_OPTIONS)[number], 'preset'>;
export const SETTABLE = CONFIG_INPUT_OPTIONS.filter((k): k is Settable => k !== 'preset');

/**
 * A field's config.json name.
 *
 * @example
 * configName('numHiddenLayers'); // 'num_hidden_layers'
 */
export const configName = (field: string) => field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
/** modelkit's field names in a message, as config.json names. */
export const inConfigNames = (message: string) =>
  message.replace(new RegExp(`\\b(${SETTABLE.join('|')})\\b`, 'g'), configName);

/** The `--set` overrides, by modelkit field name. */
export type ConfigSet = Partial<Record<Settable, unknown>>;

/**
 * A commander parser for the repeatable `--set KEY=VALUE`: KEY a config.json field (or modelkit's name
 * for it), VALUE read as JSON (`4`, `false`, `null`), else as text (`model_type=qwen2`). A field set
 * twice is refused; the values themselves are checked by modelkit with the rest of the config.
 *
 * @example
 * setArg('num_hidden_layers=4', setArg('vocab_size=49152')); // { vocabSize: 49152, numHiddenLayers: 4 }
 */
export const setArg = (value: string, previous: ConfigSet = {}): ConfigSet => {
  const at = value.indexOf('=');
  const key = at > 0 ? value.slice(0, at).trim() : '';
  if (key === '')
    throw new InvalidArgumentError(
      `expected KEY=VALUE with a config.json field as KEY (e.g. num_hidden_layers=4), got "${value}"`,
    );
  const field = SETTABLE.find((f) => f === key || configName(f) === key);
  if (field === undefined) {
    const names = SETTABLE.map(configName);
    const meant = meantOption(key, names);
    throw new InvalidArgumentError(
      `"${key}" is not a field it sets${meant ? ` (did you mean "${meant}"?)` : ''}; use one of ${names.join(', ')}`,
    );
  }
  if (Object.hasOwn(previous, field)) throw new InvalidArgumentError(`${configName(field)} is set twice`);
  const text = value.slice(at + 1).trim();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: the text itself (a model type)
  }
  return { ...previous, [field]: parsed };
};

/** Collects a repeatable option. */
export const collect = (value: string, previous: string[] = []) => [...previous, value];

/** Collects a repeatable stop string, refusing an empty one (it would end every generation at once). */
export const collectStop = (value: string, previous: string[] = []) => {
  if (value === '') throw new InvalidArgumentError('a stop string has at least one character');
  return collect(value, previous);
};

/**
 * A flag under its former name (`--n` for `--limit`): still read, so that scripts keep working, but
 * left out of --help, which documents the new name only.
 */
export function formerFlag(flags: string, name: string, parse?: (value: string) => unknown): Option {
  const option = new Option(flags, `former name of ${name}`).hideHelp();
  return parse ? option.argParser(parse) : option;
}

/** A flag given by its name or its former one; both, with different values, is a usage error. */
export function renamedFlag<T>(
  value: T | undefined,
  former: T | undefined,
  name: string,
  formerName: string,
) {
  if (value !== undefined && former !== undefined && value !== former)
    throw usage(`give ${name} (${formerName} is its former name), not both`);
  return value ?? former;
}

/** The names `--rules` takes for no rules at all (the base model alone). */
export const NO_RULES_NAMES: readonly string[] = ['off', 'none', 'false', 'base'];

/** The `@file` each rule set read from a file came from, for `rulesLabel`. */
const ruleFiles = new WeakMap<object, string>();

/**
 * A `--rules` value: a preset or subset name (`hewitt2024`, `eos-uniform`), `off` / `none`, inline
 * rule-set JSON (`{"eos":{}}`), or `@file.json` (UTF-8, with or without a byte order mark).
 * Validated here, so that a typo fails before a model loads (exit 2).
 */

export function parseRules(
  value: string | undefined,
  fallback: RuleSpec = 'hewitt2024',
  flag = '--rules',
): RuleSpec {
  if (value === undefined) return fallback;
  const text = value.trim();
  let spec: RuleSpec;
  if (NO_RULES_NAMES.includes(text)) return false;
  if (text.startsWith('@')) {
    const file = text.slice(1);
    if (!existsSync(file)) throw usage(`${flag}: ${file} does not exist`);
    try {
      // a leading UTF-8 byte order mark (Notepad's, PowerShell 5's `Out-File -Encoding utf8`) is no JSON
      spec = JSON.parse(readFileSync(file, 'utf8').replace(/^\uFEFF/, ''));
    } catch (error) {
      throw usage(`${flag}: ${file} is not valid JSON (${(error as Error).message})`);
    }
  } else if (text.startsWith('{')) {
    try {
      spec = JSON.parse(text);
    } catch (error) {
      throw usage(`${flag}: not valid JSON (${(error as Error).message})`);
    }
  } else spec = text;
  try {
    resolveRuleSpec(spec);
  } catch (error) {
    // the library's name for no rules is "none"; the CLI documents `off` (both work)
    if (ImplicitItError.isInstance(error))
      throw usage(`${flag}: ${error.message.replaceAll('"none"', 'off')}`);
    throw error;
  }
  // notes and errors name the file (`--rules @my-rules.json: ...`), which says which of a user's
  // variants they are about, where inline JSON is only "custom JSON"
  if (text.startsWith('@') && typeof spec === 'object' && spec !== null) ruleFiles.set(spec, text);
  return spec;
}

/** A short label for a rule spec: its name, `off`, the `@file` it was read from, or `custom JSON`. */
export function rulesLabel(spec: RuleSpec): string {
  if (spec === false) return 'off';
  if (typeof spec === 'string') return spec;
  return ruleFiles.get(spec) ?? 'custom JSON';
}

/** The file a rule set was read from (`--rules @file.json`: `file.json`), or undefined: a name, or inline JSON. */
export function rulesFile(spec: RuleSpec): string | undefined {
  return typeof spec === 'object' && spec !== null ? ruleFiles.get(spec)?.slice(1) : undefined;
}

/** Flags every model-loading command takes. */
export interface ModelFlags {
  model?: string;
  offline?: boolean;
  /** false (`serve --no-fallback`): an unreachable hub is an error, not the random-weights stand-in. */
  fallback?: boolean;
  provider?: string;
  dtype?: string;
  /** onnxruntime's intra-op threads (default: its choice, the physical cores). */
  threads?: number;
  /** Prompt positions prefilled per onnxruntime run (0: whole prompts). */
  prefillChunk?: number;
  /** MiB of prompt and reply keys/values kept for prompts that begin the same way (0: none). */
  prefixCache?: number;
  verbose?: boolean;
  /** Rows the runtime decodes together (continuous batching). */
  maxBatchSize?: number;
  /** What onnxruntime itself writes to stderr (default: errors only). */
  onnxLogLevel?: string;
  /** `accuracy_level` given to a 4-bit graph's MatMulNBits nodes (default: as exported). */
  q4AccuracyLevel?: number;
}

/** MiB of `--prefix-cache` in `chat`, where every turn re-sends the conversation so far. */
export const CHAT_PREFIX_CACHE_MIB = 256;

/**
 * How a model loads: the flags every model-loading command takes after its `--model`.
 * `offlineHelp` says what `--offline` means for the command (the default model, or cached hub ids);
 * `prefixCacheMiB` is the command's default `--prefix-cache`.
 */
export function addLoadOptions(
  cmd: Command,
  offlineHelp = 'never use the network (the default model is then the random-weights stand-in)',
  prefixCacheMiB = 0,
): Command {
  return cmd
    .option('--offline', offlineHelp)
    .addOption(new Option('--provider <name>', 'execution provider').choices(PROVIDERS).default('auto'))
    .option('--dtype <dtype>', 'ONNX weights variant (fp32, fp16, q8, q4, ...)', 'fp32')
    .option(
      '--q4-accuracy-level <n>',
      "with --dtype q4: the MatMulNBits accuracy level (4: int8 compute, onnxruntime's fastest on CPU; 0: float32; default: as exported)",
      intArg(0, 4),
    )
    .option(
      '--threads <n>',
      "onnxruntime's threads per operator (default: the physical cores)",
      intArg(1, 1024),
    )
    .option(
      '--prefill-chunk <n>',
      `prompt positions prefilled per onnxruntime run (0: whole prompts; default ${DEFAULT_PREFILL_CHUNK})`,
      intArg(0),
    )
    .option(
      '--prefix-cache <MiB>',
      `keep this many MiB of prompt and reply keys/values: a prompt that begins as a recent prompt and reply (a chat's next turn, a shared system prompt) in 32 tokens or more prefills only the rest (${prefixCacheMiB === 0 ? 'default 0: none' : '0: none'})`,
      intArg(0, 1 << 20),
      prefixCacheMiB > 0 ? prefixCacheMiB : undefined,
    )
    .option('-v, --verbose', 'log model loading details to stderr')
    .addOption(
      new Option(
        '--onnx-log-level <level>',
        "onnxruntime's own log lines on stderr (info or verbose to debug a graph)",
      )
        .choices(ONNX_LOG_LEVELS)
        .default('error'),
    );
}

/** A loaded model and the id it goes by. */
export interface OpenedModel<M extends BaseModel = Model> {
  model: M;
  id: string;
  random: boolean;
}

/** `--add-bos`'s help, the same in every command that builds prompts. */
export const ADD_BOS_HELP =
  "start the prompt with the BOS token (the EOS on tokenizers without one, as the paper's OLMo prompts)";

/** `--no-add-bos`'s help (unset, neither flag: the format decides). */
export const NO_ADD_BOS_HELP =
  'no BOS first, even where the format puts one (tulu, on a tokenizer with a BOS)';

/** The flag that set `addBos`, for messages. */
export const addBosFlag = (addBos: boolean) => (addBos ? '--add-bos' : '--no-add-bos');

/** How instructions become prompts: `--format`, and `--add-bos` / `--no-add-bos` where given. */
export interface PromptFlags {
  format: PromptFormat;
  addBos?: boolean;
}

/**
 * The prompt settings of `flags` for the runtime and for run records: `addBos` only where
 * `--add-bos` or `--no-add-bos` was given, so that records of runs without either stay as they were.
 */
export function promptSettings<F extends PromptFlags['format']>(flags: {
  format: F;
  addBos?: boolean;
}): { format: F; addBos?: boolean } {
  return { format: flags.format, ...(flags.addBos !== undefined ? { addBos: flags.addBos } : {}) };
}

/** Refuses `--add-bos` / `--no-add-bos` with `--format raw` (usage error): a raw prompt is the text as written. */
export function checkAddBos(flags: PromptFlags): void {
  if (flags.addBos !== undefined && flags.format === 'raw') {
    throw usage(
      `${addBosFlag(flags.addBos)}: a --format raw prompt is the text as written, special tokens included`,
      'write the BOS in the text, or use --format tulu or chat-template',
    );
  }
}

/**
 * Refuses (exit 3, a tokenizer that cannot be found) a `--tokenizer` directory that does not exist,
 * is a file, or holds no tokenizer.json, saying which.
 */
export function checkTokenizerDir(dir: string, flag = '--tokenizer'): void {
  if (!existsSync(dir)) throw new CliError(`${flag}: ${dir} does not exist${meantDir(dir)}`, EXIT.load);
  if (!statSync(dir).isDirectory()) {
    throw new CliError(
      `${flag}: ${dir} is a file, not a tokenizer directory`,
      EXIT.load,
      `give the directory that holds tokenizer.json${basename(dir) === 'tokenizer.json' ? `: ${dirname(dir)}` : ''}`,
    );
  }
  if (!existsSync(join(dir, 'tokenizer.json')))
    throw new CliError(`${flag}: ${dir} has no tokenizer.json`, EXIT.load);
}

const PROVIDERS = ['auto', 'cpu', 'cuda'];

/** `; did you mean ./models/tiny?` for a missing `--model` beside a directory of a nearby name, else `''`. */
export function meantDir(path: string): string {
  const near = nearMiss(path);
  return near === undefined ? '' : `; did you mean ${near}?`;
}

/**
 * The name a local model directory goes by (the default generator name of its eval runs, its id in
 * `serve` and `--json`): the directory's name, or for the model a finetune job trained
 * (`JOB/output`, beside `JOB/job.json`) the job's: every trained model is in an `output/`, and
 * `jobs/gsm-ep5-seed1/output` is `gsm-ep5-seed1`, not `output`.
 *
 * @example
 * localModelId('./models/tiny/'); // 'tiny'
 * localModelId('jobs/gsm-ep5-seed1/output'); // with jobs/gsm-ep5-seed1/job.json there: gsm-ep5-seed1
 */
export function localModelId(dir: string): string {
  const path = dir.replace(/[/\\]+$/, '') || dir;
  const name = basename(path) || path;
  if (name !== 'output') return name;
  const job = dirname(resolve(path));
  return existsSync(join(job, 'job.json')) ? basename(job) : name;
}

/**
 * Loads `--model` (a directory or a hub id), or the default model when it is omitted, with `load`
 * (`loadModel`, or `loadModelInWorker` for a model whose onnxruntime session runs in a worker thread).
 */
export async function openModel<M extends BaseModel = Model>(
  flags: ModelFlags,
  flag = '--model',
  load: (model: string, options: LoadOptions) => Promise<M> = loadModel as unknown as typeof load,
): Promise<OpenedModel<M>> {
  if (flags.provider && !PROVIDERS.includes(flags.provider)) {
    throw usage(`--provider: expected one of ${PROVIDERS.join(', ')}, got "${flags.provider}"`);
  }
  let target = flags.model;
  let id: string;
  let random = false;
  if (target === undefined) {
    const found = await resolveDefaultModel({
      offline: flags.offline,
      ...(flags.fallback === false ? { fallback: false } : {}),
    });
    target = found.dir;
    id = found.id;
    random = found.random;
  } else {
    if (!existsSync(target) && !isHubId(target)) {
      throw new CliError(
        `${flag}: "${target}" is neither a directory nor a hub id (owner/name)${meantDir(target)}`,
        EXIT.load,
        'create one with `implicit-it model create --preset tiny --out DIR`',
      );
    }
    id = isHubId(target) ? target : localModelId(target);
  }
  // the notes of rule sets the CLI has noted itself (noteRules, always) are not said again with -v
  const log = flags.verbose
    ? (line: string) => {
        if (!notedByRuntime(line)) note(`[implicit-it] ${line}`);
      }
    : () => {};
  const model = await load(target, {
    executionProvider: (flags.provider ?? 'auto') as ExecutionProvider | 'auto',
    dtype: (flags.dtype ?? 'fp32') as ModelDtype,
    offline: flags.offline,
    ...(flags.maxBatchSize ? { maxBatchSize: flags.maxBatchSize } : {}),
    ...(flags.threads ? { intraOpThreads: flags.threads } : {}),
    ...(flags.prefillChunk !== undefined ? { prefillChunk: flags.prefillChunk } : {}),
    ...(flags.prefixCache ? { prefixCache: flags.prefixCache * 2 ** 20 } : {}),
    ...(flags.onnxLogLevel ? { onnxLogLevel: flags.onnxLogLevel as OnnxLogLevel } : {}),
    ...(flags.q4AccuracyLevel !== undefined
      ? { q4AccuracyLevel: flags.q4AccuracyLevel as 0 | 1 | 2 | 3 | 4 }
      : {}),
    log,
    onProgress: (message) => note(message),
  });
  if (flags.q4AccuracyLevel !== undefined && model.info.q4AccuracyLevel === null)
    note(
      `--q4-accuracy-level: ${relative(process.cwd(), model.info.onnxFile) || model.info.onnxFile} has no MatMulNBits layers, so nothing changed (4-bit graphs load with --dtype q4)`,
    );
  return { model, id, random };
}

export type { WeightDtype };

/** `--dtypes fp32,q4`: the ONNX graphs to write, each named as transformers.js names it. */
export function dtypesArg(value: string): WeightDtype[] {
  const list = value.split(',').map((d) => d.trim());
  for (const [i, d] of list.entries()) {
    if (!Object.hasOwn(DTYPE_FILES, d))
      throw new InvalidArgumentError(
        `expected a comma-separated list of ${Object.keys(DTYPE_FILES).join(', ')}, got "${d}"`,
      );
    if (list.indexOf(d) !== i) throw new InvalidArgumentError(`${d} is listed twice`);
  }
  return list as WeightDtype[];
}
