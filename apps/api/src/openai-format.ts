import { randomUUID } from 'node:crypto';
import type { FinishReason, GenerationResult, TokenLogprob } from '@implicit-it/runtime';
import { continuesSequence, incompleteTail } from '@implicit-it/tokenizers';
import { choiceCount, choiceInput, type Plan } from './plan.js';

/** Usage, as OpenAI spells it. */
export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** With a prefix cache (`LoadOptions.prefixCache`): the prompt tokens it served, as OpenAI reports its own. */
  prompt_tokens_details?: { cached_tokens: number };
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

export function finishReason(reason: FinishReason): 'stop' | 'length' {
  return reason === 'length' ? 'length' : 'stop';
}

/**
 * Chat log-probs: `{ content: [{ token, logprob, bytes, top_logprobs }] }`. A token that holds part
 * of a character is named by its bytes escaped, `\xf0\x9f\x92`, as OpenAI's chat API names it
 * (`name`), not by the U+FFFD its text decodes to: its `bytes` are the exact ones.
 */
function chatLogprobs(tokens: readonly TokenInfo[], top: number, bytes: TokenBytes, name: LegacyName) {
  return {
    content: tokens
      .filter((t) => t.logprob)
      .map(({ logprob: lp }) => ({
        token: name(lp!.id, lp!.token),
        logprob: lp!.logprob,
        bytes: Array.from(bytes(lp!.id)),
        top_logprobs: lp!.top.slice(0, top).map((alt) => ({
          token: name(alt.id, alt.token),
          logprob: alt.logprob,
          bytes: Array.from(bytes(alt.id)),
        })),
      })),
    refusal: null,
  };
}

/** What `TextOffsets` needs of a model's tokenizer. */
export interface OffsetTokenizer {
  createDetokenizer(options: { skipSpecialTokens: boolean; context?: readonly number[] }): {
    push(id: number): string;
  };
  decode(ids: ArrayLike<number>, options: { skipSpecialTokens: boolean }): string;
  isSpecial(id: number): boolean;
  tokenBytes(id: number): Uint8Array;
}

const REPLACEMENT = 0xfffd;
/** Tokens a held-back character may span before the run is given up (the detokenizer's own bound). */
const MAX_HELD_TOKENS = 64;

const endsHeld = (text: string) => text.length > 0 && text.charCodeAt(text.length - 1) === REPLACEMENT;
const trailingReplacements = (text: string) => {
  let n = 0;
  while (n < text.length && text.charCodeAt(text.length - 1 - n) === REPLACEMENT) n++;
  return n;
};
const commonPrefix = (a: string, b: string) => {
  let n = 0;
  while (n < a.length && n < b.length && a.charCodeAt(n) === b.charCodeAt(n)) n++;
  return n;
};

/**
 * Where each token starts in the completion text (legacy `text_offset`, in UTF-16 code units as the
 * text's own indices). The text is counted as the runtime builds it: the same detokenizer, special
 * tokens left out (they add nothing; the end-of-sequence token is not decoded at all). A character
 * split over byte tokens counts once, and each of its tokens points at its start; a token after bytes
 * that became U+FFFD points past them.
 */
export class TextOffsets {
  private readonly detokenizer: { push(id: number): string };
  /** Special tokens are left out of the text (a completion), or written in it (an echoed prompt). */
  private readonly skip: boolean;
  /** Text emitted so far. */
  private chars = 0;
  /** Tokens whose text ends in U+FFFD, which a later byte may still complete (held back). */
  private held: number[] = [];
  /** Their text (decoded alone), where it starts, and the incomplete UTF-8 sequence they end with. */
  private heldText = '';
  private heldStart = 0;
  private tail: readonly number[] = [];
  /** How many of the held tokens, at the end, hold bytes of `tail`. */
  private tailTokens = 0;

  constructor(
    private readonly tokenizer: OffsetTokenizer,
    private readonly eosIds: ReadonlySet<number>,
    /** The prompt's ids: the completion's text goes on from them, as the runtime's does. */
    context: readonly number[] = [],
    /**
     * Count special tokens' text too, as `decode(ids)` writes it: the offsets of an echoed prompt,
     * which is read with its special tokens (pass no end-of-sequence ids then: an EOS is text there).
     */
    keepSpecial = false,
  ) {
    this.skip = !keepSpecial;
    this.detokenizer = tokenizer.createDetokenizer({ skipSpecialTokens: this.skip, context });
  }

