import { randomInt } from 'node:crypto';
import type { RuleSpec } from '@implicit-it/rules';
import type { BaseModel, GenerateOptions, Model, StreamPart } from '@implicit-it/runtime';
import { PROMPT_FORMATS, type PromptFormat } from '@implicit-it/tokenizers';
import { type Command, Option } from 'commander';
import {
  ADD_BOS_HELP,
  addLoadOptions,
  checkAddBos,
  collectStop,
  intArg,
  type ModelFlags,
  NO_ADD_BOS_HELP,
  numArg,
  type OpenedModel,
  openModel,
  parseRules,
  promptSettings,
  rulesLabel,
} from '../flags.js';
import { CliError, EXIT, forTerminal, note, painter, printJson, usage } from '../output.js';
import { multiProgress } from '../progress.js';
import { checkAndNoteRules } from '../rule-notes.js';
import { type Span, sideBySide } from '../side-by-side.js';

interface GenerateFlags extends ModelFlags {
  rules?: string;
  format: PromptFormat;
  addBos?: boolean;
  maxTokens: number;
  temperature: number;
  topP?: number;
  topK?: number;
  seed?: number;
  stop?: string[];
  compare?: boolean;
  trace?: boolean;
  json?: boolean;
}

/** Options shared by `generate` and `chat`. */
export function addGenerationOptions(
  cmd: Command,
  prefixCacheMiB = 0,
  /** The prompt formats the command takes (chat has no raw continuation). */
  formats: readonly PromptFormat[] = PROMPT_FORMATS,
  /** What `--seed` left out does (chat draws one for each reply). */
  seedDefault = 'a new one each run, shown after the output',
): Command {
  cmd
    .option(
      '-m, --model <dir|hub-id>',
      'model directory or hub id (default: the embedded default, see below)',
    )
    .option(
      '-r, --rules <spec>',
      'rules: hewitt2024 | hewitt2024-prose | eos-uniform | uniform-diversity | ... | off | JSON | @file.json',
      'hewitt2024',
    )
    .addOption(new Option('-f, --format <format>', 'prompt format').choices(formats).default('tulu'))
    .option('--add-bos', ADD_BOS_HELP)
    .option('--no-add-bos', NO_ADD_BOS_HELP)
    // at least 1: 0 would print nothing and succeed (the API takes max_tokens 0 only to score a prompt, with echo)
    .option('-n, --max-tokens <n>', 'most tokens to generate', intArg(1, 1_000_000), 256)
    .option('-t, --temperature <t>', '0 is greedy, as the paper evaluates', numArg(0, 100), 0)
    .option('--top-p <p>', 'nucleus sampling', numArg(0, 1, { min: true }))
    .option('--top-k <k>', 'sample from the k most likely tokens (0: all, the default)', intArg(0))
    .option('--seed <n>', `seed of the sampler (default: ${seedDefault})`, intArg(0, 2 ** 32 - 1))
    .option('--stop <text>', 'stop string (repeatable)', collectStop);
  return addLoadOptions(cmd, undefined, prefixCacheMiB);
}

/**
 * The sampler's seed: `--seed`, else a new one when sampling (so that runs differ, as with OpenAI's
 * API; the runtime's own default seed is fixed), else none (greedy needs none).
 */
export function samplingSeed(flags: { temperature: number; seed?: number }): number | undefined {
  return flags.seed ?? (flags.temperature > 0 ? randomInt(2 ** 32) : undefined);
}

export function generationOptions(flags: GenerateFlags, rules: RuleSpec): GenerateOptions {
  return {
    ...promptSettings(flags),
    maxNewTokens: flags.maxTokens,
    temperature: flags.temperature,
    ...(flags.topP !== undefined ? { topP: flags.topP } : {}),
    ...(flags.topK !== undefined ? { topK: flags.topK } : {}),
    ...(flags.seed !== undefined ? { seed: flags.seed } : {}),
    ...(flags.stop ? { stop: flags.stop } : {}),
    rules,
  };
}

/**
 * Refuses `--format chat-template` for a model whose tokenizer has no chat template (usage error,
 * before any generation): the library would say "pass { template }", which no flag does.
 */
export async function checkChatTemplate(opened: OpenedModel<BaseModel>, format: string): Promise<void> {
  if (format !== 'chat-template' || opened.model.tokenizer.chatTemplate !== undefined) return;
  await opened.model.dispose();
  throw noChatTemplate(opened.id, 'a model whose tokenizer has a chat template');
}

/** The usage error of `--format chat-template` where `name`'s tokenizer has none; `instead` says what to give. */
export function noChatTemplate(name: string, instead: string): CliError {
  return usage(
    `--format chat-template: ${name} has no chat template (no chat_template in its tokenizer_config.json, no chat_template.jinja)`,
    `use --format tulu (the paper's format), or ${instead}`,
  );
}

