import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { compileRules, RuleSet, type RuleSpec, type Vocabulary } from '@implicit-it/rules';
import { loadTokenizer, type Prompt, type Tokenizer } from '@implicit-it/tokenizers';
import { whenAborted } from './abort.js';
import { BaseModel, checkRuleSetVocabulary, type ModelInfo, pushedParts } from './base-model.js';
import { GenerationAbortedError, GenerationError } from './errors.js';
import { resolveModel } from './hub.js';
import { checkLoadOptions, defaultLog, LOAD_VOCABULARY, type LoadOptions } from './model.js';
import type { ModelFiles } from './model-dir.js';
import {
  bad,
  type GenerateInput,
  type GenerateOptions,
  type GenerationResult,
  type StreamOptions,
  type StreamPart,
} from './options.js';
import type { PrefixCacheStats } from './prefix-cache.js';
import type { ScoreItem, ScoreOptions, ScoreResult } from './score.js';
import { disableOnnxTelemetry } from './telemetry.js';
import {
  type ErrorData,
  errorFrom,
  type FromWorker,
  type IdsInput,
  type Load,
  type SentGenerateOptions,
  type ToWorker,
  type WorkerInit,
} from './worker-protocol.js';

/**
 * The worker's script: beside this module in the package (`dist/`); when this module runs from its
 * TypeScript source (the package's own tests), the built one.
 */
function workerScript(): URL {
  const beside = new URL('./model-worker.js', import.meta.url);
  return existsSync(fileURLToPath(beside)) ? beside : new URL('../dist/model-worker.js', import.meta.url);
}

/** A request waiting for the worker's answer. */
interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  part?: (part: StreamPart) => void;
  progress?: (done: number, total: number) => void;
  /** aborted by the caller: the signal whose reason the abort error carries */
  signal?: AbortSignal;
  /** an error of the caller's own (a throwing `onProgress`) that ended the request */
  failure?: unknown;
}

/**
 * A model whose onnxruntime session runs in a worker thread (`loadModelInWorker`). It generates,
 * streams and scores exactly as `Model` does (the worker runs a `Model`; prompts are built and
 * checked here, on the caller's thread, and cross as token ids), but a prefill chunk or a decoding
 * step never holds the caller's thread: a server stays responsive (health checks, other requests'
 * parsing, stream writes) while the model works. Concurrent calls still decode together in one batch.
 *
 * What cannot cross a thread boundary is refused, naming the option: logits `processors` (functions)
 * and `RuleSet`s with custom rules. A compiled `RuleSet` without them crosses as its config.
 *
 * @example
 * const model = await loadModelInWorker('./SmolLM2-135M', { rules: 'hewitt2024' });
 * for await (const part of model.stream('Write a haiku.')) {
 *   if (part.type === 'text-delta') process.stdout.write(part.text);
 * }
 * await model.dispose(); // ends the thread
 */
export class WorkerModel extends BaseModel {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private lastLoad: Load = { queued: 0, decoding: 0 };
  private lastPrefix: PrefixCacheStats | null;
  /** Messages of this tick, posted together in a microtask (`post`). */
  private outbox: ToWorker[] = [];
  private released = false;
  private disposing: Promise<void> | undefined;
  /** Set when the thread stopped on its own (a crash): every later call fails with it. */
  private stopped: GenerationError | null = null;

  /** @internal use `loadModelInWorker` */
  constructor(
    files: ModelFiles,
    tokenizer: Tokenizer,
    info: ModelInfo,
    defaultRules: RuleSpec | RuleSet | undefined,
    private readonly worker: Worker,
    log: (line: string) => void,
    prefix: PrefixCacheStats | null = null,
  ) {
    super(files, tokenizer, info, defaultRules);
    this.lastPrefix = prefix;
    worker.on('message', (message: FromWorker) => {
      if (message.type === 'log') this.logged(log, message);
      else if (message.type !== 'ready' && message.type !== 'failed') this.receive(message);
    });
    const stop = (why: string) => {
      this.stopped ??= new GenerationError(
        'runtime.worker_stopped',
        `the worker thread running this model stopped (${why}); load the model again`,
      );
      for (const p of this.pending.values()) p.reject(this.stopped);
      this.pending.clear();
    };
    worker.on('error', (error) => stop(`error: ${error.message}`));
    // after dispose() the thread is ended on purpose
    worker.on('exit', (code) => {
      if (!this.released) stop(`exit code ${code}`);
    });
    worker.unref(); // an idle model does not keep the process alive (one with requests in flight does)
  }

