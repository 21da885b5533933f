import { basename } from 'node:path';
import { RULE_NAMES, RuleSet, type RuleSpec } from '@implicit-it/rules';
import { type BaseModel, WorkerModel } from '@implicit-it/runtime';
import { CONVERSATION_FORMATS, type ConversationFormat } from '@implicit-it/tokenizers';

/**
 * A model the server serves, under the id that requests name it by.
 *
 * @example
 * import { loadModelInWorker } from '@implicit-it/runtime';
 *
 * const served: ServedModel = { id: 'smollm2', model: await loadModelInWorker('models/SmolLM2-135M') };
 * createApp({ models: [served] });
 */
export interface ServedModel {
  /** What `model` in a request must equal, e.g. `SmolLM2-135M`. */
  id: string;
  /** A `Model` (`loadModel`), or a `WorkerModel` (`loadModelInWorker`), which keeps this thread free while it runs. */
  model: BaseModel;
  /**
   * Rules of this model's requests that set none (or `rules: true`): a spec (a preset / subset name, a
   * rule-set JSON, or false), or a `RuleSet` compiled for this model's vocabulary
   * (`compileRules(spec, model.tokenizer.vocabulary, { custom })`: how rules written as functions are
   * served, on a `Model`; a vocabulary of another size is refused). Default: `ApiOptions.rules`, else
   * the model's own (`loadModel`'s `rules`, `model.defaultRules`), else `'hewitt2024'`.
   */
  rules?: RuleSpec | RuleSet;
}

/**
 * A served model with the rules its requests default to, resolved (`ServedModel.rules`, else the
 * app's, else the model's own, else `'hewitt2024'`).
 *
 * @example
 * const { id, rules }: ResolvedServedModel = app.state.options.models[0]!;
 * console.log(`${id}: ${typeof rules === 'string' ? rules : 'a rule set of its own'}`);
 */
export interface ResolvedServedModel extends ServedModel {
  rules: RuleSpec | RuleSet;
}

/**
 * Options of `createApp` (and `serve`).
 *
 * @example
 * const options: ApiOptions = {
 *   models: [{ id: 'smollm2', model }], rules: 'eos-uniform', format: 'chat-template',
 *   apiKey: 'sk-local-123', concurrency: 8, maxTokens: 1024, cors: 'http://localhost:3000',
 * };
 * const app = createApp(options);
 */