  next(id: number): number {
    const tok = this.tokenizer;
    if (this.eosIds.has(id)) {
      // not decoded: the text ends here, held bytes included (the runtime flushes them)
      return Math.max(this.chars, this.heldStart + this.heldText.length);
    }
    if (this.skip && tok.isSpecial(id)) {
      // left out of the text: it points where the text so far ends, before an incomplete character
      this.chars += this.detokenizer.push(id).length;
      return this.held.length === 0 ? this.chars : this.heldStart + this.heldText.length - this.pending();
    }
    const before = this.chars;
    this.chars += this.detokenizer.push(id).length;
    const bytes = tok.tokenBytes(id);
    if (this.held.length === 0) {
      const text = tok.decode([id], { skipSpecialTokens: this.skip });
      if (endsHeld(text)) this.hold([id], text, before, incompleteTail([], bytes), 1);
      return before;
    }
    // after held bytes: this token's text starts where the held text and the held text followed by
    // it first differ (a U+FFFD the held bytes became is before it, a character it completes is not)
    const text = tok.decode([...this.held, id], { skipSpecialTokens: this.skip });
    let common = commonPrefix(this.heldText, text);
    const continues = bytes.length > 0 && continuesSequence(this.tail, bytes[0]!);
    const stillHeld = endsHeld(text) && this.held.length < MAX_HELD_TOKENS;
    // it continues a character the held bytes began, still incomplete: it starts where that
    // character does, before the U+FFFD its bytes so far decode to (the common prefix is past them)
    if (continues && stillHeld) common = Math.min(common, this.heldText.length - this.pending());
    const at = this.heldStart + common;
    if (stillHeld) {
      const tail = incompleteTail(this.tail, bytes);
      const grew = continues && tail.length === this.tail.length + bytes.length;
      this.hold([...this.held, id], text, this.heldStart, tail, grew ? this.tailTokens + 1 : 1);
    } else this.hold([], '', this.chars, [], 0);
    return at;
  }

  /** The U+FFFD at the end of the held text that the incomplete character decodes to (so far). */
  private pending(): number {
    if (this.tail.length === 0) return 0;
    const own = this.tokenizer.decode(this.held.slice(-this.tailTokens), { skipSpecialTokens: this.skip });
    return Math.min(trailingReplacements(own), trailingReplacements(this.heldText));
  }

  private hold(
    ids: number[],
    text: string,
    start: number,
    tail: readonly number[],
    tailTokens: number,
  ): void {
    this.held = ids;
    this.heldText = text;
    this.heldStart = start;
    this.tail = tail;
    this.tailTokens = tailTokens;
  }
}

/** `at`, moved back where it would split a surrogate pair of `text`. */
function charStart(text: string, at: number): number {
  const low = (i: number) => (text.charCodeAt(i) & 0xfc00) === 0xdc00;
  const high = (i: number) => (text.charCodeAt(i) & 0xfc00) === 0xd800;
  return at > 0 && at < text.length && low(at) && high(at - 1) ? at - 1 : at;
}

/**
 * Carries offsets in `from` over to `to`, a text that may differ from it in places: exact in their
 * common end and, before it, in their common beginning; an offset inside the part that differs is
 * clamped to that part of `to` (never splitting a character). The common end is taken first, which
 * places a difference as early as it can be: where SentencePiece's dummy prefix is, a space its
 * first token has and the text may not.
 */
function carryOffsets(from: string, to: string): (offset: number) => number {
  if (from === to) return (offset) => offset;
  let tail = 0;
  const most = Math.min(from.length, to.length);
  while (tail < most && from.charCodeAt(from.length - 1 - tail) === to.charCodeAt(to.length - 1 - tail))
    tail++;
  const head = Math.min(commonPrefix(from, to), most - tail);
  const tailStart = from.length - tail;
  return (offset) => {
    if (offset <= head) return offset;
    if (offset >= tailStart) return offset + to.length - from.length;
    return charStart(to, Math.min(offset, to.length - tail));
  };
}

