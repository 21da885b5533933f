import { type ListsEveryKey, meantOption, type RuleSet, type RuleSpec, shownValue } from '@implicit-it/rules';
import { type ChatMessage, PROMPT_FORMATS, type PromptFormat } from '@implicit-it/tokenizers';
import type { FinishReason, TokenLogprob } from './decode-engine.js';
import { GenerationError } from './errors.js';
import type { LogitsProcessor } from './logits-processor.js';
import type { ScoreOptions } from './score.js';

/**
 * A prompt: an instruction (string), chat messages, raw text, or token ids you built yourself (with
 * the index of the first token of the last user message, for the rules).
 *
 * @example
 * const built = model.tokenizer.buildPrompt({ format: 'tulu', instruction: 'Name a color.' });
 * const inputs: GenerateInput[] = [
 *   'Name a color.',
 *   { messages: [{ role: 'user', content: 'Hi!' }] },
 *   { text: 'Once upon a time' },
 *   { promptIds: built.ids, scopeStart: built.scopeStart },
 * ];
 * const results = await model.generate(inputs, { maxNewTokens: 32 });
 */
export type GenerateInput =
  | string
  | { instruction: string }
  | { messages: readonly ChatMessage[] }
  // `ids`: a prompt `tokenizer.buildPrompt` built (ids, scopeStart, promptLength, text) is not raw text
  | { text: string; ids?: never }
  | { promptIds: readonly number[]; scopeStart?: number };

/**
 * Options of `Model.generate` (and, less `batchSize` and `onProgress`, of `Model.stream`: `StreamOptions`).
 *
 * @example
 * const options: GenerateOptions = { rules: 'hewitt2024', temperature: 0.7, topP: 0.9, seed: 1, stop: ['\n\n'] };
 * const [haiku] = await model.generate('Write a haiku about rain.', options);
 */
export interface GenerateOptions {
  /** How instructions and messages become a prompt: the paper's Tulu format (default), the model's chat template, or raw text. */
  format?: PromptFormat | undefined;
  /**
   * Start the prompt with the tokenizer's BOS token. Default: the format's own (`tulu`: where the
   * tokenizer adds BOS when encoding with special tokens, `tokenizer.addsBos`: Llama-2 yes; GPT-2,
   * SmolLM2, OLMo no; the ids the paper's pipeline and `@implicit-it/finetune` use. `chat-template`:
   * false, the template writes its own). `true` on a tokenizer without a BOS (OLMo) prepends its EOS
   * instead, as open-instruct's `bos_token = eos_token` does. Refused (`runtime.bad_option`) for raw text and `promptIds`, whose tokens
   * are the caller's own.
   */
  addBos?: boolean | undefined;
  /** Default 256. */
  maxNewTokens?: number | undefined;
  /**
   * 0 (default) is greedy, as the paper evaluates. Sampling settings in the model's
   * `generation_config.json` (`do_sample`, `temperature`, `top_k`, `top_p`) are not applied: only its
   * EOS ids are read.
   */
  temperature?: number | undefined;
  /**
   * Sample among the k most likely ids (ties with the k-th kept). Default 0: no limit (transformers'
   * sampling defaults to 50). Like `topP`, it shapes sampling only: at temperature 0 the pick is greedy.
   */
  topK?: number | undefined;
  /** Sample from the smallest set of ids whose probability reaches p (after `topK`), in (0, 1]. Default 1. */
  topP?: number | undefined;
  /**
   * Seed of the sampler (default 0): the same seed gives the same output for the same prompt run the
   * same way. Each prompt of a call draws from its own stream, derived from the seed and its index in
   * the list (`inputSeed(seed, i)`; the first prompt's is `seed` itself), so that a list of one prompt
   * repeated gives different samples: a prompt moved to another index (a list reordered or split)
   * samples differently; pass it `inputSeed(seed, i)` alone to reproduce it. A row's logits differ by
   * float rounding (about 1e-6) between batched and single runs, which can, rarely, move a draw that
   * lands on a boundary between two ids to the other one.
   */
  seed?: number | undefined;
  /** Keep generating past EOS until `maxNewTokens` (for benchmarks; vLLM's ignore_eos). */
  ignoreEos?: boolean | undefined;
  /**
   * Stop strings: generation ends before the first one, which is not included in the text. The tokens
   * generated stay in `tokenIds`, `logprobs` and `usage.completionTokens`, the one that completed the
   * stop string included (as vLLM returns them), so `decode(tokenIds)` may run past `text`. They are
   * matched against `text`, which holds no special tokens: a special token's text (`<|im_end|>`) never
   * matches. Special tokens end generation as EOS ids: those of `generation_config.json` /
   * `config.json` and the tokenizer's (`ModelInfo.eosIds`).
   */
  stop?: readonly string[] | undefined;
  /** The rule-based adapter: a preset / subset name, a rule-set config, a compiled `RuleSet`, or false. Default: the model's default (false unless set at load). */
  rules?: RuleSpec | RuleSet | undefined;
  /** More logits processors, applied after the logit bias and the rules. */
  processors?: readonly LogitsProcessor[] | undefined;
  /**
   * Per-token log-probs: true, or the number of top alternatives (0-20) to return with each. They are
   * of the distribution the token was chosen from before sampling shapes it: the model's logits after
   * the logit bias, the rules and the processors, at temperature 1 and without top-k / top-p (as
   * `score()` gives them). Ids the rules or a processor ruled out are not
   * listed; a token text (`TokenLogprob.token`) keeps its leading space (`Tokenizer.tokenText`).
   */
  logprobs?: boolean | number | undefined;
  /**
   * The prompt's log-probs too (vLLM's `prompt_logprobs`): true, or the number of top alternatives
   * (0-20). Each prompt token's, given the tokens before it, under the base model (the logit bias,
   * the rules and the processors act on what follows the prompt); the first token's is null. They
   * come from the prefill itself, which then computes the LM head at every prompt position (and
   * reuses from the prefix cache only a prompt kept with its log-probs). With `maxNewTokens: 0` the
   * prompt is run for them alone, and may fill the context.
   */
  promptLogprobs?: boolean | number | undefined;
  /** Added to the logits of these ids at every step (OpenAI's logit_bias). */
  logitBias?: Readonly<Record<number, number>> | undefined;
  /** Also return each token's rank under the base model alone (how much the rules moved it). */
  trace?: boolean | undefined;
  signal?: AbortSignal | undefined;
  /** At most this many of this call's prompts are decoded at once (default: as many as the model's `maxBatchSize` allows). */
  batchSize?: number | undefined;
  /** Progress of multi-prompt generation. */
  onProgress?: ((done: number, total: number) => void) | undefined;
}

