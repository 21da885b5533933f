import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import {
  type BuiltPrompt,
  ContextLengthError,
  EvalInputError,
  type EvalInstruction,
  type Progress as EvalProgress,
  excerpt,
  finishedAnnotationsDifferences,
  finishedRanking,
  finishedRankingDifferences,
  finishedRun,
  finishedRunDifferences,
  finishedShift,
  finishedShiftDifferences,
  formatWinRate,
  generateRun,
  isRefusedPair,
  judgePairs,
  type ModelOutput,
  type NegativeDraw,
  openAIJudge,
  pairOutputs,
  planAblations,
  promptsOverContext,
  type RankingResult,
  ResumeMismatchError,
  rankResponses,
  readAlpacaData,
  readAnnotations,
  readDoneRecord,
  readInstructions,
  readModelOutputs,
  resummarizeRanking,
  runAblations,
  runPaths,
  runtimeGenerator,
  runtimeRankSource,
  runtimeScorer,
  type ShiftResult,
  tokenShift,
  WIN_RATE_KEYS,
  type WinRateStats,
  winRate,
  writeReport,
} from '@implicit-it/eval';
import {
  ABLATIONS,
  ImplicitItError,
  type RuleSetConfig,
  type RuleSpec,
  resolveRuleSpec,
} from '@implicit-it/rules';
import type { Model } from '@implicit-it/runtime';
import { PROMPT_FORMATS } from '@implicit-it/tokenizers';
import { type Command, Option } from 'commander';
import {
  ADD_BOS_HELP,
  addBosFlag,
  addLoadOptions,
  checkAddBos,
  checkOutDirectory,
  checkOutPath,
  formerFlag,
  intArg,
  type ModelFlags,
  NO_ADD_BOS_HELP,
  numArg,
  type OpenedModel,
  openModel,
  type PromptFlags,
  parseRules,
  promptSettings,
  renamedFlag,
  rulesLabel,
} from '../flags.js';
import { modelFingerprint } from '../model-fingerprint.js';
import {
  CliError,
  counted,
  EXIT,
  exitCodeOf,
  note,
  painter,
  printJson,
  shellCommand,
  shellWord,
  usage,
} from '../output.js';
import { type Progress, progressBar } from '../progress.js';
import { retryNotes } from '../retry-notes.js';
import { checkRules } from '../rule-notes.js';
import { fingerprintRules, generatorName, modelPart, recordedRun, runName } from '../run-rules.js';
import { sharedDefaultMissing, sharedDir } from '../shared-dir.js';
import { checkChatTemplate } from './generate.js';

// ---------------------------------------------------------------------------------------------
// shared pieces

/** A file under `<shared>/data`, as the default of an option (undefined without ../shared). */
function sharedData(...parts: string[]): string | undefined {
  const shared = sharedDir();
  const file = shared ? join(shared, 'data', ...parts) : undefined;
  return file && existsSync(file) ? file : undefined;
}

const ALPACA_EVAL = ['alpaca_eval', 'alpaca_eval.jsonl'];
const ALPACA_DATA = ['alpaca', 'alpaca_data_2k.json'];
const GPT4_BASELINE = ['alpaca_eval', 'gpt4_1106_preview.model_outputs.json'];

/**
 * The value of `flag`, else its default, `<shared>/data/PARTS` (`sharedData`); neither is a usage
 * error that says where the default was looked for, and how to point the CLI at the shared directory.
 */
function required(given: string | undefined, flag: string, what: string, parts: readonly string[]): string {
  const value = given ?? sharedData(...parts);
  if (value) return value;
  const file = join('data', ...parts);
  throw usage(
    `${flag}: give ${what}: the default, ${file} in the shared directory, is not there (${sharedDefaultMissing(file)})`,
    `set IMPLICIT_IT_SHARED_DIR to the repository's shared/ directory (the one that holds ${file}), or give ${flag}`,
  );
}

interface EvalModelFlags extends ModelFlags, PromptFlags {
  batchSize?: number;
}

/** `--model` (required here: an evaluation of the random default model would mean nothing) and how to load it. */
function addModelOptions(
  cmd: Command,
  flag = '-m, --model <dir|hub-id>',
  what = 'the model to evaluate',
): Command {
  cmd
    .requiredOption(flag, `${what}: a model directory or a hub id`)
    .addOption(
      new Option('-f, --format <format>', 'prompt format (the paper: tulu)')
        .choices(PROMPT_FORMATS)
        .default('tulu'),
    )
    .option('--add-bos', ADD_BOS_HELP)
    .option('--no-add-bos', NO_ADD_BOS_HELP);
  return addLoadOptions(cmd, 'never use the network (hub ids must be cached)');
}

async function loadFor(model: string, flags: EvalModelFlags, flag = '--model'): Promise<OpenedModel> {
  checkAddBos(flags);
  const opened = await openModel(
    { ...flags, model, ...(flags.batchSize ? { maxBatchSize: flags.batchSize } : {}) },
    flag,
  );
  await checkChatTemplate(opened, flags.format);
  return opened;
}

/** What the first report of a step says of the work it finds done: a journal's, an earlier run's. */
const resuming = (done: number, total: number) => `resuming, ${done} of ${total} already done`;

/**
 * A progress bar per label (a rule subset, an outputs file), on stderr, terminals only. `found` says
 * what the work found done at the start is (`resumed` of the first report), for a note.
 */
function progressReporter(unit: string, prefix: string, found = resuming) {
  let bar: Progress | undefined;
  let current: string | undefined;
  let last: EvalProgress | undefined;
  return {
    onProgress(p: EvalProgress) {
      last = p;
      const label = p.label ? `${prefix} ${p.label}` : prefix;
      if (!bar || current !== label) {
        bar?.stop();
        current = label;
        if (p.resumed > 0 && p.done < p.total)
          note(painter(process.stderr)('dim', `${label}: ${found(p.resumed, p.total)}`));
        bar = progressBar(label, p.total, unit, { resumed: p.resumed });
      }
      bar.update(p.done, p.total);
    },
    stop() {
      bar?.stop();
      bar = undefined;
    },
    get last() {
      return last;
    },
  };
}

/**
 * `reporter.onProgress`, after the note of the rules of the work reported (`checkRules`; `noteOf` its
 * label: an ablation subset) at its first report with work to do: the run's own refusals (a journal of
 * other settings) come before that report and are said alone, and a subset found finished runs
 * nothing. The bar of the work before is ended first, so that the note has a line of its own.
 */
function noting(
  reporter: ReturnType<typeof progressReporter>,
  noteOf: (label: string | undefined) => string | undefined,
) {
  const said = new Set<string | undefined>();
  return (p: EvalProgress) => {
    if (p.resumed < p.total && !said.has(p.label)) {
      said.add(p.label);
      const line = noteOf(p.label);
      if (line !== undefined) {
        reporter.stop();
        note(line);
      }
    }
    reporter.onProgress(p);
  };
}

/**
 * How a run's outputs name their generator, for the hint of a refusal whose only difference is the
 * generator name: `named`, whether --name was given; `nameOf`, the --name value that gives outputs
 * `out` the recorded generator name (eval generate: the name itself; eval ablations: without its
 * `-SUBSET`), undefined where none does.
 */
interface Naming {
  named: boolean;
  nameOf: (generator: string, out: string) => string | undefined;
  /** The model part of this run's default name (`modelPart`): a recorded name with it names the same model. */
  model?: string;
}

/** eval generate's --name is the generator name itself; `model`: the model part of its default. */
const GENERATE_NAMING = (named: boolean, model?: string): Naming => ({
  named,
  nameOf: (generator) => generator,
  ...(model === undefined ? {} : { model }),
});

/** eval ablations' --name is the model's: a subset's outputs are labelled NAME-SUBSET. */
const ABLATION_NAMING = (named: boolean): Naming => ({
  named,
  nameOf: (generator, out) => {
    const suffix = `-${basename(out, '.json')}`;
    return generator.endsWith(suffix) ? generator.slice(0, -suffix.length) : undefined;
  },
});

/**
 * The first part of a hint for a run refused only for its generator name, when --name was left out
 * (the default name follows the model directory's name: a copy of the model elsewhere has another):
 * the --name that reuses or resumes it. Undefined in any other case.
 */
function nameHint(
  diff: readonly string[],
  generator: unknown,
  out: string,
  naming: Naming | undefined,
  verb: string,
): string | undefined {
  if (!naming || naming.named || diff.length !== 1 || diff[0] !== 'generator') return undefined;
  if (typeof generator !== 'string') return undefined;
  const name = naming.nameOf(generator, out);
  if (name === undefined) return undefined;
  // the same model and settings, the same rules: only the default name's rules part differs (rules
  // read from a file of another name, or a --name given before)
  const { model } = naming;
  if (model !== undefined && (generator === model || generator.startsWith(`${model}-`)))
    return `its outputs are named "${generator}" (this model's, with these rules named otherwise): add --name ${shellWord(name)} to ${verb} them`;
  return `its outputs are named "${generator}": if they are this model's (a copy in a directory of another name), add --name ${shellWord(name)} to ${verb} them`;
}

