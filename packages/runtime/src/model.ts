import {
  compileRules,
  type ListsEveryKey,
  RuleSet,
  type RuleSpec,
  resolveRuleSpec,
} from '@implicit-it/rules';
import { loadTokenizer, type Prompt, type Tokenizer } from '@implicit-it/tokenizers';
import { whenAborted } from './abort.js';
import { BaseModel, checkRuleSetVocabulary, pushedParts, rulesOption } from './base-model.js';
import {
  DecodeEngine,
  type EngineTokenizer,
  type RowRequest,
  type RowResult,
  type TokenEvent,
} from './decode-engine.js';
import { DecoderSession, ONNX_LOG_LEVELS, type SessionOptions } from './decoder-session.js';
import { GenerationError } from './errors.js';
import { type ResolveOptions, resolveModel } from './hub.js';
import { type ModelFiles, modelEosIds, resolveModelFiles } from './model-dir.js';
import type { PositionTable } from './onnx-patch.js';
import {
  type GenerateInput,
  type GenerateOptions,
  type GenerationResult,
  notAnOption,
  type StreamOptions,
  type StreamPart,
  shown,
  unknownOption,
} from './options.js';
import { PrefixCache, type PrefixCacheStats } from './prefix-cache.js';
import { PROVIDER_PRIORITY } from './providers.js';
import { type ScoreItem, type ScoreOptions, type ScoreResult, scoreBatch } from './score.js';

/**
 * Options of `loadModel`.
 *
 * @example
 * const options: LoadOptions = { rules: 'hewitt2024', dtype: 'q4', maxBatchSize: 8, prefixCache: 256 * 2 ** 20 };
 * const model = await loadModel('HuggingFaceTB/SmolLM2-135M', options);
 */
export interface LoadOptions extends SessionOptions, ResolveOptions {
  /**
   * Rules `generate` and `stream` use when a request names none (default false: the base model).
   * `score()` is not affected: it scores under the base model unless its own options name rules.
   * A compiled `RuleSet` is taken as a request's is: compiled for this model's vocabulary
   * (`compileRules(spec, (await loadTokenizer(dir)).vocabulary)`, a vocabulary of another size is
   * refused); on a model in a worker thread (`loadModelInWorker`) it crosses as its config, and one
   * with custom rules (functions) is refused.
   */
  rules?: RuleSpec | RuleSet | undefined;
  /**
   * Rows decoded together at most (default 32; the KV cache grows with it). Concurrent `generate` / `stream` calls share one
   * batch (continuous batching): a request joins the running batch at the next step.
   */
  maxBatchSize?: number | undefined;
  /**
   * Prompt positions prefilled per onnxruntime run (default 256; 0: the whole prompt at once), in
   * generation and in `score()`. A longer prompt is run in chunks, each attending to the cache of
   * those before it: attention then skips the scores above the causal diagonal between chunks, and
   * its intermediate tensors are bounded by chunk x prompt instead of prompt x prompt (on 2 CPU cores,
   * a 2,048-token prompt took about 8 s instead of 10 s, a 4,096-token one 21.9 s instead of 33.1 s and
   * 2 GiB less memory). Results agree with a whole-prompt prefill to float rounding (the same
   * products, summed in another order). Applies where the engine keeps the cache in its buffers and
   * slices the LM head (`ModelInfo.cacheMode` `slots`, `logitsMode` `patched`), without a sliding
   * window; `ModelInfo.prefillChunk` is 0 elsewhere. Rows prefilled together share it (each gets
   * `prefillChunk / rows`, at least 16 or `prefillChunk`), and running rows decode a step between the
   * chunks of rows joining them.
   */
  prefillChunk?: number | undefined;
  /**
   * Bytes of prompt and reply keys/values kept for reuse (default 0: none). A prompt that begins as a
   * kept sequence (a chat's next turn, which re-sends the history and the last reply; a shared system
   * prompt or few-shot preamble of 32 tokens or more) then prefills only what follows. Results agree
   * with a fresh prefill to float rounding (other kernel shapes, as in a batch), so greedy outputs can
   * differ where two tokens are within rounding of each other. Each prompt of 32 tokens or more is
   * kept once prefilled, then with its reply once its row ends (about 46 KB per token for
   * smollm2-135m in float32: layers x 2 x kvHeads x headDim x 4 bytes), least recently used dropped
   * first. Applies where prompts can run in chunks (see `prefillChunk`); `prefixCacheStats` says what
   * it holds and saved, and each result's `usage.cachedTokens` how many of its prompt's positions it
   * reused.
   */
  prefixCache?: number | undefined;
}