/**
 * Where each token of an echoed prompt starts in its echoed `text` (legacy `text_offset`). The tokens
 * from `first` on spell the text (a text prompt's own tokens; all of a token-id prompt's, whose text
 * is their decoding with special tokens written); those before it are what the tokenizer added to a
 * text prompt (Llama's BOS), which its echo, the text as sent, leaves out: they take no room (0).
 * Offsets are counted over the text the tokens decode to after those (as the model reads them: the
 * BOS keeps SentencePiece from stripping the first token's space) and carried over to `text`, which
 * a tokenizer may not spell back exactly (`carryOffsets`: a dummy prefix, a normalizer's changes).
 */
export function echoOffsets(
  tokenizer: OffsetTokenizer,
  ids: readonly number[],
  first: number,
  text: string,
): number[] {
  const added = ids.slice(0, first);
  const own = ids.slice(first);
  const offsets = new TextOffsets(tokenizer, new Set(), added, true);
  // the text the detokenizer builds: decode(context + ids) beyond decode(context)
  const keep = { skipSpecialTokens: false };
  const spelled = tokenizer.decode(ids, keep).slice(tokenizer.decode(added, keep).length);
  const carry = carryOffsets(spelled, text);
  return [...added.map(() => 0), ...own.map((id) => carry(offsets.next(id)))];
}

/** A chunk's text and the tokens that made it. */
export interface TextChunk {
  text: string;
  tokens: TokenInfo[];
}

/**
 * Cuts one choice's streamed text where its tokens' texts end, so that a chunk carries the tokens
 * that made its text, and only text they made. The runtime shows text as soon as it is safe
 * (`text-delta` after each token): while a stop string may follow, it holds text back and releases
 * it later, with a later token's, or releases part of a token's text. Here a token goes out once all
 * of its text has been released (its end by the runtime's own detokenizer: the same options and
 * prompt context), with the tokens before it; released text past the last such end waits for its
 * token. A token that makes no text of its own (part of a character, a special token) goes with the
 * next that does, or with the finish.
 */
export class ChunkAligner {
  private readonly detokenizer: { push(id: number): string };
  /** The tokens not sent yet, each with the end of the text made so far once it is added. */
  private pending: { token: TokenInfo; end: number; makesText: boolean }[] = [];
  /** Text the tokens made so far, and the part of it sent. */
  private made = 0;
  private sent = 0;
  /** Text the runtime released and not sent yet. */
  private released = '';

  constructor(
    tokenizer: Pick<OffsetTokenizer, 'createDetokenizer'>,
    private readonly eosIds: ReadonlySet<number>,
    /** The prompt's ids: the completion's text goes on from them, as the runtime's does. */
    context: readonly number[],
  ) {
    this.detokenizer = tokenizer.createDetokenizer({ skipSpecialTokens: true, context });
  }

  /** A generated token (the runtime does not decode an end-of-sequence token). */
  token(token: TokenInfo): void {
    const text = this.eosIds.has(token.id) ? '' : this.detokenizer.push(token.id);
    this.made += text.length;
    this.pending.push({ token, end: this.made, makesText: text.length > 0 });
  }

  /** Text the runtime released: the chunk to send now, or null while no pending token's text is whole. */
  text(delta: string): TextChunk | null {
    this.released += delta;
    const upTo = this.sent + this.released.length;
    let last = -1;
    for (const [k, p] of this.pending.entries()) if (p.makesText && p.end <= upTo) last = k;
    if (last < 0) return null;
    const end = this.pending[last]!.end;
    const chunk = { text: this.released.slice(0, end - this.sent), tokens: this.take(last + 1) };
    this.released = this.released.slice(end - this.sent);
    this.sent = end;
    return chunk;
  }

  /**
   * At the finish: the text still held (a token's part before a stop string, bytes flushed as
   * U+FFFD) with the tokens left but an end-of-sequence token (null when none is held), and the
   * tokens for the finish chunk (that one, or all left when no text is).
   */
  finish(): { chunk: TextChunk | null; rest: TokenInfo[] } {
    const left = this.take(this.pending.length);
    if (this.released.length === 0) return { chunk: null, rest: left };
    const text = this.released;
    this.released = '';
    const made = left.filter((t) => !this.eosIds.has(t.id));
    return { chunk: { text, tokens: made }, rest: left.filter((t) => this.eosIds.has(t.id)) };
  }

