import { EvalInputError, JudgeRequestError } from './errors.js';
import type { ChatCompletionChoice } from './judge-preference.js';
import type { ChatMessage } from './judge-prompt.js';
import { abortableDelay, createRateLimiter } from './rate-limiter.js';

/**
 * A chat-completion request as the judge sends it (OpenAI field names).
 *
 * @example
 * const request: JudgeRequest = {
 *   messages: judgeMessages('Name a prime.', '7', 'Nine.'),
 *   max_tokens: 1, temperature: 1, logprobs: true, top_logprobs: 5,
 * };
 * const { choices } = await judge.complete(request);
 */
export interface JudgeRequest {
  messages: ChatMessage[];
  max_tokens: number;
  temperature: number;
  logprobs: boolean;
  top_logprobs: number;
}

/**
 * The part of an OpenAI-compatible response the judge reads.
 *
 * @example
 * const reply: ChatCompletionResponse = await judge.complete(request);
 * console.log(reply.choices[0]?.message?.content);
 */
export interface ChatCompletionResponse {
  choices: ChatCompletionChoice[];
  [extra: string]: unknown;
}

/**
 * Something that answers judge requests. `id` names the judge in cache keys and annotations
 * (the same prompt to the same judge is answered from the cache), so it must tell apart judges that
 * answer differently: `openAIJudge`'s includes the endpoint.
 *
 * @example
 * const judge = openAIJudge({ baseURL: 'http://127.0.0.1:8080/v1', model: 'tiny' });
 */
export interface JudgeClient {
  readonly id: string;
  complete(request: JudgeRequest, options?: { signal?: AbortSignal }): Promise<ChatCompletionResponse>;
}

/**
 * Options of `openAIJudge`.
 *
 * @example
 * const options: OpenAIJudgeOptions = {
 *   baseURL: 'http://127.0.0.1:8080/v1', model: 'tiny', apiKeyEnv: 'LOCAL_API_KEY', maxRetries: 2,
 *   onRetry: ({ attempt, error }) => console.warn(`retry ${attempt}: ${error}`),
 * };
 */
export interface OpenAIJudgeOptions {
  /** Base URL up to and including `/v1`, e.g. `https://api.openai.com/v1` or this project's API server. */
  baseURL: string;
  /** The judge model, sent as `model`. */
  model: string;
  /** API key; default: the environment variable named by `apiKeyEnv`. */
  apiKey?: string | undefined;
  /** Environment variable holding the API key (default `OPENAI_API_KEY`); none set means no Authorization header. */
  apiKeyEnv?: string | undefined;
  /**
   * Judge id for the cache and the annotations' `annotator` (default `judgeId(baseURL, model)`:
   * `model` on OpenAI's endpoint, `model@endpoint` on any other, so that a local judge that shares a
   * model name with OpenAI's never answers for it from the cache).
   */
  id?: string | undefined;
  /** Start at most this many requests per minute (default: unlimited). */
  requestsPerMinute?: number | undefined;
  /** Requests in flight at once (default 4). */
  concurrency?: number | undefined;
  /**
   * Retries of a retryable failure (429, 408, 409, 5xx, timeouts, a connection lost mid-request);
   * default 6. A connection that cannot be made (refused, a host name that does not resolve, an
   * unreachable network) is retried at most twice, after about 0.5 s and 1 s: no server is there to
   * ask to wait, so it fails within seconds, naming the URL and the cause.
   */
  maxRetries?: number | undefined;
  /** First backoff delay in ms (default 1000), doubled each retry with jitter, capped by `maxDelayMs` (default 60000). */
  baseDelayMs?: number | undefined;
  maxDelayMs?: number | undefined;
  /** Per-request timeout in ms (default 120000). */
  timeoutMs?: number | undefined;
  /** Extra body fields (e.g. `seed`). */
  extraBody?: Record<string, unknown> | undefined;
  /**
   * Called before each retry, e.g. to log it: `status` of an HTTP answer, `error` what failed
   * (`HTTP 503: ...`, `cannot connect (connect ECONNREFUSED 127.0.0.1:8080)`, `no answer within 120 s`).
   */
  onRetry?:
    | ((info: { attempt: number; delayMs: number; status?: number; error: string }) => void)
    | undefined;
}

const RETRYABLE = new Set([408, 409, 429, 500, 502, 503, 504]);

/**
 * Codes of a connection that could not be made (Node's, undici's): no server at the address, a host
 * name that does not resolve, no route. Retried at most `CONNECT_RETRIES` times, `CONNECT_DELAY_MS`
 * first (doubled), as OpenAI's SDKs retry connection errors: not on the schedule of a busy server.
 */
const CONNECT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EAI_FAIL',
  'EAI_NONAME',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
]);
const CONNECT_RETRIES = 2;
const CONNECT_DELAY_MS = 500;