/**
 * Default of `LoadOptions.prefillChunk`.
 *
 * @example
 * // smaller prefill runs: less memory for the intermediate tensors of long prompts
 * const model = await loadModel(modelDir, { prefillChunk: DEFAULT_PREFILL_CHUNK / 4 });
 */
export const DEFAULT_PREFILL_CHUNK = 256;

/** A log-probs option as the engine takes it: null (none), or the number of top alternatives. */
const alternatives = (v: boolean | number | undefined): number | null =>
  v === undefined || v === false ? null : v === true ? 0 : v;

/**
 * A loaded model: an ONNX decoder session, its tokenizer, and generation with the rules.
 *
 * @example
 * const model = await loadModel('./SmolLM2-135M', { rules: 'hewitt2024' });
 * const [out] = await model.generate(['Give me a recipe for tiramisu.'], { maxNewTokens: 128 });
 * console.log(out.text);
 */
export class Model extends BaseModel {
  private readonly engine: DecodeEngine;
  /** Kept prompt keys/values (`LoadOptions.prefixCache`), or null. */
  private readonly prefixes: PrefixCache | null;
  private released = false;
  private disposing: Promise<void> | undefined;
  /** score() calls in flight: dispose() lets them finish before it frees the session. */
  private readonly scoring = new Set<Promise<ScoreResult[]>>();

  /** @internal use `loadModel` */
  constructor(
    files: ModelFiles,
    tokenizer: Tokenizer,
    /** @internal the ONNX session (for reference implementations and benchmarks) */
    readonly session: DecoderSession,
    defaultRules: RuleSpec | RuleSet | undefined,
    maxBatchSize = 32,
    prefillChunk = DEFAULT_PREFILL_CHUNK,
    prefixCacheBytes = 0,
  ) {
    const whole = whyPromptsRunWhole(session, files.config.sliding_window) !== null;
    if (whole) prefillChunk = 0;
    const eos = new Set([...modelEosIds(files), ...tokenizer.eosIds]);
    super(
      files,
      tokenizer,
      {
        dir: files.dir,
        onnxFile: files.onnxFile,
        dtype: files.dtype,
        provider: session.provider,
        layers: session.layers,
        kvHeads: session.kvHeads,
        headDim: session.headDim,
        kvType: session.kvType,
        vocabSize: files.config.vocab_size,
        tokenCount: Math.min(files.config.vocab_size, tokenizer.size),
        maxPositions: contextLimit(files.config.max_position_embeddings, session.positionTable),
        slidingWindow: files.config.sliding_window,
        eosIds: [...eos],
        logitsMode: session.logitsMode,
        cacheMode: session.cacheMode,
        attention: session.attention,
        maxBatchSize,
        prefillChunk,
        q4AccuracyLevel: session.q4AccuracyLevel,
        dynamicQuantization: session.dynamicQuantization,
      },
      defaultRules,
    );
    const positionBytes =
      session.layers * 2 * session.kvHeads * session.headDim * (session.kvType === 'float16' ? 2 : 4);
    this.prefixes =
      prefixCacheBytes > 0 && !whole ? new PrefixCache(prefixCacheBytes, undefined, positionBytes) : null;
    this.engine = new DecodeEngine(session, this.loopTokenizer(), {
      eosIds: eos,
      padId: tokenizer.padId,
      maxPositions: contextLimit(files.config.max_position_embeddings, session.positionTable),
      slidingWindow: files.config.sliding_window,
      maxBatchSize,
      prefillChunk,
      tokenCount: this.info.tokenCount,
      prefixCache: this.prefixes,
    });
  }

  /** Drops the prompts the prefix cache keeps (its counters stay); nothing without one. */
  clearPrefixCache(): void {
    this.prefixes?.clear();
  }

  get prefixCacheStats(): PrefixCacheStats | null {
    return this.prefixes?.stats ?? null;
  }

  /** Requests waiting to join the decoding batch, and rows being decoded (for metrics). */
  get load(): { queued: number; decoding: number } {
    return { queued: this.engine.queued, decoding: this.engine.batchSize };
  }