  private take(count: number): TokenInfo[] {
    return this.pending.splice(0, count).map((p) => p.token);
  }
}

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true });

/** How long `completeJson` builds choices before it lets other requests run. */
const YIELD_AFTER_MS = 10;

/**
 * A token's bytes as escapes, `\xe4\xb8`, where they are not whole UTF-8 text (part of a character,
 * whose text would be U+FFFD); undefined for text. How OpenAI names such a token: chat log-probs as
 * the escapes (`"token": "\xf0\x9f\x92"`, with its `bytes`), legacy ones after `bytes:`
 * (`bytes:\xf0\x9f`), so that different partial tokens keep different names.
 */
function escapedBytes(bytes: Uint8Array): string | undefined {
  try {
    fatalUtf8.decode(bytes);
    return undefined;
  } catch {
    return Array.from(bytes, (b) => `\\x${b.toString(16).padStart(2, '0')}`).join('');
  }
}

/** A token's name in log-probs by id, given its text: the text, or its bytes escaped (`escapedBytes`). */
type LegacyName = (id: number, token: string) => string;

/** Each tokenizer's ids whose bytes are not whole text (escaped), and those whose are (`false`). */
const partialTokens = new WeakMap<object, Map<number, string | false>>();

/**
 * The names of a tokenizer's ids in log-probs, whose escaped bytes (`escapedBytes`) are remembered
 * per tokenizer for every request: a response with `logprobs: 20` over 128 choices of 2,048 tokens
 * names 5 million alternatives, and decoding each one's bytes again held the event loop for
 * seconds. `prefix` comes before the escapes: `'bytes:'` in legacy log-probs, none in chat's.
 */
function partialNamer(tokenizer: { tokenBytes(id: number): Uint8Array }, prefix: string): LegacyName {
  const known = partialTokens.get(tokenizer) ?? new Map<number, string | false>();
  partialTokens.set(tokenizer, known);
  return (id, token) => {
    let escaped = known.get(id);
    if (escaped === undefined) {
      escaped = escapedBytes(tokenizer.tokenBytes(id)) ?? false;
      known.set(id, escaped);
    }
    return escaped === false ? token : prefix + escaped;
  };
}

/**
 * Legacy completions log-probs: parallel arrays. An echoed prompt's first token has none (null in
 * `token_logprobs` and `top_logprobs`), as OpenAI's.
 */
export interface LegacyLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

/**
 * A token's `top` most likely alternatives as `{ token: logprob }`, and the token itself where it is
 * not among them, as OpenAI's legacy `logprobs` ("the API will always return the logprob of the
 * sampled token, so there may be up to logprobs+1 elements"; vLLM does the same). Two with the same
 * name keep the higher log-prob.
 */
export function legacyTopLogprobs(lp: TokenLogprob, top: number, name: LegacyName): Record<string, number> {
  const alternatives = lp.top.slice(0, top);
  if (!alternatives.some((alt) => alt.id === lp.id)) alternatives.push(lp);
  const map = new Map<string, number>();
  for (const alt of alternatives) {
    const named = name(alt.id, alt.token);
    const seen = map.get(named);
    if (seen === undefined || alt.logprob > seen) map.set(named, alt.logprob);
  }
  return Object.fromEntries(map);
}

/**
 * Legacy completions log-probs of generated tokens. `textEnd` is the length of the completion text
 * up to these tokens: no offset points past it. `base` is added to each offset: the length of an
 * echoed prompt the completion follows in the response's text.
 */
function completionLogprobs(
  tokens: readonly TokenInfo[],
  top: number,
  offsets: TextOffsets,
  name: LegacyName,
  textEnd: number,
  base: number,
): LegacyLogprobs {
  const out: LegacyLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  for (const { id, logprob: lp } of tokens) {
    const at = base + Math.min(offsets.next(id), textEnd);
    if (!lp) continue;
    out.tokens.push(name(lp.id, lp.token));
    out.token_logprobs.push(lp.logprob);
    out.top_logprobs.push(legacyTopLogprobs(lp, top, name));
    out.text_offset.push(at);
  }
  return out;
}

