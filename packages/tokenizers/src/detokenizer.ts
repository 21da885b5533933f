import { checkTokenId } from './errors.js';

/**
 * Streaming detokenization: feed generated ids one at a time, get the new text.
 *
 * Joining every `push` result and the final `flush` gives exactly `tokenizer.decode(ids)` with the
 * same `skipSpecialTokens` (no character repeated or dropped), including multi-byte UTF-8 characters
 * split over byte tokens (held back until complete) and SentencePiece leading spaces.
 *
 * @example
 * const detok = tok.createDetokenizer({ skipSpecialTokens: true });
 * for (const id of generatedIds) process.stdout.write(detok.push(id));
 * process.stdout.write(detok.flush());
 */
export interface Detokenizer {
  /** Adds one token id; returns the text it completes (often `''` mid-character). */
  push(id: number): string;
  /** Ends the sequence: returns the text still held back (e.g. an incomplete character as U+FFFD) and resets. */
  flush(): string;
}

/**
 * Options of `Tokenizer.createDetokenizer`.
 *
 * @example
 * const prompt = tok.buildPrompt({ format: 'tulu', instruction: 'Name a city.' });
 * const detok = tok.createDetokenizer({ context: prompt.ids, skipSpecialTokens: true });
 * detok.push(tok.tokenToId('▁Paris')!); // ' Paris' (without the context: 'Paris')
 */
export interface DetokenizerOptions {
  /** Leave special tokens out of the text, as `decode(ids, { skipSpecialTokens: true })`. Default false. */
  skipSpecialTokens?: boolean | undefined;
  /**
   * Ids the text goes on from (a prompt), never emitted: the stream is then the text `decode(context +
   * ids)` has beyond `decode(context)`, as generation pipelines return a completion. It matters for
   * SentencePiece tokenizers, whose decoders drop the leading space of a text's first token: after a
   * prompt, `▁Paris` is " Paris", not "Paris". Only the last of them that decode to text are read.
   * A context that ends inside a character (a byte-level token holding the first bytes of an emoji)
   * decodes to U+FFFD there, which the ids may complete: the stream then goes on from `decode(context)`
   * without that U+FFFD, so it begins with the whole character (or with the U+FFFD, when the ids do
   * not complete it). Default: none (the stream is `decode(ids)`).
   */
  context?: readonly number[] | undefined;
}

/** Tokens that may pile up behind the left context before the window is restarted at a safe boundary. */
const MAX_PENDING = 64;

/** UTF-8 continuation byte (`10xxxxxx`). */
const isContinuation = (byte: number) => (byte & 0xc0) === 0x80;

/** Bytes of the UTF-8 sequence that `lead` starts, or 0 when it starts none (ASCII, continuation, C0/C1, F5..FF). */
function sequenceLength(lead: number): number {
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}

/**
 * Whether `byte` continues the incomplete UTF-8 sequence `pending` (as `incompleteTail` returns it;
 * WHATWG UTF-8 decoder: the second byte of E0, ED, F0 and F4 sequences has a narrower range, which
 * rules out overlong forms and surrogates).
 *
 * @example
 * continuesSequence([0xf0, 0x9f], 0x8e); // true: the third byte of 🎉
 */
export function continuesSequence(pending: readonly number[], byte: number): boolean {
  return pending.length > 0 && continuesAt(pending[0]!, pending.length, byte);
}

/** Whether `byte` may be byte `index` (1 to 3) of the sequence that `lead` starts. */
function continuesAt(lead: number, index: number, byte: number): boolean {
  if (index !== 1) return isContinuation(byte);
  switch (lead) {
    case 0xe0:
      return byte >= 0xa0 && byte <= 0xbf;
    case 0xed:
      return byte >= 0x80 && byte <= 0x9f;
    case 0xf0:
      return byte >= 0x90 && byte <= 0xbf;
    case 0xf4:
      return byte >= 0x80 && byte <= 0x8f;
    default:
      return isContinuation(byte);
  }
}

/**
 * The incomplete UTF-8 sequence (1 to 3 bytes: a lead byte and the continuation bytes it accepts so
 * far) that a byte stream ending in `pending` (its own incomplete tail) and then `bytes` ends with, or
 * `[]` when it ends at a character boundary or in invalid bytes a later byte cannot complete. This is
 * exactly the state a WHATWG UTF-8 decoder (`TextDecoder`, which the tokenizers' byte-level and
 * byte-fallback decoders use) is left in: that state lies in the last three bytes, and any lead byte
 * starts a new sequence.
 *
 * @example
 * incompleteTail([], [0x61, 0xf0, 0x9f]); // [0xf0, 0x9f]: 🎉 begun, two bytes to come
 */
