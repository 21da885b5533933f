import {
  compileRules,
  ImplicitItError,
  RuleConfigError,
  RuleSet,
  type RuleSpec,
  type UnresolvedEntry,
  type Vocabulary,
} from '@implicit-it/rules';
import { type Prompt, PromptError, type Tokenizer } from '@implicit-it/tokenizers';
import { whenAborted } from './abort.js';
import { GenerationAbortedError, GenerationError } from './errors.js';
import type { ModelDtype, ModelFiles } from './model-dir.js';
import {
  bad,
  checkFormat,
  checkOptions,
  checkScoreOptions,
  flag,
  type GenerateInput,
  type GenerateOptions,
  type GenerationResult,
  type StreamOptions,
  type StreamPart,
  shown,
} from './options.js';
import type { PrefixCacheStats } from './prefix-cache.js';
import type { ExecutionProvider } from './providers.js';
import type { ScoreItem, ScoreOptions, ScoreResult } from './score.js';

/** Compiled rule sets kept per model. */
const RULE_CACHE_SIZE = 64;

/** The ways of giving a prompt as an object (`GenerateInput`). */
const PROMPT_KINDS = ['instruction', 'messages', 'text', 'promptIds'] as const;

/**
 * Throws for two objects that look like prompts but are not `GenerateInput`s: a prompt that
 * `tokenizer.buildPrompt` built, whose `text` would otherwise be taken as a raw prompt (its scope
 * start lost), and a chat message, which is one message of a conversation, not a prompt.
 */
function misgivenPrompt(input: unknown): void {
  if (typeof input !== 'object' || input === null) return;
  if ('ids' in input && 'scopeStart' in input)
    bad(
      'prompt',
      'got a built prompt ({ ids, scopeStart, ... }, as tokenizer.buildPrompt returns), which would be read as raw text ' +
        'and lose its scope start: pass { promptIds: prompt.ids, scopeStart: prompt.scopeStart }',
    );
  if ('role' in input && 'content' in input)
    bad(
      'prompt',
      `got a chat message (${shown(input)}): a conversation is one prompt, { messages: [...] } (a list of prompts is a batch)`,
    );
}

/**
 * The note of a rule set's entries that match no vocabulary item (left out, never guessed, as
 * rules-spec.md has it), as a model's `log` receives it when it compiles the set: `rules hewitt2024: 1
 * entry matches no token of this vocabulary and is left out: uniform "   " (...)`. A caller that
 * reports these entries itself can tell this line apart by it.
 *
 * @example
 * import { compileRules } from '@implicit-it/rules';
 * const set = compileRules('hewitt2024', model.tokenizer.vocabulary);
 * const line = unresolvedNote('hewitt2024', set.unresolved); // what model.log received
 */
export function unresolvedNote(spec: RuleSpec, unresolved: readonly UnresolvedEntry[]): string {
  const n = unresolved.length;
  const name = typeof spec === 'string' ? spec : 'given';
  const entries = unresolved.map((u) => `${u.rule} ${JSON.stringify(u.text)} (${u.reason})`).join('; ');
  return `rules ${name}: ${n} ${n === 1 ? 'entry matches' : 'entries match'} no token of this vocabulary and ${n === 1 ? 'is' : 'are'} left out: ${entries}`;
}

/**
 * `compile()`, where the rules package refuses the spec (`RuleConfigError`: a misspelt preset, a bad
 * field, an id past the vocabulary) with the `runtime.bad_option` error of the `rules` option: its
 * message `rules: ` and the rules package's, after `prefix` (`loadModel: ` for the load option), its
 * `cause` the `RuleConfigError`.
 */
export function rulesOption<T>(compile: () => T, prefix = ''): T {
  try {
    return compile();
  } catch (error) {
    if (!RuleConfigError.isInstance(error)) throw error;
    throw new GenerationError('runtime.bad_option', `${prefix}rules: ${error.message}`, 'rules', {
      cause: error,
    });
  }
}