export interface ApiOptions {
  /**
   * The models served. A request chooses among these ids only; it can never name a path. A bare
   * model is served under its directory's name.
   */
  models: BaseModel | ServedModel | readonly ServedModel[];
  /**
   * Rules of requests that do not set `rules` (or set `true`), on the models without rules of their
   * own in `models` (`ServedModel.rules`): a preset / subset name, a rule-set JSON, or false, compiled
   * for each model; or a `RuleSet`, which must have been compiled for the vocabulary of every model
   * that takes it (one that does not fit is refused, naming the model: give it rules of its own).
   * Default: each model's own (`loadModel`'s `rules`), else `'hewitt2024'`.
   */
  rules?: RuleSpec | RuleSet;
  /** How chat messages become a prompt: the paper's Tulu format (default) or the model's chat template. */
  format?: ConversationFormat;
  /**
   * Start chat prompts with the BOS token, for requests that do not set `add_bos`. Default: the
   * format's own (`tulu`: where the tokenizer adds BOS when encoding with special tokens, as the
   * paper's pipeline; `chat-template`: false). `true` on a tokenizer without a BOS (OLMo) puts its EOS
   * first, as open-instruct's `bos_token = eos_token` does.
   */
  addBos?: boolean;
  /**
   * Require `Authorization: Bearer <apiKey>` on /v1/* and /metrics. Several keys are each accepted
   * (to rotate a key: serve the new and the old, then drop the old). Default: no key.
   */
  apiKey?: string | readonly string[];
  /**
   * Generations of each model running at once (each served model has slots of its own). Default 16,
   * the runtime's default batch size: a model's concurrent requests are decoded together in one
   * batch (continuous batching), so this is also the batch they share. A request with several
   * choices (`n`, a list of prompts) runs one generation per choice, and asks for at most this many.
   */
  concurrency?: number;
  /** Requests for each model waiting for their slots beyond its `concurrency`; more get 429. Default 32. */
  maxQueued?: number;
  /**
   * Generations one request may ask for: its prompts times `n` (times `best_of`, when larger). More
   * are refused with a 400 naming `n` (or `best_of`, or `prompt`) and the limit. Default 128, the
   * most `n` or a list of prompts gives alone: 128 prompts × `n` 128 (16,384 generations, a
   * thousand times the default concurrency, from one request that `maxQueued` counts once) needs it
   * raised.
   */
  maxChoices?: number;
  /** Upper limit of `max_tokens`: larger requests are capped to it. Default 2048. */
  maxTokens?: number;
  /** `max_tokens` of a chat request that sets none. Default 256 (completions: 16, as OpenAI). */
  defaultMaxTokens?: number;
  /** Temperature of a request that sets none. Default 0 (greedy, as the paper evaluates). */
  temperature?: number;
  /**
   * Largest request body in bytes; a larger one gets 413 `request_too_large`, whose message names the
   * limit and how to raise it. Default 1 MiB (about 170,000 prompt tokens sent as ids: an
   * lm-evaluation-harness batch of 64 prompts of 2,048 tokens is about 800 KB; `serve --body-limit`).
   */
  bodyLimit?: number;
  /**
   * Milliseconds a stream waits for its client to accept data (a client that stops reading fills
   * the connection's buffers, and its generation pauses with its slots held) before its generation
   * is stopped, its slots freed and its connection closed; logged, and counted in
   * `implicit_it_stream_stalls_total`. The time a stream waits for the model does not count. 0: no
   * limit. Default 60000 (nginx's `send_timeout`).
   */
  streamStallTimeout?: number;
  /**
   * Milliseconds a stream may wait for the model (for its slots in the queue, a long prefill, a slow
   * step) without sending anything: then it sends an SSE comment, `: keep-alive` (clients skip it,
   * the openai ones included), and another each as long until the model's next part, so that a
   * reverse proxy does not time the request out (nginx's `proxy_read_timeout`: 60 s). A stream
   * without its first part by then is committed with the first comment: its 200 and headers are
   * sent, and a refusal or failure after that (the server shutting down while it is queued, a
   * prefill failing) is its last event, `data: {"error":...}`, not a status; what happens sooner (a
   * full queue's 429) keeps its status. 0: no comments, and a stream's headers wait for its first
   * part. Default 15000.
   */
  streamKeepAlive?: number;
  /** Serve the playground page at `GET /`. Default true. */
  playground?: boolean;
  /** A notice shown on top of the playground (e.g. that a model's weights are random). */
  notice?: string;
  /**
   * Cross-origin requests from browsers (CORS), off by default: `true` or `'*'` allows every origin;
   * an origin (`'http://localhost:3000'`), a comma-separated list of them, or an array allows those
   * only. Preflight `OPTIONS` requests are answered before the API key is checked.
   */
  cors?: boolean | string | readonly string[];
  /** One line per notable event (errors, start-up). Default: stderr. */
  log?: (line: string) => void;
  /**
   * Also a `log` line per request: method, path, status, milliseconds and request id, and for a
   * generation its model and token counts (`POST /v1/chat/completions 200 412 ms req_... smol, 12
   * prompt + 40 completion tokens`); a stream's when it ends, saying how (finished, left by its client,
   * stopped as stalled, ended by an error), with the tokens generated until then. Default false.
   */
  accessLog?: boolean;
}

/**
 * `ApiOptions` with every default filled in.
 *
 * @example
 * const { rules, maxTokens, cors }: ResolvedApiOptions = app.state.options;
 */
export interface ResolvedApiOptions {
  /** Each with the rules its requests default to. */
  models: ResolvedServedModel[];
  /** The `rules` option as given (undefined: none); what each model takes is its `models[].rules`. */
  rules: RuleSpec | RuleSet | undefined;
  format: ConversationFormat;
  /** Undefined: the format's own default. */
  addBos: boolean | undefined;
  /** The keys accepted, or undefined for none. */
  apiKey: readonly string[] | undefined;
  concurrency: number;
  maxQueued: number;
  maxChoices: number;
  maxTokens: number;
  defaultMaxTokens: number;
  temperature: number;
  bodyLimit: number;
  /** Milliseconds; 0: no limit. */
  streamStallTimeout: number;
  /** Milliseconds; 0: no keep-alive comments. */
  streamKeepAlive: number;
  playground: boolean;
  notice: string | undefined;
  /** The allowed origins (`'*'`: any), or undefined: no CORS. */
  cors: '*' | string[] | undefined;
  log: (line: string) => void;
  accessLog: boolean;
}