/** A request that failed without an HTTP answer: what to tell, and how to go on. */
interface NetworkFailure {
  /** e.g. `cannot connect (connect ECONNREFUSED 127.0.0.1:8080)`, `no answer within 120 s`. */
  error: string;
  /**
   * `connect`: no connection was made (retried briefly); `port`: fetch refuses the port (not
   * retried); `timeout`: no answer within `timeoutMs`.
   */
  kind: 'connect' | 'port' | 'timeout' | 'other';
}

function networkFailure(e: unknown, url: string, timeoutMs: number): NetworkFailure {
  const error = e as Error & { cause?: unknown };
  if (error?.name === 'TimeoutError')
    return { error: `no answer within ${timeoutMs / 1000} s`, kind: 'timeout' };
  // fetch's TypeError('fetch failed') carries the socket's error as its cause (an AggregateError,
  // without a message, when every address of a host refused)
  const cause = (error?.cause ?? error) as {
    code?: unknown;
    message?: unknown;
    errors?: { message?: unknown }[];
  };
  const detail =
    (typeof cause?.message === 'string' && cause.message) ||
    cause?.errors?.map((x) => String(x?.message)).join('; ') ||
    String(cause?.code ?? error?.message ?? e);
  if (typeof cause?.code === 'string' && CONNECT_CODES.has(cause.code))
    return { error: `cannot connect (${detail})`, kind: 'connect' };
  if (detail === 'bad port')
    return { error: `fetch refuses port ${new URL(url).port}, one that browsers block too`, kind: 'port' };
  return { error: detail, kind: 'other' };
}

function retryAfterMs(headers: Headers): number | undefined {
  const ms = headers.get('retry-after-ms');
  if (ms && Number.isFinite(Number(ms))) return Number(ms);
  const s = headers.get('retry-after');
  if (!s) return undefined;
  if (Number.isFinite(Number(s))) return Number(s) * 1000;
  const date = Date.parse(s);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/**
 * OpenAI's endpoint, whose judges are named by their model alone (as alpaca_eval names them).
 *
 * @example
 * openAIJudge({ baseURL: OPENAI_BASE_URL, model: 'gpt-4-turbo' }).id; // 'gpt-4-turbo'
 */
export const OPENAI_BASE_URL = 'https://api.openai.com/v1';

/**
 * A base URL as a judge's identity: scheme, host (lower case, without a default port) and path
 * without trailing slashes; credentials, query and fragment are left out.
 *
 * @example
 * judgeEndpoint('HTTP://LocalHost:80/v1/'); // 'http://localhost/v1'
 */
export function judgeEndpoint(baseURL: string): string {
  let url: URL;
  try {
    url = new URL(baseURL);
  } catch {
    return baseURL.replace(/\/+$/, '');
  }
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`;
}

/**
 * The id of a judge model at an endpoint: the model alone on OpenAI's endpoint (cache keys and
 * annotations of OpenAI's judges stay as they were), `model@endpoint` on any other.
 *
 * @example
 * judgeId('https://api.openai.com/v1', 'gpt-4-turbo'); // 'gpt-4-turbo'
 * judgeId('http://127.0.0.1:8080/v1/', 'gpt-4-turbo'); // 'gpt-4-turbo@http://127.0.0.1:8080/v1'
 */
export function judgeId(baseURL: string, model: string): string {
  const endpoint = judgeEndpoint(baseURL);
  return endpoint === OPENAI_BASE_URL ? model : `${model}@${endpoint}`;
}

/**
 * `openAIJudge`'s required options, checked when the judge is made: without them every request would
 * be sent (and retried) to an endpoint that cannot answer, or for a model named "undefined".
 */
function checkJudgeOptions(options: OpenAIJudgeOptions): void {
  if (typeof options !== 'object' || options === null) {
    throw new EvalInputError(
      '',
      `openAIJudge: expected an object of options ({ baseURL, model }), got ${String(options)}`,
    );
  }
  let url: URL | undefined;
  try {
    url = typeof options.baseURL === 'string' ? new URL(options.baseURL) : undefined;
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new EvalInputError(
      '',
      `baseURL: expected an http:// or https:// URL up to /v1 (e.g. http://127.0.0.1:8080/v1), got ${JSON.stringify(options.baseURL)}`,
      { field: 'baseURL' },
    );
  }
  if (typeof options.model !== 'string' || options.model.trim() === '') {
    throw new EvalInputError(
      '',
      `model: expected the name of the judge model (e.g. 'gpt-4-turbo'), got ${JSON.stringify(options.model)}`,
      { field: 'model' },
    );
  }
}

/**
 * A judge on any OpenAI-compatible `/chat/completions` endpoint (OpenAI, vLLM, this project's API
 * server...), rate-limited, with retries and exponential backoff that honour `Retry-After`; a
 * connection that cannot be made is retried twice within about 1.5 s, then fails naming the cause.
 * A `baseURL` that is not an http(s) URL, or no `model`, is an `EvalInputError` (field `baseURL` or
 * `model`) at once.
 *
 * @example
 * const judge = openAIJudge({ baseURL: 'https://api.openai.com/v1', model: 'gpt-4-turbo', requestsPerMinute: 500 });
 */
