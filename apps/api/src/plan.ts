import { randomInt } from 'node:crypto';
import { RuleSet, type RuleSpec, type UnresolvedEntry } from '@implicit-it/rules';
import { type BaseModel, type GenerateOptions, inputSeed } from '@implicit-it/runtime';
import { documentStartId } from '@implicit-it/tokenizers';
import { ApiError, toApiError } from './errors.js';
import type { ResolvedApiOptions, ResolvedServedModel } from './options.js';
import { chatTextLength, codeUnitsPerToken, fewestTokens } from './prompt-bound.js';
import type { RuleCache } from './rule-cache.js';
import type { ChatRequest, CompletionRequest } from './schemas.js';

/** A prompt as the runtime takes it. */
export interface PlanInput {
  promptIds: number[];
  scopeStart: number;
}

/** A validated request, ready for the runtime. */
export interface Plan {
  kind: 'chat' | 'completion';
  served: ResolvedServedModel;
  /** The prompts (one, or a completions request's list), each answered `n` times. */
  inputs: PlanInput[];
  /** Choices per prompt: choice `i` answers prompt `floor(i / n)`, as OpenAI orders them. */
  n: number;
  /**
   * Candidates generated per prompt (completions' `best_of`; at least `n`). When more than `n`, the
   * `n` with the highest mean token log-prob are returned (`pickBest`); otherwise the candidates are
   * the choices.
   */
  bestOf: number;
  /** The options of candidate 0; each candidate samples with its own seed (`candidates`). */
  options: GenerateOptions;
  stream: boolean;
  includeUsage: boolean;
  /** Top alternatives per token (0 = only the chosen token's), or null: no log-probs. */
  logprobs: number | null;
  trace: boolean;
  /**
   * The entries of the request's rules (its own, or the model's default) that match no token of the
   * model's vocabulary, left out: the response's `rules_unresolved` (empty: none).
   */
  rulesUnresolved: readonly UnresolvedEntry[];
  /**
   * Completions' `echo`: the text of each prompt (`inputs` order), returned before its completions
   * (as sent, or its token ids decoded with their special tokens); null without echo.
   */
  echo: string[] | null;
}

/** A plan's choices: `n` per prompt. */
export const choiceCount = (plan: Pick<Plan, 'inputs' | 'n'>): number => plan.inputs.length * plan.n;

/** The prompt choice `i` answers: prompt `floor(i / n)`, as OpenAI orders choices. */
export const choiceInput = (plan: Pick<Plan, 'inputs' | 'n'>, i: number): PlanInput =>
  plan.inputs[Math.floor(i / plan.n)]!;

/** A plan's generations: `bestOf` per prompt (the choices themselves unless `best_of` > `n`). */
export const candidateCount = (plan: Pick<Plan, 'inputs' | 'bestOf'>): number =>
  plan.inputs.length * plan.bestOf;

/**
 * The generations of a plan, in order: candidate `i` answers prompt `floor(i / bestOf)` and samples
 * with seed `inputSeed(seed, i)`, as the runtime seeds the inputs of one call, so candidate 0 is what
 * the same request with `n` = 1 gives. Without `best_of`, candidate `i` is choice `i`.
 */
export function candidates(plan: Plan): { input: PlanInput; options: GenerateOptions }[] {
  const { seed } = plan.options;
  return Array.from({ length: candidateCount(plan) }, (_, i) => ({
    input: plan.inputs[Math.floor(i / plan.bestOf)]!,
    options: seed === undefined || i === 0 ? plan.options : { ...plan.options, seed: inputSeed(seed, i) },
  }));
}

/** What `pickBest` reads of a candidate: its tokens' log-probs (`TokenLogprob.logprob`). */
interface Scored {
  tokens: readonly { logprob?: { logprob: number } }[];
}

/**
 * A candidate's score for `best_of`: the mean log-prob of its tokens (the end-of-sequence token
 * included), under the distribution they were sampled from (the model with the logit bias and the
 * rules, at temperature 1); `-Infinity` for a candidate without tokens.
 */