function positiveInt(value: number | undefined, name: string, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min) {
    throw new RangeError(`${name}: expected an integer >= ${min}, got ${value}`);
  }
  return value;
}

/**
 * `ApiOptions.cors` as allowed origins: `'*'`, a list, or undefined (off); throws a `TypeError`
 * naming `cors` for what is not an origin.
 *
 * @example
 * resolveCors('http://localhost:3000,https://example.org'); // ['http://localhost:3000', 'https://example.org']
 */
export function resolveCors(cors: ApiOptions['cors']): '*' | string[] | undefined {
  if (cors === undefined || cors === false) return undefined;
  if (cors === true) return '*';
  const list = typeof cors === 'string' ? cors.split(',') : cors;
  if (!Array.isArray(list)) throw new TypeError('cors: expected a boolean, an origin, or a list of origins');
  const origins = list.map((o) => (typeof o === 'string' ? o.trim() : o));
  if (origins.includes('*')) return '*';
  if (origins.length === 0) throw new TypeError('cors: give at least one origin, or true for any');
  for (const origin of origins) {
    // browsers send an Origin header as scheme://host[:port], without a path or a trailing slash
    if (typeof origin !== 'string' || !/^[a-z][a-z0-9+.-]*:\/\/[^/\s,]+$/i.test(origin)) {
      throw new TypeError(
        `cors: ${JSON.stringify(origin)} is not an origin; expected scheme://host[:port] such as http://localhost:3000, or '*'`,
      );
    }
  }
  return origins;
}

/**
 * A model's default id: the name of its directory.
 *
 * @example
 * import { loadModel } from '@implicit-it/runtime';
 *
 * const model = await loadModel('models/SmolLM2-135M');
 * defaultModelId(model); // 'SmolLM2-135M'
 */
export function defaultModelId(model: BaseModel): string {
  return basename(model.info.dir);
}

/** Names a `RuleSet` enables that are not built-in rules: its custom rules (functions). */
const BUILT_IN_RULES = new Set<string>([...RULE_NAMES, 'diversity']);

/**
 * Refuses a compiled `RuleSet` that cannot be `served`'s default rules (`param`: the option that gave
 * it): one compiled for another vocabulary (of another size, or the same size with its texts at other
 * ids: its ids are another tokenizer's), or one with
 * custom rules on a `WorkerModel` (functions cannot be sent to its thread). A `TypeError` naming the
 * option and the model, at start-up rather than on each request.
 */
function checkRuleSet(set: RuleSet, served: ServedModel, param: string): void {
  const size = served.model.tokenizer.vocabulary.size;
  if (set.vocabSize !== size) {
    throw new TypeError(
      param === 'rules'
        ? `rules: a RuleSet compiled for a vocabulary of ${set.vocabSize} ids does not fit the model "${served.id}", whose tokenizer has ${size}; give that model rules of its own (models: [{ id: "${served.id}", model, rules }]), or give a spec, which is compiled for each model`
        : `${param}: a RuleSet compiled for a vocabulary of ${set.vocabSize} ids, but the tokenizer of the model "${served.id}" has ${size}; compile it with that model's (compileRules(spec, model.tokenizer.vocabulary)), or give the spec`,
    );
  }
  // of the same size, another tokenizer's (Llama-2's and Mistral's 32,000 ids)
  const mismatch = set.vocabularyMismatch(served.model.tokenizer.vocabulary);
  if (mismatch !== undefined)
    throw new TypeError(
      `${param}: a RuleSet compiled for another vocabulary than the tokenizer of the model "${served.id}" (${mismatch}); compile it with that model's (compileRules(spec, model.tokenizer.vocabulary)), or give the spec`,
    );
  const custom = set.enabled.filter((name) => !BUILT_IN_RULES.has(name));
  if (custom.length > 0 && served.model instanceof WorkerModel) {
    throw new TypeError(
      `${param}: a RuleSet with custom rules (${custom.join(', ')}) holds functions, which cannot be sent to the worker thread running the model "${served.id}"; load it with loadModel to serve them`,
    );
  }
}