  /** Requests waiting to join the decoding batch, and rows being decoded, as of the worker's last message. */
  get load(): { queued: number; decoding: number } {
    return { ...this.lastLoad };
  }

  /**
   * The prefix cache's figures (`LoadOptions.prefixCache`) as of the worker's last message (a
   * finished request, or a streamed part); null without one.
   */
  get prefixCacheStats(): PrefixCacheStats | null {
    return this.lastPrefix && { ...this.lastPrefix };
  }

  /**
   * A log line of the worker's model, passed to `log`. A `log` that throws fails the request that
   * logged the line (a note of its rule set), as `Model`'s request fails with it; a line of no
   * request's throws as before.
   */
  private logged(log: (line: string) => void, message: Extract<FromWorker, { type: 'log' }>): void {
    try {
      log(message.line);
    } catch (error) {
      const p = message.id === undefined ? undefined : this.pending.get(message.id);
      if (!p) throw error;
      this.fail(message.id!, p, error);
    }
  }

  /** Ends a request with an error of the caller's own (a throwing `onProgress` or `log`); its rows stop. */
  private fail(id: number, p: Pending, error: unknown): void {
    if (p.failure !== undefined) return;
    p.failure = error;
    this.post({ type: 'abort', id });
  }

  private receive(message: Exclude<FromWorker, { type: 'ready' | 'failed' | 'log' }>): void {
    const p = this.pending.get(message.id);
    if ('load' in message) this.lastLoad = message.load;
    if ('prefix' in message) this.lastPrefix = message.prefix;
    if (!p) return;
    if (message.type === 'part') {
      if (p.failure === undefined) p.part?.(message.part);
    } else if (message.type === 'progress') {
      if (p.failure !== undefined) return;
      try {
        p.progress?.(message.done, message.total);
      } catch (error) {
        // as Model: a throwing onProgress ends the call with its error, and the call's rows stop
        this.fail(message.id, p, error);
      }
    } else {
      this.pending.delete(message.id);
      if (this.pending.size === 0) this.worker.unref();
      if (p.failure !== undefined) p.reject(p.failure as Error);
      else if (message.type === 'result') p.resolve(message.value);
      else p.reject(this.rebuild(message.error, p.signal));
    }
  }

  /** The worker's error; an abort the caller asked for carries the caller's reason, as `Model`'s does. */
  private rebuild(error: ErrorData, signal: AbortSignal | undefined): Error {
    if (error.name === 'GenerationAbortedError' && signal?.aborted)
      return new GenerationAbortedError(signal.reason);
    return errorFrom(error);
  }

  /**
   * Posts in a microtask, the messages of one tick as one: the worker then submits them in one task,
   * so calls made together (a server's concurrent choices) join the decoding batch together, one
   * prefill for all, as they do on a `Model`. Posted one by one, each would be its own task there, and
   * the engine, which starts in a microtask, would prefill the first alone.
   */
  private post(message: ToWorker): void {
    this.outbox.push(message);
    if (this.outbox.length > 1) return;
    queueMicrotask(() => {
      const messages = this.outbox;
      this.outbox = [];
      this.worker.postMessage(messages.length === 1 ? messages[0] : messages);
    });
  }

