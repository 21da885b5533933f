import { ImplicitItError, RuleConfigError } from '@implicit-it/rules';
import { GenerationError } from '@implicit-it/runtime';

/**
 * OpenAI's error `type`s that this server uses.
 *
 * @example
 * const type: ApiErrorType = new ApiError(503, 'down for maintenance').type; // 'server_error'
 */
export type ApiErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'server_error';

/**
 * The OpenAI error body: `{"error":{"message","type","param","code"}}`.
 *
 * @example
 * const res = await app.request('/v1/models/gpt-5');
 * const { error } = (await res.json()) as ApiErrorBody;
 * error.code; // 'model_not_found'
 */
export interface ApiErrorBody {
  error: { message: string; type: ApiErrorType; param: string | null; code: string | null };
}

/**
 * An error answered as an OpenAI-style JSON body with its HTTP status.
 *
 * @example
 * throw new ApiError(400, 'max_tokens: expected an integer', { param: 'max_tokens', code: 'invalid_value' });
 */
export class ApiError extends ImplicitItError {
  readonly status: number;
  readonly type: ApiErrorType;
  readonly param: string | null;
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    message: string,
    options: {
      type?: ApiErrorType;
      param?: string | null;
      code?: string;
      headers?: Record<string, string>;
    } = {},
  ) {
    super(options.code ?? 'api.error', message);
    this.name = 'ApiError';
    this.status = status;
    this.type = options.type ?? (status >= 500 ? 'server_error' : 'invalid_request_error');
    this.param = options.param ?? null;
    this.headers = options.headers ?? {};
  }

  get body(): ApiErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** The runtime's option names, as the API spells them. */
const PARAM_NAMES: Record<string, string> = {
  maxNewTokens: 'max_tokens',
  topP: 'top_p',
  topK: 'top_k',
  logprobs: 'top_logprobs',
  logitBias: 'logit_bias',
  addBos: 'add_bos',
  prompt: 'prompt',
};

/**
 * Maps anything thrown while serving a request to an `ApiError`: our own errors as they are, the
 * packages' input errors to 400 naming the field, a client that went away to 499, the rest to 500.
 */
export function toApiError(error: unknown, promptParam = 'messages'): ApiError {
  if (error instanceof ApiError) return error;
  if (ImplicitItError.isInstance(error) && error.code === 'runtime.aborted') {
    return new ApiError(499, 'the client closed the request', { code: 'client_closed' });
  }
  if (
    RuleConfigError.isInstance(error) ||
    (ImplicitItError.isInstance(error) && error.code.startsWith('rules.'))
  ) {
    const path = RuleConfigError.isInstance(error) ? error.path : '';
    return new ApiError(400, `rules: ${error.message}`, {
      param: path ? `rules.${path}` : 'rules',
      code: 'invalid_rules',
    });
  }
  if (ImplicitItError.isInstance(error) && error.code === 'runtime.released') return shuttingDown();
  if (GenerationError.isInstance(error)) {
    const param =
      error.param === 'prompt' ? promptParam : (PARAM_NAMES[error.param ?? ''] ?? error.param ?? null);
    return new ApiError(400, error.message, {
      param,
      code: error.code === 'runtime.prompt_too_long' ? 'context_length_exceeded' : 'invalid_value',
    });
  }
  if (ImplicitItError.isInstance(error) && error.code.startsWith('tokenizers.')) {
    return new ApiError(400, error.message, { param: promptParam, code: 'invalid_prompt' });
  }
  return new ApiError(500, 'the server could not complete the request (see its log)', {
    code: 'internal_error',
  });
}

/**
 * Seconds a client told 503 `server_shutting_down` should wait: another instance may take the
 * request at once, and this one, restarted, needs a few seconds to load its models again.
 */
export const SHUTDOWN_RETRY_AFTER_S = 5;

/**
 * The 503 of a server that stops: the request may be retried elsewhere, or here after `Retry-After`
 * seconds (as a 429 says when to come back).
 */
export function shuttingDown(headers: Record<string, string> = {}): ApiError {
  return new ApiError(503, 'the server is shutting down; retry on another instance', {
    code: 'server_shutting_down',
    type: 'server_error',
    headers: { 'Retry-After': String(SHUTDOWN_RETRY_AFTER_S), ...headers },
  });
}