/** Fills in defaults and checks the options; throws `RangeError` / `TypeError` naming the option. */
export function resolveApiOptions(options: ApiOptions): ResolvedApiOptions {
  if (!options || options.models === undefined) throw new TypeError('models: give at least one model');
  const list: ServedModel[] = Array.isArray(options.models)
    ? [...(options.models as readonly ServedModel[])]
    : 'model' in (options.models as object) && 'id' in (options.models as object)
      ? [options.models as ServedModel]
      : [{ id: defaultModelId(options.models as BaseModel), model: options.models as BaseModel }];
  if (list.length === 0) throw new TypeError('models: give at least one model');
  const ids = new Set<string>();
  for (const m of list) {
    if (typeof m.id !== 'string' || m.id.length === 0)
      throw new TypeError('models[].id: expected a non-empty string');
    if (ids.has(m.id)) throw new TypeError(`models: the id "${m.id}" is given twice`);
    ids.add(m.id);
  }
  const models = list.map((m, i) => {
    // the model's own entry, the app's option, the model's load option, the paper's rules
    const [rules, param] =
      m.rules !== undefined
        ? [m.rules, `models[${i}].rules`]
        : options.rules !== undefined
          ? [options.rules, 'rules']
          : [m.model.defaultRules ?? 'hewitt2024', `the rules model "${m.id}" was loaded with`];
    if (RuleSet.isInstance(rules)) checkRuleSet(rules, m, param);
    return { ...m, rules };
  });
  const temperature = options.temperature ?? 0;
  if (!(temperature >= 0 && temperature <= 2)) {
    throw new RangeError(`temperature: expected a number in [0, 2], got ${temperature}`);
  }
  const maxTokens = positiveInt(options.maxTokens, 'maxTokens', 2048);
  const apiKeys =
    options.apiKey === undefined || Array.isArray(options.apiKey) ? options.apiKey : [options.apiKey];
  if (
    apiKeys !== undefined &&
    (apiKeys.length === 0 || apiKeys.some((key) => typeof key !== 'string' || key.trim() === ''))
  ) {
    // an empty key would read as no key: a server its owner meant to protect would be open
    throw new TypeError(
      'apiKey: expected a non-empty string, or a non-empty list of them (leave apiKey out to serve without a key)',
    );
  }
  if (apiKeys?.some((key) => key !== key.trim())) {
    // HTTP strips a header value's ends: every request would be refused as a wrong key
    throw new TypeError(
      'apiKey: a key begins or ends with whitespace, which no client can send (HTTP strips it from the Authorization header); remove it (a key read from a file keeps its final newline)',
    );
  }
  // 'raw' is a prompt format too, but chat messages have no raw text
  if (options.format !== undefined && !CONVERSATION_FORMATS.includes(options.format)) {
    throw new TypeError(
      `format: expected ${CONVERSATION_FORMATS.map((f) => `"${f}"`).join(' or ')}, got ${JSON.stringify(options.format)}`,
    );
  }
  if (options.addBos !== undefined && typeof options.addBos !== 'boolean') {
    throw new TypeError(`addBos: expected true or false, got ${JSON.stringify(options.addBos)}`);
  }
  return {
    models,
    rules: options.rules,
    format: options.format ?? 'tulu',
    addBos: options.addBos,
    apiKey: apiKeys === undefined ? undefined : [...(apiKeys as readonly string[])],
    concurrency: positiveInt(options.concurrency, 'concurrency', 16),
    maxQueued: positiveInt(options.maxQueued, 'maxQueued', 32, 0),
    maxChoices: positiveInt(options.maxChoices, 'maxChoices', 128),
    maxTokens,
    defaultMaxTokens: Math.min(positiveInt(options.defaultMaxTokens, 'defaultMaxTokens', 256), maxTokens),
    temperature,
    bodyLimit: positiveInt(options.bodyLimit, 'bodyLimit', 1024 * 1024),
    streamStallTimeout: positiveInt(options.streamStallTimeout, 'streamStallTimeout', 60_000, 0),
    streamKeepAlive: positiveInt(options.streamKeepAlive, 'streamKeepAlive', 15_000, 0),
    playground: options.playground ?? true,
    notice: options.notice || undefined,
    cors: resolveCors(options.cors),
    log: options.log ?? ((line) => process.stderr.write(`[implicit-it api] ${line}\n`)),
    accessLog: options.accessLog ?? false,
  };
}
