import { ImplicitItError } from '@implicit-it/rules';

/**
 * A model directory or file that cannot be used: `file` names it, the message says what was expected.
 *
 * @example
 * try {
 *   await loadModel('./no-such-dir');
 * } catch (error) {
 *   if (error instanceof ModelLoadError) console.error(error.code, error.file); // runtime.not_a_directory, the path
 * }
 */
export class ModelLoadError extends ImplicitItError {
  readonly file: string | undefined;
  constructor(code: string, message: string, options?: { file?: string; cause?: unknown }) {
    super(code, message, { cause: options?.cause });
    this.name = 'ModelLoadError';
    this.file = options?.file;
  }
}

/**
 * A generation request that cannot run as given (prompt too long for the model, bad option value...),
 * or a `rules` load option (the default rules of every request) that does not compile.
 *
 * @example
 * try {
 *   await model.generate('Hi', { temperature: -1 });
 * } catch (error) {
 *   if (error instanceof GenerationError) console.error(error.code, error.param); // runtime.bad_option temperature
 * }
 */
export class GenerationError extends ImplicitItError {
  /** The request option at fault, e.g. `maxNewTokens`. */
  readonly param: string | undefined;
  constructor(code: string, message: string, param?: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'GenerationError';
    this.param = param;
  }
}

/**
 * Thrown by generation stopped through its AbortSignal.
 *
 * @example
 * const controller = new AbortController();
 * setTimeout(() => controller.abort(), 5_000);
 * await model.generate('Write a long story.', { signal: controller.signal }).catch((error) => {
 *   if (!(error instanceof GenerationAbortedError)) throw error; // else: stopped after 5 s
 * });
 */
export class GenerationAbortedError extends ImplicitItError {
  constructor(reason?: unknown) {
    super('runtime.aborted', `generation aborted${reason instanceof Error ? `: ${reason.message}` : ''}`, {
      cause: reason,
    });
    this.name = 'GenerationAbortedError';
  }
}