/** `b`'s arrays appended to `a`'s, in a new object. */
const joinLogprobs = (a: LegacyLogprobs, b: LegacyLogprobs): LegacyLogprobs => ({
  tokens: [...a.tokens, ...b.tokens],
  token_logprobs: [...a.token_logprobs, ...b.token_logprobs],
  top_logprobs: [...a.top_logprobs, ...b.top_logprobs],
  text_offset: [...a.text_offset, ...b.text_offset],
});

/** The `trace` extension: each token's id and rank under the base model alone (1 = its own top-1). */
function traceOf(tokens: readonly TokenInfo[]) {
  return tokens.map((t) => ({ id: t.id, base_rank: t.baseRank ?? null }));
}

/** A choice's finished generation, as `ResponseWriter.complete` takes it. */
export interface ChoiceResult {
  text: string;
  finishReason: FinishReason;
  usage: GenerationResult['usage'];
  tokens: TokenInfo[];
  /** With `echo` and log-probs: the prompt's (the runtime's `promptLogprobs`). */
  promptLogprobs?: readonly (TokenLogprob | null)[];
}

/**
 * Per-choice state of a response: the completion's token offsets (legacy `text_offset`), the length
 * of its text streamed so far, and the prompt text it echoes first (`Plan.echo`).
 */
interface ChoiceState {
  offsets: TextOffsets;
  streamed: number;
  echo: string | null;
}

/**
 * The usage of a request: prompt tokens once per prompt (as OpenAI counts them with `n` > 1),
 * completion tokens of every choice. `usages[i]` is choice `i`'s, `n` choices per prompt.
 */
export function requestUsage(
  usages: readonly { promptTokens: number; completionTokens: number; cachedTokens?: number }[],
  n: number,
): Usage {
  let prompt = 0;
  let completion = 0;
  let cached: number | undefined;
  usages.forEach((u, i) => {
    if (i % n === 0) {
      prompt += u.promptTokens;
      if (u.cachedTokens !== undefined) cached = (cached ?? 0) + u.cachedTokens;
    }
    completion += u.completionTokens;
  });
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    ...(cached !== undefined ? { prompt_tokens_details: { cached_tokens: cached } } : {}),
  };
}

/**
 * Builds the response objects of one request: the whole response, or its stream chunks. Chunks keep
 * OpenAI's shapes; `trace` is an extension present only when the request asked for it. Choice `i`
 * answers prompt `floor(i / n)` (`Plan.inputs`), as OpenAI orders them.
 */
export class ResponseWriter {
  readonly id: string;
  readonly created = Math.floor(Date.now() / 1000);
  private readonly bytes: TokenBytes;
  /** A token's name in log-probs: legacy ones (`bytes:\xe4`), or chat's (`\xe4`). */
  private readonly name: LegacyName;
  private readonly choices: ChoiceState[];
  /** Whether a chunk has carried `rules_unresolved` (the first chunk does). */
  private reported = false;

  constructor(private readonly plan: Plan) {
    this.id = `${plan.kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID().replace(/-/g, '')}`;
    const { tokenizer, info } = plan.served.model;
    this.bytes = (id) => tokenizer.tokenBytes(id);
    this.name = partialNamer(tokenizer, plan.kind === 'chat' ? '' : 'bytes:');
    const eos = new Set(info.eosIds);
    this.choices = Array.from({ length: choiceCount(plan) }, (_, i) => ({
      offsets: new TextOffsets(tokenizer, eos, choiceInput(plan, i).promptIds),
      streamed: 0,
      echo: plan.echo?.[Math.floor(i / plan.n)] ?? null,
    }));
  }

  /**
   * Extension: the entries of the request's rules that match no token of the model's vocabulary, left
   * out (`[{ rule, text, reason }]`), where there are any.
   */
  private unresolved() {
    const list = this.plan.rulesUnresolved;
    return list.length === 0
      ? {}
      : { rules_unresolved: list.map(({ rule, text, reason }) => ({ rule, text, reason })) };
  }