  /** Sends a request and waits for its answer; `signal` aborting asks the worker to stop it. */
  private request<T>(
    message: ToWorker,
    handlers: Pick<Pending, 'part' | 'progress'> = {},
    signal?: AbortSignal,
  ): Promise<T> {
    if (this.stopped) return Promise.reject(this.stopped);
    const { id } = message;
    const answer = new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, ...handlers, signal });
    });
    if (this.pending.size === 1) this.worker.ref();
    this.post(message);
    if (signal) {
      const unlink = whenAborted(signal, () => this.post({ type: 'abort', id }));
      answer.then(unlink, unlink);
    }
    return answer;
  }

  protected live(): void {
    if (this.released) throw new GenerationError('runtime.released', 'this model was disposed');
    if (this.stopped) throw this.stopped;
  }

  /**
   * The rules as data for the worker: a compiled set crosses as its config (unless it has custom
   * rules), marked so that the worker does not note its unresolved entries, as `Model` does not.
   */
  private sentRules(rules: GenerateOptions['rules']): { rules?: RuleSpec; rulesCompiled?: true } {
    if (rules === undefined) return {};
    if (!RuleSet.isInstance(rules)) return { rules };
    return { rules: ruleSetSpec(rules, this.rules(rules.config)?.enabled.length ?? 0), rulesCompiled: true };
  }

  /** Generation options as data for the worker (prompt options are applied here, callbacks stay here). */
  private sent(options: GenerateOptions): SentGenerateOptions {
    const { format, addBos, signal, onProgress, processors, rules, ...data } = options;
    if (processors !== undefined && processors.length > 0)
      bad(
        'processors',
        'logits processors are functions, which cannot be sent to the worker thread running this model; load it with loadModel to use them',
      );
    return { ...data, ...this.sentRules(rules) };
  }

  private id(): number {
    return this.nextId++;
  }

  protected async generateAll(
    inputs: GenerateInput | readonly GenerateInput[],
    options: GenerateOptions,
  ): Promise<GenerationResult[]> {
    const prompts = this.generationPrompts(inputs, options);
    const results = await this.request<GenerationResult[]>(
      {
        type: 'generate',
        id: this.id(),
        inputs: prompts.map(idsOf),
        options: this.sent(options),
        progress: options.onProgress !== undefined,
      },
      { progress: options.onProgress },
      options.signal,
    );
    // the prompt as the caller gave it (the worker saw ids only)
    return results.map((r, i) => ({ ...r, prompt: promptOf(prompts[i]!) }));
  }

  async *stream(input: GenerateInput, options: StreamOptions = {}): AsyncGenerator<StreamPart> {
    const [prompt] = this.streamPrompt(input, options);
    const sent = this.sent(options);
    // an early stop (break, return) or an abort asks the worker to end the row at its next step
    yield* pushedParts<StreamPart>(options.signal, (part, signal) =>
      this.request({ type: 'stream', id: this.id(), input: idsOf(prompt), options: sent }, { part }, signal),
    );
  }

  protected async scoreAll(items: readonly ScoreItem[], options: ScoreOptions): Promise<ScoreResult[]> {
    const prepared = this.prepareScore(items, options);
    // every data option crosses (a new one cannot be left behind); prompts were built here
    const { format, addBos, signal, onProgress, rules, ...data } = options;
    return this.request<ScoreResult[]>(
      {
        type: 'score',
        id: this.id(),
        items: prepared.map((p) => ({ prompt: idsOf(p.prompt), continuation: p.continuation })),
        options: { ...data, ...this.sentRules(rules ?? false) },
        progress: onProgress !== undefined,
      },
      { progress: onProgress },
      signal,
    );
  }

  /** `Model.clearPrefixCache`, done by the worker: drops the prompts its prefix cache keeps. */
  async clearPrefixCache(): Promise<void> {
    this.live();
    await this.request<undefined>({ type: 'clear-prefix-cache', id: this.id() });
  }

  /** `Model.endProfiling`, answered by the worker: the profile's file. */
  async endProfiling(): Promise<string> {
    this.live();
    return this.request<string>({ type: 'end-profiling', id: this.id() });
  }

  /**
   * Frees the session and ends the thread. Generations still running end at their next step (they
   * reject with `GenerationAbortedError`: "the model was disposed"), scoring calls in flight finish
   * first; the model cannot be used afterwards.
   */
  async dispose(): Promise<void> {
    this.disposing ??= (async () => {
      if (!this.stopped) {
        const reply = this.request<null>({ type: 'dispose', id: this.id() });
        this.released = true;
        await reply;
      }
      this.released = true;
      await this.worker.terminate();
    })();
    return this.disposing;
  }
}

/**
 * A compiled rule set as data for the worker: its config (false where it enables no rule). One with
 * custom rules is refused (`runtime.bad_option`, naming `rules` after `prefix`): they are functions.
 * `builtIn` is the number of rules its config alone compiles to, which come first in its `enabled`.
 */
function ruleSetSpec(rules: RuleSet, builtIn: number, prefix = ''): RuleSpec {
  const custom = rules.enabled.slice(builtIn);
  if (custom.length > 0)
    throw new GenerationError(
      'runtime.bad_option',
      `${prefix}rules: a RuleSet with custom rules (${custom.join(', ')}) holds functions, which cannot be sent to the worker thread running this model; load it with loadModel to use them`,
      'rules',
    );
  return rules.enabled.length === 0 ? false : rules.config;
}