  private row(
    prompt: Prompt,
    options: GenerateOptions,
    onToken?: (e: TokenEvent) => void,
    input = 0,
    onPromptLogprobs?: RowRequest['onPromptLogprobs'],
  ): RowRequest {
    const bias = options.logitBias
      ? new Map(Object.entries(options.logitBias).map(([k, v]) => [Number(k), v]))
      : null;
    return {
      input,
      promptIds: prompt.ids,
      scopeStart: prompt.scopeStart,
      maxNewTokens: options.maxNewTokens ?? 256,
      ignoreEos: options.ignoreEos ?? false,
      stop: options.stop ?? [],
      rules: this.rules(options.rules),
      processors: options.processors ?? [],
      sampling: {
        temperature: options.temperature,
        topK: options.topK,
        topP: options.topP,
        // each input its own stream: repeated prompts in one call sample differently
        seed: inputSeed(options.seed ?? 0, input),
      },
      logprobs: alternatives(options.logprobs),
      promptLogprobs: alternatives(options.promptLogprobs),
      logitBias: bias,
      trace: options.trace ?? false,
      signal: options.signal,
      onToken,
      onPromptLogprobs,
    };
  }

  private result(p: Prompt, r: RowResult): GenerationResult {
    return {
      text: r.text,
      tokenIds: r.tokenIds,
      finishReason: r.finishReason,
      usage: {
        promptTokens: r.promptTokens,
        completionTokens: r.completionTokens,
        totalTokens: r.promptTokens + r.completionTokens,
        ...(r.cachedTokens !== undefined ? { cachedTokens: r.cachedTokens } : {}),
      },
      prompt: { ids: p.ids, scopeStart: p.scopeStart, promptLength: p.promptLength },
      ...(r.logprobs ? { logprobs: r.logprobs } : {}),
      ...(r.promptLogprobs ? { promptLogprobs: r.promptLogprobs } : {}),
      ...(r.baseRanks ? { baseRanks: r.baseRanks } : {}),
    };
  }

  private loopTokenizer(): EngineTokenizer {
    const tok = this.tokenizer;
    return {
      createDetokenizer: (o) => tok.createDetokenizer(o),
      tokenText: (id) => tok.tokenText(id),
    };
  }

  protected live(): void {
    if (this.released) throw new GenerationError('runtime.released', 'this model was disposed');
  }

  protected async generateAll(
    inputs: GenerateInput | readonly GenerateInput[],
    options: GenerateOptions,
  ): Promise<GenerationResult[]> {
    const prompts = this.generationPrompts(inputs, options);
    // shortest prompts first: rows admitted together need less padding
    const order = prompts.map((_, i) => i).sort((a, b) => prompts[a]!.ids.length - prompts[b]!.ids.length);
    const limit = options.batchSize ?? Number.POSITIVE_INFINITY;
    const results: GenerationResult[] = new Array(prompts.length);
    // the call's own signal: when one row fails (or onProgress throws), the others stop too
    const stop = new AbortController();
    const { signal } = options;
    const unlink = signal ? whenAborted(signal, () => stop.abort(signal.reason)) : () => {};
    const rowOptions = { ...options, signal: stop.signal };
    try {
      await new Promise<void>((resolve, reject) => {
        let next = 0;
        let inFlight = 0;
        let done = 0;
        let failed = false;
        const fail = (error: unknown) => {
          if (failed) return;
          failed = true;
          stop.abort(error);
          reject(error);
        };
        if (order.length === 0) resolve();
        const launch = () => {
          while (!failed && inFlight < limit && next < order.length) {
            const i = order[next++]!;
            inFlight++;
            this.engine.submit(this.row(prompts[i]!, rowOptions, undefined, i)).then((r) => {
              if (failed) return;
              results[i] = this.result(prompts[i]!, r);
              inFlight--;
              done++; // not inside onProgress?.(...): an optional call skips evaluating its arguments
              try {
                options.onProgress?.(done, order.length);
              } catch (error) {
                fail(error);
                return;
              }
              if (done === order.length) resolve();
              else launch();
            }, fail);
          }
        };
        launch();
      });
    } finally {
      unlink();
    }
    return results;
  }