export function candidateScore(candidate: Scored): number {
  const { tokens } = candidate;
  if (tokens.length === 0) return Number.NEGATIVE_INFINITY;
  let sum = 0;
  for (const t of tokens) {
    if (!t.logprob) throw new Error('best_of: a candidate was generated without log-probs');
    sum += t.logprob.logprob;
  }
  return sum / tokens.length;
}

/**
 * The choices among a plan's candidates (`candidates` order): per prompt, the `n` with the highest
 * mean token log-prob (`candidateScore`; ties keep the earlier candidate), best first, as OpenAI's
 * `best_of` returns them. Without `best_of` the candidates are the choices.
 */
export function pickBest<T extends Scored>(
  plan: Pick<Plan, 'inputs' | 'n' | 'bestOf'>,
  results: readonly T[],
): T[] {
  if (results.length !== candidateCount(plan))
    throw new Error(`expected ${candidateCount(plan)} candidates, got ${results.length}`);
  if (plan.bestOf === plan.n) return [...results];
  const picked: T[] = [];
  for (let p = 0; p < plan.inputs.length; p++) {
    const group = results
      .slice(p * plan.bestOf, (p + 1) * plan.bestOf)
      .map((r) => ({ r, score: candidateScore(r) }));
    // Array.prototype.sort is stable: equal scores keep candidate order
    group.sort((a, b) => b.score - a.score);
    picked.push(...group.slice(0, plan.n).map((g) => g.r));
  }
  return picked;
}

/** The served model named `id`, or a 404 listing the ids there are. */
export function findModel(models: readonly ResolvedServedModel[], id: string): ResolvedServedModel {
  const served = models.find((m) => m.id === id);
  if (!served) {
    throw new ApiError(
      404,
      `The model ${JSON.stringify(id)} does not exist on this server; it serves ${models.map((m) => JSON.stringify(m.id)).join(', ')} (GET /v1/models)`,
      { param: 'model', code: 'model_not_found', type: 'invalid_request_error' },
    );
  }
  return served;
}

/**
 * A message's text. Parts are joined with newlines, as vLLM joins them (joined with nothing, the
 * words at their ends would run together); an assistant's refusal part counts as its text.
 */
function contentText(message: ChatRequest['messages'][number], at: string): string {
  const { content } = message;
  if (content === null || content === undefined) return '';
  if (typeof content === 'string') return content;
  return content
    .map((part, j) => {
      if (part.type === 'text') return part.text;
      if (message.role !== 'assistant') {
        throw new ApiError(400, `${at}.content[${j}]: only an assistant message may have a refusal part`, {
          param: `${at}.content[${j}]`,
          code: 'invalid_value',
        });
      }
      return part.refusal;
    })
    .join('\n');
}

function checkIds(ids: readonly number[], model: BaseModel, param: string): void {
  const size = model.info.vocabSize;
  const bad = ids.findIndex((id) => id >= size);
  if (bad >= 0) {
    throw new ApiError(400, `${param}: token id ${ids[bad]} is outside the vocabulary [0, ${size})`, {
      param,
      code: 'invalid_value',
    });
  }
}

/**
 * `logit_bias` by token id. Each key is read as an integer, as OpenAI reads it: `"0504"` is token
 * 504. Two keys that name one token (`"504"` and `"0504"`) are refused: which bias was meant is not
 * for the server to guess.
 */
function logitBiasById(bias: Readonly<Record<string, number>>, model: BaseModel): Record<number, number> {
  const keys = new Map<number, string>();
  for (const key of Object.keys(bias)) {
    const id = Number(key);
    const other = keys.get(id);
    if (other !== undefined) {
      throw new ApiError(
        400,
        `logit_bias: the keys ${JSON.stringify(other)} and ${JSON.stringify(key)} both name token ${id}; give it one bias`,
        { param: 'logit_bias', code: 'invalid_value' },
      );
    }
    keys.set(id, key);
  }
  checkIds([...keys.keys()], model, 'logit_bias');
  return Object.fromEntries([...keys].map(([id, key]) => [id, bias[key]!]));
}

