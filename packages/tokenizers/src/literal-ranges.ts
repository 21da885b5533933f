import { TokenizerInputError } from './errors.js';
import type { TextRange } from './prompt.js';

interface AddedToken {
  special: boolean;
  lstrip: boolean;
  rstrip: boolean;
}

/**
 * What this module uses of @huggingface/tokenizers' `Tokenizer` (0.2, under transformers.js 4.3.1):
 * the fields its `encode_text` reads, and `encode_text` itself, which it stands in for.
 */
export interface InnerTokenizer {
  encode_text(text: string | null): string[] | null;
  splitter_unnormalized: { split(text: string): string[] };
  splitter_normalized: { split(text: string): string[] };
  added_tokens_map: Map<string, AddedToken>;
  normalizer: ((text: string) => string) | null;
  pre_tokenizer: ((text: string, options: { section_index: number }) => string[]) | null;
  model: (tokens: string[]) => string[];
  remove_space?: boolean;
  do_lowercase_and_remove_accent?: boolean;
}

/** A section of a split text: an added token the tokenizer recognises, or text. */
interface Piece {
  text: string;
  token: AddedToken | undefined;
}

function overlaps(start: number, end: number, ranges: readonly TextRange[]): boolean {
  return ranges.some(([from, to]) => start < to && from < end);
}

/**
 * Splits `text` at added tokens with `split`, except special tokens that `literal(start, end)` says
 * are text: those join the text around them. Then applies the kept tokens' lstrip/rstrip to their
 * neighbours, as `encode_text` does.
 */
function splitPieces(
  inner: InnerTokenizer,
  split: (text: string) => string[],
  text: string,
  literal: (start: number, end: number) => boolean,
): Piece[] {
  const out: Piece[] = [];
  let pos = 0;
  for (const part of split(text)) {
    const added = inner.added_tokens_map.get(part);
    const keep = added !== undefined && !(added.special && literal(pos, pos + part.length));
    pos += part.length;
    const last = out[out.length - 1];
    if (keep) out.push({ text: part, token: added });
    else if (last !== undefined && last.token === undefined) last.text += part;
    else out.push({ text: part, token: undefined });
  }
  out.forEach((piece, i) => {
    if (piece.token?.lstrip && i > 0) out[i - 1]!.text = out[i - 1]!.text.trimEnd();
    if (piece.token?.rstrip && i < out.length - 1) out[i + 1]!.text = out[i + 1]!.text.trimStart();
  });
  return out;
}

/**
 * Runs `encode` (one synchronous encoding of `text`) with special tokens not recognised where they
 * overlap `ranges`: there their text is tokenized like any other text, as Hugging Face does with
 * `split_special_tokens=True`. Added tokens that are not special (vocabulary additions) are still
 * matched, as in Hugging Face, and the rest of the text is split at special tokens as usual; each
 * section between two recognised tokens is tokenized on its own, exactly as `encode_text` does (this
 * is its logic, with each section knowing whether it is a token instead of looking its text up).
 *
 * `encode` may prepend characters to `text` (the `legacy: false` "▁", see legacy-prepend.ts); ranges
 * count from the end of what is encoded, so they stay on the same characters. Special tokens matched
 * after normalization (`normalized: true` under a normalizer, rare for special tokens) are text in
 * the whole section that holds a range.
 */
export function encodeWithLiteralRanges(
  inner: InnerTokenizer,
  text: string,
  ranges: readonly TextRange[],
  encode: () => number[],
): number[] {
  if (inner.do_lowercase_and_remove_accent) {
    throw new TokenizerInputError(
      'literal ranges (special tokens kept as text) are not supported for a tokenizer that lowercases and strips accents',
    );
  }
  const own = Object.hasOwn(inner, 'encode_text');
  const original = inner.encode_text;
  inner.encode_text = (full: string | null): string[] | null => {
    if (full === null) return null;
    const shift = full.length - text.length;
    const pieces = splitPieces(
      inner,
      (t) => inner.splitter_unnormalized.split(t),
      full,
      (start, end) => overlaps(start - shift, end - shift, ranges),
    );
    let pos = -shift;
    const inRange = pieces.map((piece) => {
      const hit = piece.token === undefined && overlaps(pos, pos + piece.text.length, ranges);
      pos += piece.text.length;
      return hit;
    });
    return pieces.flatMap((piece, sectionIndex) => {
      if (piece.text.length === 0) return [];
      if (piece.token !== undefined) return [piece.text];
      let section = piece.text;
      if (inner.remove_space === true) section = section.trim().split(/\s+/).join(' ');
      if (inner.normalizer !== null) section = inner.normalizer(section);
      if (section.length === 0) return [];
      const sub = splitPieces(
        inner,
        (t) => inner.splitter_normalized.split(t),
        section,
        () => inRange[sectionIndex]!,
      );
      return sub.flatMap((s) => {
        if (s.text.length === 0) return [];
        if (s.token !== undefined) return [s.text];
        const words =
          inner.pre_tokenizer !== null
            ? inner.pre_tokenizer(s.text, { section_index: sectionIndex })
            : [s.text];
        return inner.model(words);
      });
    });
  };
  try {
    return encode();
  } finally {
    if (own) inner.encode_text = original;
    else delete (inner as Partial<InnerTokenizer>).encode_text;
  }
}