  /** The fields every chunk starts with; the first also carries `rules_unresolved` (see `unresolved`). */
  private head() {
    const first = !this.reported;
    this.reported = true;
    return {
      id: this.id,
      object: this.plan.kind === 'chat' ? 'chat.completion.chunk' : 'text_completion',
      created: this.created,
      model: this.plan.served.id,
      system_fingerprint: SYSTEM_FINGERPRINT,
      ...(first ? this.unresolved() : {}),
    };
  }

  /**
   * `textEnd`: the length of choice `index`'s completion text up to and including these tokens'.
   * `echoed`: the echoed prompt's log-probs, which these follow in the same text (a whole response).
   */
  private extras(
    index: number,
    tokens: readonly TokenInfo[],
    textEnd: number,
    echoed: LegacyLogprobs | null = null,
  ) {
    const { plan } = this;
    const state = this.choices[index]!;
    let logprobs: ReturnType<typeof chatLogprobs> | LegacyLogprobs | null = null;
    if (plan.logprobs !== null && plan.kind === 'chat')
      logprobs = chatLogprobs(tokens, plan.logprobs, this.bytes, this.name);
    else if (plan.logprobs !== null) {
      const base = state.echo?.length ?? 0;
      logprobs = completionLogprobs(tokens, plan.logprobs, state.offsets, this.name, textEnd, base);
      if (echoed) logprobs = joinLogprobs(echoed, logprobs);
    }
    return { logprobs, ...(plan.trace ? { trace: traceOf(tokens) } : {}) };
  }

  /**
   * The complete (non-streaming) response: one result per choice, in choice order. Usage counts
   * `generated`, every candidate generated (`best_of` per prompt; by default the choices).
   */
  complete(results: readonly ChoiceResult[], generated: readonly ChoiceResult[] = results) {
    return {
      ...this.wholeHead(generated),
      choices: results.map((result, index) => this.choice(result, index)),
    };
  }