/**
 * Refuses a compiled `RuleSet` compiled for another vocabulary than `vocabulary` (this model's
 * tokenizer's): one of another size, or of the same size whose texts or EOS ids sit at other ids
 * (`RuleSet#vocabularyMismatch`: Llama-2's and Mistral's 32,000 ids). Its ids are another
 * vocabulary's, so its scores would land on other tokens (or past the logits). The
 * `runtime.bad_option` error of the `rules` option, its message after `prefix` (`loadModel: ` for the
 * load option); `compileWith` is how the caller gets the vocabulary.
 */
export function checkRuleSetVocabulary(
  set: RuleSet,
  vocabulary: Vocabulary,
  prefix = '',
  compileWith = 'model.tokenizer.vocabulary',
): void {
  const fix = `compile it with this model's (compileRules(spec, ${compileWith})), or pass the spec`;
  if (set.vocabSize !== vocabulary.size)
    throw new GenerationError(
      'runtime.bad_option',
      `${prefix}rules: a RuleSet compiled for a vocabulary of ${set.vocabSize} ids, but this model's tokenizer has ${vocabulary.size}; ${fix}`,
      'rules',
    );
  const mismatch = set.vocabularyMismatch(vocabulary);
  if (mismatch !== undefined)
    throw new GenerationError(
      'runtime.bad_option',
      `${prefix}rules: a RuleSet compiled for another vocabulary of ${set.vocabSize} ids than this model's tokenizer (${mismatch}); ${fix}`,
      'rules',
    );
}

/**
 * The largest |logitBias| value (OpenAI's API takes [-100, 100]).
 *
 * @example
 * // never say " red": the strongest bias the runtime takes
 * const logitBias = Object.fromEntries(model.tokenizer.vocabulary.idsOf(' red').map((id) => [id, -MAX_LOGIT_BIAS]));
 * const [out] = await model.generate('Name a color.', { logitBias });
 */
export const MAX_LOGIT_BIAS = 1e6;

/**
 * Where the model came from and how it runs.
 *
 * @example
 * const { provider, dtype, maxPositions }: ModelInfo = model.info;
 * console.log(`${provider} ${dtype}, context ${maxPositions ?? 'unlimited'}`);
 */
export interface ModelInfo {
  dir: string;
  onnxFile: string;
  /** The weights' dtype, as `LoadOptions.dtype` picked the ONNX file. */
  dtype: ModelDtype;
  provider: ExecutionProvider;
  layers: number;
  kvHeads: number;
  headDim: number;
  /** The KV cache's element type, as the graph declares it. */
  kvType: 'float32' | 'float16';
  vocabSize: number;
  /**
   * Ids that are tokens: the tokenizer's, within the LM head. Fewer than `vocabSize` where the head
   * is padded (OLMo: 50280 of 50304); the logits beyond are never picked.
   */
  tokenCount: number;
  /**
   * The context in positions (prompt and generated tokens): config.json's `max_position_embeddings`,
   * or fewer where the graph's position table (rotary cos/sin written as a constant) has fewer rows,
   * or those rows where the config declares none; undefined where neither limits it.
   */
  maxPositions: number | undefined;
  /** The model's sliding attention window in cache positions, or null (see `ModelConfig.sliding_window`). */
  slidingWindow: number | null;
  eosIds: number[];
  /**
   * How the engine gets the logits of only the positions it needs: `patched`, the LM head sliced in
   * the graph; `num_logits_to_keep`, the graph's own input; `all`, every position's computed.
   */
  logitsMode: 'patched' | 'num_logits_to_keep' | 'all';
  /** `slots`: the engine keeps the KV cache in its own buffers; `present`: it feeds `present.*` back whole. */
  cacheMode: 'slots' | 'present';
  /**
   * `split`: attention over the cached and the new keys/values separately, so no step copies the cache
   * (`SessionOptions.splitAttention`); `grouped`: split, and repeat_kv replaced by grouped queries
   * (`SessionOptions.groupQueries`); `exported`: as in the graph.
   */
  attention: 'exported' | 'split' | 'grouped';
  /** Rows decoded together at most. */
  maxBatchSize: number;
  /** Prompt positions prefilled per onnxruntime run (`LoadOptions.prefillChunk`; 0 where prompts run whole). */
  prefillChunk: number;
  /**
   * The `accuracy_level` its MatMulNBits nodes run at: `LoadOptions.q4AccuracyLevel`, else the
   * graph's own (the highest where they differ); null where the graph has none (or was run exactly as
   * exported, unread).
   */
  q4AccuracyLevel: number | null;
  /**
   * Whether the graph rounds activations to 8 bits per run (`DynamicQuantizeLinear`, as 8-bit exports
   * have it): a row's logits then move a little with the other rows of its batch.
   */
  dynamicQuantization: boolean;
}