/**
 * A compiled `RuleSet` given as the `rules` load option, as the worker takes it: checked against the
 * model's vocabulary as `loadModel` checks it, then as its config (`ruleSetSpec`).
 */
function loadRulesSpec(rules: RuleSet, vocabulary: Vocabulary): RuleSpec {
  const prefix = 'loadModelInWorker: ';
  checkRuleSetVocabulary(rules, vocabulary, prefix, LOAD_VOCABULARY);
  return ruleSetSpec(rules, compileRules(rules.config, vocabulary).enabled.length, prefix);
}

const idsOf = (p: Prompt): IdsInput => ({ promptIds: p.ids, scopeStart: p.scopeStart });
const promptOf = (p: Prompt): GenerationResult['prompt'] => ({
  ids: p.ids,
  scopeStart: p.scopeStart,
  promptLength: p.promptLength,
});

/**
 * Loads a model as `loadModel` does, with its onnxruntime session in a worker thread of its own: a
 * `WorkerModel`. The caller's thread resolves a hub id (downloading where needed, with
 * `onProgress`), loads the tokenizer and builds the prompts; the worker loads and runs the graph.
 * The log lines of the load (`log`) come from the worker.
 *
 * @example
 * import { loadModelInWorker } from '@implicit-it/runtime';
 * const model = await loadModelInWorker('./SmolLM2-135M', { rules: 'hewitt2024' });
 * const [out] = await model.generate('Name three colors.', { maxNewTokens: 32 });
 * await model.dispose();
 */
export async function loadModelInWorker(model: string, options: LoadOptions = {}): Promise<WorkerModel> {
  checkLoadOptions(options, 'loadModelInWorker');
  const { log = defaultLog, onProgress: _, rules: given, ...data } = options;
  for (const [key, value] of Object.entries(data))
    if (typeof value === 'function')
      throw new TypeError(
        `loadModelInWorker: ${key} is a function, which cannot be sent to the worker thread`,
      );
  const dir = await resolveModel(model, options);
  const tokenizer = loadTokenizer(dir);
  tokenizer.catch(() => {}); // awaited below, once the worker has answered
  // a compiled RuleSet is checked against the tokenizer before the thread starts; where the tokenizer
  // fails, the thread fails the load as loadModel would (its rules are then no matter)
  const rules = RuleSet.isInstance(given)
    ? await tokenizer.then(
        (t) => loadRulesSpec(given, t.vocabulary),
        () => false as const,
      )
    : given;
  const init: WorkerInit = { dir, options: { ...data, ...(rules !== undefined ? { rules } : {}) } };
  // on this thread: a worker's process.env is a copy, which onnxruntime in the worker does not read
  disableOnnxTelemetry();
  const worker = new Worker(workerScript(), { workerData: init });
  const ready = await new Promise<Extract<FromWorker, { type: 'ready' }>>((resolve, reject) => {
    const onMessage = (message: FromWorker) => {
      if (message.type === 'log') {
        // as loadModel's load fails with the error of a log that throws (the thread then ends)
        try {
          log(message.line);
        } catch (error) {
          done(() => reject(error));
        }
      } else if (message.type === 'ready') done(() => resolve(message));
      else if (message.type === 'failed') done(() => reject(errorFrom(message.error)));
    };
    const onError = (error: Error) => done(() => reject(error));
    const onExit = (code: number) =>
      done(() =>
        reject(
          new Error(`loadModelInWorker: the worker thread exited (code ${code}) before the model loaded`),
        ),
      );
    const done = (settle: () => void) => {
      worker.off('message', onMessage).off('error', onError).off('exit', onExit);
      settle();
    };
    worker.on('message', onMessage).on('error', onError).on('exit', onExit);
  }).catch(async (error) => {
    await worker.terminate();
    throw error;
  });
  let loaded: WorkerModel;
  try {
    loaded = new WorkerModel(
      ready.files,
      await tokenizer,
      ready.info,
      options.rules,
      worker,
      log,
      ready.prefix,
    );
  } catch (error) {
    await worker.terminate();
    throw error;
  }
  return loaded;
}