/**
 * A prompt must leave room in the context for a token, unless it is only scored (`scoredOnly`: echo
 * with max_tokens 0), when it may fill the context.
 */
function checkPromptLength(
  ids: readonly number[],
  model: BaseModel,
  param: string,
  scoredOnly = false,
): void {
  if (ids.length === 0) {
    throw new ApiError(400, `${param}: the prompt has no tokens`, { param, code: 'invalid_value' });
  }
  const max = model.info.maxPositions;
  if (max !== undefined && ids.length > max - (scoredOnly ? 0 : 1)) {
    const full = ids.length === max;
    throw new ApiError(
      400,
      `This model's maximum context length is ${max} tokens; the prompt has ${ids.length}${full ? ', which leaves no room for the completion' : ''}. Shorten the ${param}${full && param !== 'messages' ? ', or score it with echo and max_tokens 0' : ''}.`,
      { param, code: 'context_length_exceeded' },
    );
  }
}

/**
 * Refuses, before it is tokenized, a prompt that cannot fit: `fewest` is a lower bound on its
 * tokens (`fewestTokens`: its characters over the most any token stands for), so that no prompt that
 * would fit is refused, while one far too long costs the server's thread no tokenizing. The same
 * 400 as `checkPromptLength`'s.
 */
function checkFewestTokens(
  fewest: number,
  chars: number,
  model: BaseModel,
  param: string,
  scoredOnly = false,
): void {
  const max = model.info.maxPositions;
  if (max !== undefined && fewest > max - (scoredOnly ? 0 : 1)) {
    throw new ApiError(
      400,
      `This model's maximum context length is ${max} tokens; the prompt has at least ${fewest} (${chars} characters, and no token of this model stands for more than ${codeUnitsPerToken(model.tokenizer)}). Shorten the ${param}.`,
      { param, code: 'context_length_exceeded' },
    );
  }
}

/**
 * Refuses a request for more generations (`prompts` × `perPrompt`, its `n` or `best_of`) than the
 * server's `maxChoices`, naming the field that multiplies them.
 */
function checkChoices(prompts: number, n: number, bestOf: number, server: ResolvedApiOptions): void {
  const perPrompt = Math.max(n, bestOf);
  const total = prompts * perPrompt;
  if (total <= server.maxChoices) return;
  const param = perPrompt === 1 ? 'prompt' : bestOf > n ? 'best_of' : 'n';
  const asked =
    prompts === 1
      ? `${param} ${perPrompt}`
      : perPrompt === 1
        ? `${prompts} prompts`
        : `${prompts} prompts × ${param} ${perPrompt}`;
  throw new ApiError(
    400,
    `${param}: ${asked}: ${total} generations, above this server's limit of ${server.maxChoices} a request (ask for fewer, or split the request)`,
    { param, code: 'invalid_value' },
  );
}

/** What a plan reports of its rules: the entries that match no token (none without rules). */
const unresolvedOf = (rules: GenerateOptions['rules']): readonly UnresolvedEntry[] =>
  RuleSet.isInstance(rules) ? rules.unresolved : [];

/** Common options of both endpoints. */
function baseOptions(
  req: ChatRequest | CompletionRequest,
  served: ResolvedServedModel,
  server: ResolvedApiOptions,
  rules: RuleCache,
  requestedMax: number | null | undefined,
  defaultMax: number,
): GenerateOptions {
  const { model } = served;
  const options: GenerateOptions = {
    format: server.format,
    maxNewTokens: Math.min(requestedMax ?? defaultMax, server.maxTokens),
    temperature: req.temperature ?? server.temperature,
  };
  if (req.top_p === 0) options.topK = 1;
  else if (req.top_p !== null && req.top_p !== undefined && req.top_p < 1) options.topP = req.top_p;
  if (req.top_k && req.top_k > 0) options.topK = Math.min(req.top_k, options.topK ?? req.top_k);
  if (req.seed !== null && req.seed !== undefined) options.seed = ((req.seed % 2 ** 32) + 2 ** 32) % 2 ** 32;
  // as OpenAI: without a seed every request samples anew (the runtime's own default seed is fixed)
  else if (options.temperature! > 0) options.seed = randomInt(2 ** 32);
  if (req.stop !== null && req.stop !== undefined)
    options.stop = typeof req.stop === 'string' ? [req.stop] : req.stop;
  if (req.logit_bias) options.logitBias = logitBiasById(req.logit_bias, model);
  // none, or true (the playground's "the server's own"): the model's default
  const own = !(req.rules === undefined || req.rules === null || req.rules === true);
  const spec = own ? req.rules : served.rules;
  try {
    const set = rules.get(served, spec as RuleSpec | RuleSet, own ? 'request' : 'default');
    options.rules = set.enabled.length === 0 ? false : set;
  } catch (error) {
    throw toApiError(error);
  }
  if (req.trace) options.trace = true;
  return options;
}