/**
 * What a loaded model offers wherever its session runs: prompts, rules and the checks of requests
 * (here, on the caller's thread), and generation, streaming and scoring. `Model` runs onnxruntime on
 * the caller's thread, `WorkerModel` (`loadModelInWorker`) in a worker thread; code that serves either
 * (the API) takes this type.
 *
 * @example
 * // serves a Model or a WorkerModel alike
 * async function reply(model: BaseModel, instruction: string): Promise<string> {
 *   const [out] = await model.generate(instruction, { rules: 'hewitt2024', maxNewTokens: 64 });
 *   return out.text;
 * }
 */
export abstract class BaseModel {
  private readonly ruleCache = new Map<string, RuleSet | null>();
  /**
   * @internal Where notes go (`LoadOptions.log`, set by the loaders): rule entries that match no
   * vocabulary item, once per rule set compiled.
   */
  log: (line: string) => void = () => {};

  /** @internal */
  constructor(
    readonly files: ModelFiles,
    readonly tokenizer: Tokenizer,
    readonly info: ModelInfo,
    /**
     * The `rules` load option as given: what `generate()` and `stream()` use when a call names no
     * rules (a spec, compiled by `rules()`, or a compiled `RuleSet`); undefined where the model was
     * loaded without, and then generates without rules. A server that serves the model takes it as the
     * model's default (the API's `createApp`).
     *
     * @example
     * const model = await loadModel(modelDir, { rules: 'hewitt2024-prose' });
     * model.defaultRules; // 'hewitt2024-prose'
     */
    readonly defaultRules: RuleSpec | RuleSet | undefined,
  ) {}

  /** Requests waiting to join the decoding batch, and rows being decoded (for metrics). */
  abstract get load(): { queued: number; decoding: number };

  /** What the prefix cache (`LoadOptions.prefixCache`) holds and has saved; null without one. */
  abstract get prefixCacheStats(): PrefixCacheStats | null;

  /** Drops the prompts the prefix cache keeps (its counters stay); nothing without one. */
  abstract clearPrefixCache(): void | Promise<void>;

  /**
   * Finishes the onnxruntime profile started by the `profile` load option and returns its file (a
   * Chrome trace); `await` it to serve either kind of model: the worker's answers asynchronously.
   */
  abstract endProfiling(): string | Promise<string>;

  /**
   * Generates for one or more prompts (decoded together in batches of `batchSize`, shortest
   * prompts batched together). Results come back in input order, one per prompt: for one prompt (or
   * a list of one) a one-element tuple, so `const [out] = await model.generate(...)` is a result
   * under `noUncheckedIndexedAccess` too.
   */
  generate(
    input: GenerateInput | readonly [GenerateInput],
    options?: GenerateOptions,
  ): Promise<[GenerationResult]>;
  generate(
    inputs: GenerateInput | readonly GenerateInput[],
    options?: GenerateOptions,
  ): Promise<GenerationResult[]>;
  generate(
    inputs: GenerateInput | readonly GenerateInput[],
    options: GenerateOptions = {},
  ): Promise<GenerationResult[]> {
    return this.generateAll(inputs, options);
  }

