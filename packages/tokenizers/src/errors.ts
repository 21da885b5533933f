import { ImplicitItError, shownValue } from '@implicit-it/rules';

/**
 * A tokenizer directory that cannot be loaded: the directory or a required file is missing
 * (`tokenizers.missing_file`), a file is not valid JSON or a field has the wrong shape
 * (`tokenizers.malformed_file`), or `@huggingface/tokenizers` cannot build the tokenizer
 * (`tokenizers.unsupported`). `file` is the path of the file at fault; `field` the JSON field, when
 * one is to blame.
 *
 * @example
 * try {
 *   await loadTokenizer('./missing');
 * } catch (error) {
 *   if (error instanceof TokenizerLoadError) console.error(error.code, error.file);
 * }
 */
export class TokenizerLoadError extends ImplicitItError {
  readonly file: string;
  readonly field: string | undefined;
  constructor(
    code: 'tokenizers.missing_file' | 'tokenizers.malformed_file' | 'tokenizers.unsupported',
    file: string,
    message: string,
    options?: { field?: string; cause?: unknown },
  ) {
    super(code, `${file}${options?.field ? ` (field ${options.field})` : ''}: ${message}`, options);
    this.name = 'TokenizerLoadError';
    this.file = file;
    this.field = options?.field;
  }
}

/**
 * A prompt that cannot be built: bad messages (`tokenizers.invalid_prompt`), no chat template
 * (`tokenizers.no_chat_template`), or a template that hides where the last user message starts
 * (`tokenizers.scope_not_found`).
 *
 * @example
 * try {
 *   tok.buildPrompt({ format: 'tulu', messages: [] });
 * } catch (error) {
 *   if (error instanceof PromptError) console.error(error.code); // 'tokenizers.invalid_prompt'
 * }
 */
export class PromptError extends ImplicitItError {
  constructor(
    code: 'tokenizers.invalid_prompt' | 'tokenizers.no_chat_template' | 'tokenizers.scope_not_found',
    message: string,
  ) {
    super(code, message);
    this.name = 'PromptError';
  }
}

/**
 * Invalid input to `encode`, `decode` or a detokenizer: a non-string text, or a token id that is not
 * an integer in `[0, vocabulary.size)` (`tokenizers.invalid_input`); also an argument or option of
 * `loadTokenizer`, `readTokenizerFiles` or `createTokenizer` that is not one they take (a `dir` that
 * is no string, an unknown option).
 *
 * @example
 * tok.decode([-1]); // throws TokenizerInputError: decode: ids[0]: token id -1 is outside [0, 32000) of <dir>
 */
export class TokenizerInputError extends ImplicitItError {
  constructor(message: string) {
    super('tokenizers.invalid_input', message);
    this.name = 'TokenizerInputError';
  }
}

/**
 * Throws the `TokenizerInputError` of `id` where it is no token id of a vocabulary of `size` ids from
 * `source`, the message starting with `where`: an integer out of range is "outside" it; anything else
 * (a string, 1.5, NaN) is not an integer, shown as given (a string quoted, so that "3" is not read as
 * the id 3).
 */
export function checkTokenId(id: unknown, where: string, size: number, source: string): void {
  if (Number.isInteger(id) && (id as number) >= 0 && (id as number) < size) return;
  throw new TokenizerInputError(
    Number.isInteger(id)
      ? `${where} ${id} is outside [0, ${size}) of ${source}`
      : `${where} ${shownValue(id)} is not an integer in [0, ${size}) of ${source}${
          // transformers.js gives ids as bigints (a BigInt64Array, or its tolist())
          typeof id === 'bigint' ? ' (a bigint: convert the ids with Number)' : ''
        }`,
  );
}
