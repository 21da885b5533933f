import { z } from 'zod';

const INT32_MAX = 2 ** 31 - 1;

/** A boolean field (zod's own message, "Invalid input: expected boolean", says nothing to a client). */
const flag = z.boolean({ error: 'expected true or false' });

/** A string a client passes through (an id, a tier, a name), bounded. */
const text = (max: number) => {
  const error = `expected a string of at most ${max} characters`;
  return z.string({ error }).max(max, { error });
};

/** An integer in [min, max]; every violation (a string, a fraction, out of range) says `error`. */
const integerIn = (min: number, max: number, error = `expected an integer in [${min}, ${max}]`) =>
  z.number({ error }).int({ error }).min(min, { error }).max(max, { error });

/**
 * `int()`'s message: 1e308 is an integer, only not a safe one, so it is told the bound it passes, as
 * 3e9 is (`int()` refuses unsafe integers before `max()` sees them).
 */
const integerError = (issue: { input?: unknown }) =>
  Number.isInteger(issue.input) ? `expected at most ${INT32_MAX}` : 'expected an integer';

const tokenCount = z
  .number({ error: 'expected an integer' })
  .int({ error: integerError })
  .min(1, { error: 'expected at least 1' })
  .max(INT32_MAX, { error: `expected at most ${INT32_MAX}` });

/**
 * Stop strings a request may give. OpenAI takes 4; lm-evaluation-harness's `local-completions` sends
 * a task's whole `until` list and the EOS text (humaneval's: 5 and 1), as vLLM, which sets no bound,
 * takes them. Each is checked against every token's text, so some bound stays.
 */
const MAX_STOP_STRINGS = 16;

const stopString = z
  .string()
  .min(1, { error: 'a stop string may not be empty' })
  .max(256, { error: 'a stop string has at most 256 characters' });

const stop = z.union(
  [
    stopString,
    z.array(stopString).max(MAX_STOP_STRINGS, { error: `at most ${MAX_STOP_STRINGS} stop strings` }),
  ],
  { error: `expected a string or an array of at most ${MAX_STOP_STRINGS} strings` },
);

const TOP_K_ERROR = 'expected a positive integer, or 0 or -1 (off)';

/** `n` and `best_of`: OpenAI's limit, 128 (past the server's concurrency, choices run in turn). */
const choicesPerPrompt = integerIn(1, 128);

const logitBias = z
  .record(
    z.string().regex(/^\d{1,9}$/),
    z
      .number({ error: 'expected a number in [-100, 100]' })
      .min(-100, { error: 'expected a number in [-100, 100]' })
      .max(100, { error: 'expected a number in [-100, 100]' }),
    {
      // a bad key is reported by the record, at the key's path: name what a key must be there
      error: (issue) =>
        issue.code === 'invalid_key'
          ? 'expected a token id (a non-negative integer) as the key'
          : 'expected an object mapping token ids to biases',
    },
  )
  .refine((v) => Object.keys(v).length <= 1024, { error: 'at most 1024 entries' });

/** Extension: a preset / subset name, `false` (none), `true` (the server's default), or a rule-set JSON. */
const RULES_ERROR =
  'expected a rule-set name (e.g. "hewitt2024"), true (the default), false (none), or a rule-set JSON object';
const rules = z.union(
  [
    z
      .string()
      .min(1, { error: `${RULES_ERROR}; got an empty name` })
      .max(200, { error: 'a rule-set name has at most 200 characters' })
      // the CLI's `--rules @file.json`, sent as it is: a server reads no files of a request's naming
      .refine((name) => !name.startsWith('@'), {
        error: (issue) =>
          `${JSON.stringify(issue.input)} is how the CLI names a rules file; send the rule set itself, the JSON object the file holds`,
      }),
    z.boolean(),
    z.record(z.string(), z.unknown()),
  ],
  { error: RULES_ERROR },
);

const streamOptions = z.strictObject(
  { include_usage: flag.nullish(), include_obfuscation: flag.nullish() },
  { error: 'expected an object such as {"include_usage": true}' },
);

/** `top_logprobs` (chat) and `logprobs` (completions): OpenAI's bound. */
const logprobCount = integerIn(0, 20);