export function incompleteTail(pending: readonly number[], bytes: ArrayLike<number>): readonly number[] {
  const n = bytes.length;
  if (n === 0) return pending;
  if (bytes[n - 1]! < 0x80) return NONE; // ends in ASCII (most tokens)
  // this runs for every streamed token: no allocation unless the stream ends mid-sequence, and the
  // (rare) bytes held from before joined in only when this token alone has fewer than three
  if (pending.length === 0 || n >= 3) return tailOf(bytes);
  const joined = pending.slice();
  for (let i = 0; i < n; i++) joined.push(bytes[i]!);
  return tailOf(joined);
}

/** `incompleteTail` of a stream that is `bytes` (only its last three bytes matter). */
function tailOf(bytes: ArrayLike<number>): readonly number[] {
  const total = bytes.length;
  for (let p = total - 1; p >= Math.max(0, total - 3); p--) {
    const lead = bytes[p]!;
    if (isContinuation(lead)) continue;
    if (total - p >= sequenceLength(lead)) return NONE; // ASCII, an invalid byte, or a complete (or overlong) sequence
    for (let q = p + 1; q < total; q++) if (!continuesAt(lead, q - p, bytes[q]!)) return NONE;
    const tail: number[] = [];
    for (let q = p; q < total; q++) tail.push(bytes[q]!);
    return tail;
  }
  return NONE;
}
/** No incomplete sequence (a plain array, as the tails are: one shape for the engine's fields). */
const NONE: readonly number[] = [];

/**
 * The window algorithm behind `Tokenizer.createDetokenizer` (O(1) amortized per token): it decodes
 * only a small window (the last cleanly decoded token as left context, plus the tokens since) and
 * emits what lies beyond the context's text. What to hold back is decided from the tokens' bytes, not
 * from the decoded text: only while the bytes so far end with an incomplete UTF-8 sequence are the
 * trailing U+FFFD that the sequence decodes to (at most one per byte) held back; genuine U+FFFD
 * characters in the text are emitted at once. The left context keeps SentencePiece's "strip the first
 * space" rule from eating spaces mid-stream.
 *
 * Skipped tokens (special tokens with `skipSpecialTokens`) decode to nothing, so they never enter the
 * window. A window that piles up more than 64 tokens without reaching a character boundary (only
 * invalid byte runs do) is restarted at its latest safe boundary: a token boundary where the UTF-8
 * decoder holds no sequence that the next token's first byte continues, so the text before it is final
 * whatever follows. A cut therefore never splits a character or a surrogate pair.
 *
 * @internal
 */
export class WindowDetokenizer implements Detokenizer {
  private window: number[] = [];
  /** Tokens at the start of `window` whose text was emitted before (left context): 0 or 1. */
  private contextCount = 0;
  /** `decode(window[0:contextCount]).length`. */
  private contextLength = 0;
  /** Characters emitted beyond the context in this window. */
  private emitted = 0;
  /** The incomplete UTF-8 sequence the bytes pushed so far end with (see `incompleteTail`). */
  private pending: readonly number[] = NONE;
  /** The latest index `i` of `window` where the text of `window[0:i]` is final (a safe boundary). */
  private lastSafe = 0;

  constructor(
    private readonly decodeWindow: (ids: number[]) => string,
    /** The UTF-8 bytes token `id` adds to the decoded text (`Tokenizer.tokenBytes`). */
    private readonly tokenBytes: (id: number) => ArrayLike<number>,
    /** Whether `id` is left out of the text (a special token when skipping them), or undefined. */
    private readonly skipped: ((id: number) => boolean) | undefined,
    /** Number of ids; anything outside `[0, size)` is rejected. */
    private readonly size: number,
    /** Shared memo of `decode([id]).length` (single-token windows are context-free). */
    private readonly singleLength: Map<number, number>,
    private readonly source: string,
    /** `DetokenizerOptions.context`. */
    context: readonly number[] = NONE,
  ) {
    this.begin(context);
  }

