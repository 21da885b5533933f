import { randomUUID } from 'node:crypto';
import type { FinishReason, TokenLogprob } from '@implicit-it/runtime';
import type { Plan } from './plan.js';

/** Usage, as OpenAI spells it. */
export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** One generated token as the API reports it. */
export interface TokenInfo {
  id: number;
  logprob?: TokenLogprob;
  baseRank?: number;
}

/** The UTF-8 bytes of a token: exact for a token that holds part of a character (its text is U+FFFD). */
type TokenBytes = (id: number) => Uint8Array;

export const SYSTEM_FINGERPRINT = 'implicit-it';

export function usageOf(u: { promptTokens: number; completionTokens: number; totalTokens: number }): Usage {
  return {
    prompt_tokens: u.promptTokens,
    completion_tokens: u.completionTokens,
    total_tokens: u.totalTokens,
  };
}

export function finishReason(reason: FinishReason): 'stop' | 'length' {
  return reason === 'length' ? 'length' : 'stop';
}

/** Chat log-probs: `{ content: [{ token, logprob, bytes, top_logprobs }] }`. */
function chatLogprobs(tokens: readonly TokenInfo[], top: number, bytes: TokenBytes) {
  return {
    content: tokens
      .filter((t) => t.logprob)
      .map(({ logprob: lp }) => ({
        token: lp!.token,
        logprob: lp!.logprob,
        bytes: Array.from(bytes(lp!.id)),
        top_logprobs: lp!.top.slice(0, top).map((alt) => ({
          token: alt.token,
          logprob: alt.logprob,
          bytes: Array.from(bytes(alt.id)),
        })),
      })),
    refusal: null,
  };
}

/**
 * Where each token starts in the completion text (legacy `text_offset`, in UTF-16 code units as the
 * text's own indices): the characters its predecessors' bytes complete, so a character split over
 * two tokens counts once.
 */
export class TextOffsets {
  private readonly decoder = new TextDecoder('utf-8');
  private chars = 0;

  constructor(private readonly bytes: TokenBytes) {}

  next(id: number): number {
    const at = this.chars;
    this.chars += this.decoder.decode(this.bytes(id), { stream: true }).length;
    return at;
  }
}

/** Legacy completions log-probs: parallel arrays, `top_logprobs` as `{ token: logprob }` maps. */
function completionLogprobs(tokens: readonly TokenInfo[], top: number, offsets: TextOffsets) {
  const out = {
    tokens: [] as string[],
    token_logprobs: [] as number[],
    top_logprobs: [] as Record<string, number>[],
    text_offset: [] as number[],
  };
  for (const { id, logprob: lp } of tokens) {
    const at = offsets.next(id);
    if (!lp) continue;
    out.tokens.push(lp.token);
    out.token_logprobs.push(lp.logprob);
    out.top_logprobs.push(Object.fromEntries(lp.top.slice(0, top).map((alt) => [alt.token, alt.logprob])));
    out.text_offset.push(at);
  }
  return out;
}

/** The `trace` extension: each token's id and rank under the base model alone (1 = its own top-1). */
function traceOf(tokens: readonly TokenInfo[]) {
  return tokens.map((t) => ({ id: t.id, base_rank: t.baseRank ?? null }));
}

/**
 * Builds the response objects of one request: the whole response, or its stream chunks. Chunks keep
 * OpenAI's shapes; `trace` is an extension present only when the request asked for it.
 */
export class ResponseWriter {
  readonly id: string;
  readonly created = Math.floor(Date.now() / 1000);
  private readonly bytes: TokenBytes;
  /** Token start offsets in the completion text, carried from chunk to chunk (legacy `text_offset`). */
  private readonly offsets: TextOffsets;

  constructor(private readonly plan: Plan) {
    this.id = `${plan.kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID().replace(/-/g, '')}`;
    const { tokenizer } = plan.served.model;
    this.bytes = (id) => tokenizer.tokenBytes(id);
    this.offsets = new TextOffsets(this.bytes);
  }

  private head() {
    return {
      id: this.id,
      object: this.plan.kind === 'chat' ? 'chat.completion.chunk' : 'text_completion',
      created: this.created,
      model: this.plan.served.id,
      system_fingerprint: SYSTEM_FINGERPRINT,
    };
  }

  private extras(tokens: readonly TokenInfo[]) {
    const { plan } = this;
    const logprobs =
      plan.logprobs === null
        ? null
        : plan.kind === 'chat'
          ? chatLogprobs(tokens, plan.logprobs, this.bytes)
          : completionLogprobs(tokens, plan.logprobs, this.offsets);
    return { logprobs, ...(plan.trace ? { trace: traceOf(tokens) } : {}) };
  }

  /** The complete (non-streaming) response. */
  complete(result: {
    text: string;
    finishReason: FinishReason;
    usage: { promptTokens: number; completionTokens: number; totalTokens: number };
    tokens: TokenInfo[];
  }) {
    const { plan } = this;
    const extras = this.extras(result.tokens);
    const choice =
      plan.kind === 'chat'
        ? {
            index: 0,
            message: { role: 'assistant', content: result.text, refusal: null },
            ...extras,
            finish_reason: finishReason(result.finishReason),
          }
        : { text: result.text, index: 0, ...extras, finish_reason: finishReason(result.finishReason) };
    return {
      id: this.id,
      object: plan.kind === 'chat' ? 'chat.completion' : 'text_completion',
      created: this.created,
      model: plan.served.id,
      system_fingerprint: SYSTEM_FINGERPRINT,
      choices: [choice],
      usage: usageOf(result.usage),
    };
  }

  private usageField() {
    return this.plan.includeUsage ? { usage: null } : {};
  }

  /** The first chat chunk: the assistant role, no content (OpenAI sends it first). */
  roleChunk() {
    if (this.plan.kind !== 'chat') return null;
    return {
      ...this.head(),
      choices: [
        {
          index: 0,
          delta: { role: 'assistant', content: '', refusal: null },
          logprobs: null,
          finish_reason: null,
        },
      ],
      ...this.usageField(),
    };
  }

  /** A chunk carrying `text` and the tokens that produced it. */
  deltaChunk(text: string, tokens: readonly TokenInfo[]) {
    const extras = this.extras(tokens);
    const choice =
      this.plan.kind === 'chat'
        ? { index: 0, delta: { content: text }, ...extras, finish_reason: null }
        : { text, index: 0, ...extras, finish_reason: null };
    return { ...this.head(), choices: [choice], ...this.usageField() };
  }

  /** The chunk with the finish reason (and the log-probs of tokens that produced no text, e.g. EOS). */
  finishChunk(reason: FinishReason, tokens: readonly TokenInfo[]) {
    const extras = this.extras(tokens);
    const choice =
      this.plan.kind === 'chat'
        ? { index: 0, delta: {}, ...extras, finish_reason: finishReason(reason) }
        : { text: '', index: 0, ...extras, finish_reason: finishReason(reason) };
    return { ...this.head(), choices: [choice], ...this.usageField() };
  }

  /** The last chunk when `stream_options.include_usage`: no choices, the usage. */
  usageChunk(usage: { promptTokens: number; completionTokens: number; totalTokens: number }) {
    return { ...this.head(), choices: [], usage: usageOf(usage) };
  }
}
