import { ImplicitItError, RuleConfigError, RuleInputError, type RuleSpec } from '@implicit-it/rules';
import { PromptError, TokenizerInputError, TokenizerLoadError } from '@implicit-it/tokenizers';
import type { ModelInfo } from './base-model.js';
import { GenerationAbortedError, GenerationError, ModelLoadError } from './errors.js';
import type { LoadOptions } from './model.js';
import type { ModelFiles } from './model-dir.js';
import type { GenerateOptions, StreamPart } from './options.js';
import type { PrefixCacheStats } from './prefix-cache.js';
import type { ScoreOptions } from './score.js';

/**
 * The messages between a `WorkerModel` (the caller's thread) and `model-worker.ts` (the thread that
 * runs onnxruntime). Prompts cross as token ids: the caller's thread builds and checks them, so both
 * sides agree on every prompt by construction.
 */

/**
 * `workerData` of the model's worker: a local model directory and the cloneable load options (the
 * rules as a spec: a compiled `RuleSet` crosses as its config).
 */
export interface WorkerInit {
  dir: string;
  options: Omit<LoadOptions, 'log' | 'onProgress' | 'rules'> & { rules?: RuleSpec };
}

/** A prompt as the worker receives it. */
export interface IdsInput {
  promptIds: number[];
  scopeStart: number;
}

/**
 * Generation options that cross to the worker: data only (the rules as a spec, never compiled;
 * `rulesCompiled` where the caller gave a compiled `RuleSet`, whose unresolved entries it has).
 */
export type SentGenerateOptions = Omit<
  GenerateOptions,
  'format' | 'addBos' | 'signal' | 'onProgress' | 'processors' | 'rules'
> & { rules?: RuleSpec; rulesCompiled?: true };

/** Scoring options that cross to the worker: data only, as generation's. */
export type SentScoreOptions = Omit<ScoreOptions, 'format' | 'addBos' | 'signal' | 'onProgress' | 'rules'> & {
  rules?: RuleSpec;
  rulesCompiled?: true;
};

/** From the caller's thread to the worker. */
export type ToWorker =
  | { type: 'stream'; id: number; input: IdsInput; options: SentGenerateOptions }
  | { type: 'generate'; id: number; inputs: IdsInput[]; options: SentGenerateOptions; progress: boolean }
  | {
      type: 'score';
      id: number;
      items: { prompt: IdsInput; continuation: number[] }[];
      options: SentScoreOptions;
      progress: boolean;
    }
  | { type: 'abort'; id: number }
  | { type: 'end-profiling'; id: number }
  | { type: 'clear-prefix-cache'; id: number }
  | { type: 'dispose'; id: number };

/** Requests waiting to join the decoding batch, and rows being decoded, as the worker last saw them. */
export interface Load {
  queued: number;
  decoding: number;
}

/** From the worker to the caller's thread. */
export type FromWorker =
  | { type: 'ready'; files: ModelFiles; info: ModelInfo; prefix: PrefixCacheStats | null }
  | { type: 'failed'; error: ErrorData }
  /** A line of the model's `log`; `id`: the request whose call logged it (a rule set's note). */
  | { type: 'log'; line: string; id?: number }
  | { type: 'part'; id: number; part: StreamPart; load: Load; prefix: PrefixCacheStats | null }
  | { type: 'progress'; id: number; done: number; total: number }
  | { type: 'result'; id: number; value: unknown; load: Load; prefix: PrefixCacheStats | null }
  | { type: 'error'; id: number; error: ErrorData; load: Load; prefix: PrefixCacheStats | null };

/**
 * A value as an error's field holds it, in a form that crosses the thread boundary: strings,
 * numbers, booleans, null, undefined, and arrays and plain objects of them.
 */
export type FieldData =
  | string
  | number
  | boolean
  | bigint
  | null
  | undefined
  | FieldData[]
  | { [key: string]: FieldData };

/** An error as it crosses the thread boundary: what rebuilds it on the other side. */
export interface ErrorData {
  name: string;
  message: string;
  stack?: string;
  /**
   * Its own enumerable fields that are data (`code`, `param`, `file`, the rules' `path`, a system
   * error's `errno`...); functions and other values that cannot cross are left out.
   */
  fields: Record<string, FieldData>;
  /** Whether it is an implicit-it error (`ImplicitItError.isInstance`): a system error has a `code` too. */
  implicitIt: boolean;
  /** Its `cause`: an error as data (up to `MAX_CAUSES` deep), or a value that is data. */
  cause?: { error: ErrorData } | { value: FieldData };
}

/** Causes an error carries across at most (a cause chain can be a cycle). */
export const MAX_CAUSES = 8;

/** Nesting of a field's arrays and objects crossed at most. */
const MAX_FIELD_DEPTH = 4;

/** Own keys of an error that are no field: `ErrorData` carries them itself. */
const NOT_FIELDS = new Set(['name', 'message', 'stack', 'cause']);