async function readInstruction(words: string[]): Promise<string> {
  if (words.length === 1 && words[0] === '-') words = [];
  if (words.length > 0) {
    const instruction = words.join(' ');
    // an empty argument is most often an unset variable ("$PROMPT"): say so rather than answer nothing
    if (!instruction.trim())
      throw usage(
        'the instruction is empty: give one ("Write a haiku about rain."), or - to read it from stdin',
      );
    return instruction;
  }
  if (process.stdin.isTTY)
    throw usage('give an instruction: implicit-it generate "Write a haiku about rain."');
  let text = '';
  for await (const chunk of process.stdin) text += chunk;
  if (!text.trim()) throw usage('the instruction read from stdin is empty');
  return text.replace(/\n$/, '');
}

/** Colour of a token by how the rules moved it (base-model rank 1 / 2-3 / lower). */
export function shiftStyle(rank: number | undefined): 'bgYellow' | 'bgRed' | null {
  if (rank === undefined || rank <= 1) return null;
  return rank <= 3 ? 'bgYellow' : 'bgRed';
}

interface Collected {
  text: string;
  /** The text in the pieces it streamed in, each styled by its token's base-model rank (`--trace`). */
  spans: Span[];
  tokenIds: number[];
  baseRanks: number[];
  finishReason: string;
  usage: { promptTokens: number; completionTokens: number; totalTokens: number };
  seconds: number;
}

async function collect1(
  model: Model,
  instruction: string,
  options: GenerateOptions,
  onPart: (part: StreamPart, lastRank: number | undefined) => void,
): Promise<Collected> {
  const started = performance.now();
  const out: Collected = {
    text: '',
    spans: [],
    tokenIds: [],
    baseRanks: [],
    finishReason: 'length',
    usage: { promptTokens: 0, completionTokens: 0, totalTokens: 0 },
    seconds: 0,
  };
  let lastRank: number | undefined;
  for await (const part of model.stream(instruction, options)) {
    if (part.type === 'token') {
      out.tokenIds.push(part.id);
      if (part.baseRank !== undefined) {
        out.baseRanks.push(part.baseRank);
        lastRank = part.baseRank;
      }
    } else if (part.type === 'text-delta') {
      out.spans.push({ text: part.text, style: shiftStyle(lastRank) });
    } else if (part.type === 'finish') {
      out.text = part.text;
      out.finishReason = part.finishReason;
      out.usage = part.usage;
    }
    onPart(part, lastRank);
  }
  out.seconds = (performance.now() - started) / 1000;
  return out;
}

function stats(r: Collected): string {
  const rate = r.seconds > 0 ? (r.usage.completionTokens / r.seconds).toFixed(1) : '-';
  return `${r.usage.completionTokens} tokens, ${rate} tokens/s, finish: ${r.finishReason}`;
}

function jsonOf(r: Collected, rules: RuleSpec, trace: boolean) {
  return {
    rules,
    text: r.text,
    tokenIds: r.tokenIds,
    finishReason: r.finishReason,
    usage: r.usage,
    ...(trace ? { baseRanks: r.baseRanks } : {}),
  };
}