  /**
   * Starts the window on the last id of `context` that decodes to text, as left context (never
   * emitted). A context that ends inside a character (its last token holds the first bytes of an
   * emoji) starts the window on the tokens that hold that character's bytes, with the token before
   * them as left context: the character is emitted whole once the pushed ids complete it.
   */
  private begin(context: readonly number[]): void {
    for (const id of context) this.checkId(id, 'createDetokenizer: context id');
    const ids = this.skipped ? context.filter((id) => !this.skipped!(id)) : context;
    if (ids.length === 0) return;
    // the decoder's state at the end lies in the last three bytes: read back to three of them
    const bytes: number[] = [];
    let from = ids.length;
    while (from > 0 && bytes.length < 3) bytes.unshift(...Array.from(this.tokenBytes(ids[--from]!)));
    const tail = incompleteTail(NONE, bytes);
    if (tail.length === 0) {
      const id = ids[ids.length - 1]!;
      this.window = [id];
      this.contextCount = 1;
      this.contextLength = this.lengthOf(id);
      this.lastSafe = 1;
      return;
    }
    // the token that holds the first byte of the incomplete character, and the one before it
    let first = ids.length;
    for (let held = 0; held < tail.length; ) held += this.tokenBytes(ids[--first]!).length;
    this.window = ids.slice(Math.max(0, first - 1));
    this.contextCount = this.window.length;
    // the incomplete character decodes to one trailing U+FFFD (as TextDecoder ends a stream), which
    // the pushed ids may replace: it is not the context's text
    const text = this.decodeWindow(this.window);
    this.contextLength = text.length - (text.charCodeAt(text.length - 1) === 0xfffd ? 1 : 0);
    this.pending = tail;
    this.lastSafe = 0;
  }

  private checkId(id: number, what: string): void {
    checkTokenId(id, what, this.size, this.source);
  }

  push(id: number): string {
    this.checkId(id, 'detokenizer.push: token id');
    if (this.skipped?.(id)) return ''; // decodes to nothing, wherever it is
    const window = this.window;
    const before = this.pending;
    // the text before this token is final unless its first byte continues a pending sequence (the
    // token's bytes are looked at only where they may matter: most tokens end a character)
    const bytes = before.length === 0 ? undefined : this.tokenBytes(id);
    if (bytes === undefined || (bytes.length > 0 && !continuesSequence(before, bytes[0]!))) {
      this.lastSafe = window.length;
    }
    window.push(id);
    const text = this.decodeWindow(window);
    // an incomplete trailing sequence decodes to a trailing U+FFFD: text ending otherwise ends at a
    // character boundary, and only a trailing U+FFFD needs the bytes to tell the two apart
    this.pending =
      text.charCodeAt(text.length - 1) === 0xfffd
        ? incompleteTail(before, bytes ?? this.tokenBytes(id))
        : NONE;
    const start = this.contextLength + this.emitted;
    if (this.pending.length === 0) {
      const delta = text.slice(start);
      this.advance();
      return delta;
    }
    // the incomplete sequence decodes to trailing U+FFFD (one per byte at most) that a later byte may
    // replace: hold them back (holding a genuine U+FFFD before them as well is harmless)
    let held = 0;
    while (held < this.pending.length && text.charCodeAt(text.length - 1 - held) === 0xfffd) held++;
    const end = text.length - held;
    const delta = end > start ? text.slice(start, end) : '';
    this.emitted += delta.length;
    if (window.length - this.contextCount > MAX_PENDING && this.lastSafe > this.contextCount) {
      return delta + this.cut(text);
    }
    return delta;
  }

  flush(): string {
    const rest = this.window.length
      ? this.decodeWindow(this.window).slice(this.contextLength + this.emitted)
      : '';
    this.window = [];
    this.contextCount = this.contextLength = this.emitted = this.lastSafe = 0;
    this.pending = NONE;
    return rest;
  }

  /** Everything decoded is emitted and the bytes end at a character boundary: the last token becomes the left context. */
  private advance(): void {
    const id = this.window[this.window.length - 1]!;
    this.window = [id];
    this.contextCount = 1;
    this.contextLength = this.lengthOf(id);
    this.emitted = 0;
    this.lastSafe = 1;
  }

  /**
   * Restarts the window at `lastSafe` (the text before it is final), with the token before it as left
   * context. `text` is the current window's text; returns the held-back characters that lie before
   * the boundary, which are final now.
   */
  private cut(text: string): string {
    const at = this.lastSafe;
    const next = this.window.slice(at - 1);
    const contextLength = this.lengthOf(next[0]!);
    const after = this.decodeWindow(next).length - contextLength; // the text after the boundary
    const unemitted = text.length - (this.contextLength + this.emitted);
    this.window = next;
    this.contextCount = 1;
    this.contextLength = contextLength;
    this.lastSafe = 1;
    if (after >= unemitted) {
      this.emitted = after - unemitted;
      return '';
    }
    this.emitted = 0;
    return text.slice(text.length - unemitted, text.length - after);
  }

  /** `decode([id]).length`, memoized. */
  private lengthOf(id: number): number {
    let length = this.singleLength.get(id);
    if (length === undefined) {
      length = this.decodeWindow([id]).length;
      this.singleLength.set(id, length);
    }
    return length;
  }
}