/** `value` where it is data that crosses (`FieldData`), or `skip` where it is not. */
function fieldData(value: unknown, depth: number, skip: symbol): FieldData | symbol {
  if (value === null || ['string', 'number', 'boolean', 'bigint', 'undefined'].includes(typeof value))
    return value as FieldData;
  if (typeof value !== 'object' || depth >= MAX_FIELD_DEPTH) return skip;
  if (Array.isArray(value)) {
    const items = value.map((v) => fieldData(v, depth + 1, skip));
    return items.includes(skip) ? skip : (items as FieldData[]);
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return skip; // a class instance loses its class
  const out: Record<string, FieldData> = {};
  for (const [k, v] of Object.entries(value)) {
    const d = fieldData(v, depth + 1, skip);
    if (d === skip) return skip;
    out[k] = d as FieldData;
  }
  return out;
}

/**
 * An error as data (errors clone poorly: their class, fields and cause are lost), with its cause
 * chain: each error's name, message, stack and data fields, `MAX_CAUSES` causes deep at most.
 */
export function errorData(error: unknown, depth = 0): ErrorData {
  if (!(error instanceof Error))
    return { name: 'Error', message: String(error), fields: {}, implicitIt: false };
  const skip = Symbol('skip');
  const fields: Record<string, FieldData> = {};
  for (const [key, value] of Object.entries(error)) {
    if (NOT_FIELDS.has(key)) continue;
    const d = fieldData(value, 0, skip);
    if (d !== skip) fields[key] = d as FieldData;
  }
  const data: ErrorData = {
    name: error.name,
    message: error.message,
    ...(typeof error.stack === 'string' ? { stack: error.stack } : {}),
    fields,
    implicitIt: ImplicitItError.isInstance(error),
  };
  if (error.cause !== undefined && depth < MAX_CAUSES) {
    const { cause } = error;
    if (cause instanceof Error) data.cause = { error: errorData(cause, depth + 1) };
    else {
      const value = fieldData(cause, 0, skip);
      if (value !== skip) data.cause = { value: value as FieldData };
    }
  }
  return data;
}

const text = (v: FieldData): string | undefined => (typeof v === 'string' ? v : undefined);

/**
 * The error classes rebuilt as themselves, by name: the runtime's own, and those of the packages
 * below it that a load or a request in the worker can throw (the rules' `RuleConfigError` is the
 * `cause` of a refused `rules` option). Message, fields and cause are set afterwards.
 */
const CLASSES: Record<string, (f: Record<string, FieldData>, message: string, cause: unknown) => Error> = {
  GenerationAbortedError: (_, __, cause) => new GenerationAbortedError(cause),
  GenerationError: (f, message) =>
    new GenerationError(text(f.code) ?? 'runtime.error', message, text(f.param)),
  ModelLoadError: (f, message) =>
    new ModelLoadError(text(f.code) ?? 'runtime.load_failed', message, { file: text(f.file) }),
  RuleConfigError: (f, message) => new RuleConfigError(text(f.path) ?? '', message),
  RuleInputError: (_, message) => new RuleInputError(message),
  TokenizerLoadError: (f, message) =>
    new TokenizerLoadError(
      (text(f.code) ?? 'tokenizers.unsupported') as ConstructorParameters<typeof TokenizerLoadError>[0],
      text(f.file) ?? '',
      message,
    ),
  PromptError: (f, message) =>
    new PromptError(
      (text(f.code) ?? 'tokenizers.invalid_prompt') as ConstructorParameters<typeof PromptError>[0],
      message,
    ),
  TokenizerInputError: (_, message) => new TokenizerInputError(message),
  // a refused load option (`checkLoadOptions`) is one of these: `instanceof` holds on this side too
  TypeError: (_, message) => new TypeError(message),
  RangeError: (_, message) => new RangeError(message),
};

/**
 * The error `errorData` described, rebuilt with its cause chain: the runtime's classes and those of
 * the rules and tokenizers packages as themselves, other implicit-it errors as `ImplicitItError`s
 * under their name and code (so `isInstance` and `code` checks hold), anything else (a system error,
 * whose `code` is `ENOENT`...) as an `Error` of that name; each with its message, data fields and
 * cause. The stack is the worker's.
 */
export function errorFrom(d: ErrorData): Error {
  const cause =
    d.cause === undefined ? undefined : 'error' in d.cause ? errorFrom(d.cause.error) : d.cause.value;
  const code = text(d.fields.code);
  const make = Object.hasOwn(CLASSES, d.name) ? CLASSES[d.name] : undefined;
  const error = make
    ? make(d.fields, d.message, cause)
    : d.implicitIt
      ? new ImplicitItError(code ?? 'error', d.message)
      : new Error(d.message);
  // some classes build their message from their arguments (RuleConfigError prefixes its path)
  error.message = d.message;
  error.name = d.name;
  Object.assign(error, d.fields);
  // as `new Error(message, { cause })` sets it (most classes here take no cause to pass on)
  if (d.cause !== undefined)
    Object.defineProperty(error, 'cause', { value: cause, writable: true, configurable: true });
  if (d.stack !== undefined) error.stack = d.stack;
  return error;
}
