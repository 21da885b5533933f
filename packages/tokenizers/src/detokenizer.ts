import { TokenizerInputError } from './errors.js';

/**
 * Streaming detokenization: feed generated ids one at a time, get the new text.
 *
 * Joining every `push` result and the final `flush` gives exactly `tokenizer.decode(ids)` with the
 * same `skipSpecialTokens` (no character repeated or dropped), including multi-byte UTF-8 characters
 * split over byte tokens (held back until complete) and SentencePiece leading spaces.
 */
export interface Detokenizer {
  /** Adds one token id; returns the text it completes (often `''` mid-character). */
  push(id: number): string;
  /** Ends the sequence: returns the text still held back (e.g. an incomplete character as U+FFFD) and resets. */
  flush(): string;
}

/** Options of `Tokenizer.createDetokenizer`. */
export interface DetokenizerOptions {
  /** Leave special tokens out of the text, as `decode(ids, { skipSpecialTokens: true })`. Default false. */
  skipSpecialTokens?: boolean;
}

/** Undecided trailing U+FFFD characters held back at most (an incomplete UTF-8 sequence is <= 3 bytes). */
const MAX_HELD_REPLACEMENTS = 3;
/** Tokens that may pile up without a clean text boundary before the window is cut anyway. */
const MAX_PENDING = 64;

/**
 * The window algorithm behind `Tokenizer.createDetokenizer` (O(1) amortized per token): it decodes
 * only a small window (the last cleanly decoded token as left context, plus the tokens since) and
 * emits what lies beyond the context's text, holding back trailing U+FFFD characters that a later
 * byte may still complete. The left context keeps SentencePiece's "strip the first space" rule from
 * eating spaces mid-stream. Only an invalid byte run of more than 64 tokens with no clean boundary is
 * cut without context (its replacement characters may then differ from a full decode).
 *
 * @internal
 */
export class WindowDetokenizer implements Detokenizer {
  private window: number[] = [];
  /** Tokens at the start of `window` whose text was emitted before (left context). */
  private contextCount = 0;
  /** `decode(window[0:contextCount]).length`. */
  private contextLength = 0;
  /** Characters emitted beyond the context in this window. */
  private emitted = 0;

  constructor(
    private readonly decodeWindow: (ids: number[]) => string,
    /** Ids left out of the text (special tokens when skipping them), or undefined. */
    private readonly skipped: ReadonlySet<number> | undefined,
    /** Number of ids; anything outside `[0, size)` is rejected. */
    private readonly size: number,
    /** Shared memo of `decode([id]).length` (single-token windows are context-free). */
    private readonly singleLength: Map<number, number>,
    private readonly source: string,
  ) {}

  push(id: number): string {
    if (!Number.isInteger(id) || id < 0 || id >= this.size) {
      throw new TokenizerInputError(
        `detokenizer.push: token id ${id} is outside [0, ${this.size}) of ${this.source}`,
      );
    }
    const window = this.window;
    window.push(id);
    const text = this.decodeWindow(window);
    let held = 0;
    while (held < MAX_HELD_REPLACEMENTS && text.charCodeAt(text.length - 1 - held) === 0xfffd) held++;
    const start = this.contextLength + this.emitted;
    const end = text.length - held;
    const delta = end > start ? text.slice(start, end) : '';
    this.emitted += delta.length;
    if (held === 0) this.advance();
    else if (window.length - this.contextCount > MAX_PENDING) {
      this.emitted += text.length - end;
      this.advance();
      return delta + text.slice(end);
    }
    return delta;
  }

  flush(): string {
    const rest = this.window.length
      ? this.decodeWindow(this.window).slice(this.contextLength + this.emitted)
      : '';
    this.window = [];
    this.contextCount = this.contextLength = this.emitted = 0;
    return rest;
  }

  /** Everything decoded is emitted: keep the last non-skipped token as the next window's left context. */
  private advance(): void {
    const window = this.window;
    let k = window.length - 1;
    const skipped = this.skipped;
    if (skipped) {
      while (k > 0 && skipped.has(window[k]!)) k--;
      if (k === 0 && window.length > MAX_PENDING) k = window.length - 1;
    }
    const context = k === window.length - 1 ? [window[k]!] : window.slice(k);
    this.window = context;
    this.contextCount = context.length;
    this.emitted = 0;
    if (context.length === 1) {
      const id = context[0]!;
      let length = this.singleLength.get(id);
      if (length === undefined) {
        length = this.decodeWindow(context).length;
        this.singleLength.set(id, length);
      }
      this.contextLength = length;
    } else this.contextLength = this.decodeWindow(context).length;
  }
}