  /** What `generate()` does on this kind of model (one result per input, in order): the overloads above type it. */
  protected abstract generateAll(
    inputs: GenerateInput | readonly GenerateInput[],
    options: GenerateOptions,
  ): Promise<GenerationResult[]>;

  /**
   * Streams one generation as typed parts: `text-delta`, `token`, then `finish`. Breaking out of the
   * loop, or aborting `options.signal`, stops decoding at the next step and frees its tensors. Its
   * options are `generate()`'s less those of a list of prompts (`StreamOptions`).
   */
  abstract stream(input: GenerateInput, options?: StreamOptions): AsyncGenerator<StreamPart>;

  /**
   * Teacher-forced scoring: the log-prob (and optionally the greedy rank) of each token of a given
   * continuation after a prompt, batched, with or without the rules. The softmax is over the
   * tokenizer's ids (`info.tokenCount`), as generation's log-probs are: a padded LM head's extra logits
   * are left out. One result per item, in order (for a list of one, a one-element tuple).
   */
  score(items: readonly [ScoreItem], options?: ScoreOptions): Promise<[ScoreResult]>;
  score(items: readonly ScoreItem[], options?: ScoreOptions): Promise<ScoreResult[]>;
  score(items: readonly ScoreItem[], options: ScoreOptions = {}): Promise<ScoreResult[]> {
    return this.scoreAll(items, options);
  }

  /** What `score()` does on this kind of model (one result per item, in order). */
  protected abstract scoreAll(items: readonly ScoreItem[], options: ScoreOptions): Promise<ScoreResult[]>;

  /** Frees the session; the model cannot be used afterwards. */
  abstract dispose(): Promise<void>;

  /** Throws where the model can no longer run (disposed). */
  protected abstract live(): void;

  /** What `generate` and `stream` do first: the model is live, the options and prompts are checked. */
  protected generationPrompts(
    inputs: GenerateInput | readonly GenerateInput[],
    options: GenerateOptions,
    call: 'generate()' | 'stream()' = 'generate()',
  ): Prompt[] {
    this.live();
    this.checkGenerateOptions(options, call);
    const list = Array.isArray(inputs) ? inputs : [inputs as GenerateInput];
    return list.map((input, i) => {
      try {
        const prompt = this.prompt(input, options.format, options);
        this.checkPrompt(prompt, options.maxNewTokens === 0);
        return prompt;
      } catch (error) {
        // in a list, which prompt: "promptIds[1] is 999" alone does not say
        if (list.length > 1 && ImplicitItError.isInstance(error))
          error.message = `inputs[${i}]: ${error.message}`;
        throw error;
      }
    });
  }

  /** What `stream` does first: `generationPrompts` of its one prompt (a list is refused, naming `generate`). */
  protected streamPrompt(input: GenerateInput, options: StreamOptions): [Prompt] {
    if (Array.isArray(input))
      bad(
        'prompt',
        'stream() takes one prompt, not a list (generate() takes a list and returns a result each)',
      );
    return this.generationPrompts([input], options, 'stream()') as [Prompt];
  }

  /** A rule set compiled against this model's tokenizer (cached per spec). */
  rules(spec: RuleSpec | RuleSet | undefined = this.defaultRules): RuleSet | null {
    if (RuleSet.isInstance(spec)) return spec;
    if (spec === false || spec === undefined) return null;
    return this.cachedRules(spec, () => compileRules(spec, this.tokenizer.vocabulary));
  }

  /**
   * @internal `spec` as the loader compiled it against this model's tokenizer (its check before the
   * weights load): kept as `rules(spec)` keeps the sets it compiles, its notes logged, so that the
   * default rules are compiled once.
   */
  keepRules(spec: RuleSpec, set: RuleSet): void {
    if (spec !== false) this.cachedRules(spec, () => set);
  }