function streamFlags(req: ChatRequest | CompletionRequest): { stream: boolean; includeUsage: boolean } {
  const stream = req.stream === true;
  if (!stream && req.stream_options) {
    throw new ApiError(400, 'stream_options: only allowed when stream is true', {
      param: 'stream_options',
      code: 'invalid_value',
    });
  }
  return { stream, includeUsage: stream && req.stream_options?.include_usage === true };
}

/** A chat request as a plan: the model, the prompt ids and S, the runtime options. */
export function planChat(req: ChatRequest, server: ResolvedApiOptions, rules: RuleCache): Plan {
  const served = findModel(server.models, req.model);
  const model = served.model;
  const messages = req.messages.map((m, i) => ({
    role: m.role === 'developer' ? 'system' : m.role,
    content: contentText(m, `messages[${i}]`),
  }));
  checkChoices(1, req.n ?? 1, req.n ?? 1, server);
  const addBos = req.add_bos ?? server.addBos;
  const chars = chatTextLength(messages, server.format);
  checkFewestTokens(fewestTokens(model.tokenizer, chars), chars, model, 'messages');
  let prompt: { ids: number[]; scopeStart: number };
  try {
    prompt = model.prompt({ messages }, server.format, addBos === undefined ? {} : { addBos });
  } catch (error) {
    throw toApiError(error, 'messages');
  }
  checkPromptLength(prompt.ids, model, 'messages');
  if (req.top_logprobs !== null && req.top_logprobs !== undefined && req.logprobs !== true) {
    throw new ApiError(400, 'top_logprobs: set logprobs to true to use top_logprobs', {
      param: 'top_logprobs',
      code: 'invalid_value',
    });
  }
  const logprobs = req.logprobs === true ? (req.top_logprobs ?? 0) : null;
  const options = baseOptions(
    req,
    served,
    server,
    rules,
    req.max_completion_tokens ?? req.max_tokens,
    server.defaultMaxTokens,
  );
  if (logprobs !== null) options.logprobs = logprobs;
  const n = req.n ?? 1;
  return {
    kind: 'chat',
    served,
    inputs: [{ promptIds: prompt.ids, scopeStart: prompt.scopeStart }],
    n,
    bestOf: n,
    options,
    ...streamFlags(req),
    logprobs,
    trace: req.trace === true,
    rulesUnresolved: unresolvedOf(options.rules),
    echo: null,
  };
}