  /**
   * Streams one generation as typed parts: `text-delta`, `token`, then `finish`. Breaking out of the
   * loop, or aborting `options.signal`, stops decoding at the next step and frees its tensors.
   *
   * @example
   * for await (const part of model.stream('Write a haiku.', { rules: 'hewitt2024' })) {
   *   if (part.type === 'text-delta') process.stdout.write(part.text);
   * }
   */
  async *stream(input: GenerateInput, options: StreamOptions = {}): AsyncGenerator<StreamPart> {
    const [prompt] = this.streamPrompt(input, options);
    // an early stop (break, return) or an abort ends the row at the next step, its tensors freed
    yield* pushedParts<StreamPart>(options.signal, (push, signal) =>
      this.engine
        .submit(
          this.row(
            prompt,
            { ...options, signal },
            (e) => {
              push({
                type: 'token',
                id: e.id,
                ...(e.logprob ? { logprob: e.logprob } : {}),
                ...(e.baseRank !== undefined ? { baseRank: e.baseRank } : {}),
              });
              if (e.text) push({ type: 'text-delta', text: e.text });
            },
            0,
            (logprobs) => push({ type: 'prompt-logprobs', logprobs }),
          ),
        )
        .then((r) =>
          push({
            type: 'finish',
            finishReason: r.finishReason,
            text: r.text,
            usage: this.result(prompt, r).usage,
          }),
        ),
    );
  }

  protected async scoreAll(items: readonly ScoreItem[], options: ScoreOptions): Promise<ScoreResult[]> {
    const prepared = this.prepareScore(items, options);
    const run = scoreBatch(
      this.session,
      this.tokenizer,
      prepared,
      this.rules(options.rules ?? false),
      options,
      this.info.prefillChunk,
      this.info.tokenCount,
    );
    this.scoring.add(run);
    try {
      return await run;
    } finally {
      this.scoring.delete(run);
    }
  }

  /**
   * Finishes the onnxruntime profile started by the `profile` load option and returns its file: a
   * Chrome trace with one event per kernel run (`cat: "Node"`, `args.op_name`, `dur` in microseconds)
   * and one per run (`name: "model_run"`). `bench/profile.mjs` sums it per op type.
   */
  endProfiling(): string {
    this.live();
    return this.session.endProfiling();
  }

  /**
   * Frees the session. Generations still running end at their next step (they reject with
   * `GenerationAbortedError`: "the model was disposed"), scoring calls in flight finish first; the
   * model cannot be used afterwards.
   */
  async dispose(): Promise<void> {
    // a second call waits for the first: resolved means released
    this.disposing ??= (async () => {
      this.released = true;
      await this.engine.close(new Error('the model was disposed'));
      await Promise.allSettled(this.scoring);
      await this.session.release();
    })();
    return this.disposing;
  }
}

/**
 * The sampling seed of input `i` of a call seeded `seed`: `seed` itself for the first input (a
 * single prompt samples as before), a hash of both for the others.
 *
 * @example
 * const outs = await model.generate(prompts, { temperature: 0.8, seed: 7 });
 * // prompt 2 alone, sampled as it was in the list (prompt 0's seed is 7 itself)
 * const [again] = await model.generate(prompts[2]!, { temperature: 0.8, seed: inputSeed(7, 2) });
 */