/** Fields both endpoints take. */
const common = {
  model: z
    .string({ error: 'expected a model id (GET /v1/models lists them)' })
    .min(1, { error: 'expected a model id, not an empty string (GET /v1/models lists them)' })
    .max(256, { error: 'a model id has at most 256 characters (GET /v1/models lists them)' }),
  max_tokens: tokenCount.nullish(),
  temperature: z
    .number({ error: 'expected a number in [0, 2]' })
    .min(0, { error: 'expected a number in [0, 2]' })
    .max(2, { error: 'expected a number in [0, 2]' })
    .nullish(),
  top_p: z
    .number({ error: 'expected a number in [0, 1]' })
    .min(0, { error: 'expected a number in [0, 1]' })
    .max(1, { error: 'expected a number in [0, 1]' })
    .nullish(),
  /** Extension (as vLLM): keep only the k most likely tokens when sampling; 0 or -1 (vLLM's) = off. */
  top_k: z
    .number({ error: TOP_K_ERROR })
    .int({ error: TOP_K_ERROR })
    .min(-1, { error: TOP_K_ERROR })
    .max(INT32_MAX, { error: TOP_K_ERROR })
    .nullish(),
  /** Folded to 32 bits (the sampler's seed): seeds that differ by a multiple of 2^32 sample alike. */
  seed: z
    .number({ error: 'expected an integer' })
    .refine(Number.isInteger, { error: 'expected an integer' })
    .refine(Number.isSafeInteger, {
      error:
        'expected an integer in [-(2^53 - 1), 2^53 - 1] (larger ones do not survive JSON parsing exactly)',
    })
    .nullish(),
  stop: stop.nullish(),
  /** Choices per prompt. */
  n: choicesPerPrompt.nullish(),
  stream: flag.nullish(),
  stream_options: streamOptions.nullish(),
  logit_bias: logitBias.nullish(),
  frequency_penalty: z
    .literal(0, { error: 'only 0 is supported (the rules penalize used tokens)' })
    .nullish(),
  presence_penalty: z.literal(0, { error: 'only 0 is supported (the rules penalize used tokens)' }).nullish(),
  user: text(256).nullish(),
  /**
   * OpenAI's successor of `user` (abuse monitoring), its prompt-cache routing key and how long its
   * cache keeps a prompt: accepted, unused (a prefix cache here is the server's own). The retention's
   * values are the openai client's (`'in_memory' | '24h'`).
   */
  safety_identifier: text(256).nullish(),
  prompt_cache_key: text(1024).nullish(),
  prompt_cache_retention: z.enum(['in_memory', '24h'], { error: 'expected "in_memory" or "24h"' }).nullish(),
  metadata: z
    .record(z.string(), z.string({ error: 'expected a string value' }), {
      error: 'expected an object of string values',
    })
    .nullish(),
  store: flag.nullish(),
  service_tier: text(64).nullish(),
  /** Extension: the rule-based adapter for this request. */
  rules: rules.nullish(),
  /** Extension: report each token's rank under the base model alone (`choices[].trace`). */
  trace: flag.nullish(),
};

/** Parameters OpenAI has and this server does not, with why. */
export const UNSUPPORTED: Record<string, string> = {
  tools: 'tool calls are not supported by this server',
  tool_choice: 'only allowed with tools, and tool calls are not supported by this server',
  parallel_tool_calls: 'only allowed with tools, and tool calls are not supported by this server',
  functions: 'function calls are not supported by this server',
  function_call: 'function calls are not supported by this server',
  audio: 'audio output is not supported',
  modalities: 'only text is supported',
  prediction: 'predicted outputs are not supported',
  reasoning_effort: 'this model does not reason in a separate channel',
  web_search_options: 'web search is not supported',
  verbosity: 'this server does not tune answer length by a verbosity hint',
  tool_calls: 'tool calls are not supported by this server',
  annotations: 'annotations (web-search citations) are not supported',
};

/**
 * An OpenAI field this server has no use for: accepted at its no-op values (null, and e.g.
 * `modalities: ["text"]`, which clients send by default), refused with the reason otherwise.
 */