export function openAIJudge(options: OpenAIJudgeOptions): JudgeClient {
  checkJudgeOptions(options);
  const url = `${options.baseURL.replace(/\/+$/, '')}/chat/completions`;
  const apiKey = options.apiKey ?? process.env[options.apiKeyEnv ?? 'OPENAI_API_KEY'];
  const limit = createRateLimiter({
    ...(options.requestsPerMinute !== undefined ? { requestsPerMinute: options.requestsPerMinute } : {}),
    concurrency: options.concurrency ?? 4,
  });
  const maxRetries = options.maxRetries ?? 6;
  const baseDelay = options.baseDelayMs ?? 1000;
  const maxDelay = options.maxDelayMs ?? 60_000;
  const timeoutMs = options.timeoutMs ?? 120_000;

  async function once(request: JudgeRequest, signal?: AbortSignal) {
    const timeout = AbortSignal.timeout(timeoutMs);
    const response = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}),
      },
      body: JSON.stringify({ model: options.model, ...request, ...options.extraBody }),
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    });
    const text = await response.text();
    return { response, text };
  }

  return {
    id: options.id ?? judgeId(options.baseURL, options.model),
    async complete(request, { signal } = {}) {
      let connectFailures = 0;
      for (let attempt = 0; ; attempt++) {
        signal?.throwIfAborted();
        let status: number | undefined;
        let error: string;
        let retryable: boolean;
        let hinted: number | undefined;
        let failure: NetworkFailure['kind'] | undefined;
        let caught: unknown;
        try {
          const { response, text } = await limit(() => once(request, signal), signal);
          status = response.status;
          if (response.ok) {
            let body: unknown;
            try {
              body = JSON.parse(text);
            } catch (cause) {
              throw new JudgeRequestError(
                url,
                `${url} answered ${status} with a body that is not JSON: ${text.slice(0, 200)}`,
                {
                  status,
                  isRetryable: false,
                  cause,
                },
              );
            }
            if (
              !body ||
              typeof body !== 'object' ||
              !Array.isArray((body as ChatCompletionResponse).choices)
            ) {
              throw new JudgeRequestError(
                url,
                `${url} answered without a "choices" array: ${text.slice(0, 200)}`,
                {
                  status,
                  isRetryable: false,
                },
              );
            }
            return body as ChatCompletionResponse;
          }
          error = `HTTP ${status}: ${text.slice(0, 300)}`;
          retryable = RETRYABLE.has(status);
          hinted = retryAfterMs(response.headers);
        } catch (e) {
          if (JudgeRequestError.isInstance(e)) throw e;
          if (signal?.aborted) throw e;
          // a network error or a timeout
          caught = e;
          const network = networkFailure(e, url, timeoutMs);
          failure = network.kind;
          error = network.error;
          retryable = failure !== 'port';
        }
        if (failure === 'connect') connectFailures++;
        const retries = failure === 'connect' ? Math.min(maxRetries, CONNECT_RETRIES) : maxRetries;
        if (!retryable || attempt >= maxRetries || connectFailures > retries) {
          const hint =
            status === 401 || status === 403
              ? ` (check the API key in ${options.apiKeyEnv ?? 'OPENAI_API_KEY'})`
              : status === 404
                ? ` (check the judge model's name, ${JSON.stringify(options.model)}, and that the base URL ${options.baseURL} names the endpoint up to /v1 (CLI: --judge-model, --base-url))`
                : failure === 'connect'
                  ? '; check that the judge server is up and that the `baseURL` option (CLI: --base-url or $OPENAI_BASE_URL) names it'
                  : failure === 'port'
                    ? '; serve the judge on another port'
                    : failure === 'timeout'
                      ? '; a judge that answers slowly (a long output, a local model) needs a longer `timeoutMs` (CLI: --timeout SECONDS)'
                      : '';
          throw new JudgeRequestError(
            url,
            `judge request to ${url} failed${attempt > 0 ? ` after ${attempt + 1} attempts` : ''}: ${error}${hint}`,
            {
              ...(status !== undefined ? { status } : {}),
              isRetryable: retryable,
              ...(caught !== undefined ? { cause: caught } : {}),
            },
          );
        }
        const first = failure === 'connect' ? Math.min(baseDelay, CONNECT_DELAY_MS) : baseDelay;
        const exponent = failure === 'connect' ? connectFailures - 1 : attempt;
        const backoff = Math.min(maxDelay, first * 2 ** exponent) * (0.5 + Math.random() / 2);
        const delayMs = Math.min(maxDelay, Math.max(hinted ?? 0, backoff));
        options.onRetry?.({
          attempt: attempt + 1,
          delayMs,
          ...(status !== undefined ? { status } : {}),
          error,
        });
        // an abort ends the wait at once: a backoff can be a minute (Retry-After)
        await abortableDelay(delayMs, signal);
      }
    },
  };
}