/**
 * Options of `Model.stream`: `generate()`'s, less those of a list of prompts (`batchSize`,
 * `onProgress`), which `stream()` refuses: it decodes one prompt, and its parts are its progress.
 *
 * @example
 * const options: StreamOptions = { format: 'chat-template', maxNewTokens: 64, stop: ['\n'] };
 * let line = '';
 * for await (const part of model.stream({ messages: [{ role: 'user', content: 'Hi!' }] }, options))
 *   if (part.type === 'text-delta') line += part.text;
 */
export type StreamOptions = Omit<GenerateOptions, 'batchSize' | 'onProgress'>;

/**
 * One generation's result.
 *
 * @example
 * const results: GenerationResult[] = await model.generate(['Name a color.', 'Name a fruit.']);
 * for (const r of results) console.log(r.text, r.finishReason, r.usage.completionTokens);
 */
export interface GenerationResult {
  text: string;
  tokenIds: number[];
  finishReason: FinishReason;
  /** `cachedTokens`: prompt positions reused from the prefix cache (present where the model has one). */
  usage: { promptTokens: number; completionTokens: number; totalTokens: number; cachedTokens?: number };
  prompt: { ids: number[]; scopeStart: number; promptLength: number };
  logprobs?: TokenLogprob[];
  /** With `promptLogprobs`: one per prompt token (`prompt.ids`), the first null. */
  promptLogprobs?: (TokenLogprob | null)[];
  baseRanks?: number[];
}

/**
 * Streamed parts, tagged by `type`. With `promptLogprobs`, a `prompt-logprobs` part comes first, once
 * the prompt is prefilled.
 *
 * @example
 * for await (const part of model.stream('Name a color.', { logprobs: true })) {
 *   if (part.type === 'token') console.log(part.id, part.logprob?.logprob);
 *   else if (part.type === 'finish') console.log(part.finishReason, part.usage.totalTokens);
 * }
 */