async function run(words: string[], flags: GenerateFlags): Promise<void> {
  const rules = parseRules(flags.rules);
  if (flags.compare && rules === false) {
    throw usage(
      '--compare puts the base model beside base + rules: with --rules off both columns would be the base model',
      'give the rules to compare (--rules hewitt2024, the default, or a subset such as eos-uniform)',
    );
  }
  checkAddBos(flags);
  const instruction = await readInstruction(words);
  const opened = await openModel(flags);
  await checkChatTemplate(opened, flags.format);
  const { model } = opened;
  const abort = new AbortController();
  const onSigint = () => abort.abort(new Error('interrupted'));
  process.once('SIGINT', onSigint);
  const dim = painter(process.stderr);
  // one seed for the run: --compare samples base and base + rules with the same one
  const seed = samplingSeed(flags);
  const sampled = { ...flags, ...(seed !== undefined ? { seed } : {}) };
  const seedJson = seed !== undefined ? { seed } : {};
  // whether part of an answer is on stdout: Ctrl-C ends its line, so that the error is not written on it
  let streamed = false;
  try {
    // before the first token: entries that match no token are said, a rule that matches none refused
    checkAndNoteRules(rules, model.tokenizer.vocabulary, `--rules ${rulesLabel(rules)}`);
    if (flags.compare) {
      const bars = multiProgress(['base', `base + rules (${rulesLabel(rules)})`], flags.maxTokens, 'tokens');
      const runOne = (spec: RuleSpec, bar: (typeof bars)[number]) => {
        let n = 0;
        return collect1(
          model,
          instruction,
          { ...generationOptions(sampled, spec), trace: true, signal: abort.signal },
          (part) => {
            if (part.type === 'token') bar.update(++n);
          },
        ).finally(() => bar.stop());
      };
      const [base, ruled] = await Promise.all([runOne(false, bars[0]!), runOne(rules, bars[1]!)]);
      if (flags.json) {
        printJson({
          model: opened.id,
          instruction,
          ...seedJson,
          base: jsonOf(base, false, true),
          rules: jsonOf(ruled, rules, true),
        });
        return;
      }
      const width = process.stdout.columns || Number(process.env.COLUMNS) || 100;
      process.stdout.write(
        sideBySide(
          [
            // --trace paints each column's tokens by their rank under the base model, as it paints one answer
            {
              title: 'base',
              text: base.text,
              ...(flags.trace ? { spans: base.spans } : {}),
              footer: stats(base),
            },
            {
              title: `base + rules (${rulesLabel(rules)})`,
              text: ruled.text,
              ...(flags.trace ? { spans: ruled.spans } : {}),
              footer: stats(ruled),
            },
          ],
          Math.max(width, 40),
          painter(process.stdout),
        ),
      );
      if (seed !== undefined) note(dim('dim', `[seed ${seed}]`));
      return;
    }

    const paint = painter(process.stdout);
    const result = await collect1(
      model,
      instruction,
      { ...generationOptions(sampled, rules), trace: flags.trace === true, signal: abort.signal },
      (part, rank) => {
        if (flags.json || part.type !== 'text-delta') return;
        const style = flags.trace ? shiftStyle(rank) : null;
        const text = forTerminal(part.text);
        process.stdout.write(style ? paint(style, text) : text);
        streamed = true;
      },
    );
    if (flags.json) {
      printJson({
        model: opened.id,
        instruction,
        ...seedJson,
        ...jsonOf(result, rules, flags.trace === true),
      });
      // the seed is in the JSON; on stderr too, for a log that keeps only stderr
      if (seed !== undefined) note(`[seed ${seed}]`);
      return;
    }
    process.stdout.write('\n');
    const seedNote = seed !== undefined ? `; seed ${seed}` : '';
    // the statistics are for a person at a terminal; the seed always reaches stderr (a log of stderr
    // keeps it, stdout stays the bare answer), since a sampled run is only reproducible with it
    if (process.stderr.isTTY) note(dim('dim', `[${stats(result)}; rules: ${rulesLabel(rules)}${seedNote}]`));
    else if (seed !== undefined) note(`[seed ${seed}]`);
  } catch (error) {
    if (abort.signal.aborted) {
      if (streamed) process.stdout.write('\n');
      // what was sampled so far is only reproducible with the seed
      if (seed !== undefined) note(dim('dim', `[seed ${seed}]`));
      throw new CliError('interrupted', EXIT.interrupted);
    }
    throw error;
  } finally {
    process.off('SIGINT', onSigint);
    await model.dispose();
  }
}

export const DEFAULT_MODEL_HELP = `
Default model (when --model is omitted): HuggingFaceTB/SmolLM2-135M from the
Hugging Face hub (its ONNX export, downloaded once into $IMPLICIT_IT_CACHE/hub
or ~/.cache/implicit-it/hub) when a network exists; offline or with --offline, a
SmolLM2-135M-shaped model with RANDOM weights created once in
$IMPLICIT_IT_CACHE/models/smollm2-135m-random (a notice says so: only the
mechanics are real).`;

export function registerGenerate(program: Command): void {
  const cmd = program
    .command('generate')
    .description('generate a response to an instruction, streamed (base model + rules)')
    .argument('[instruction...]', 'the instruction (or "-" / nothing to read it from stdin)');
  addGenerationOptions(cmd)
    .option('--compare', 'generate with and without the rules and print them side by side')
    .option('--trace', "colour each token by the base model's rank of it (1 plain, 2-3 yellow, lower red)")
    .option('--json', 'print one JSON object (text, token ids, finish reason, usage) instead of streaming')
    .addHelpText(
      'after',
      `
Examples:
  $ implicit-it generate "Give me a recipe for tiramisu."
  $ implicit-it generate --model ./models/smol --rules eos-uniform \\
      --max-tokens 128 "Write a poem about the sea."
  $ implicit-it generate --compare --rules hewitt2024 "List three colors."
  $ implicit-it generate --rules '{"used":{"penalty":-3}}' --temperature 0.7 \\
      --seed 1 "Tell a story."
  $ echo "Summarize: ..." | implicit-it generate --json -
${DEFAULT_MODEL_HELP}`,
    )
    .action(async (words: string[], flags: GenerateFlags) => run(words, flags));
}