const onlyNoOp = (key: keyof typeof UNSUPPORTED, ...noOps: unknown[]) =>
  z
    .unknown()
    .refine((v) => v === null || noOps.some((ok) => JSON.stringify(ok) === JSON.stringify(v)), {
      error: UNSUPPORTED[key]!,
    })
    .optional();

const textPart = z.strictObject({ type: z.literal('text'), text: z.string() });
/** An assistant message's refusal, as OpenAI returns it and clients send it back in the history. */
const refusalPart = z.strictObject({ type: z.literal('refusal'), refusal: z.string() });

const message = z
  .strictObject(
    {
      role: z.enum(['system', 'developer', 'user', 'assistant'], {
        error: 'expected "system", "developer", "user" or "assistant" (tool messages are not supported)',
      }),
      content: z
        .union([z.string(), z.array(z.union([textPart, refusalPart])).max(256)], {
          error:
            'expected a string or an array of {"type":"text","text":...} parts (an assistant message may also have {"type":"refusal","refusal":...})',
        })
        .nullish(),
      name: text(64).nullish(),
      refusal: z.string({ error: 'expected a string' }).nullish(),
      // what an OpenAI reply carries besides its content, which clients send back in the history:
      // accepted at their no-op values
      tool_calls: onlyNoOp('tool_calls', []),
      function_call: onlyNoOp('function_call'),
      audio: onlyNoOp('audio'),
      annotations: onlyNoOp('annotations', []),
    },
    { error: 'expected a message object {"role": ..., "content": ...}' },
  )
  .superRefine((m, ctx) => {
    // only an assistant turn may come without content (OpenAI allows it with tool calls)
    if (m.role !== 'assistant' && (m.content === null || m.content === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['content'], message: 'this field is required' });
    }
    if (m.role === 'assistant') return;
    for (const key of ['tool_calls', 'function_call', 'audio', 'annotations'] as const) {
      if (m[key] !== undefined)
        ctx.addIssue({ code: 'custom', path: [key], message: `only an assistant message has ${key}` });
    }
  });

const RESPONSE_FORMAT_ERROR = 'only {"type":"text"} is supported';

/**
 * The zod schema of a `POST /v1/chat/completions` body. Strict: an unknown field is refused; an
 * OpenAI field this server has no use for (`tools`, `audio`...) passes at its no-op values only
 * (null, `modalities: ["text"]`) and is refused with the reason otherwise.
 *
 * @example
 * chatRequestSchema.safeParse({ model: 'smollm2', messages: [] }).success; // false
 */
export const chatRequestSchema = z.strictObject({
  ...common,
  messages: z
    .array(message, { error: 'expected an array of messages' })
    .min(1, { error: 'give at least one message' })
    .max(1024, { error: 'at most 1024 messages' }),
  max_completion_tokens: tokenCount.nullish(),
  /**
   * Extension: start the prompt with the BOS token (the EOS on a tokenizer without one, as the paper's
   * OLMo prompts); none: the server's setting.
   */
  add_bos: flag.nullish(),
  logprobs: flag.nullish(),
  top_logprobs: logprobCount.nullish(),
  response_format: z
    .strictObject(
      { type: z.literal('text', { error: RESPONSE_FORMAT_ERROR }) },
      { error: RESPONSE_FORMAT_ERROR },
    )
    .nullish(),
  /**
   * As OpenAI, which refuses both without `tools` ("'tool_choice' is only allowed when 'tools' are
   * specified"), whatever their value: `false` and `"none"` included.
   */
  parallel_tool_calls: onlyNoOp('parallel_tool_calls'),
  tools: onlyNoOp('tools'),
  tool_choice: onlyNoOp('tool_choice'),
  functions: onlyNoOp('functions'),
  /**
   * Unlike `tool_choice`, `"none"` passes: OpenAI's reference for this deprecated field says '"none" is
   * the default when no functions are present', so it asks for what the server does anyway.
   */
  function_call: onlyNoOp('function_call', 'none'),
  audio: onlyNoOp('audio'),
  modalities: onlyNoOp('modalities', ['text']),
  prediction: onlyNoOp('prediction'),
  reasoning_effort: onlyNoOp('reasoning_effort'),
  web_search_options: onlyNoOp('web_search_options'),
  verbosity: onlyNoOp('verbosity', 'medium'),
});