  /**
   * `complete`'s response as JSON text, built and serialized one choice at a time, yielding to the
   * event loop every few milliseconds: a response of 128 choices with 20 log-probs a token runs to
   * tens of megabytes, and built in one go it held every other request (and /health) for seconds.
   * Resolves with the text and the response's usage.
   */
  async completeJson(
    results: readonly ChoiceResult[],
    generated: readonly ChoiceResult[] = results,
  ): Promise<{ json: string; usage: ReturnType<ResponseWriter['wholeHead']>['usage'] }> {
    const head = this.wholeHead(generated);
    const parts: string[] = [];
    let since = performance.now();
    for (const [index, result] of results.entries()) {
      parts.push(JSON.stringify(this.choice(result, index)));
      if (performance.now() - since > YIELD_AFTER_MS) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        since = performance.now();
      }
    }
    // the head's fields in complete()'s order, with the choices spliced in where its empty list is
    // (a string value cannot hold the unescaped quotes of "choices":[])
    const json = JSON.stringify({ ...head, choices: [] }).replace(
      '"choices":[]',
      () => `"choices":[${parts.join(',')}]`,
    );
    return { json, usage: head.usage };
  }

  /** The response's fields but its choices, in OpenAI's order (choices go after system_fingerprint). */
  private wholeHead(generated: readonly ChoiceResult[]) {
    const { plan } = this;
    return {
      id: this.id,
      object: plan.kind === 'chat' ? 'chat.completion' : 'text_completion',
      created: this.created,
      model: plan.served.id,
      system_fingerprint: SYSTEM_FINGERPRINT,
      choices: [] as unknown[],
      // `generated` holds the same number of generations for each prompt, in prompt order
      usage: requestUsage(
        generated.map((r) => r.usage),
        generated.length / plan.inputs.length,
      ),
      ...this.unresolved(),
    };
  }

  /** Choice `index` of the whole response. */
  private choice(result: ChoiceResult, index: number) {
    const { plan } = this;
    const echoed =
      plan.logprobs !== null && result.promptLogprobs
        ? this.echoLogprobs(index, result.promptLogprobs)
        : null;
    const extras = this.extras(index, result.tokens, result.text.length, echoed);
    return plan.kind === 'chat'
      ? {
          index,
          message: { role: 'assistant', content: result.text, refusal: null },
          ...extras,
          finish_reason: finishReason(result.finishReason),
        }
      : {
          text: (this.choices[index]!.echo ?? '') + result.text,
          index,
          ...extras,
          finish_reason: finishReason(result.finishReason),
        };
  }

  private usageField() {
    return this.plan.includeUsage ? { usage: null } : {};
  }

  /** The first chat chunk of choice `index`: the assistant role, no content (OpenAI sends it first). */
  roleChunk(index: number) {
    if (this.plan.kind !== 'chat') return null;
    return {
      ...this.head(),
      choices: [
        {
          index,
          delta: { role: 'assistant', content: '', refusal: null },
          logprobs: null,
          finish_reason: null,
        },
      ],
      ...this.usageField(),
    };
  }

  /**
   * The first completions chunk of choice `index` when the request has `echo`: the prompt's text
   * and, with log-probs, its tokens' (the runtime's `promptLogprobs`). Null without echo.
   */
  echoChunk(index: number, promptLogprobs: readonly (TokenLogprob | null)[] | null) {
    const { echo } = this.choices[index]!;
    if (echo === null) return null;
    const logprobs =
      this.plan.logprobs !== null && promptLogprobs ? this.echoLogprobs(index, promptLogprobs) : null;
    const choice = { text: echo, index, logprobs, finish_reason: null };
    return { ...this.head(), choices: [choice], ...this.usageField() };
  }

  /**
   * The legacy log-probs of choice `index`'s echoed prompt, from the runtime's `promptLogprobs` (one
   * per prompt token, the first null: nothing comes before it, as OpenAI returns it). Offsets index
   * the echoed text (`echoOffsets`): a text prompt's own tokens start where they do in it, special
   * tokens written in it included, and those the tokenizer added (a BOS) take no room.
   */
  private echoLogprobs(index: number, promptLogprobs: readonly (TokenLogprob | null)[]): LegacyLogprobs {
    const { tokenizer } = this.plan.served.model;
    const text = this.choices[index]!.echo ?? '';
    // a text prompt's scope starts at its text's first token (`buildPrompt`'s raw format), a token-id
    // prompt's at 0: the tokens before it are what the tokenizer added
    const { promptIds, scopeStart } = choiceInput(this.plan, index);
    const offsets = echoOffsets(tokenizer, promptIds, scopeStart, text);
    const out: LegacyLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: offsets };
    for (const [t, id] of promptIds.entries()) {
      const lp = promptLogprobs[t] ?? null;
      out.tokens.push(this.name(id, tokenizer.tokenText(id)));
      out.token_logprobs.push(lp?.logprob ?? null);
      out.top_logprobs.push(lp ? legacyTopLogprobs(lp, this.plan.logprobs ?? 0, this.name) : null);
    }
    return out;
  }

  /** A chunk of choice `index` carrying `text` and the tokens that produced it. */
  deltaChunk(index: number, text: string, tokens: readonly TokenInfo[]) {
    const state = this.choices[index]!;
    state.streamed += text.length;
    const extras = this.extras(index, tokens, state.streamed);
    const choice =
      this.plan.kind === 'chat'
        ? { index, delta: { content: text }, ...extras, finish_reason: null }
        : { text, index, ...extras, finish_reason: null };
    return { ...this.head(), choices: [choice], ...this.usageField() };
  }

  /**
   * The chunk with choice `index`'s finish reason (and the log-probs of tokens that produced no text,
   * e.g. EOS).
   */
  finishChunk(index: number, reason: FinishReason, tokens: readonly TokenInfo[]) {
    const extras = this.extras(index, tokens, this.choices[index]!.streamed);
    const choice =
      this.plan.kind === 'chat'
        ? { index, delta: {}, ...extras, finish_reason: finishReason(reason) }
        : { text: '', index, ...extras, finish_reason: finishReason(reason) };
    return { ...this.head(), choices: [choice], ...this.usageField() };
  }

  /** The last chunk when `stream_options.include_usage`: no choices, the request's usage. */
  usageChunk(usages: readonly GenerationResult['usage'][]) {
    return { ...this.head(), choices: [], usage: requestUsage(usages, this.plan.n) };
  }
}