export type StreamPart =
  | { type: 'prompt-logprobs'; logprobs: (TokenLogprob | null)[] }
  | { type: 'text-delta'; text: string }
  | { type: 'token'; id: number; logprob?: TokenLogprob; baseRank?: number }
  | { type: 'finish'; finishReason: FinishReason; text: string; usage: GenerationResult['usage'] };

/** Throws the `runtime.bad_option` error of an option: `param: message`, naming it. */
export const bad = (param: string, message: string): never => {
  throw new GenerationError('runtime.bad_option', `${param}: ${message}`, param);
};

/** A value as an error message shows it (`"5"` quoted, NaN as NaN): `@implicit-it/rules`' `shownValue`. */
export const shown = shownValue;

/** An optional integer option in [min, max] (no max: `>= min`), or a `runtime.bad_option` error naming it. */
const int = (v: number | undefined, param: string, min: number, max?: number) => {
  if (v !== undefined && (!Number.isInteger(v) || v < min || (max !== undefined && v > max)))
    bad(
      param,
      `expected an integer ${max === undefined ? `>= ${min}` : `in [${min}, ${max}]`}, got ${shown(v)}`,
    );
};

/** An optional boolean option, or a `runtime.bad_option` error naming it. */
export const flag = (v: unknown, param: string) => {
  if (v !== undefined && typeof v !== 'boolean') bad(param, `expected true or false, got ${shown(v)}`);
};

/**
 * An optional prompt format (`format`), or a `runtime.bad_option` error naming it: the tokenizer
 * would refuse it only for a prompt it builds, and a prompt given as text or ids would ignore it.
 */
export const checkFormat = (v: unknown) => {
  if (v !== undefined && !(PROMPT_FORMATS as readonly unknown[]).includes(v))
    bad('format', `expected one of ${PROMPT_FORMATS.join(', ')}, got ${shown(v)}`);
};

/** An optional number option, or a `runtime.bad_option` error naming it (a numeric string is no number). */
const num = (v: unknown, param: string, ok: (n: number) => boolean, expected: string) => {
  if (v !== undefined && (typeof v !== 'number' || !ok(v)))
    bad(param, `expected ${expected}, got ${shown(v)}`);
};

/** The options of `stream()`, for telling a misspelt one (`top_p`) from a known one. */
const STREAM_OPTIONS = [
  'format',
  'addBos',
  'maxNewTokens',
  'temperature',
  'topK',
  'topP',
  'seed',
  'ignoreEos',
  'stop',
  'rules',
  'processors',
  'logprobs',
  'promptLogprobs',
  'logitBias',
  'trace',
  'signal',
] as const satisfies readonly (keyof StreamOptions)[];

/** The options of `generate()`: `stream()`'s and those of a list of prompts. */
const GENERATE_OPTIONS = [
  ...STREAM_OPTIONS,
  'batchSize',
  'onProgress',
] as const satisfies readonly (keyof GenerateOptions)[];

/**
 * Why `stream()` refuses each option of `generate()` it has not: each is of a list of prompts, and
 * taken without a word it would do nothing.
 */
const NOT_STREAM_OPTIONS: Record<Exclude<keyof GenerateOptions, keyof StreamOptions>, string> = {
  batchSize:
    'not an option of stream(), which decodes one prompt; generate() takes a list of prompts and decodes batchSize of them at once',
  onProgress:
    'not an option of stream(), whose parts are its progress (a token part per token, then finish); generate() takes a list of prompts and calls onProgress as each one is done',
};

/** The options of `score()`. */
const SCORE_OPTIONS = [
  'format',
  'addBos',
  'rules',
  'ranks',
  'top',
  'batchSize',
  'onProgress',
  'signal',
] as const satisfies readonly (keyof ScoreOptions)[];

// every option is listed (a new one missing here would be refused as unknown)
const _allGenerateOptionsListed: ListsEveryKey<GenerateOptions, typeof GENERATE_OPTIONS> = true;
const _allStreamOptionsListed: ListsEveryKey<StreamOptions, typeof STREAM_OPTIONS> = true;
const _allScoreOptionsListed: ListsEveryKey<ScoreOptions, typeof SCORE_OPTIONS> = true;
void _allGenerateOptionsListed;
void _allStreamOptionsListed;
void _allScoreOptionsListed;

/**
 * Refuses keys that are not options (a silently ignored `top_p` would sample with the default), with
 * the option meant where the key is a snake_case or differently cased spelling of one.
 */