/** Runs `work` with an AbortSignal that Ctrl-C fires; an interrupted run exits 130 with `resumeHint`. */
async function interruptible<T>(
  work: (signal: AbortSignal) => Promise<T>,
  resumeHint: () => string,
  /** The flag behind each run setting (`headerDifferences` key paths), to name them when a journal of other settings is found. */
  settings: Record<string, string> = {},
  /** How the outputs name their generator (eval generate, eval ablations), for the hint of a journal of another name. */
  naming?: Naming,
): Promise<T> {
  const abort = new AbortController();
  const onSigint = () => abort.abort(new Error('interrupted'));
  process.once('SIGINT', onSigint);
  try {
    return await work(abort.signal);
  } catch (error) {
    if (abort.signal.aborted) throw new CliError(`interrupted; ${resumeHint()}`, EXIT.interrupted);
    if (ResumeMismatchError.isInstance(error) && error.differences.length > 0) {
      // a run's unfinished work under other flags: the user's choice, which the flags name
      const what = differentFlags(error.differences, settings, false);
      const renamed = nameHint(
        error.differences,
        error.stored?.generator,
        error.file.replace(/\.journal\.jsonl$/, ''),
        naming,
        'resume',
      );
      throw usage(
        `${error.file} holds the unfinished work of a run with other settings (different ${what}); it is kept`,
        what === OLDER_VERSION
          ? 'this version cannot resume it: finish it with the version that started it, or add --replace (or delete it) to start over'
          : renamed
            ? `${renamed}; else add --replace (or delete it) to start over with these settings`
            : 'rerun with the flags it was started with to resume it, or add --replace (or delete it) to start over with these',
      );
    }
    throw error;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

const warn = (message: string) => note(painter(process.stderr)('yellow', `warning: ${message}`));

/** The paper's new-token limit: 8192 with the EOS rule (it ends answers), 512 without. */
function paperMaxTokens(rules: RuleSpec): number {
  return resolveRuleSpec(rules).eos ? 8192 : 512;
}

/** The instructions of `file` (the first `limit`); an empty file is a usage error naming `flag`. */
function readLimited(file: string, limit: number | undefined, flag = '--instructions'): EvalInstruction[] {
  let all: EvalInstruction[];
  try {
    all = readInstructions(file);
  } catch (error) {
    // the flag that named the file, as every other input error says it
    if (ImplicitItError.isInstance(error)) throw new CliError(`${flag}: ${error.message}`, exitCodeOf(error));
    throw error;
  }
  if (all.length === 0) {
    throw usage(
      `${flag}: ${file} has no instructions`,
      'give a .jsonl file of {"instruction": ...} objects, one a line, or a .json array of them',
    );
  }
  return limit === undefined ? all : all.slice(0, limit);
}

/**
 * Refuses, before anything is generated, instructions whose prompt leaves the model no position to
 * generate in (the runtime would fail at the first batch that holds one, after the batches before
 * it). Exit 1: the instructions and the model do not go together. A prompt that fits but leaves fewer
 * positions than --max-tokens is fine: its output stops at the end of the context (finish reason
 * `length`), like any output that reaches the token limit.
 */
function checkPromptsFit(
  opened: OpenedModel,
  instructions: readonly EvalInstruction[],
  prompt: PromptFlags,
  file: string,
  modelFlag = '--model',
  /** The model's prompts of these instructions under `prompt`, built already (`buildPrompts`). */
  prompts?: ReadonlyMap<string, BuiltPrompt>,
): void {
  const over = promptsOverContext(
    opened.model,
    instructions.map((x) => x.instruction),
    { ...promptSettings(prompt), ...(prompts ? { prompts } : {}) },
  );
  if (over.length === 0) return;
  const context = opened.model.info.maxPositions;
  const shown = over
    .slice(0, 5)
    .map((o) => `#${o.index} ${excerpt(instructions[o.index]!.instruction, 50)} (${o.tokens} tokens)`)
    .join(', ');
  const first = over[0]!.index;
  const which =
    over.length === 1
      ? `instruction ${shown} of ${file} does not fit in the context of ${modelFlag} ${opened.id}: its prompt leaves`
      : `${over.length} of the ${instructions.length} instructions of ${file} do not fit in the context of ` +
        `${modelFlag} ${opened.id}: their prompts leave`;
  throw new CliError(
    `${which} no position to generate in, the model's context being ${context} tokens (max_position_embeddings)` +
      `${over.length === 1 ? '' : `: ${shown}${over.length > 5 ? `, and ${over.length - 5} more` : ''}`}` +
      ' (# counts rows of the file from 0; nothing was generated)',
    EXIT.failure,
    `use a model with a longer context, or leave ${over.length === 1 ? 'it' : 'them'} out: ` +
      `${first > 0 ? `--limit ${first} stops before ${over.length === 1 ? 'it' : 'the first'}, or ` : ''}` +
      `give --instructions a file without ${over.length === 1 ? 'it' : 'them'}`,
  );
}

/** The generator of an eval command: the model with `rules`, the prompt flags and --batch-size. */
function evalGenerator(
  model: Model,
  rules: NonNullable<Parameters<typeof runtimeGenerator>[1]>['rules'],
  flags: PromptFlags & { batchSize?: number },
) {
  return runtimeGenerator(model, {
    rules,
    ...promptSettings(flags),
    ...(flags.batchSize ? { batchSize: flags.batchSize } : {}),
  });
}

/** A record's `version` that differs: the record is an older implicit-it's. */
const OLDER_VERSION = 'implicit-it version (the run was started by an older one)';

/** The fingerprint keys that hold a model's `modelFingerprint`, whose settings name the model's flag. */
const MODEL_FINGERPRINTS = ['fingerprint.model', 'fingerprint.base'];

/** Keys of the model fingerprint of earlier versions: the model's directory, its graph's size and modification time. */
const OLDER_MODEL_KEYS = new Set(['dir', 'bytes', 'mtimeMs']);

/**
 * What differs of the model of `flag`, from the key paths below its fingerprint (`modelFingerprint`:
 * `files.tokenizer.json`, `dtype`; '' for the whole): its files by name, --dtype (its graph and files
 * follow from it), --q4-accuracy-level, or the implicit-it version of a record whose fingerprint
 * identified the model by directory and modification time.
 */
function modelDifferences(flag: string, keys: readonly string[]): string[] {
  if (keys.some((k) => OLDER_MODEL_KEYS.has(k))) return [OLDER_VERSION];
  if (keys.includes('dtype')) return ['--dtype'];
  const files = keys.filter((k) => k.startsWith('files.')).map((k) => k.slice('files.'.length));
  const out = files.length > 0 ? [`${flag} (its ${files.join(', ')})`] : [];
  if (keys.includes('q4AccuracyLevel')) out.push('--q4-accuracy-level');
  return out.length > 0 ? out : [`${flag} (its files, --dtype, --q4-accuracy-level)`];
}

/** The setting behind a key path: that of the path, else of the nearest key above it with one. */
function settingOf(key: string, settings: Record<string, string>): string {
  for (let k = key; ; k = k.slice(0, k.lastIndexOf('.'))) {
    if (settings[k] !== undefined) return settings[k];
    if (!k.includes('.')) return key;
  }
}

/**
 * The flags behind run settings that differ (`headerDifferences` key paths), for messages. A default
 * generator name follows the model and the rules: where those differ too, they say more than the
 * name, unless it was given (`named`, --name). A model's differences are named as `modelDifferences`
 * says, after the model's flag (`settings['fingerprint.model']`).
 */
function differentFlags(diff: readonly string[], settings: Record<string, string>, named: boolean): string {
  const shown = diff.length > 1 && !named ? diff.filter((k) => k !== 'generator') : diff;
  const below = (model: string) => shown.filter((k) => k === model || k.startsWith(`${model}.`));
  // the rules a run records are their canonical config: what of it differs (`used.penalty`,
  // `uniform.entries`, `eos`: a rule on in one only), after the flag that gave them
  const rulesFlag = settings['fingerprint.rules'];
  const ruleParts = below('fingerprint.rules')
    .filter((k) => k !== 'fingerprint.rules')
    .map((k) => k.slice('fingerprint.rules.'.length));
  const out: string[] = [];
  for (const key of shown) {
    const model = MODEL_FINGERPRINTS.find((m) => below(m).includes(key));
    if (key.startsWith('fingerprint.rules.') && rulesFlag?.startsWith('--'))
      out.push(`${rulesFlag} (its ${ruleParts.join(', ')})`);
    else if (model === undefined) out.push(settingOf(key, settings));
    else {
      const keys = below(model).map((k) => k.slice(model.length + 1));
      out.push(...modelDifferences(settings[model] ?? '--model', keys));
    }
  }
  return [...new Set(out)].join(', ');
}

/** What each part of a generate run's record (finishedRunDifferences) is set by, for messages. */
const RUN_SETTINGS: Record<string, string> = {
  version: OLDER_VERSION,
  generator: '--name',
  instructions: '--instructions or --limit',
  maxNewTokens: '--max-tokens',
  tokenIds: '--token-ids',
  'fingerprint.model': '--model',
  'fingerprint.rules': '--rules',
  'fingerprint.format': '--format',
  'fingerprint.addBos': '--add-bos / --no-add-bos',
};

/** The same for eval shift's aligned outputs, generated by --aligned under --aligned-rules. */
const ALIGNED_SETTINGS: Record<string, string> = {
  ...RUN_SETTINGS,
  generator: '--aligned model',
  'fingerprint.model': '--aligned model',
  'fingerprint.rules': '--aligned-rules',
};

/** The flags behind the settings of an eval rank journal. */
const RANK_SETTINGS: Record<string, string> = {
  ...RUN_SETTINGS,
  n: '--limit',
  negatives: '--negatives',
  draw: '--draw',
  seed: '--seed',
  bootstrap: '--bootstrap',
  data: '--data (its first --limit examples)',
  'fingerprint.maxSeqLength': '--max-seq-length',
};

/** The flags behind the settings of an eval shift journal. */
const SHIFT_SETTINGS: Record<string, string> = {
  ...RUN_SETTINGS,
  outputs: '--aligned outputs',
  label: '--label',
  topK: '--top-k',
  'fingerprint.base': '--base',
};

/** The flags behind the settings of eval judge's annotations (finishedAnnotationsDifferences). */
const JUDGE_SETTINGS: Record<string, string> = {
  version: OLDER_VERSION,
  judge: '--judge-model / --base-url',
  annotator: '--judge-model / --base-url',
  request: 'judge request parameters (another implicit-it version)',
  seed: '--seed',
  baseline: '--baseline',
  generators: "outputs' generator",
};

/** The same for a subset of eval ablations (its rules follow from its name, given by --subsets). */
const ABLATION_SETTINGS: Record<string, string> = {
  ...RUN_SETTINGS,
  'fingerprint.subset': '--subsets',
  'fingerprint.rules': 'rules for this subset name (another implicit-it version)',
};

/**
 * Refuses to replace an existing `out` that is not the finished result of these very settings (the
 * caller has checked that: finishedRun, finishedRanking, finishedShift; eval judge calls it only
 * where finishedAnnotationsDifferences is not empty, as it judges again into annotations of the same
 * settings): a finished result of other settings (naming what differs, from `differences`: the
 * record's differing keys, undefined without a record), a file without the record of the run that
 * wrote it, or one changed since. A pending journal is left to the run (it resumes it, or refuses a
 * journal of another run). Not called with --replace.
 */
function refuseToReplace(
  out: string,
  differences: () => string[] | undefined,
  {
    outFlag = '--out',
    named = false,
    settings = RUN_SETTINGS,
    what = { kind: 'outputs', redo: 'generate it again' },
    naming,
  }: {
    /** The flag that gave `out`, for messages (default --out). */
    outFlag?: string;
    /** The generator name was given (--name), not derived from the model and rules. */
    named?: boolean;
    /** The record's keys and the flags behind them (default RUN_SETTINGS). */
    settings?: Record<string, string>;
    /** `kind`: what `out` holds, a plural (outputs, annotations) or a singular (result) */
    what?: { kind: string; redo: string };
    /** How the outputs name their generator (eval generate, eval ablations), for the hint of outputs of another name. */
    naming?: Naming | undefined;
  } = {},
): void {
  if (!existsSync(out) || existsSync(`${out}.journal.jsonl`)) return;
  const hint = `add --replace (or delete ${out}) to ${what.redo} with these settings, or give another ${outFlag}`;
  const diff = differences();
  const renamed = diff && nameHint(diff, readDoneRecord(out)?.generator, out, naming, 'reuse');
  if (diff === undefined) {
    throw usage(
      `${outFlag}: ${out} exists, and there is no record of the run that wrote it (${out}.done): it may be anything, so it is not replaced`,
      hint,
    );
  }
  if (diff.length > 0) {
    const flags = differentFlags(diff, settings, named);
    throw usage(
      `${outFlag}: ${out} holds the finished ${what.kind} of another run (different ${flags}); ${what.kind.endsWith('s') ? 'they are' : 'it is'} not replaced`,
      renamed ? `${renamed}; else ${hint}` : hint,
    );
  }
  throw usage(`${outFlag}: ${out} was changed since the run that wrote it; it is not replaced`, hint);
}

/**
 * A finished `--out` result of the same settings (with a note that it is reused), or undefined; an
 * `--out` that holds anything else is refused (`refuseToReplace`), unless `replace` (--replace). For
 * `eval rank` and `eval shift`.
 */
function finishedResult<T>(
  out: string | undefined,
  finished: (out: string) => T | undefined,
  differences: (out: string) => string[] | undefined,
  settings: Record<string, string>,
  what: { same: string; redo: string },
  replace: boolean | undefined,
): T | undefined {
  if (!out) return undefined;
  const done = finished(out);
  if (done === undefined) {
    if (replace) return undefined;
    refuseToReplace(out, () => differences(out), { settings, what: { kind: 'result', redo: what.redo } });
    return undefined;
  }
  note(`${out} is already complete (same ${what.same}): nothing to do; delete it to ${what.redo}`);
  return done;
}

/** Rethrows a ContextLengthError of a scoring step as a CLI error naming `where` and the fix. */
function explainContext(error: unknown, where: string, hint: string): never {
  if (ContextLengthError.isInstance(error))
    throw new CliError(`${where}: ${error.message}`, EXIT.failure, hint);
  throw error;
}

const pct = (x: number | null | undefined) =>
  x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : `${x.toFixed(2)}%`;

// ---------------------------------------------------------------------------------------------
// eval generate

interface GenerateFlags extends EvalModelFlags {
  model: string;
  rules?: string;
  instructions?: string;
  out: string;
  name?: string;
  limit?: number;
  maxTokens?: number;
  tokenIds?: boolean;
  replace?: boolean;
  json?: boolean;
}

async function generate(flags: GenerateFlags): Promise<void> {
  const rules = parseRules(flags.rules);
  checkOutPath(flags.out, 'file', '--out', {
    example: 'outputs.json',
    json: "the outputs file (alpaca_eval's model_outputs.json)",
  });
  const file = required(flags.instructions, '--instructions', 'a .jsonl or .json file', ALPACA_EVAL);
  const instructions = readLimited(file, flags.limit);
  const opened = await loadFor(flags.model, flags);
  // what was recorded at --out (a pending journal, or a finished run): rules written otherwise that
  // compile alike are the same rules, and keep the name their outputs have
  const recorded = recordedRun(flags.out);
  const { name, kept } = runName(opened.id, rules, flags.name, recorded);
  const naming = GENERATE_NAMING(flags.name !== undefined, modelPart(opened.id));
  const progress = progressReporter('instructions', 'generating');
  try {
    const rulesNote = checkRules(rules, opened.model.tokenizer.vocabulary, `--rules ${rulesLabel(rules)}`);
    if (kept)
      note(
        `${flags.out} holds outputs of these rules (written otherwise) named "${name}": they keep that name`,
      );
    // what identifies the run: the same command on the same model finds its finished outputs
    const run = {
      instructions,
      out: flags.out,
      generatorName: name,
      maxNewTokens: flags.maxTokens ?? paperMaxTokens(rules),
      fingerprint: {
        model: modelFingerprint(opened.model),
        rules: fingerprintRules(rules, recorded),
        ...promptSettings(flags),
      },
      tokenIds: flags.tokenIds === true,
    };
    const done = finishedRun(run);
    if (!done) {
      if (!flags.replace)
        refuseToReplace(run.out, () => finishedRunDifferences(run), {
          named: flags.name !== undefined,
          naming,
        });
      checkPromptsFit(opened, instructions, flags, file);
    }
    if (done) {
      note(
        `${flags.out} is already complete (same model, rules and limits): nothing to do; delete it to generate again`,
      );
    }
    const result = done
      ? { outputs: done, out: flags.out, generated: 0, resumed: done.length }
      : await interruptible(
          (signal) =>
            generateRun({
              ...run,
              generator: evalGenerator(opened.model, rules, flags),
              ...(flags.batchSize ? { batchSize: flags.batchSize } : {}),
              ...(flags.replace ? { replace: true } : {}),
              signal,
              onProgress: noting(progress, () => rulesNote),
              onWarning: warn,
            }),
          () =>
            `${progress.last?.done ?? 0} of ${instructions.length} outputs are kept in ${flags.out}.journal.jsonl: rerun the same command to resume`,
          RUN_SETTINGS,
          naming,
        );
    progress.stop();
    const summary = {
      out: resolve(result.out),
      generator: name,
      count: result.outputs.length,
      generated: result.generated,
      resumed: result.resumed,
    };
    if (flags.json) {
      printJson(summary);
      return;
    }
    process.stdout.write(
      done
        ? `${summary.out}: ${counted(summary.count, 'output')} of "${name}", already complete\n`
        : `${painter()('green', 'wrote')} ${summary.out}: ${counted(summary.count, 'output')} of "${name}" ` +
            `(${summary.generated} generated, ${summary.resumed} resumed)\n`,
    );
  } finally {
    progress.stop();
    await opened.model.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// eval ablations

interface AblationFlags extends EvalModelFlags {
  model: string;
  instructions?: string;
  runDir: string;
  subsets?: string[];
  name?: string;
  limit?: number;
  maxTokens?: number;
  tokenIds?: boolean;
  replace?: boolean;
  json?: boolean;
}

/** JSON with object keys sorted, so that equal rule sets compare equal whatever their key order. */
const sortedJson = (value: unknown): string =>
  JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  );

/**
 * A subset's rules, from its name, as runAblations reads it (a preset or rules joined by `-`; its
 * outputs are RUN/outputs/NAME.json): any other value (a misspelt name, rule-set JSON, `@file.json`)
 * is a usage error naming --subsets, as other flags' errors name theirs.
 */
function subsetRules(subset: string): RuleSetConfig {
  try {
    return resolveRuleSpec(subset);
  } catch (error) {
    if (!ImplicitItError.isInstance(error)) throw error;
    // the library's name for no rules is "none"; the CLI documents `off` (both work)
    throw usage(
      `--subsets: ${error.message.replaceAll('"none"', 'off')}`,
      /^\s*[@{]/.test(subset)
        ? 'eval ablations runs named rule subsets; for a rule set of your own, run eval generate --rules @file.json --out RUN/outputs/NAME.json'
        : undefined,
    );
  }
}

/** `--subsets`: at least one, each valid (a typo fails before the model loads), none twice. */
function checkSubsets(subsets: readonly string[]): void {
  if (subsets.length === 0) {
    throw usage(
      '--subsets: the list is empty; give rule subsets separated by commas',
      `e.g. --subsets none,eos-uniform-diversity (the default: ${ABLATIONS.join(',')})`,
    );
  }
  const seen = new Map<string, string>();
  for (const s of subsets) {
    const rules = sortedJson(subsetRules(s));
    const twin = seen.get(rules);
    if (twin === s) throw usage(`--subsets: "${s}" is listed twice`);
    if (twin !== undefined)
      throw usage(`--subsets: "${twin}" and "${s}" are the same rules; list one of them`);
    seen.set(rules, s);
  }
}

async function ablations(flags: AblationFlags): Promise<void> {
  const subsets = flags.subsets ?? [...ABLATIONS];
  checkSubsets(subsets);
  const paths = runPaths(flags.runDir);
  checkOutDirectory(flags.runDir, 'give a run directory (created when missing)', '--run-dir');
  for (const s of subsets) checkOutPath(paths.output(s), 'file', '--run-dir');
  const file = required(flags.instructions, '--instructions', 'a .jsonl or .json file', ALPACA_EVAL);
  const instructions = readLimited(file, flags.limit);
  const opened = await loadFor(flags.model, flags);
  const name = flags.name ?? generatorName(opened.id, false);
  const progress = progressReporter('instructions', 'generating');
  try {
    // each subset's rules on this vocabulary, all checked before the first subset is generated
    const rulesNotes = new Map(
      subsets.map((s) => [
        s,
        checkRules(resolveRuleSpec(s), opened.model.tokenizer.vocabulary, `--subsets ${s}`),
      ]),
    );
    checkPromptsFit(opened, instructions, flags, file);
    const runSettings = {
      instructions,
      outDir: paths.outputs,
      modelName: name,
      subsets,
      ...(flags.maxTokens !== undefined ? { maxNewTokens: flags.maxTokens } : {}),
      ...(flags.tokenIds ? { tokenIds: true } : {}),
      fingerprint: { model: modelFingerprint(opened.model), ...promptSettings(flags) },
    };
    // a subset's finished outputs of other settings are refused before anything is generated, as
    // eval generate refuses its --out (runAblations would generate them again and replace them)
    for (const { run } of planAblations(runSettings))
      if (!flags.replace && !finishedRun(run))
        refuseToReplace(run.out, () => finishedRunDifferences(run), {
          outFlag: '--run-dir',
          named: flags.name !== undefined,
          settings: ABLATION_SETTINGS,
          naming: ABLATION_NAMING(flags.name !== undefined),
        });
    const runs = await interruptible(
      (signal) =>
        runAblations({
          ...runSettings,
          createGenerator: (rules) => evalGenerator(opened.model, rules, flags),
          ...(flags.batchSize ? { batchSize: flags.batchSize } : {}),
          ...(flags.replace ? { replace: true } : {}),
          signal,
          onProgress: noting(progress, (label) => rulesNotes.get(label ?? '')),
          onWarning: warn,
        }),
      () => `finished subsets are kept in ${paths.outputs}, the current one in its journal: rerun to resume`,
      ABLATION_SETTINGS,
      ABLATION_NAMING(flags.name !== undefined),
    );
    progress.stop();
    const summary = {
      runDir: resolve(flags.runDir),
      runs: runs.map((r) => ({
        subset: r.subset,
        generator: `${name}-${r.subset}`,
        out: resolve(r.out),
        count: r.outputs.length,
        generated: r.generated,
        resumed: r.resumed,
        skipped: r.skipped,
      })),
    };
    if (flags.json) {
      printJson(summary);
      return;
    }
    const p = painter();
    // a subset finished by an earlier run is not written again: the count says so
    const skipped = summary.runs.filter((r) => r.skipped).length;
    let out =
      skipped === 0
        ? `${p('green', 'wrote')} ${runs.length} ablation outputs in ${paths.outputs}\n`
        : `${p('green', 'wrote')} ${runs.length - skipped} of ${runs.length} ablation outputs in ${paths.outputs} (${skipped} finished before)\n`;
    for (const r of summary.runs)
      out += `  ${r.subset.padEnd(22)} ${counted(r.count, 'output')} ${r.skipped ? '(skipped: finished by an earlier run with these settings)' : `(${r.generated} generated, ${r.resumed} resumed)`}\n`;
    out += `next: ${shellCommand(['implicit-it', 'eval', 'judge', '--run-dir', flags.runDir])}\n`;
    process.stdout.write(out);
  } finally {
    progress.stop();
    await opened.model.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// eval judge

interface JudgeFlags {
  outputs?: string;
  out?: string;
  runDir?: string;
  baseline?: string;
  baseUrl?: string;
  judgeModel: string;
  apiKeyEnv: string;
  cacheDir?: string;
  requestsPerMinute?: number;
  concurrency?: number;
  maxRetries?: number;
  timeout?: number;
  seed?: string;
  replace?: boolean;
  json?: boolean;
}

const statsOnly = (s: WinRateStats) =>
  Object.fromEntries(WIN_RATE_KEYS.map((k) => [k, Number.isFinite(s[k]) ? s[k] : null]));

async function judge(flags: JudgeFlags): Promise<void> {
  if (Boolean(flags.outputs) === Boolean(flags.runDir)) {
    throw usage(
      'give --outputs FILE (with --out), or --run-dir DIR to judge every outputs/NAME.json of a run',
    );
  }
  if (flags.outputs && !flags.out) throw usage('--outputs needs --out FILE (where annotations.json goes)');
  if (flags.runDir && flags.out) {
    throw usage(
      '--out is for --outputs: --run-dir writes each RUN_DIR/annotations/NAME.json itself',
      'leave --out out, or give --outputs FILE --out FILE to judge one outputs file',
    );
  }
  if (flags.out)
    checkOutPath(flags.out, 'file', '--out', { example: 'annotations.json', json: 'the annotations file' });
  if (flags.cacheDir) checkOutDirectory(flags.cacheDir, 'the judge cache is a directory', '--cache-dir');
  const baselineFile = required(flags.baseline, '--baseline', 'the baseline outputs', GPT4_BASELINE);
  const baseURL = flags.baseUrl ?? (process.env.OPENAI_BASE_URL || 'https://api.openai.com/v1');
  checkBaseUrl(baseURL, flags.baseUrl !== undefined ? '--base-url' : '$OPENAI_BASE_URL');
  if (/^https:\/\/api\.openai\.com\b/.test(baseURL) && !process.env[flags.apiKeyEnv]) {
    throw usage(
      `${flags.apiKeyEnv} is not set: the judge at ${baseURL} needs an API key`,
      'export the key, name another variable with --api-key-env, or point --base-url at your own endpoint',
    );
  }
  // the retries of requests in flight that fail alike are one line
  const retries = retryNotes((line) => note(painter(process.stderr)('dim', line)));
  const client = openAIJudge({
    baseURL,
    model: flags.judgeModel,
    apiKeyEnv: flags.apiKeyEnv,
    ...(flags.requestsPerMinute ? { requestsPerMinute: flags.requestsPerMinute } : {}),
    ...(flags.concurrency ? { concurrency: flags.concurrency } : {}),
    ...(flags.maxRetries !== undefined ? { maxRetries: flags.maxRetries } : {}),
    ...(flags.timeout ? { timeoutMs: flags.timeout * 1000 } : {}),
    onRetry: retries.onRetry,
  });

  const jobs: { name: string; outputs: string; out: string; cacheDir: string }[] = [];
  if (flags.runDir) {
    const paths = runPaths(flags.runDir);
    if (!existsSync(paths.outputs))
      throw usage(`--run-dir: ${paths.outputs} does not exist (run eval ablations first)`);
    for (const f of readdirSync(paths.outputs)
      .filter((x) => x.endsWith('.json'))
      .sort()) {
      const name = basename(f, '.json');
      jobs.push({
        name,
        outputs: join(paths.outputs, f),
        out: paths.annotation(name),
        cacheDir: flags.cacheDir ?? paths.judgeCache,
      });
    }
    if (jobs.length === 0) throw usage(`--run-dir: no outputs/*.json in ${flags.runDir}`);
    for (const job of jobs) checkOutPath(job.out, 'file', '--run-dir');
    if (!flags.cacheDir) checkOutDirectory(paths.judgeCache, 'the judge cache is a directory', '--run-dir');
  } else {
    jobs.push({
      name: basename(flags.outputs!, '.json'),
      outputs: flags.outputs!,
      out: flags.out!,
      cacheDir: flags.cacheDir ?? join(dirname(resolve(flags.out!)), '.judge-cache'),
    });
    if (!flags.cacheDir) checkOutDirectory(jobs[0]!.cacheDir, 'the judge cache is a directory', '--out');
  }
  // every file read (and found non-empty) before the first request is paid for
  const baseline = nonEmptyOutputs(baselineFile, '--baseline');
  const outputs = jobs.map((job) => nonEmptyOutputs(job.outputs, flags.runDir ? '--run-dir' : '--outputs'));
  // and every outputs file paired with the baseline: a later file without baseline outputs for its
  // instructions fails now, not after the earlier ones were paid for
  for (const [k, job] of jobs.entries()) {
    try {
      pairOutputs(baseline, outputs[k]!, { baseline: baselineFile, model: job.outputs });
    } catch (error) {
      if (!EvalInputError.isInstance(error)) throw error;
      throw usage(
        `${flags.runDir ? '--run-dir' : '--outputs'}: ${error.message}`,
        `give --baseline outputs for the same instructions${flags.baseline ? '' : ` (the default is ${baselineFile})`}, or leave this file out`,
      );
    }
  }

  // annotations of another judge, baseline or model are refused, every file before the first request
  // is paid for; those of these settings are judged again (from the cache, a rerun resumes)
  const seed =
    flags.seed === undefined ? {} : { seed: /^\d+$/.test(flags.seed) ? Number(flags.seed) : flags.seed };
  if (!flags.replace) {
    for (const [k, job] of jobs.entries()) {
      const settings = { judge: client, baseline, model: outputs[k]!, out: job.out, ...seed };
      const diff = finishedAnnotationsDifferences(settings);
      if (diff === undefined || diff.length > 0)
        refuseToReplace(job.out, () => diff, {
          outFlag: flags.runDir ? '--run-dir' : '--out',
          settings: JUDGE_SETTINGS,
          what: { kind: 'annotations', redo: 'judge again' },
        });
    }
  }

  // what needs no request is not all an earlier run's: identical outputs are draws, and the cache
  // answers what any run asked (another outputs file's identical pair, another judging's)
  const progress = progressReporter(
    'pairs',
    'judging',
    (n, total) => `${n} of ${total} need no request (identical outputs or cached judgements)`,
  );
  const results = [];
  try {
    for (const [k, job] of jobs.entries()) {
      const r = await interruptible(
        (signal) =>
          judgePairs({
            judge: client,
            baseline,
            model: outputs[k]!,
            files: { baseline: baselineFile, model: job.outputs },
            cacheDir: job.cacheDir,
            out: job.out,
            ...seed,
            ...(flags.replace ? { replace: true } : {}),
            signal,
            onProgress: (p) => progress.onProgress({ ...p, ...(jobs.length > 1 ? { label: job.name } : {}) }),
            // --run-dir judges files the command line does not name: each warning says which
            onWarning: flags.runDir ? (message) => warn(`${job.outputs}: ${message}`) : warn,
          }),
        () =>
          `every answered judgement is cached in ${job.cacheDir}: rerun to resume without paying for them again`,
      );
      progress.stop();
      results.push({
        name: job.name,
        outputs: resolve(job.outputs),
        out: resolve(job.out),
        // requests sent, answered or refused
        requests: r.requests,
        answered: r.requests - r.refused.length,
        cacheHits: r.cacheHits,
        identical: r.identical,
        discreteFallbacks: r.discreteFallbacks,
        unreadable: r.unreadable,
        // pairs the judge refused (HTTP 400, 413, 422): not judged, asked again by a rerun
        notJudged: r.refused,
        stats: statsOnly(winRate(r.annotations)),
      });
    }
  } finally {
    progress.stop();
    retries.flush(); // before the error that may follow
  }
  if (flags.json) {
    printJson(
      // the judge as the annotations and the cache name it: the model at its endpoint
      flags.runDir ? { runDir: resolve(flags.runDir), judge: client.id, results } : results[0],
    );
  } else {
    const p = painter();
    let out = '';
    for (const r of results) {
      const s = r.stats as Record<string, number | null>;
      out +=
        `${p('green', 'judged')} ${r.name}: win rate ${pct(s.win_rate)} ± ${s.standard_error === null ? 'n/a' : s.standard_error.toFixed(2)} ` +
        `over ${counted(s.n_total ?? 0, 'pair')} (${counted(s.n_wins ?? 0, 'win')}, ${counted(s.n_wins_base ?? 0, 'loss', 'losses')}, ${counted(s.n_draws ?? 0, 'draw')}) -> ${r.out}\n` +
        `  ${counted(r.requests, 'judge request')}` +
        `${r.notJudged.length ? ` (${r.answered} answered, ${r.notJudged.length} refused by the judge: not judged, rerun to ask again)` : ''}` +
        `, ${r.cacheHits} cached, ${counted(r.identical, 'identical pair')}` +
        `${r.discreteFallbacks ? `, ${r.discreteFallbacks} without logprobs` : ''}${r.unreadable ? `, ${r.unreadable} unreadable` : ''}\n`;
    }
    process.stdout.write(out);
  }
  // written and reported, but a win rate of no judgement is a failure, not a result
  const unread = results.filter((r) => r.stats.n_total === 0);
  if (unread.length > 0) {
    const unreadable = unread.some((r) => r.unreadable > 0);
    throw new CliError(
      unread
        .map((r) =>
          r.notJudged.length === 0
            ? `${r.name}: none of the ${r.unreadable} judgements could be read (no "m" or "M" in the judge's answer or its top_logprobs), so there is no win rate; ${r.out} keeps them with preference null`
            : `${r.name}: no pair was judged (${r.notJudged.length} refused by the judge${r.unreadable ? `, ${r.unreadable} unreadable` : ''}), so there is no win rate; ${r.out} keeps them with preference null`,
        )
        .join('\n'),
      EXIT.failure,
      unreadable
        ? `check that --judge-model ${flags.judgeModel} at ${baseURL} answers with the single token m or M; ` +
            `its answers are cached in ${[...new Set(jobs.map((j) => j.cacheDir))].join(', ')}: delete that to ask again`
        : `the judge refused every request (warned above, with its message): judge with a model that takes them (a longer context); a rerun asks again`,
    );
  }
}

/** `--base-url` (or $OPENAI_BASE_URL): an http(s) URL, or every request would fail and be retried. */
function checkBaseUrl(value: string, source: string): void {
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw usage(
      `${source}: expected an http:// or https:// URL, got ${JSON.stringify(value)}`,
      'give the endpoint up to /v1, e.g. http://127.0.0.1:8080/v1 or https://api.openai.com/v1',
    );
  }
}

/** A model_outputs.json with at least one output (an empty one is a usage error naming `flag`). */
function nonEmptyOutputs(file: string, flag: string): ModelOutput[] {
  const outputs = readModelOutputs(file);
  if (outputs.length === 0) throw usage(`${flag}: ${file} has no outputs (an empty list)`);
  return outputs;
}

// ---------------------------------------------------------------------------------------------
// eval winrate

async function winrate(flags: { annotations: string; json?: boolean }): Promise<void> {
  const annotations = readAnnotations(flags.annotations);
  if (annotations.length === 0)
    throw usage(`--annotations: ${flags.annotations} has no annotations (an empty list)`);
  const stats = winRate(annotations);
  if (stats.n_total === 0) {
    throw new CliError(
      `--annotations: none of the ${annotations.length} annotations in ${flags.annotations} has a preference (all are null: no judgement), so there is no win rate`,
      EXIT.failure,
      'judge the outputs again (eval judge) with a judge whose answers can be read',
    );
  }
  process.stdout.write(`${formatWinRate(stats, { json: flags.json === true })}\n`);
  const unjudged = annotations.filter((a) => a.preference === null);
  if (unjudged.length > 0) {
    const refused = unjudged.filter(isRefusedPair).length;
    const why = [
      refused > 0 &&
        `${refused} refused by the judge (their judge_error is in the file; eval judge asks for them again)`,
      unjudged.length > refused && `${unjudged.length - refused} without a judgement that could be read`,
    ].filter(Boolean);
    note(
      `${unjudged.length} of ${annotations.length} annotations have no preference and are left out of the win rate: ${why.join(', ')}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// eval rank

/** Examples of a response ranking run: the paper's 1,000. */
const RANK_EXAMPLES = 1000;

/**
 * Why `eval rank --limit` is at least 2: an example's random responses are those of other examples
 * among the first n (`drawNegatives` draws from them, ratio_eval.py's `randint(0, n - 1)` less the
 * example itself), so one example alone has none to rank its real response against.
 */
const RANK_LIMIT_WHY =
  "each example's real response is ranked against random responses drawn from the other examples among the first n";

interface RankFlags extends EvalModelFlags {
  model: string;
  rules?: string;
  data?: string;
  limit?: number;
  /** --limit's former name */
  n?: number;
  negatives: number;
  draw: NegativeDraw;
  seed: number;
  bootstrap: number;
  maxSeqLength: number;
  out?: string;
  replace?: boolean;
  json?: boolean;
}

/** A mean score as printed: 4 decimals, or 3 significant digits below 0.001 (a small model's 1.9e-5 is not 0.0000). */
const meanScore = (x: number) => (x !== 0 && Math.abs(x) < 1e-3 ? x.toPrecision(3) : x.toFixed(4));

function rankingSummary(r: RankingResult) {
  const { examples: _examples, ...rest } = r;
  return rest;
}

async function rank(flags: RankFlags): Promise<void> {
  const rules = parseRules(flags.rules, false);
  if (flags.out)
    checkOutPath(flags.out, 'file', '--out', { example: 'ranking.json', json: 'the ranking result' });
  const dataFile = required(flags.data, '--data', "Alpaca's alpaca_data.json", ALPACA_DATA);
  const data = readAlpacaData(dataFile);
  if (data.length < 2) {
    throw usage(
      `--data: ${dataFile} has ${data.length === 0 ? 'no examples' : 'one example'}; response ranking needs at least 2`,
    );
  }
  const n = renamedFlag(flags.limit, flags.n, '--limit', '--n') ?? RANK_EXAMPLES;
  if (n > data.length)
    throw usage(`--limit: ${dataFile} has ${data.length} examples; give --limit ${data.length} or less`);
  if (flags.draw === 'distinct' && flags.negatives > n - 1) {
    throw usage(
      `--negatives: with --draw distinct each of the --limit ${n} examples draws its random responses from the ${n - 1} others; give --negatives ${n - 1} or less`,
      '--draw paper (the default) draws with replacement',
    );
  }
  const opened = await loadFor(flags.model, flags);
  const progress = progressReporter('examples', 'ranking');
  try {
    const rulesNote = checkRules(rules, opened.model.tokenizer.vocabulary, `--rules ${rulesLabel(rules)}`);
    // what identifies the ranking: the same command on the same model finds its finished result
    const settings = {
      data,
      n,
      negatives: flags.negatives,
      draw: flags.draw,
      seed: flags.seed,
      bootstrap: flags.bootstrap,
      fingerprint: {
        model: modelFingerprint(opened.model),
        // rules written otherwise that compile alike are the same ranking (see eval generate)
        rules: fingerprintRules(rules, flags.out ? recordedRun(flags.out) : undefined),
        ...promptSettings(flags),
        maxSeqLength: flags.maxSeqLength,
      },
    };
    const outFile = flags.out;
    // the same scores with another --bootstrap: only the interval is computed again
    const resummarized = outFile ? await resummarizeRanking({ ...settings, out: outFile }) : undefined;
    if (resummarized) {
      note(
        `${outFile} holds the scores of this ranking: its interval computed again with --bootstrap ${flags.bootstrap}, nothing scored`,
      );
    }
    const done =
      resummarized ??
      finishedResult(
        outFile,
        (out) => finishedRanking({ ...settings, out }),
        (out) => finishedRankingDifferences({ ...settings, out }),
        RANK_SETTINGS,
        { same: 'model, data and settings', redo: 'rank again' },
        flags.replace,
      );
    const result =
      done ??
      (await interruptible(
        (signal) =>
          rankResponses({
            ...settings,
            scorer: runtimeScorer(opened.model, {
              rules,
              ...promptSettings(flags),
              ...(flags.batchSize ? { batchSize: flags.batchSize } : {}),
              maxSeqLength: flags.maxSeqLength,
            }),
            ...(flags.batchSize ? { batchSize: flags.batchSize } : {}),
            ...(outFile ? { out: outFile } : {}),
            ...(flags.replace ? { replace: true } : {}),
            signal,
            onProgress: noting(progress, () => rulesNote),
            onWarning: warn,
          }),
        () =>
          outFile
            ? `scored examples are kept in ${outFile}.journal.jsonl: rerun the same command to resume`
            : 'without --out nothing was kept',
        RANK_SETTINGS,
      ));
    progress.stop();
    const summary = { ...(flags.out ? { out: resolve(flags.out) } : {}), ...rankingSummary(result) };
    if (flags.json) {
      printJson(summary);
      return;
    }
    const r = result;
    let out =
      `response ranking, first ${r.n} examples, ${r.negatives} random responses each${r.draw === 'paper' ? " (ratio_eval.py's draws)" : ' (distinct)'}: the real response scores higher in ` +
      `${pct(r.percent)} of ${r.pairs} pairs (${Math.round(r.ci.level * 100)}% CI ${pct(r.ci.low)} - ${pct(r.ci.high)}), ${r.ties} ties\n` +
      // with ratio_eval.py's draws an example can draw its own response, which is left out: k of fewer
      `  examples whose real response beat k of its random responses (up to ${r.negatives}): ${r.histogram.map((c, k) => `${k}: ${c}`).join(', ')}\n` +
      `  mean score (exp mean log-prob): real ${meanScore(r.meanReal)}, random ${meanScore(r.meanRandom)}\n`;
    if (r.truncated > 0) {
      // the cut is --max-seq-length, or the model's context where that is shorter
      const context = opened.model.info.maxPositions;
      out +=
        context !== undefined && context < flags.maxSeqLength
          ? `  ${r.truncated} responses cut at ${context} tokens with their prompt: the context of ${opened.id} (shorter than --max-seq-length ${flags.maxSeqLength})\n`
          : `  ${r.truncated} responses cut at ${flags.maxSeqLength} tokens with their prompt (--max-seq-length)\n`;
    }
    if (flags.out) out += `${painter()('green', 'wrote')} ${resolve(flags.out)}\n`;
    process.stdout.write(out);
  } finally {
    progress.stop();
    await opened.model.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// eval shift

interface ShiftFlags extends EvalModelFlags {
  base: string;
  aligned: string;
  alignedRules?: string;
  instructions?: string;
  limit?: number;
  maxTokens?: number;
  alignedOut?: string;
  label?: string;
  topK?: number;
  out?: string;
  replace?: boolean;
  json?: boolean;
}

/**
 * Where the outputs of an aligned model directory go: in a run directory (`--out RUN/shift/X.json`)
 * `RUN/outputs/NAME.json`, where `eval report` and `eval judge --run-dir` expect model outputs (a
 * model_outputs.json in shift/ would be read as a shift result); else `OUT.aligned-outputs.json`
 * beside `--out`, or `NAME.outputs.json` here without `--out`.
 */
export function defaultAlignedOut(out: string | undefined, name: string): string {
  if (!out) return `${name}.outputs.json`;
  const dir = dirname(resolve(out));
  if (basename(dir) === 'shift') return runPaths(dirname(dir)).output(name);
  return out.replace(/(\.json)?$/, '.aligned-outputs.json');
}

/** The digest of the tokenizer.json in a model fingerprint (`modelFingerprint`), or undefined. */
function tokenizerOf(fingerprint: unknown): string | undefined {
  const files = (fingerprint as { files?: Record<string, unknown> } | undefined)?.files;
  const digest = files?.['tokenizer.json'];
  return typeof digest === 'string' ? digest : undefined;
}

/** A tokenizer digest as messages show it: `sha256:` and the first 12 hex digits. */
const shortDigest = (digest: string) => digest.replace(/^(sha256:[0-9a-f]{12})[0-9a-f]+$/, '$1');

const OTHER_TOKENIZER_HINT =
  "give --base the model that generated them (or one with its tokenizer), or outputs without token_ids (eval generate without --token-ids), whose text --base's tokenizer encodes itself";

/**
 * Refuses aligned outputs whose `token_ids` are not ids of the --base model's tokenizer: ranked
 * under it, they would be other tokens, and the statistics meaningless (or, past its vocabulary, an
 * error after the batches before). The tokenizer that wrote them is the one their run recorded
 * (`OUT.done`'s model fingerprint); without a record, ids past --base's vocabulary give them away.
 */
function checkAlignedIds(
  rows: readonly ModelOutput[],
  file: string,
  base: OpenedModel,
  baseFingerprint: Record<string, unknown>,
): void {
  if (!rows.some((row) => row.token_ids !== undefined)) return;
  const record = readDoneRecord(file);
  const theirs = tokenizerOf((record?.fingerprint as { model?: unknown } | undefined)?.model);
  const ours = tokenizerOf(baseFingerprint);
  if (theirs !== undefined && ours !== undefined && theirs !== ours) {
    throw usage(
      `--aligned ${file}: its token_ids come from another tokenizer than --base ${base.id}'s ` +
        `(tokenizer.json ${shortDigest(theirs)} in ${file}.done, ${shortDigest(ours)} in --base): ranked under --base they would be other tokens`,
      OTHER_TOKENIZER_HINT,
    );
  }
  const vocabulary = base.model.info.tokenCount;
  for (const [i, row] of rows.entries()) {
    const id = row.token_ids?.find((x) => !(Number.isInteger(x) && x >= 0 && x < vocabulary));
    if (id === undefined) continue;
    throw usage(
      `--aligned ${file}: output #${i} has token id ${id}, not an id of --base ${base.id} (its ids are in [0, ${vocabulary})): its token_ids come from another tokenizer`,
      OTHER_TOKENIZER_HINT,
    );
  }
}

/** How a prompt setting (`promptSettings`: `format`, `addBos`) reads on the command line. */
function promptFlagText(key: 'format' | 'addBos', value: unknown): string {
  if (key === 'format') return `--format ${String(value)}`;
  return value === undefined ? 'neither --add-bos nor --no-add-bos' : addBosFlag(value === true);
}

/**
 * The prompt `eval shift` ranks an outputs file under: the one its run record (`OUT.done`, written by
 * eval generate, eval ablations or eval shift) says its outputs were generated under, every setting
 * `promptSettings` records (`--format`, `--add-bos` / `--no-add-bos`). Ranked under another prompt,
 * the base model's ranks are those of a prompt the outputs never followed, and the shares change a
 * lot. A flag given that differs from the record is refused (exit 2), naming both values, as another
 * tokenizer is; a flag not given takes the record's value, said on stderr where that is not what the
 * command would take by itself. Outputs without a record (from elsewhere) are ranked under the flags.
 */
function alignedPromptFlags(file: string, flags: PromptFlags, formatGiven: boolean): PromptFlags {
  const fingerprint = readDoneRecord(file)?.fingerprint as Record<string, unknown> | undefined;
  const format = fingerprint?.format;
  if (typeof format !== 'string' || !(PROMPT_FORMATS as readonly string[]).includes(format)) return flags;
  const recorded = {
    format: format as PromptFlags['format'],
    ...(typeof fingerprint?.addBos === 'boolean' ? { addBos: fingerprint.addBos } : {}),
  };
  const given = { format: formatGiven, addBos: flags.addBos !== undefined };
  const keys = ['format', 'addBos'] as const;
  const differing = keys.filter((k) => given[k] && flags[k] !== recorded[k]);
  if (differing.length > 0) {
    throw usage(
      `${differing.map((k) => promptFlagText(k, flags[k])).join(', ')}: ${file} was generated with ` +
        `${differing.map((k) => promptFlagText(k, recorded[k])).join(' and ')} (its run record, ${file}.done): ` +
        "ranked under another prompt than the one its outputs followed, its tokens' ranks would mean nothing",
      `leave ${differing.map((k) => (k === 'format' ? '--format' : addBosFlag(flags.addBos === true))).join(' and ')} out to rank them under the prompt they were generated with, or give --aligned outputs generated with these flags`,
    );
  }
  const taken = keys.filter((k) => !given[k] && recorded[k] !== (k === 'format' ? 'tulu' : undefined));
  if (taken.length > 0) {
    note(
      `--aligned ${file}: ranked under the prompt its outputs were generated with (${taken.map((k) => promptFlagText(k, recorded[k])).join(', ')}, from ${file}.done)`,
    );
  }
  return recorded;
}

/** What shapes a prompt under `prompt` besides tokenizer.json: the chat template's files, the BOS default's. */
function promptFiles(prompt: PromptFlags): string[] {
  if (prompt.format === 'chat-template') return ['tokenizer_config.json', 'chat_template.jinja'];
  // tulu without --add-bos / --no-add-bos: each tokenizer's own BOS (tokenizer_config.json's add_bos_token)
  return prompt.format === 'tulu' && prompt.addBos === undefined ? ['tokenizer_config.json'] : [];
}

/** How `prompt` reads on the command line, for messages: `--format chat-template`, `--format tulu --add-bos`. */
const promptFlagsText = (prompt: PromptFlags) =>
  `--format ${prompt.format}${prompt.addBos === undefined ? '' : ` ${addBosFlag(prompt.addBos)}`}`;

/** A prompt with its instruction written `{instruction}`, shown in a message: the format, not the text. */
const promptShape = (text: string, instruction: string) =>
  JSON.stringify(text.includes(instruction) ? text.replace(instruction, '{instruction}') : text);

/**
 * The prompt `model` builds for each instruction under the prompt flags (tokenizing only), by
 * instruction: built once, for the checks before a run and the ranking after it (`eval shift`).
 */
function buildPrompts(
  model: Model,
  instructions: readonly EvalInstruction[],
  prompt: PromptFlags,
): Map<string, BuiltPrompt> {
  const { format, ...bos } = promptSettings(prompt);
  const built = new Map<string, BuiltPrompt>();
  for (const { instruction } of instructions) {
    if (built.has(instruction)) continue;
    built.set(
      instruction,
      model.prompt(format === 'raw' ? { text: instruction } : { instruction }, format, bos),
    );
  }
  return built;
}

/**
 * Refuses (exit 2) an aligned model directory that builds other prompts than --base under the
 * prompt flags: under `--format chat-template` each model renders its own chat template, and
 * without --add-bos / --no-add-bos each tokenizer adds its own BOS, so two models given the same
 * flags can build different prompts. The base model would then rank each aligned token after a
 * prompt the aligned model never saw, and the shift would mix two prompt formats, silently. Every
 * instruction's prompt, as each model built it (`buildPrompts`), is compared, ids and text.
 */
function checkSamePrompts(
  base: OpenedModel,
  aligned: OpenedModel,
  instructions: readonly EvalInstruction[],
  prompt: PromptFlags,
  built: { base: ReadonlyMap<string, BuiltPrompt>; aligned: ReadonlyMap<string, BuiltPrompt> },
): void {
  for (const [i, x] of instructions.entries()) {
    const theirs = built.aligned.get(x.instruction)!;
    const ours = built.base.get(x.instruction)!;
    if (theirs.text === ours.text && theirs.ids.join() === ours.ids.join()) continue;
    const files = promptFiles(prompt);
    throw usage(
      `--aligned ${aligned.id} and --base ${base.id} build different prompts under ${promptFlagsText(prompt)}` +
        `${files.length > 0 ? ` (each from its own ${files.join(' and ')})` : ''}: for instruction #${i} (# counting from 0) ` +
        `--aligned's is ${promptShape(theirs.text, x.instruction)}, --base's ${promptShape(ours.text, x.instruction)}; ` +
        "the base model would rank the aligned model's tokens after a prompt they were not generated after, and the shift would mix two prompt formats",
      prompt.format === 'chat-template'
        ? "give --format tulu (the paper's format: the same prompt for both), or models with the same chat template"
        : prompt.addBos === undefined
          ? 'give --add-bos or --no-add-bos, so that both prompts start alike'
          : 'give --base and --aligned models whose tokenizers build the same prompt',
    );
  }
}

/**
 * Warns when aligned outputs (a file) were generated by a model whose prompt files (`promptFiles`)
 * differ from --base's, as their run record (`OUT.done`) has them: the base model builds its prompt
 * from its own files, perhaps not the prompt the outputs followed. A warning, not a refusal: the
 * files can differ in what does not change the prompt, and the aligned model is not here to build its
 * prompts. Outputs without a record say nothing.
 */
function warnPromptFiles(file: string, baseFingerprint: Record<string, unknown>, prompt: PromptFlags): void {
  const model = (readDoneRecord(file)?.fingerprint as { model?: unknown } | undefined)?.model;
  const theirs = (model as { files?: Record<string, unknown> } | undefined)?.files;
  const ours = (baseFingerprint as { files?: Record<string, unknown> }).files;
  if (!theirs || !ours) return;
  const differing = promptFiles(prompt).filter((name) => theirs[name] !== ours[name]);
  if (differing.length === 0) return;
  warn(
    `--aligned ${file}: its outputs were generated under ${promptFlagsText(prompt)} by a model whose ${differing.join(' and ')} ` +
      `${differing.length === 1 ? 'differs' : 'differ'} from --base's (its run record, ${file}.done): ` +
      `${prompt.format === 'chat-template' ? 'each model renders its own chat template' : 'each tokenizer adds its own BOS (add_bos_token)'}, ` +
      'so --base may rank the tokens after another prompt than the one they followed, and the shift mix two prompt formats; ' +
      "give --aligned the model directory instead (its prompts are then compared with --base's), or outputs generated with --format tulu" +
      `${prompt.format === 'tulu' ? ' and --add-bos or --no-add-bos' : ''}`,
  );
}

async function shift(flags: ShiftFlags, formatGiven = false): Promise<void> {
  const alignedIsFile = existsSync(flags.aligned) && statSync(flags.aligned).isFile();
  if (!existsSync(flags.aligned) && /\.jsonl?$/.test(flags.aligned)) {
    throw usage(`--aligned: ${flags.aligned} does not exist (an outputs .json file, or a model directory)`);
  }
  const alignedRules = parseRules(flags.alignedRules, false, '--aligned-rules');
  if (alignedIsFile && (flags.alignedRules || flags.instructions || flags.limit !== undefined)) {
    throw usage(
      '--aligned-rules, --instructions and --limit are for an aligned model directory, not an outputs file',
    );
  }
  if (flags.out)
    checkOutPath(flags.out, 'file', '--out', { example: 'shift.json', json: 'the token-shift result' });
  if (flags.alignedOut)
    checkOutPath(flags.alignedOut, 'file', '--aligned-out', {
      example: 'outputs.json',
      json: 'the outputs file',
    });
  // an outputs file, or the instructions a model directory answers: read (and found non-empty) before any model loads
  let alignedRows = alignedIsFile ? nonEmptyOutputs(flags.aligned, '--aligned') : undefined;
  const withoutIds = alignedRows?.filter((row) => row.token_ids === undefined).length ?? 0;
  if (alignedRows && withoutIds > 0) {
    // their text is tokenized again: outputs are stripped of whitespace, and a text has more than one
    // tokenization, so the ranked tokens can differ from the generated ones (and the percentages a lot)
    warn(
      `--aligned ${flags.aligned}: ${withoutIds === alignedRows.length ? 'its' : `${withoutIds} of its ${alignedRows.length}`} outputs have no token_ids, so their text is tokenized again, which can rank tokens the model did not generate (eval generate strips whitespace); for an exact shift, write them with eval generate --token-ids, or give --aligned the model directory (with --aligned-rules)`,
    );
  }
  // outputs are ranked under the prompt they were generated with, as their run recorded it
  if (alignedIsFile) Object.assign(flags, alignedPromptFlags(flags.aligned, flags, formatGiven));
  const instructionsFile = alignedIsFile
    ? undefined
    : required(flags.instructions, '--instructions', 'a .jsonl or .json file', ALPACA_EVAL);
  const instructions = instructionsFile ? readLimited(instructionsFile, flags.limit) : [];
  const base = await loadFor(flags.base, flags, '--base');
  let aligned: OpenedModel | undefined;
  // the prompts of the instructions (an aligned model directory's), each model's built once: compared,
  // checked against the context, then (--base's) ranked after; --base's only where something needs them
  let basePrompts: Map<string, BuiltPrompt> | undefined;
  const promptsOfBase = () => (basePrompts ??= buildPrompts(base.model, instructions, flags));
  let alignedPrompts: Map<string, BuiltPrompt> | undefined;
  const progress = progressReporter('outputs', 'ranking tokens');
  try {
    const baseFingerprint = modelFingerprint(base.model);
    if (alignedRows) {
      checkAlignedIds(alignedRows, flags.aligned, base, baseFingerprint);
      warnPromptFiles(flags.aligned, baseFingerprint, flags);
    }
    let alignedOutputs = flags.aligned;
    let alignedReused = false;
    let label = flags.label;
    if (instructionsFile) {
      // a model directory: its greedy outputs first (with their token ids, so the shift ranks exactly them)
      aligned =
        resolve(flags.aligned) === resolve(flags.base)
          ? undefined
          : await loadFor(flags.aligned, flags, '--aligned');
      const model: Model = aligned?.model ?? base.model;
      const id = aligned?.id ?? base.id;
      const rulesNote = checkRules(
        alignedRules,
        model.tokenizer.vocabulary,
        `--aligned-rules ${rulesLabel(alignedRules)}`,
      );
      const alignedFingerprint = aligned ? modelFingerprint(aligned.model) : baseFingerprint;
      // its outputs keep their token ids, which --base ranks: they must be ids of its tokenizer
      const [theirs, ours] = [tokenizerOf(alignedFingerprint), tokenizerOf(baseFingerprint)];
      if (theirs !== undefined && ours !== undefined && theirs !== ours) {
        throw usage(
          `--aligned ${flags.aligned} has another tokenizer than --base ${base.id} (tokenizer.json ${shortDigest(theirs)} and ${shortDigest(ours)}): the token ids it generates would be other tokens under --base`,
          'give --base and --aligned models with the same tokenizer (a base model and its finetune); to compare models with different tokenizers, write the aligned outputs with eval generate (without --token-ids) and give --aligned that file',
        );
      }
      // the same flags, and yet two prompts: each model's own chat template, or its own BOS
      if (aligned) {
        alignedPrompts = buildPrompts(aligned.model, instructions, flags);
        checkSamePrompts(base, aligned, instructions, flags, {
          base: promptsOfBase(),
          aligned: alignedPrompts,
        });
      }
      alignedOutputs = flags.alignedOut ?? defaultAlignedOut(flags.out, generatorName(id, alignedRules));
      const outFlag = '--aligned-out';
      if (!flags.alignedOut) checkOutPath(alignedOutputs, 'file', outFlag);
      // as eval generate: recorded rules that compile alike are these, under the name they have there
      const recorded = recordedRun(alignedOutputs);
      const { name } = runName(id, alignedRules, undefined, recorded);
      label ??= `${name} vs ${base.id}`;
      const run = {
        instructions,
        out: alignedOutputs,
        generatorName: name,
        maxNewTokens: flags.maxTokens ?? paperMaxTokens(alignedRules),
        tokenIds: true,
        fingerprint: {
          model: alignedFingerprint,
          rules: fingerprintRules(alignedRules, recorded),
          ...promptSettings(flags),
        },
      };
      alignedRows = finishedRun(run);
      if (alignedRows) {
        alignedReused = true;
        note(`${alignedOutputs} is already complete (same model, rules and limits): its outputs are reused`);
      } else {
        if (!flags.replace)
          refuseToReplace(run.out, () => finishedRunDifferences(run), {
            outFlag,
            settings: ALIGNED_SETTINGS,
          });
        checkPromptsFit(
          aligned ?? base,
          instructions,
          flags,
          instructionsFile,
          '--aligned',
          alignedPrompts ?? promptsOfBase(),
        );
        const gen = progressReporter('instructions', `generating ${name}`);
        try {
          alignedRows = (
            await interruptible(
              (signal) =>
                generateRun({
                  ...run,
                  generator: evalGenerator(model, alignedRules, flags),
                  ...(flags.batchSize ? { batchSize: flags.batchSize } : {}),
                  ...(flags.replace ? { replace: true } : {}),
                  signal,
                  onProgress: noting(gen, () => rulesNote),
                  onWarning: warn,
                }),
              () => `the aligned outputs so far are kept in ${alignedOutputs}.journal.jsonl: rerun to resume`,
              ALIGNED_SETTINGS,
            )
          ).outputs;
        } finally {
          gen.stop();
        }
      }
    }
    // what identifies the token shift: the same command on the same models finds its finished result
    const settings = {
      aligned: alignedRows!,
      label: label ?? `${basename(alignedOutputs, '.json')} vs ${base.id}`,
      ...(flags.topK !== undefined ? { topK: flags.topK } : {}),
      fingerprint: { base: baseFingerprint, ...promptSettings(flags) },
    };
    const outFile = flags.out;
    const done = finishedResult(
      outFile,
      (out) => finishedShift({ ...settings, out }),
      (out) => finishedShiftDifferences({ ...settings, out }),
      SHIFT_SETTINGS,
      { same: 'models, outputs and settings', redo: 'rank the tokens again' },
      flags.replace,
    );
    const result: ShiftResult = done
      ? done
      : await interruptible(
          (signal) =>
            tokenShift({
              ...settings,
              base: runtimeRankSource(base.model, {
                ...promptSettings(flags),
                ...(flags.batchSize ? { batchSize: flags.batchSize } : {}),
                // an aligned model directory's instructions: their prompts built once already
                ...(instructionsFile ? { prompts: promptsOfBase() } : {}),
              }),
              ...(flags.batchSize ? { batchSize: flags.batchSize } : {}),
              ...(outFile ? { out: outFile } : {}),
              ...(flags.replace ? { replace: true } : {}),
              signal,
              onProgress: progress.onProgress,
              onWarning: warn,
            }),
          () =>
            outFile
              ? `ranked outputs are kept in ${outFile}.journal.jsonl: rerun to resume`
              : 'without --out nothing was kept',
          SHIFT_SETTINGS,
        ).catch((error: unknown) =>
          explainContext(
            error,
            `--aligned ${alignedOutputs}`,
            `the base model must hold each aligned output after its prompt: use a --base model with a longer context (${base.id}'s is ${base.model.info.maxPositions} tokens), or aligned outputs of fewer tokens (--max-tokens)`,
          ),
        );
    progress.stop();
    const summary = {
      ...(flags.out ? { out: resolve(flags.out) } : {}),
      alignedOutputs: resolve(alignedOutputs),
      ...result,
    };
    if (flags.json) {
      printJson(summary);
      return;
    }
    const o = result.overall;
    let out =
      `token shift (${result.label}): ${counted(o.tokens, 'token')} in ${counted(result.outputs, 'output')}: ` +
      `unshifted ${pct(o.percent.unshifted)}, marginal ${pct(o.percent.marginal)}, shifted ${pct(o.percent.shifted)}\n`;
    for (const b of result.byPosition) {
      if (b.tokens === 0) continue;
      const where =
        b.to === null ? `${b.from}+` : b.to - b.from === 1 ? `${b.from}` : `${b.from}-${b.to - 1}`;
      out += `  position ${where.padEnd(8)} ${String(b.tokens).padStart(6)} ${b.tokens === 1 ? 'token, ' : 'tokens,'} shifted ${pct(b.percent.shifted)}\n`;
    }
    if (result.topShifted.length) {
      out += `  most shifted: ${result.topShifted
        .slice(0, 10)
        // a U+FFFD (part of a character, where its bytes are not known) looks the same for every such token
        .map((t) => `${JSON.stringify(t.text)}${t.text.includes('\ufffd') ? ` (id ${t.id})` : ''} ${t.count}`)
        .join(', ')}\n`;
    }
    // the aligned outputs of a model directory are a file of their own (in RUN/outputs/, judged by
    // eval judge --run-dir as the others there): say where
    if (instructionsFile)
      out += `${alignedReused ? 'aligned outputs in' : `${painter()('green', 'wrote')} the aligned outputs to`} ${resolve(alignedOutputs)}\n`;
    if (flags.out) out += `${painter()('green', 'wrote')} ${resolve(flags.out)}\n`;
    process.stdout.write(out);
  } finally {
    progress.stop();
    await aligned?.model.dispose();
    await base.model.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// eval report

/** `file` from `dir`, with `/` (a file in the run directory: `charts/win-rates.svg`). */
const relativeTo = (dir: string, file: string) => relative(resolve(dir), file).split('\\').join('/');

async function report(runDir: string, flags: { title?: string; json?: boolean }): Promise<void> {
  if (!existsSync(runDir)) throw usage(`${runDir}: no such run directory`);
  if (!statSync(runDir).isDirectory()) {
    throw usage(
      `${runDir} is a file, not a run directory`,
      'give the run directory that holds annotations/, ranking/ or shift/ (as eval judge --run-dir, eval rank --out RUN/ranking/NAME.json and eval shift --out RUN/shift/NAME.json fill it)',
    );
  }
  const paths = runPaths(runDir);
  const results = (dir: string) => existsSync(dir) && readdirSync(dir).some((f) => f.endsWith('.json'));
  if (![paths.annotations, paths.ranking, paths.shift].some(results)) {
    throw usage(
      `${runDir}: nothing to report: no annotations/*.json, ranking/*.json or shift/*.json in it`,
      'fill it first: eval judge --run-dir RUN, eval rank --out RUN/ranking/NAME.json, eval shift --out RUN/shift/NAME.json',
    );
  }
  for (const [path, kind] of [
    [paths.report, 'file'],
    [paths.winrates, 'file'],
    [paths.charts, 'directory'],
  ] as const) {
    if (existsSync(path) && statSync(path).isDirectory() !== (kind === 'directory'))
      throw usage(
        `${path} is a ${kind === 'file' ? 'directory' : 'file'}, where the report writes its ${kind}: move it away`,
      );
  }
  // outputs without annotations have no win rate: say so, rather than leave them out without a word
  const unjudged = existsSync(paths.outputs)
    ? readdirSync(paths.outputs)
        .filter((f) => f.endsWith('.json') && !existsSync(paths.annotation(basename(f, '.json'))))
        .map((f) => basename(f, '.json'))
        .sort()
    : [];
  if (unjudged.length > 0) {
    note(
      `${counted(unjudged.length, 'outputs file')} in ${paths.outputs} not judged, so without a win rate (${unjudged.slice(0, 5).join(', ')}${unjudged.length > 5 ? ', ...' : ''}): eval judge --run-dir ${shellWord(runDir)} judges them`,
    );
  }
  const progress = progressReporter('steps', 'writing report');
  let result: Awaited<ReturnType<typeof writeReport>>;
  try {
    result = await writeReport(runDir, {
      ...(flags.title ? { title: flags.title } : {}),
      onProgress: progress.onProgress,
      onWarning: warn,
    });
  } finally {
    progress.stop();
  }
  const summary = {
    markdownPath: resolve(result.markdownPath),
    charts: result.charts.map((c) => resolve(c)),
    winrates: result.winrates.map((w) => ({ ...w, ...statsOnly(w) })),
    rankings: result.rankings.map((r) => r.name),
    shifts: result.shifts.map((s) => s.name),
    removed: result.removed.map((f) => resolve(f)),
  };
  if (flags.json) {
    printJson(summary);
    return;
  }
  // an earlier report's charts that this one no longer has (the single win-rate chart once there are
  // several baselines, the chart of a result since deleted) are removed: say which
  const removed =
    summary.removed.length > 0
      ? `removed ${counted(summary.removed.length, 'file')} of an earlier report that this one no longer has: ${summary.removed.map((f) => relativeTo(runDir, f)).join(', ')}\n`
      : '';
  process.stdout.write(
    `${painter()('green', 'wrote')} ${summary.markdownPath} with ${counted(summary.charts.length, 'chart')}: ` +
      `win rates of ${counted(summary.winrates.length, 'outputs file')}, ${counted(summary.rankings.length, 'ranking')}, ${counted(summary.shifts.length, 'token shift')}\n${removed}`,
  );
}

// ---------------------------------------------------------------------------------------------

const listArg = (value: string) =>
  value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

export function registerEval(program: Command): void {
  const ev = program
    .command('eval')
    .description(
      "the paper's evaluations: AlpacaEval outputs and ablations, pairwise judging, win rates, ranking, token shift",
    )
    .addHelpText(
      'after',
      `
A run directory (--run-dir) holds outputs/NAME.json, annotations/NAME.json,
ranking/NAME.json and shift/NAME.json; \`eval report\` turns it into report.md
with charts.

Examples:
  $ implicit-it eval generate --model ./models/smol --rules hewitt2024 \\
      --token-ids --out run/outputs/rules.json
  $ implicit-it eval ablations --model ./models/smol --run-dir run
  $ OPENAI_API_KEY=... implicit-it eval judge --run-dir run \\
      --judge-model gpt-4-turbo
  $ implicit-it eval winrate \\
      --annotations run/annotations/eos-uniform-diversity.json --json
  $ implicit-it eval rank --model ./models/smol --limit 1000 \\
      --out run/ranking/smol.json
  $ implicit-it eval shift --base ./models/smol \\
      --aligned run/outputs/rules.json --out run/shift/rules.json
  $ implicit-it eval report run`,
    );

  addModelOptions(
    ev
      .command('generate')
      .description(
        "greedy outputs for every instruction, in alpaca_eval's model_outputs.json format (batched, resumable)",
      ),
  )
    .option(
      '-r, --rules <spec>',
      'rules: hewitt2024 | eos-uniform | ... | off | JSON | @file.json',
      'hewitt2024',
    )
    .option(
      '--instructions <file>',
      'a .jsonl / .json of {instruction, dataset} (default: ../shared/data/alpaca_eval/alpaca_eval.jsonl)',
    )
    .requiredOption('-o, --out <file>', 'model_outputs.json to write (resume journal: OUT.journal.jsonl)')
    .option(
      '--name <name>',
      'the "generator" field (default: MODEL-RULES, e.g. tiny-hewitt2024; tiny-variant for --rules @variant.json (tiny-file-hewitt2024 for @hewitt2024.json), tiny-custom-HASH for inline JSON; MODEL alone with --rules off)',
    )
    .option('--limit <n>', 'only the first n instructions', intArg(1))
    .option(
      '-n, --max-tokens <n>',
      'most new tokens per output (default as the paper: 8192 with the EOS rule, 512 without)',
      intArg(1),
    )
    .option('--batch-size <n>', 'instructions decoded together (default 8)', intArg(1, 1024))
    .option(
      '--token-ids',
      'also keep each output\'s generated token ids ("token_ids"), for an exact `eval shift`',
    )
    .option(
      '--replace',
      "write over OUT when it holds another run's outputs (or a file of unknown origin), and start over an unfinished run of other settings",
    )
    .option('--json', 'print one JSON object {out, generator, count, generated, resumed}')
    .addHelpText(
      'after',
      `
Resumable: finished batches are journaled (fsynced) in OUT.journal.jsonl, so a
run stopped at any moment (Ctrl-C, kill -9, a crash) continues where it stopped
when the same command runs again: it keeps every finished batch, and generates
again only the batch it was decoding. Ctrl-C exits 130. A finished OUT is not
redone by the same command, and not replaced by another: other settings
(--model, --rules, --limit, --max-tokens, ...) into an existing OUT, or into
the journal of an unfinished run, are refused (exit 2), naming what differs;
give another --out, or --replace to start over with these settings. Rules are
compared as they compile, not as they are written: diversity, {"used":true}
and {"used":{"penalty":-1.5}} are the same rules (the outputs keep the name
they were given), while one weight, one entry or another EOS ramp differs.

Every prompt must fit in the model's context (max_position_embeddings):
instructions that do not are listed before anything is generated (exit 1). An
output that reaches the end of the context stops there, as one that reaches
--max-tokens does.

Examples:
  $ implicit-it eval generate --model ./models/smol --rules hewitt2024 \\
      --out run/outputs/rules.json
  $ implicit-it eval generate --model ./models/smol --rules off \\
      --max-tokens 512 --out run/outputs/base.json
  $ implicit-it eval generate --model ./models/tiny \\
      --instructions ../shared/data/alpaca_eval/alpaca_eval.jsonl --limit 20 \\
      --max-tokens 32 --batch-size 4 --out /tmp/outputs.json --json`,
    )
    .action(async (flags: GenerateFlags) => generate(flags));

  addModelOptions(
    ev
      .command('ablations')
      .description("the paper's rule ablations: one model_outputs.json per rule subset in RUN_DIR/outputs"),
  )
    .option('--instructions <file>', 'instructions (default: ../shared/data/alpaca_eval/alpaca_eval.jsonl)')
    .requiredOption('--run-dir <dir>', 'the run directory (outputs go to RUN_DIR/outputs/SUBSET.json)')
    .option(
      '--subsets <list>',
      `comma-separated subsets of hewitt2024, each once (default: ${ABLATIONS.join(', ')})`,
      listArg,
    )
    .option(
      '--name <name>',
      "model name; outputs are labelled NAME-SUBSET (default: the model directory name; a finetune job's JOB/output: the job's name)",
    )
    .option('--limit <n>', 'only the first n instructions', intArg(1))
    .option(
      '-n, --max-tokens <n>',
      'most new tokens per output (default: 8192 with the EOS rule, 512 without)',
      intArg(1),
    )
    .option('--batch-size <n>', 'instructions decoded together (default 8)', intArg(1, 1024))
    .option('--token-ids', 'keep generated token ids in the outputs')
    .option(
      '--replace',
      "write over subsets' outputs of other settings (or files of unknown origin), and start over unfinished subsets of other settings",
    )
    .option(
      '--json',
      'print one JSON object {runDir, runs: [{subset, out, count, generated, resumed, skipped}]}',
    )
    .addHelpText(
      'after',
      `
Each subset is part of hewitt2024, with its weights: rule names joined by "-"
(eos, uniform, diversity, start); there is no --rules. To compare rule sets of
your own (other weights, other rules), run eval generate once per rule set into
the run directory's outputs, where eval judge --run-dir and eval report take
them with the subsets (each output records its rules):
  $ implicit-it eval generate --model M --rules @variant.json \\
      --out RUN_DIR/outputs/variant.json

Every subset resumes on its own, and a finished one is skipped: rerun after an
interruption. Finished outputs of other settings (--model, --limit,
--max-tokens, ...) are not replaced: every subset is checked before the first is
generated (give another --run-dir, or --replace to generate them again).

Examples:
  $ implicit-it eval ablations --model ./models/smol --run-dir run
  $ implicit-it eval ablations --model ./models/tiny --run-dir /tmp/run \\
      --subsets none,eos-uniform-diversity --limit 10 --max-tokens 32 --json`,
    )
    .action(async (flags: AblationFlags) => ablations(flags));

  ev.command('judge')
    .description(
      "alpaca_eval's weighted pairwise judge on any OpenAI-compatible endpoint; writes annotations.json",
    )
    .option('--outputs <file>', 'the evaluated model_outputs.json (output_2; a JSON array, or .jsonl rows)')
    .option('-o, --out <file>', 'annotations.json to write (with --outputs)')
    .option('--run-dir <dir>', 'judge every RUN_DIR/outputs/NAME.json into RUN_DIR/annotations/NAME.json')
    .option(
      '--baseline <file>',
      'baseline outputs (output_1; default: gpt4_1106_preview.model_outputs.json in ../shared/data/alpaca_eval)',
    )
    .option(
      '--base-url <url>',
      'the endpoint, an http(s) URL up to /v1 (default: $OPENAI_BASE_URL, else https://api.openai.com/v1)',
    )
    .option('--judge-model <name>', 'the judge model', 'gpt-4-turbo')
    .option(
      '--api-key-env <name>',
      'environment variable holding the API key (never a flag)',
      'OPENAI_API_KEY',
    )
    .option('--cache-dir <dir>', 'judge cache (default: .judge-cache beside the annotations)')
    .option('--requests-per-minute <n>', 'start at most n requests a minute', intArg(1))
    .option('--concurrency <n>', 'requests in flight (default 4)', intArg(1, 1024))
    .option(
      '--max-retries <n>',
      'retries of 408/409/429/5xx, timeouts and lost connections, with backoff (default 6); a connection refused or a host not found: 2 at most, within about 1.5 s',
      intArg(0, 100),
    )
    .option('--timeout <seconds>', 'per request (default 120)', numArg(0.001, 3600))
    .option('--seed <seed>', 'seed of the order the two outputs are shown in (default 0)')
    .option(
      '--replace',
      "write over annotations made by another judge (--judge-model, --base-url), --baseline or --seed, of another generator's outputs, or of unknown origin",
    )
    .option(
      '--json',
      'print one JSON object (requests sent, answered, cache hits, pairs not judged, the win-rate statistics); with --run-dir {runDir, judge, results}',
    )
    .addHelpText(
      'after',
      `
Each instruction's two outputs are shown as "m" and "M" in a seeded order; the
judge answers with one token and the preference is read from its top_logprobs
(alpaca_eval's weighted_alpaca_eval_gpt4_turbo). Answers are cached by (judge,
prompt), the judge being --judge-model at --base-url (a judge of the same name
at another endpoint is another judge): a rerun, or a run resumed after Ctrl-C,
pays only for what is missing. The API key comes from the environment only
(--api-key-env names the variable). When none of an outputs file's judgements
can be read (no m or M), its annotations are written and the command exits 1.

A pair whose request the judge refuses (HTTP 400, 413 or 422: a prompt longer
than its context, a content filter) is not judged: its annotation keeps a null
preference and the judge's message ("judge_error"), it is left out of the win
rate, the other pairs are judged, and a warning names each such pair. Refusals
are not cached: a rerun asks for them again. A bad key (401, 403) or an
unknown model or endpoint (404) stops the command at once (exit 1), as do 5
refusals before any answer (the judge refuses how it is asked).

OUT.done records who made the annotations: annotations of another judge
(--judge-model, --base-url), --baseline or --seed, of another model's outputs,
or a file without that record, are not replaced (exit 2, naming what differs,
before any request); --replace writes over them. With the same settings the
outputs are judged again into OUT (outputs that changed, or more of them).

Examples:
  $ implicit-it eval judge --run-dir run --base-url http://127.0.0.1:8000/v1 \\
      --judge-model my-judge
  $ OPENAI_API_KEY=sk-... implicit-it eval judge \\
      --outputs run/outputs/rules.json --out run/annotations/rules.json
  $ JUDGE_KEY=... implicit-it eval judge --run-dir run --api-key-env JUDGE_KEY \\
      --requests-per-minute 300 --json`,
    )
    .action(async (flags: JudgeFlags) => judge(flags));

  ev.command('winrate')
    .description("alpaca_eval's leaderboard statistics of an annotations.json (ours or alpaca_eval's)")
    .requiredOption('--annotations <file>', 'annotations.json (output_1 the baseline, output_2 the model)')
    .option('--json', `print ONE JSON object with exactly the keys ${WIN_RATE_KEYS.join(', ')}`)
    .addHelpText(
      'after',
      `
Preferences are alpaca_eval's: a number in [1, 2] (1 the baseline output_1 is
better, 2 the model's output_2, 1.5 a draw), 0 (a draw, in older files) or null
(no judgement, left out). Any other value is refused (exit 2), naming its
annotation; a file without a single judgement exits 1.

Examples:
  $ implicit-it eval winrate --annotations run/annotations/rules.json
  $ implicit-it eval winrate \\
      --annotations ../shared/data/alpaca_eval/annotations/claude-2.json \\
      --json | jq .win_rate`,
    )
    .action(async (flags: { annotations: string; json?: boolean }) => winrate(flags));

  addModelOptions(
    ev
      .command('rank')
      .description('response ranking (paper 4.2): does the model score the real response above random ones?'),
  )
    .option('--data <file>', "Alpaca's alpaca_data.json (default: ../shared/data/alpaca/alpaca_data_2k.json)")
    .option(
      '--limit <n>',
      `only the first n examples, at least 2: the random responses are drawn from the others among them (default ${RANK_EXAMPLES}, as the paper)`,
      intArg(2, undefined, RANK_LIMIT_WHY),
    )
    .addOption(formerFlag('--n <n>', '--limit', intArg(2, undefined, RANK_LIMIT_WHY)))
    .option('--negatives <k>', 'random responses drawn per example', intArg(1), 5)
    .addOption(
      new Option(
        '--draw <how>',
        "paper: ratio_eval.py's draws (Python's random.seed(SEED), randint with replacement, an example's own draws dropped); distinct: k distinct other examples",
      )
        .choices(['paper', 'distinct'])
        .default('paper'),
    )
    .option('--seed <n>', 'seed of the negatives and the bootstrap', intArg(0, 2 ** 32 - 1), 0)
    .option('--bootstrap <n>', 'bootstrap resamples of the confidence interval', intArg(1), 1000)
    .option(
      '--max-seq-length <n>',
      "cut prompt + response at n tokens (and at the model's context), scoring the rest, as the paper's ratio_eval.py",
      intArg(2, undefined, 'a response token is scored after at least one token before it'),
      1024,
    )
    .option('-r, --rules <spec>', 'score under the rules (off: the model alone)', 'off')
    .option('--batch-size <n>', 'continuations scored together (default 12)', intArg(1, 1024))
    .option('-o, --out <file>', 'result JSON to write, with every score (resume journal: OUT.journal.jsonl)')
    .option(
      '--replace',
      'write over an OUT of other settings (or of unknown origin), and start over an unfinished ranking of other settings',
    )
    .option(
      '--json',
      'print one JSON object (percent, ci, pairs, wins, ties, histogram, means; no per-example scores)',
    )
    .addHelpText(
      'after',
      `
Scores are exp(mean log-prob) of the response tokens and the EOS after the
instruction's prompt, the instruction and response stripped and cut at
--max-seq-length tokens, as ratio_eval.py does. The random responses are
ratio_eval.py's too (--draw paper): with --seed 0, --limit 1000 and --negatives
5, the very pairs of the paper.

Resumable with --out (scored examples are journaled in OUT.journal.jsonl). A
finished OUT is not redone by the same command, and not replaced by another:
other settings (--model, --limit, --seed, --negatives, --draw, ...) into an
existing OUT are refused (exit 2), naming what differs (--replace ranks again
over it). Another --bootstrap alone recomputes the interval from the scores in
OUT, scoring nothing.

Examples:
  $ implicit-it eval rank --model ./models/smol \\
      --data ../shared/data/alpaca/alpaca_data_2k.json --limit 1000
  $ implicit-it eval rank --model ./models/smol --limit 20 \\
      --out run/ranking/smol.json --json | jq .percent`,
    )
    .action(async (flags: RankFlags) => rank(flags));

  addModelOptions(
    ev
      .command('shift')
      .description(
        "token shift (Lin et al., 2023): the aligned outputs' tokens by their rank under the base model",
      ),
    '--base <dir|hub-id>',
    'the base model',
  )
    .requiredOption(
      '--aligned <dir|outputs.json>',
      'model_outputs.json of the aligned model, or a model directory to generate them with first',
    )
    .option('--aligned-rules <spec>', 'with a model directory: the rules it generates with (default off)')
    .option('--instructions <file>', 'with a model directory: instructions (default: the AlpacaEval set)')
    .option('--limit <n>', 'with a model directory: only the first n instructions', intArg(1))
    .option('-n, --max-tokens <n>', 'with a model directory: most new tokens per output', intArg(1))
    .option(
      '--aligned-out <file>',
      'with a model directory: where its outputs go (default: RUN/outputs/NAME.json for --out RUN/shift/X.json, else OUT.aligned-outputs.json; without --out, NAME.outputs.json in this directory)',
    )
    .option('--label <text>', 'name of the comparison (default: ALIGNED vs BASE)')
    .option('--top-k <n>', 'shifted tokens to list (default 20; 0: none, the statistics only)', intArg(0))
    .option('--batch-size <n>', 'outputs ranked together (default 8)', intArg(1, 1024))
    .option('-o, --out <file>', 'result JSON to write (resume journal: OUT.journal.jsonl)')
    .option(
      '--replace',
      'write over an OUT (and the outputs it generates) of other settings or of unknown origin, and start over unfinished runs of other settings',
    )
    .option('--json', 'print the result as one JSON object')
    .addHelpText(
      'after',
      `
Each token of the aligned outputs is unshifted (the base model's rank 1),
marginal (2-3) or shifted (> 3). Outputs with token_ids (eval generate
--token-ids) are ranked exactly as generated, so they must be ids of --base's
tokenizer: outputs whose run (OUT.done) had another tokenizer.json, or with ids
past --base's vocabulary, are refused (exit 2), as is an aligned model directory
with another tokenizer. Outputs whose run recorded its prompt (OUT.done:
--format, --add-bos / --no-add-bos) are ranked under that prompt: a flag left
out takes the recorded value (said on stderr), one given with another value is
refused (exit 2). The base model is the same as the aligned one with
--aligned-rules to see what the rules change.

Both models must see the same prompt: under --format chat-template each model
renders its own chat template, and without --add-bos / --no-add-bos each
tokenizer adds its own BOS. An aligned model directory whose prompts differ
from --base's (each instruction's prompt is built by both and compared) is
refused (exit 2), showing both prompts; aligned outputs whose run record
names prompt files (tokenizer_config.json, chat_template.jinja) other than
--base's are warned about on stderr, as their prompts cannot be rebuilt.

The outputs generated for an aligned model directory are reused when the same
run finished them before, and an existing file of another run is not replaced
(as eval generate); so is the --out result (other --base, aligned outputs,
--label or --top-k into a finished OUT are refused, exit 2). --replace writes
over both.

Examples:
  $ implicit-it eval shift --base ./models/llama2 \\
      --aligned ./models/llama2-chat --out run/shift/chat.json
  $ implicit-it eval shift --base ./models/smol --aligned ./models/smol \\
      --aligned-rules hewitt2024 --limit 50 --out run/shift/rules.json
  $ implicit-it eval shift --base ./models/smol \\
      --aligned run/outputs/rules.json --json | jq .overall.percent`,
    )
    .action(async (flags: ShiftFlags, cmd: Command) =>
      shift(flags, cmd.getOptionValueSource('format') === 'cli'),
    );

  ev.command('report')
    .description('report.md with SVG charts from a run directory (win rates, rankings, token shifts)')
    .argument('<run-dir>', 'a run directory (annotations/, ranking/, shift/)')
    .option('--title <text>', 'the report title')
    .option('--json', 'print one JSON object {markdownPath, charts, winrates, rankings, shifts, removed}')
    .addHelpText(
      'after',
      `
Writes RUN_DIR/report.md, RUN_DIR/winrates.json and RUN_DIR/charts/*.svg, and
lists them in RUN_DIR/.report-files.json: the files an earlier report wrote
that this one does not (charts/win-rates.svg once the annotations are against
several baselines, each with a chart of its own; the chart of a result since
deleted) are removed and named, so that no stale chart is left to read as
current. Other files in charts/ are never touched.

Examples:
  $ implicit-it eval report run
  $ implicit-it eval report run --title "SmolLM2-135M + rules" --json \\
      | jq .charts`,
    )
    .action(async (runDir: string, flags: { title?: string; json?: boolean }) => report(runDir, flags));
}