  /**
   * @internal `rules(spec)` without the note of entries that match no token: for the config of a
   * `RuleSet` a `WorkerModel`'s caller compiled, which a `Model` given that set does not note either.
   */
  quietRules(spec: RuleSpec): RuleSet | null {
    if (spec === false) return null;
    return this.cachedRules(spec, () => compileRules(spec, this.tokenizer.vocabulary), false);
  }

  /** The set of `spec` in the cache, `compile()`d and kept (its note logged, unless not `note`) where it is not there. */
  private cachedRules(spec: RuleSpec, compile: () => RuleSet, note = true): RuleSet | null {
    // a set compiled without its note is kept apart: the same spec given later is noted then
    const key = `${note ? '' : 'quiet '}${JSON.stringify(spec)}`;
    let set = this.ruleCache.get(key);
    if (set !== undefined) {
      // least recently used first out: requests may carry any number of distinct rule sets
      this.ruleCache.delete(key);
      this.ruleCache.set(key, set);
      return set;
    }
    const compiled = compile();
    set = compiled.enabled.length === 0 ? null : compiled;
    if (this.ruleCache.size >= RULE_CACHE_SIZE) this.ruleCache.delete(this.ruleCache.keys().next().value!);
    // kept before its note is logged: a `log` that throws fails this request, and the next one with
    // the same spec finds the set without a note, as a worker's model does (its log is on the caller's
    // thread)
    this.ruleCache.set(key, set);
    if (note && compiled.unresolved.length > 0) this.log(unresolvedNote(spec, compiled.unresolved));
    return set;
  }

  /**
   * `rules(spec)` for a request's `rules` option: a spec the rules package refuses (a misspelt preset,
   * a bad field) is a `runtime.bad_option` error naming the option, as every other option's is, its
   * `cause` the rules package's `RuleConfigError`; so is a `RuleSet` compiled for another vocabulary.
   */
  protected requestRules(spec: RuleSpec | RuleSet | undefined): RuleSet | null {
    if (RuleSet.isInstance(spec)) checkRuleSetVocabulary(spec, this.tokenizer.vocabulary);
    return rulesOption(() => this.rules(spec));
  }