export function inputSeed(seed: number, i: number): number {
  if (i === 0) return seed;
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(i, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * The positions a model runs at most (`ModelInfo.maxPositions`): config.json's
 * `max_position_embeddings`, but no more than the rows of the graph's position table (some exports
 * write rotary cos/sin as a constant of their own length, past which onnxruntime fails the run), which
 * also limits a config that declares none; undefined where neither does.
 */
export function contextLimit(declared: number | undefined, table: PositionTable | null): number | undefined {
  if (table === null) return declared;
  return declared === undefined ? table.rows : Math.min(declared, table.rows);
}

/** How a caller gets a model's vocabulary before loading it, as the errors of a `rules` load option say. */
export const LOAD_VOCABULARY = '(await loadTokenizer(dir)).vocabulary';

/** Where load log lines go without a `log` option: stderr, prefixed. */
export const defaultLog = (line: string): void => {
  process.stderr.write(`[implicit-it] ${line}\n`);
};

/**
 * Loads a model from a local Hugging Face directory (or a hub id, fetched once into the cache where a
 * network exists): config, generation config, tokenizer and the ONNX decoder for `dtype`.
 *
 * @example
 * const model = await loadModel('./my-model', { executionProvider: 'auto', rules: 'hewitt2024' });
 */
export function loadModel(model: string, options: LoadOptions = {}): Promise<Model> {
  return loadModelAs('loadModel', model, options);
}

/**
 * @internal `loadModel`, its errors naming `call`: `loadModelInWorker`'s thread loads its model with
 * it, so that a refused option names the function its caller called.
 */
export async function loadModelAs(call: string, model: string, options: LoadOptions): Promise<Model> {
  checkLoadOptions(options, call);
  const chunk = options.prefillChunk;
  const dir = await resolveModel(model, options);
  const files = resolveModelFiles(dir, options.dtype ?? 'fp32');
  const tokenizer = await loadTokenizer(dir);
  const rules = options.rules ?? false;
  // compiled against the tokenizer before the weights load: a rule set naming an id past the
  // vocabulary fails the load with nothing to free (the model keeps the set in its cache)
  let compiled: [RuleSpec, RuleSet] | null = null;
  if (RuleSet.isInstance(rules))
    checkRuleSetVocabulary(rules, tokenizer.vocabulary, `${call}: `, LOAD_VOCABULARY);
  else compiled = [rules, rulesOption(() => compileRules(rules, tokenizer.vocabulary), `${call}: `)];
  const log = options.log ?? defaultLog;
  const session = await DecoderSession.create(files, { ...options, log });
  let loaded: Model | undefined;
  // the session holds the weights until released: a load failing past it (a `log` that throws)
  // frees it
  try {
    const table = session.positionTable;
    const declared = files.config.max_position_embeddings;
    if (table !== null && contextLimit(declared, table) !== declared)
      log(
        `context of ${table.rows} positions: the rows of ${table.tensor} in ${files.onnxFile} (config.json's max_position_embeddings ${declared === undefined ? 'is absent' : `says ${declared}`})`,
      );
    const window = files.config.sliding_window;
    if (window !== null && session.cacheMode === 'slots')
      log(
        `sliding window of ${window} positions: from ${window - 1} cached positions on, the cache has no free slots and each step copies it`,
      );
    loaded = new Model(
      files,
      tokenizer,
      session,
      options.rules,
      options.maxBatchSize,
      chunk,
      options.prefixCache,
    );
    loaded.log = log; // notes of rule entries that match no token: the default rules' now, a request's once
    // the default rules (compiled above) in its cache, their notes logged now
    if (compiled) loaded.keepRules(...compiled);
    const why = whyPromptsRunWhole(session, window);
    log(
      loaded.info.prefillChunk > 0
        ? `prompts prefilled in chunks of ${loaded.info.prefillChunk} positions`
        : chunk === 0 || why === null
          ? 'prompts prefilled whole'
          : `prompts prefilled whole (no chunks with ${why})`,
    );
    if (options.prefixCache)
      log(
        why === null
          ? `prefix cache of ${(options.prefixCache / 2 ** 20).toFixed(0)} MiB: prompts that begin as a recent one reuse its keys/values`
          : `no prefix cache with ${why}`,
      );
    return loaded;
  } catch (error) {
    await (loaded ? loaded.dispose() : session.release());
    throw error;
  }
}

/** The options of `loadModel` and `loadModelInWorker`, for refusing a misspelt one (`maxBatch`). */
const LOAD_OPTIONS = [
  'rules',
  'maxBatchSize',
  'prefillChunk',
  'prefixCache',
  'executionProvider',
  'intraOpThreads',
  'interOpThreads',
  'sliceLogits',
  'cacheOutputs',
  'splitAttention',
  'groupQueries',
  'q4AccuracyLevel',
  'profile',
  'onnxLogLevel',
  'log',
  'dtype',
  'offline',
  'cacheDir',
  'endpoint',
  'onProgress',
] as const satisfies readonly (keyof LoadOptions)[];

// every option is listed (a new one missing here would be refused as unknown)
const _allLoadOptionsListed: ListsEveryKey<LoadOptions, typeof LOAD_OPTIONS> = true;
void _allLoadOptionsListed;

/**
 * Refuses load options that are unknown (`TypeError`, with the option meant where the key is another
 * spelling of one), of the wrong type (`TypeError`) or out of range (`RangeError`), before anything is
 * read (`call` names the function in the error): a misspelt `maxBatch` or a `sliceLogits: 0` would
 * otherwise load with the default.
 */
export function checkLoadOptions(options: LoadOptions, call: string): void {
  if (typeof options !== 'object' || options === null || Array.isArray(options))
    throw new TypeError(`${call}: expected an object of load options, got ${shown(options)}`);
  const unknown = unknownOption(options, LOAD_OPTIONS);
  if (unknown !== undefined)
    throw new TypeError(`${call}: ${unknown}: ${notAnOption(unknown, LOAD_OPTIONS, call)}`);
  // a misspelt preset or a bad field fails before a download or a file is read (the ids a rule set
  // names are checked against the vocabulary once the tokenizer is loaded)
  const { rules } = options;
  if (rules !== undefined && !RuleSet.isInstance(rules))
    rulesOption(() => resolveRuleSpec(rules), `${call}: `);
  const typed = (
    keys: readonly (keyof LoadOptions)[],
    type: 'boolean' | 'string' | 'function',
    what: string,
  ) => {
    for (const key of keys) {
      const value = options[key];
      if (value !== undefined && typeof value !== type)
        throw new TypeError(`${call}: ${key} must be ${what}, got ${shown(value)}`);
    }
  };
  typed(
    ['sliceLogits', 'cacheOutputs', 'splitAttention', 'groupQueries', 'offline'],
    'boolean',
    'true or false',
  );
  typed(['dtype', 'executionProvider', 'profile', 'cacheDir', 'endpoint'], 'string', 'a string');
  typed(['log', 'onProgress'], 'function', 'a function (line) => void');
  // before a file is read or a hub model downloaded (the session would find it only then)
  const provider = options.executionProvider;
  if (provider !== undefined && provider !== 'auto' && !PROVIDER_PRIORITY.includes(provider))
    throw new RangeError(
      `${call}: executionProvider must be auto or one of ${PROVIDER_PRIORITY.join(', ')}, got ${shown(provider)}`,
    );
  const chunk = options.prefillChunk;
  if (chunk !== undefined && !(Number.isInteger(chunk) && chunk >= 0))
    throw new RangeError(
      `${call}: prefillChunk must be a whole number of positions (0: no chunks), got ${shown(chunk)}`,
    );
  const bytes = options.prefixCache;
  if (bytes !== undefined && !(Number.isSafeInteger(bytes) && bytes >= 0))
    throw new RangeError(
      `${call}: prefixCache must be a whole number of bytes (0: none), got ${shown(bytes)}`,
    );
  const rows = options.maxBatchSize;
  if (rows !== undefined && !(Number.isInteger(rows) && rows >= 1))
    throw new RangeError(
      `${call}: maxBatchSize must be a whole number of rows, at least 1, got ${shown(rows)}`,
    );
  for (const key of ['intraOpThreads', 'interOpThreads'] as const) {
    const n = options[key];
    if (n !== undefined && !(Number.isInteger(n) && n >= 0))
      throw new RangeError(
        `${call}: ${key} must be a whole number of threads (0: onnxruntime's default), got ${shown(n)}`,
      );
  }
  const accuracy = options.q4AccuracyLevel;
  if (accuracy !== undefined && ![0, 1, 2, 3, 4].includes(accuracy))
    throw new RangeError(`${call}: q4AccuracyLevel must be 0, 1, 2, 3 or 4, got ${JSON.stringify(accuracy)}`);
  const level = options.onnxLogLevel;
  if (level !== undefined && !ONNX_LOG_LEVELS.includes(level))
    throw new RangeError(
      `${call}: onnxLogLevel must be one of ${ONNX_LOG_LEVELS.join(', ')}, got ${JSON.stringify(level)}`,
    );
}

/**
 * What keeps prompts from running in chunks, or null where they can: chunks need the cache in the
 * engine's buffers, the LM head sliced (the chunks before the last ask for no logits), and no sliding
 * window.
 */
function whyPromptsRunWhole(session: DecoderSession, slidingWindow: number | null): string | null {
  if (slidingWindow !== null) return 'a sliding window';
  if (session.cacheMode !== 'slots') return 'the cache fed back as present.*';
  if (session.logitsMode !== 'patched') return 'an LM head that is not sliced';
  return null;
}