/** One completions prompt (`param` names it in errors): the text as is (format raw), or token ids. */
function completionInput(
  raw: string | number[],
  model: BaseModel,
  param: string,
  scoredOnly: boolean,
): PlanInput {
  let prompt: { ids: number[]; scopeStart: number };
  if (raw === '') {
    // OpenAI: with no prompt "the model will generate as if from the beginning of a new document",
    // i.e. after its document separator, <|endoftext|>: the BOS, or the EOS where there is none
    const start = documentStartId(model.tokenizer);
    if (start === undefined) {
      throw new ApiError(
        400,
        `${param}: an empty prompt starts a new document after the BOS or EOS token, and this tokenizer names neither; write a prompt`,
        { param, code: 'invalid_value' },
      );
    }
    // the separator is not content: the rules' used-token scope starts after it (an EOS in scope would
    // be penalized, pushing the end of the text back)
    prompt = { ids: [start], scopeStart: 1 };
  } else if (typeof raw === 'string') {
    checkFewestTokens(fewestTokens(model.tokenizer, raw.length), raw.length, model, param, scoredOnly);
    try {
      prompt = model.prompt({ text: raw }, 'raw');
    } catch (error) {
      throw toApiError(error, param);
    }
  } else {
    checkIds(raw, model, param);
    prompt = { ids: [...raw], scopeStart: 0 };
  }
  checkPromptLength(prompt.ids, model, param, scoredOnly);
  return { promptIds: prompt.ids, scopeStart: prompt.scopeStart };
}

/**
 * A completions request as a plan: a prompt, or a list of them (strings or token-id arrays), each a
 * text as is (format raw) or token ids.
 */
export function planCompletion(req: CompletionRequest, server: ResolvedApiOptions, rules: RuleCache): Plan {
  const served = findModel(server.models, req.model);
  const model = served.model;
  const { prompt } = req;
  // a list of prompts: strings, or arrays of ids; one array of ids is one prompt
  const list: (string | number[])[] =
    typeof prompt === 'string'
      ? [prompt]
      : typeof prompt[0] === 'number'
        ? [prompt as number[]]
        : (prompt as (string | number[])[]);
  const n = req.n ?? 1;
  const bestOf = req.best_of ?? n;
  const stream = streamFlags(req);
  if (bestOf < n) {
    throw new ApiError(
      400,
      `best_of (${bestOf}) must be at least n (${n}): the n best of best_of candidates are returned`,
      {
        param: 'best_of',
        code: 'invalid_value',
      },
    );
  }
  if (bestOf > n && stream.stream) {
    throw new ApiError(
      400,
      `best_of: results cannot be streamed when best_of (${bestOf}) is greater than n (${n})`,
      {
        param: 'best_of',
        code: 'invalid_value',
      },
    );
  }
  checkChoices(list.length, n, bestOf, server);
  if (req.max_tokens === 0 && req.echo !== true) {
    throw new ApiError(
      400,
      'max_tokens: 0 generates nothing; it is only allowed with echo: true (to get the log-probs of the prompt)',
      { param: 'max_tokens', code: 'invalid_value' },
    );
  }
  // a prompt only scored may fill the context
  const inputs = list.map((raw, i) =>
    completionInput(raw, model, list.length > 1 ? `prompt[${i}]` : 'prompt', req.max_tokens === 0),
  );
  const options = baseOptions(req, served, server, rules, req.max_tokens, Math.min(16, server.maxTokens));
  options.format = 'raw';
  const logprobs = req.logprobs ?? null;
  if (logprobs !== null) options.logprobs = logprobs;
  // best_of ranks the candidates by their log-probs: generated even when the response has none
  else if (bestOf > n) options.logprobs = 0;
  // the echoed prompt's log-probs come from its prefill (the base model's)
  if (req.echo === true && logprobs !== null) options.promptLogprobs = logprobs;
  return {
    kind: 'completion',
    served,
    inputs,
    n,
    bestOf,
    options,
    ...stream,
    logprobs,
    trace: req.trace === true,
    rulesUnresolved: unresolvedOf(options.rules),
    echo: req.echo === true ? list.map((raw, i) => echoText(raw, inputs[i]!, model)) : null,
  };
}

/**
 * The text a completions prompt echoes: the prompt as sent, as OpenAI's, or its token ids decoded
 * with their special tokens (the prompt is read with them). What the tokenizer adds to a text (a BOS)
 * is listed among its tokens, not in its text, as the empty prompt's document separator (see
 * `completionInput`) is: those tokens come before its `scopeStart` (`echoOffsets`).
 */
function echoText(raw: string | number[], input: PlanInput, model: BaseModel): string {
  return typeof raw === 'string'
    ? raw
    : model.tokenizer.decode(input.promptIds, { skipSpecialTokens: false });
}