  /**
   * Builds the prompt of an input (ids, S, P). `options.addBos` as in `GenerateOptions`: for
   * instructions and messages only.
   *
   * @example
   * model.prompt({ instruction: 'Name a prime.' }, 'tulu', { addBos: true }).ids[0]; // 1 with Llama-2 (its BOS); OLMo, which names no BOS: its EOS, 50279
   */
  prompt(
    input: GenerateInput,
    format: GenerateOptions['format'] = 'tulu',
    options: Pick<GenerateOptions, 'addBos'> = {},
  ): Prompt {
    const { addBos } = options;
    checkFormat(format);
    flag(addBos, 'addBos');
    if (typeof input === 'string') input = format === 'raw' ? { text: input } : { instruction: input };
    misgivenPrompt(input);
    const kinds = typeof input === 'object' && input !== null ? PROMPT_KINDS.filter((k) => k in input) : [];
    if (kinds.length !== 1) {
      bad(
        'prompt',
        kinds.length > 1
          ? `give one of ${kinds.map((k) => `{ ${k} }`).join(', ')}, not ${kinds.length === 2 ? 'both' : 'several'}: which is the prompt is not for the model to guess`
          : `expected a string, { instruction }, { messages }, { text } or { promptIds }, got ${shown(input)}`,
      );
    }
    if ('promptIds' in input) {
      if (addBos !== undefined)
        bad(
          'addBos',
          'a prompt given as promptIds is taken as it is; put the BOS id first yourself, or drop addBos',
        );
      // a string is iterable too: its characters would be refused one by one as token ids
      if (!Array.isArray(input.promptIds))
        bad('promptIds', `expected an array of token ids, got ${shown(input.promptIds)}`);
      const ids = [...input.promptIds];
      this.checkIds(ids, 'promptIds');
      const scopeStart = input.scopeStart ?? 0;
      // checked whatever the rules: a bad S would fail only once rules were turned on
      if (!Number.isInteger(scopeStart) || scopeStart < 0 || scopeStart > ids.length)
        bad(
          'scopeStart',
          `expected an integer in [0, ${ids.length}] (the index of the first token of the last user message in promptIds), got ${shown(scopeStart)}`,
        );
      return { ids, scopeStart, promptLength: ids.length, text: this.tokenizer.decode(ids) };
    }
    if ('text' in input || format === 'raw') {
      if (addBos !== undefined) {
        bad(
          'addBos',
          "a raw text prompt is tokenized as written (with the tokenizer's own special tokens); " +
            "write the BOS in the text, or use format 'tulu' or 'chat-template'",
        );
      }
      if ('text' in input) return this.tokenizer.buildPrompt({ format: 'raw', text: input.text });
      throw new GenerationError(
        'runtime.bad_option',
        'format "raw" takes { text } or a string, not instructions or messages',
        'format',
      );
    }
    try {
      return this.tokenizer.buildPrompt({
        format,
        ...input,
        ...(addBos !== undefined ? { addBos } : {}),
      } as Parameters<Tokenizer['buildPrompt']>[0]);
    } catch (error) {
      // the tokenizer's advice, "pass { template }", is an option of buildPrompt, not of generate()
      if (error instanceof PromptError && error.code === 'tokenizers.no_chat_template')
        throw new PromptError(
          'tokenizers.no_chat_template',
          error.message.replace(
            'pass { template }',
            "build the prompt with `model.tokenizer.buildPrompt({ format: 'chat-template', template, messages })` and generate from its ids (`{ promptIds: ids, scopeStart }`)",
          ),
        );
      throw error;
    }
  }

  /**
   * The ids of `text` where it follows `prompt`: the prompt's text and `text` tokenized together,
   * the prompt's ids cut off, as the paper's `ratio_eval.py` tokenizes an instruction's prompt and
   * response. Tokenized alone, a SentencePiece (Llama-2) response would start with the word-initial
   * "▁" form of its first word, which the model never sees after the prompt's newline. Where the
   * joint tokenization does not begin with the prompt's ids (a token spanning the prompt's end, a
   * prompt given as ids), `text` is tokenized alone.
   *
   * @example
   * const p = model.prompt({ instruction: 'Name a prime.' });
   * model.continuationIds(p, 'Seven.'); // [2008, 854, 29889] with Llama-2: 'Se', 'ven', '.', not '▁Seven' (26647), '.'
   */
  continuationIds(prompt: Prompt, text: string): number[] {
    const tok = this.tokenizer;
    const n = prompt.ids.length;
    const after = (joint: number[]) =>
      joint.length >= n && prompt.ids.every((id, k) => joint[k] === id) ? joint.slice(n) : null;
    // a BOS the builder added is the tokenizer's to add again (Llama-2's legacy: false tokenizer
    // prepends "▁" to text at the start, not to text after a written "<s>")
    const bos = tok.bosId === undefined ? undefined : tok.idToToken(tok.bosId);
    const withBos =
      bos !== undefined && prompt.ids[0] === tok.bosId && prompt.text.startsWith(bos)
        ? after(tok.encode(prompt.text.slice(bos.length) + text, { addSpecialTokens: true }))
        : null;
    return (
      withBos ??
      after(tok.encode(prompt.text + text, { addSpecialTokens: false })) ??
      tok.encode(text, { addSpecialTokens: false })
    );
  }