function checkKnown(o: object, known: readonly string[], call: string): void {
  if (typeof o !== 'object' || o === null || Array.isArray(o))
    bad('options', `expected an object of ${call} options, got ${shown(o)}`);
  const key = unknownOption(o, known);
  if (key !== undefined) bad(key, notAnOption(key, known, call));
}

/**
 * The first key of `o` that is not one of `known` (an option left undefined, as a spread of optional
 * fields leaves it, is no option given), or undefined.
 */
export function unknownOption(o: object, known: readonly string[]): string | undefined {
  return Object.entries(o).find(([key, value]) => value !== undefined && !known.includes(key))?.[0];
}

/** Why `key` is refused: not an option of `call`, with the option meant where it is another spelling or a near miss (`top_p`, `temprature`). */
export function notAnOption(key: string, known: readonly string[], call: string): string {
  const meant = meantOption(key, known);
  return `not an option of ${call}${meant ? ` (did you mean ${meant}?)` : ''}; its options are ${known.join(', ')}`;
}

/** Validates `score()` options (the error names the option). */
export function checkScoreOptions(o: {
  format?: unknown;
  batchSize?: number;
  addBos?: boolean;
  ranks?: boolean;
  top?: number;
  onProgress?: unknown;
  signal?: unknown;
}): void {
  checkKnown(o, SCORE_OPTIONS, 'score()');
  checkFormat(o.format);
  int(o.batchSize, 'batchSize', 1, 1024);
  int(o.top, 'top', 0, 20);
  flag(o.addBos, 'addBos');
  flag(o.ranks, 'ranks');
  checkCallbacks(o);
}

/** `signal` and `onProgress`, as `generate()` and `score()` take them. */
function checkCallbacks(o: { signal?: unknown; onProgress?: unknown }): void {
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) bad('signal', 'expected an AbortSignal');
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function')
    bad('onProgress', 'expected a function (done, total)');
}

/** Validates `generate()` / `stream()` options (the error names the option; `call` the method called). */
export function checkOptions(o: GenerateOptions, call: 'generate()' | 'stream()' = 'generate()'): void {
  if (call === 'stream()' && typeof o === 'object' && o !== null) {
    for (const [key, why] of Object.entries(NOT_STREAM_OPTIONS))
      if (o[key as keyof typeof NOT_STREAM_OPTIONS] !== undefined) bad(key, why);
  }
  checkKnown(o, call === 'stream()' ? STREAM_OPTIONS : GENERATE_OPTIONS, call);
  checkFormat(o.format);
  int(o.maxNewTokens, 'maxNewTokens', 0);
  int(o.topK, 'topK', 0);
  int(o.batchSize, 'batchSize', 1, 1024);
  int(o.seed, 'seed', 0, 2 ** 32 - 1);
  num(o.temperature, 'temperature', (t) => t >= 0 && Number.isFinite(t), 'a number >= 0');
  num(o.topP, 'topP', (p) => p > 0 && p <= 1, 'a number in (0, 1]');
  for (const param of ['logprobs', 'promptLogprobs'] as const) {
    const v = o[param];
    if (typeof v === 'number') int(v, param, 0, 20);
    else if (v !== undefined && typeof v !== 'boolean')
      bad(param, `expected true, false or a number of alternatives (0-20), got ${JSON.stringify(v)}`);
  }
  if (o.stop !== undefined && (!Array.isArray(o.stop) || o.stop.some((s) => typeof s !== 'string')))
    bad('stop', 'expected an array of strings');
  const empty = o.stop?.indexOf('') ?? -1;
  if (empty >= 0) bad('stop', `stop[${empty}] is empty: a stop string has at least one character`);
  for (const name of ['ignoreEos', 'trace', 'addBos'] as const) flag(o[name], name);
  if (o.processors !== undefined) {
    if (!Array.isArray(o.processors)) bad('processors', 'expected an array of { process(logits, ctx) }');
    const k = o.processors.findIndex(
      (p) => typeof (p as { process?: unknown } | null)?.process !== 'function',
    );
    if (k >= 0) bad('processors', `processors[${k}] has no process(logits, ctx) method`);
  }
  if (
    o.logitBias !== undefined &&
    (typeof o.logitBias !== 'object' || o.logitBias === null || Array.isArray(o.logitBias))
  )
    bad('logitBias', `expected an object of token id -> bias, got ${JSON.stringify(o.logitBias)}`);
  checkCallbacks(o);
}