const TOKEN_ID = `expected a token id (an integer in [0, ${INT32_MAX}])`;
/**
 * A token id. Integer-ness is a refinement, not `int()`: `int()` fails a number as of the wrong type,
 * which makes `prompt`'s union give up on every option and answer with its generic message; a failed
 * refinement, as a failed bound, lets the union name the element (`prompt[0]`) for 1.5 as for -1.
 */
const tokenId = z
  .number({ error: TOKEN_ID })
  .refine(Number.isInteger, { error: TOKEN_ID })
  .min(0, { error: TOKEN_ID })
  .max(INT32_MAX, { error: TOKEN_ID });
/** One prompt given as token ids. */
const tokenIds = z
  .array(tokenId)
  .min(1, { error: 'a prompt of token ids may not be empty' })
  .max(1_000_000, { error: 'a prompt has at most 1000000 token ids' });
/** Prompts in one completions request (past the server's concurrency, choices run in turn). */
const MAX_PROMPTS = 128;

/**
 * The zod schema of a `POST /v1/completions` body. Strict: an unknown field is refused, and so are
 * `suffix` and `add_bos` unless null.
 *
 * @example
 * completionRequestSchema.safeParse({ model: 'smollm2', prompt: [1, 2, 3], echo: true, max_tokens: 0 }).success; // true
 */
export const completionRequestSchema = z.strictObject({
  ...common,
  prompt: z.union(
    [
      z.string(),
      z.array(z.string()).min(1).max(MAX_PROMPTS),
      tokenIds,
      z.array(tokenIds).min(1).max(MAX_PROMPTS),
    ],
    {
      error: (issue) =>
        issue.input === undefined
          ? 'this field is required'
          : `expected a string, an array of token ids, or an array of up to ${MAX_PROMPTS} of either`,
    },
  ),
  logprobs: logprobCount.nullish(),
  /** `max_tokens` 0 generates nothing: with `echo`, the request scores its prompt. */
  max_tokens: z
    .number({ error: 'expected an integer' })
    .int({ error: integerError })
    .min(0, { error: 'expected at least 0' })
    .max(INT32_MAX, { error: `expected at most ${INT32_MAX}` })
    .nullish(),
  /** Return the prompt before the completion (and, with `logprobs`, its tokens' log-probs). */
  echo: flag.nullish(),
  /** Candidates per prompt, of which the `n` with the highest mean token log-prob are returned. */
  best_of: choicesPerPrompt.nullish(),
  suffix: z.null({ error: 'suffix is not supported' }).optional(),
  /** Chat completions' extension: refused here, where the prompt is the caller's own. */
  add_bos: z
    .null({
      error:
        'a completions prompt is read as written, special tokens included: write the BOS in it (add_bos is for /v1/chat/completions)',
    })
    .optional(),
});

/**
 * The body of `POST /v1/chat/completions` as `chatRequestSchema` parses it: OpenAI's fields and this
 * server's extensions (`rules`, `trace`, `add_bos`).
 *
 * @example
 * const body: ChatRequest = { model: 'smollm2', messages: [{ role: 'user', content: 'Name a prime.' }], trace: true };
 * const headers = { 'Content-Type': 'application/json' };
 * const res = await app.request('/v1/chat/completions', { method: 'POST', headers, body: JSON.stringify(body) });
 */
export type ChatRequest = z.infer<typeof chatRequestSchema>;
/**
 * The body of `POST /v1/completions` as `completionRequestSchema` parses it: one prompt or a list of
 * them (text or token ids), OpenAI's fields, and the `rules` and `trace` extensions.
 *
 * @example
 * const body: CompletionRequest = { model: 'smollm2', prompt: 'The capital of France is', max_tokens: 8, rules: false };
 */
export type CompletionRequest = z.infer<typeof completionRequestSchema>;

/** `a.b[0].c` from a zod issue path. */
export function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out ? `.${String(key)}` : String(key);
  }
  return out;
}