  /**
   * `checkOptions`, and the options only the model can check (`logitBias` ids against its
   * vocabulary); `call` is the method called, as errors name it.
   */
  protected checkGenerateOptions(options: GenerateOptions, call: 'generate()' | 'stream()'): void {
    checkOptions(options, call);
    if (options.logitBias) this.checkLogitBias(options.logitBias);
    // compiled now (and kept): a bad rule set fails the call before any prompt is built or sent (the
    // default rules were compiled at load)
    if (options.rules !== undefined) this.requestRules(options.rules);
  }

  private isTokenId(id: number): boolean {
    return Number.isInteger(id) && id >= 0 && id < this.info.tokenCount;
  }

  protected checkLogitBias(bias: Readonly<Record<number, number>>): void {
    for (const [key, value] of Object.entries(bias)) {
      if (!this.isTokenId(Number(key))) {
        throw new GenerationError(
          'runtime.bad_token',
          `logitBias: key ${JSON.stringify(key)} is not a token id in [0, ${this.info.tokenCount}) for this model`,
          'logitBias',
        );
      }
      if (typeof value !== 'number' || !(Math.abs(value) <= MAX_LOGIT_BIAS)) {
        throw new GenerationError(
          'runtime.bad_option',
          `logitBias[${key}]: expected a number in [-${MAX_LOGIT_BIAS}, ${MAX_LOGIT_BIAS}] (logits are float32; ${MAX_LOGIT_BIAS} already forces or bans a token), got ${shown(value)}`,
          'logitBias',
        );
      }
    }
  }

  /** Token ids given by the caller: integers in the model's vocabulary. */
  protected checkIds(ids: readonly number[], param: string): void {
    const k = ids.findIndex((id) => !this.isTokenId(id));
    if (k >= 0) {
      throw new GenerationError(
        'runtime.bad_token',
        `${param}[${k}] is ${shown(ids[k])}: token ids are integers in [0, ${this.info.tokenCount}) for this model`,
        param,
      );
    }
  }

  /**
   * A prompt the tokenizer built holds only ids the model has: a tokenizer may have added tokens past
   * the model's `vocab_size` (a pad or chat token added without resizing the model), and onnxruntime
   * fails the run on one ("indices element out of data bounds").
   */
  private checkPromptIds(prompt: Prompt, what: string): void {
    const k = prompt.ids.findIndex((id) => id >= this.info.tokenCount);
    if (k < 0) return;
    const id = prompt.ids[k]!;
    throw new GenerationError(
      'runtime.bad_token',
      `${what}: token ${k} is ${JSON.stringify(this.tokenizer.idToToken(id) ?? '')} (id ${id}), which this model has no embedding for (its tokenizer has ${this.tokenizer.size} ids, config.json's vocab_size is ${this.info.vocabSize}); leave it out of the prompt`,
      'prompt',
    );
  }

  /** Where `info.maxPositions` comes from, for error messages. */
  private contextSource(): string {
    const declared = this.files.config.max_position_embeddings;
    if (this.info.maxPositions === declared) return 'max_position_embeddings';
    return `the rows of the position table in ${this.info.onnxFile}; config.json's max_position_embeddings ${declared === undefined ? 'is absent' : `says ${declared}`}`;
  }

  /**
   * A prompt must leave room in the context for a token, unless none is asked for (`maxNewTokens: 0`,
   * to read its `promptLogprobs`): then it may fill the context, as `score()`'s items may.
   */
  protected checkPrompt(prompt: Prompt, noTokens = false): void {
    const max = this.info.maxPositions;
    if (prompt.ids.length === 0)
      throw new GenerationError('runtime.empty_prompt', 'the prompt has no tokens', 'prompt');
    this.checkPromptIds(prompt, 'prompt');
    if (max !== undefined && prompt.ids.length > max - (noTokens ? 0 : 1)) {
      const room =
        prompt.ids.length === max
          ? ', which leaves no room for a token (maxNewTokens 0 scores it whole)'
          : '';
      throw new GenerationError(
        'runtime.prompt_too_long',
        `the prompt has ${prompt.ids.length} tokens; this model's context is ${max} (${this.contextSource()})${room}`,
        'prompt',
      );
    }
  }

