import { ImplicitItError, shownValue } from '@implicit-it/rules';

/**
 * Bad input to an evaluation: a file that is not in the expected format, a field with the wrong type,
 * inconsistent options. `file` (empty when the input did not come from a file) and `field` name where,
 * the message says how to fix it.
 *
 * @example
 * throw new EvalInputError('a.json', '[3].preference must be a number or null', { field: 'preference' });
 */
export class EvalInputError extends ImplicitItError {
  readonly file: string;
  readonly field: string | undefined;
  constructor(file: string, message: string, options: { field?: string; cause?: unknown } = {}) {
    super('eval.invalid_input', file ? `${file}: ${message}` : message, { cause: options.cause });
    this.name = 'EvalInputError';
    this.file = file;
    this.field = options.field;
  }
}

/**
 * A resume journal or cache that does not belong to the run being resumed (different model, rules,
 * instructions) or is damaged beyond its last line.
 *
 * @example
 * throw new ResumeMismatchError('out.json.journal.jsonl', 'was written for model "a", this run is "b"');
 */
export class ResumeMismatchError extends ImplicitItError {
  readonly file: string;
  /**
   * The settings that differ between the journal's run and this one, as header key paths (`n`,
   * `fingerprint.rules`, `fingerprint.model.files.tokenizer.json`; see `headerDifferences`); empty
   * when the file is damaged instead.
   */
  readonly differences: readonly string[];
  /**
   * The header of the journal's run, as its file holds it (its generator name, instructions,
   * fingerprint...), for a message that names what the run was; undefined when the file is damaged.
   */
  readonly stored: Readonly<Record<string, unknown>> | undefined;
  constructor(
    file: string,
    message: string,
    options: {
      differences?: readonly string[];
      stored?: Readonly<Record<string, unknown>> | undefined;
      cause?: unknown;
    } = {},
  ) {
    super(
      'eval.resume_mismatch',
      `${file}: ${message}; delete it to start over, or rerun with the options it was written with`,
      { cause: options.cause },
    );
    this.name = 'ResumeMismatchError';
    this.file = file;
    this.differences = options.differences ?? [];
    this.stored = options.stored;
  }
}

/**
 * A judge request that failed for good: a non-retryable HTTP status, or retries exhausted. `url` is
 * the endpoint, `status` the last HTTP status (undefined for network errors); `isRetryable` says
 * whether trying again later may help.
 *
 * @example
 * if (JudgeRequestError.isInstance(e)) console.error(e.status, e.isRetryable);
 */
export class JudgeRequestError extends ImplicitItError {
  readonly url: string;
  readonly status: number | undefined;
  readonly isRetryable: boolean;
  constructor(
    url: string,
    message: string,
    info: { status?: number; isRetryable?: boolean; cause?: unknown } = {},
  ) {
    super('eval.judge_request', message, { cause: info.cause });
    this.name = 'JudgeRequestError';
    this.url = url;
    this.status = info.status;
    this.isRetryable = info.isRetryable ?? false;
  }
}

/**
 * A model adapter (Generator, Scorer, RankSource) returned something that breaks its contract,
 * e.g. fewer outputs than prompts.
 *
 * @example
 * throw new AdapterContractError('generateBatch returned 3 outputs for 4 prompts');
 */
export class AdapterContractError extends ImplicitItError {
  constructor(message: string) {
    super('eval.adapter_contract', message);
    this.name = 'AdapterContractError';
  }
}

/**
 * A run stopped through its `signal` (`generateRun`, `runAblations`, `rankResponses`, `tokenShift`,
 * `judgePairs`), wherever the abort landed: before a batch or within one, where the model adapter
 * stops decoding or scoring with its own error (`runtimeGenerator`: the runtime's
 * `GenerationAbortedError`), or a judge request in flight with its abort. `cause` is the signal's
 * reason; the message says what was stopped, why (the reason's message) and what is kept for the same
 * call to resume (the batches finished before the abort, in the run's journal; the judge's answers, in
 * its cache).
 *
 * @example
 * const controller = new AbortController();
 * process.once('SIGINT', () => controller.abort(new Error('interrupted')));
 * await generateRun({ generator, generatorName, out, instructions, signal: controller.signal }).catch((error: unknown) => {
 *   if (!RunAbortedError.isInstance(error)) throw error;
 *   console.error(error.message); // generation aborted: interrupted; 8 of 805 outputs are kept in ...
 * });
 */
export class RunAbortedError extends ImplicitItError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('eval.aborted', message, { cause: options.cause });
    this.name = 'RunAbortedError';
  }
}

/**
 * One input that does not fit in a model's context: its index in the call and its length in tokens.
 *
 * @example
 * const overruns: ContextOverrun[] = promptsOverContext(model, ['Summarize this book: ...']);
 */
export interface ContextOverrun {
  index: number;
  /** Prompt tokens, plus the response's for scored items. */
  tokens: number;
}

/**
 * Inputs longer than the model's context (`max_position_embeddings`): `context` is its length in
 * tokens, `overruns` the inputs that do not fit (by index in the call), `total` how many inputs the
 * call had; `where` (may be empty) prefixes the message. A model with a longer context, or inputs
 * without these, is the fix.
 *
 * @example
 * if (ContextLengthError.isInstance(e)) console.error(e.context, e.overruns.map((o) => o.index));
 */
export class ContextLengthError extends ImplicitItError {
  readonly context: number;
  readonly overruns: ContextOverrun[];
  readonly total: number;
  constructor(
    where: string,
    message: string,
    info: { context?: number; overruns?: ContextOverrun[]; total?: number; cause?: unknown } = {},
  ) {
    super('eval.context_length', where ? `${where}: ${message}` : message, { cause: info.cause });
    this.name = 'ContextLengthError';
    this.context = info.context ?? 0;
    this.overruns = info.overruns ?? [];
    this.total = info.total ?? this.overruns.length;
  }
}

/**
 * Refuses a required string option that is missing or empty (a JavaScript caller's omission, which
 * would otherwise fail deep inside as Node's `The "path" argument must be of type string`, or write
 * rows named `undefined`), naming it and what it holds.
 */
export function requireStringOption(value: unknown, field: string, what: string): void {
  if (typeof value !== 'string' || value === '')
    throw new EvalInputError('', `${field}: expected ${what}, got ${shownValue(value)}`, { field });
}
