import { ImplicitItError, type RuleSpec } from '@implicit-it/rules';
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

/** `workerData` of the model's worker: a local model directory and the cloneable load options. */
export interface WorkerInit {
  dir: string;
  options: Omit<LoadOptions, 'log' | 'onProgress'>;
}

/** A prompt as the worker receives it. */
export interface IdsInput {
  promptIds: number[];
  scopeStart: number;
}

/** Generation options that cross to the worker: data only (the rules as a spec, never compiled). */
export type SentGenerateOptions = Omit<
  GenerateOptions,
  'format' | 'addBos' | 'signal' | 'onProgress' | 'processors' | 'rules'
> & { rules?: RuleSpec };

/** Scoring options that cross to the worker: data only, as generation's. */
export type SentScoreOptions = Omit<ScoreOptions, 'format' | 'addBos' | 'signal' | 'onProgress' | 'rules'> & {
  rules?: RuleSpec;
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
  | { type: 'log'; line: string }
  | { type: 'part'; id: number; part: StreamPart; load: Load; prefix: PrefixCacheStats | null }
  | { type: 'progress'; id: number; done: number; total: number }
  | { type: 'result'; id: number; value: unknown; load: Load; prefix: PrefixCacheStats | null }
  | { type: 'error'; id: number; error: ErrorData; load: Load; prefix: PrefixCacheStats | null };

/** An error as it crosses the thread boundary: what rebuilds it on the other side. */
export interface ErrorData {
  name: string;
  message: string;
  stack?: string;
  code?: string;
  param?: string;
  file?: string;
  /** `GenerationAbortedError`: the message of the reason it was aborted with. */
  reason?: string;
}

/** An error as data (errors clone poorly: their class and fields are lost). */
export function errorData(error: unknown): ErrorData {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error) };
  const e = error as Error & { code?: unknown; param?: unknown; file?: unknown };
  return {
    name: e.name,
    message: e.message,
    ...(e.stack !== undefined ? { stack: e.stack } : {}),
    ...(typeof e.code === 'string' ? { code: e.code } : {}),
    ...(typeof e.param === 'string' ? { param: e.param } : {}),
    ...(typeof e.file === 'string' ? { file: e.file } : {}),
    ...(e instanceof GenerationAbortedError && e.cause instanceof Error ? { reason: e.cause.message } : {}),
  };
}

/**
 * The error `errorData` described, rebuilt: the runtime's own classes as themselves, other
 * implicit-it errors as `ImplicitItError`s under their name and code (so `isInstance` and `code`
 * checks hold), anything else as an `Error` of that name. The stack is the worker's.
 */
export function errorFrom(d: ErrorData): Error {
  let error: Error;
  if (d.name === 'GenerationAbortedError')
    error = new GenerationAbortedError(d.reason !== undefined ? new Error(d.reason) : undefined);
  else if (d.name === 'GenerationError')
    error = new GenerationError(d.code ?? 'runtime.error', d.message, d.param);
  else if (d.name === 'ModelLoadError')
    error = new ModelLoadError(d.code ?? 'runtime.load_failed', d.message, { file: d.file });
  else if (d.code !== undefined) {
    error = new ImplicitItError(d.code, d.message);
    error.name = d.name;
    if (d.param !== undefined) Object.assign(error, { param: d.param });
  } else {
    error = new Error(d.message);
    error.name = d.name;
  }
  if (d.stack !== undefined) error.stack = d.stack;
  return error;
}