  /**
   * What `score` does first: the model is live, the options are checked, and the items' prompts and
   * continuation ids are built and checked (errors name the item).
   */
  protected prepareScore(
    items: readonly ScoreItem[],
    options: ScoreOptions,
  ): { prompt: Prompt; continuation: number[] }[] {
    this.live();
    checkScoreOptions(options);
    if (options.rules !== undefined) this.requestRules(options.rules);
    if (!Array.isArray(items))
      bad('items', `expected an array of { prompt, continuation }, got ${shown(items)}`);
    return items.map((item, i) => {
      if (typeof item !== 'object' || item === null)
        bad(`items[${i}]`, `expected { prompt, continuation }, got ${shown(item)}`);
      if (typeof item.continuation !== 'string' && !Array.isArray(item.continuation))
        bad(
          `items[${i}].continuation`,
          `expected text or an array of token ids, got ${shown(item.continuation)}`,
        );
      const prompt = this.prompt(item.prompt, options.format, options);
      // the first continuation token is scored from the prompt's last position: there must be one
      if (prompt.ids.length === 0)
        throw new GenerationError('runtime.empty_prompt', `items[${i}].prompt has no tokens`, 'prompt');
      this.checkPromptIds(prompt, `items[${i}].prompt`);
      const continuation =
        typeof item.continuation === 'string'
          ? this.continuationIds(prompt, item.continuation)
          : [...item.continuation];
      this.checkIds(continuation, `items[${i}].continuation`);
      const total = prompt.ids.length + continuation.length;
      if (this.info.maxPositions !== undefined && total > this.info.maxPositions) {
        throw new GenerationError(
          'runtime.prompt_too_long',
          `items[${i}]: prompt + continuation is ${total} tokens; this model's context is ${this.info.maxPositions} (${this.contextSource()})`,
          'continuation',
        );
      }
      return { prompt, continuation };
    });
  }
}

/**
 * The parts a producer pushes, as an async generator: `start` gets `push` and a signal (aborted with
 * the caller's `signal`, or when the consumer stops early) and settles once it has pushed its last
 * part. Parts come in order; the producer's failure is thrown after the parts before it; an early
 * stop (break, return, an error) aborts the producer and waits for it to settle. Once the caller's
 * `signal` is aborted, no part is yielded: the parts left are dropped and the abort's error thrown.
 */
export async function* pushedParts<T>(
  signal: AbortSignal | undefined,
  start: (push: (part: T) => void, signal: AbortSignal) => Promise<unknown>,
): AsyncGenerator<T> {
  const stop = new AbortController();
  const unlink = signal ? whenAborted(signal, () => stop.abort(signal.reason)) : () => {};
  const queue: T[] = [];
  let wake: (() => void) | null = null;
  let done = false;
  let failure: unknown = null;
  const push = (part: T) => {
    queue.push(part);
    wake?.();
  };
  const run = start(push, stop.signal).then(
    () => {
      done = true;
      wake?.();
    },
    (error) => {
      failure = error;
      done = true;
      wake?.();
    },
  );
  // parts pushed before the caller aborted but not yet taken are dropped: after `abort()` the next
  // step of the loop is the abort's error (the producer's own, once it has settled)
  const aborted = async () => {
    queue.length = 0;
    await run;
    return failure ?? new GenerationAbortedError(signal!.reason);
  };
  try {
    for (;;) {
      while (queue.length > 0) {
        if (signal?.aborted) throw await aborted();
        yield queue.shift()!;
      }
      if (done) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = null;
    }
    if (signal?.aborted) throw await aborted();
    if (failure) throw failure;
  } finally {
    stop.abort();
    unlink();
    await run;
  }
}
