import { pythonStrip } from '@implicit-it/rules';
import { type ConversationFormat, pieceBytes, type Tokenizer } from '@implicit-it/tokenizers';

/**
 * How much shorter, at most, a normalizer can make a text (in UTF-16 code units), or `undefined`
 * where it can remove text without bound (a `Strip`, `StripAccents`, a regex `Replace`, one this does
 * not know). Canonical composition (NFC) makes one character of at most 4 (a canonical
 * decomposition's longest: `ᾂ` from α and three marks); under NFKC each of those may be a
 * supplementary character (2 code units) that a compatibility mapping makes a BMP one: 8.
 */
function shrinkFactor(normalizer: unknown): number | undefined {
  if (normalizer === null || normalizer === undefined) return 1;
  const n = normalizer as {
    type?: string;
    normalizers?: unknown[];
    pattern?: { String?: string };
    content?: string;
  };
  switch (n.type) {
    case 'Sequence': {
      let factor = 1;
      for (const part of n.normalizers ?? []) {
        const f = shrinkFactor(part);
        if (f === undefined) return undefined;
        factor *= f;
      }
      return factor;
    }
    case 'Prepend':
    case 'Lowercase': // no lowercase mapping is shorter than its character
    case 'ByteLevel':
      return 1;
    case 'NFC':
    case 'NFD':
      return 4;
    case 'NFKC':
    case 'NFKD':
      return 8;
    case 'Replace': {
      const from = n.pattern?.String;
      if (typeof from !== 'string' || typeof n.content !== 'string' || n.content.length === 0)
        return undefined;
      return Math.max(1, from.length / n.content.length);
    }
    default:
      return undefined;
  }
}

/** Whether a pre-tokenizer keeps every character (none drops whitespace or matches, as `Whitespace` does). */
function keepsText(pre: unknown): boolean {
  if (pre === null || pre === undefined) return true;
  const p = pre as { type?: string; pretokenizers?: unknown[]; behavior?: string };
  switch (p.type) {
    case 'Sequence':
      return (p.pretokenizers ?? []).every(keepsText);
    case 'ByteLevel':
    case 'Metaspace':
    case 'Digits':
    case 'UnicodeScripts':
      return true;
    case 'Split':
    case 'Punctuation':
      return p.behavior !== 'Removed';
    default:
      return false;
  }
}

/**
 * The most UTF-16 code units of prompt text one token of `tokenizer` can stand for, or `undefined`
 * where no sound bound is known. A token stands for at most its vocabulary piece's text: a byte-level
 * piece's bytes (a text has no more code units than UTF-8 bytes), a SentencePiece piece's characters
 * (`▁` one space, a byte piece `<0xNN>` at most one), an added token's content; times what the
 * normalizer may have removed. None is known for a tokenizer whose unknown token can stand for a
 * whole run of text (WordPiece's `[UNK]` for a word, a fused or Unigram `<unk>` without byte
 * fallback), whose normalizer can remove text without bound, or whose pre-tokenizer drops text
 * (BERT's `Whitespace`).
 */
export function maxCodeUnitsPerToken(tokenizer: Tokenizer): number | undefined {
  // tokenizer.json as read (the pipeline's parts do not all keep their settings)
  const json = (tokenizer.inner as unknown as { tokenizer?: Record<string, unknown> }).tokenizer;
  if (!json) return undefined;
  const model = json.model as
    | { type?: string; unk_token?: string | null; byte_fallback?: boolean; fuse_unk?: boolean }
    | undefined;
  const type = model?.type;
  if (type === 'WordPiece' || type === 'WordLevel') return undefined;
  // an unknown character becomes <unk>: one character (2 code units), or a run of them when fused
  let unk = 0;
  if (model?.unk_token && !model.byte_fallback) {
    if (model.fuse_unk || type === 'Unigram') return undefined;
    unk = 2;
  }
  const factor = shrinkFactor(json.normalizer);
  if (factor === undefined || !keepsText(json.pre_tokenizer)) return undefined;
  const { vocabulary, pieceEncoding } = tokenizer;
  const byteFallback = model?.byte_fallback === true;
  let longest = unk;
  for (let id = 0; id < vocabulary.size; id++) {
    const piece = vocabulary.pieceOf(id);
    if (piece === undefined) continue;
    const units =
      pieceEncoding === 'byte-level'
        ? Math.max(piece.length, pieceBytes(piece, pieceEncoding, byteFallback).length)
        : piece.length;
    if (units > longest) longest = units;
  }
  return longest === 0 ? undefined : Math.ceil(longest * factor);
}

const bounds = new WeakMap<Tokenizer, number | undefined>();

/** `maxCodeUnitsPerToken`, computed once per tokenizer. */
export function codeUnitsPerToken(tokenizer: Tokenizer): number | undefined {
  if (!bounds.has(tokenizer)) bounds.set(tokenizer, maxCodeUnitsPerToken(tokenizer));
  return bounds.get(tokenizer);
}

/**
 * The code units of a chat's text that its prompt surely holds: in the `tulu` format, each message's
 * content (an assistant's stripped, as the format strips it); with a model's chat template, which
 * may leave messages out or trim them, only the last user message's, stripped.
 */
export function chatTextLength(
  messages: readonly { role: string; content: string }[],
  format: ConversationFormat,
): number {
  const stripped = (text: string) => Math.min(pythonStrip(text).length, text.trim().length);
  if (format === 'tulu') {
    let sum = 0;
    for (const m of messages) sum += m.role === 'assistant' ? stripped(m.content) : m.content.length;
    return sum;
  }
  for (let i = messages.length - 1; i >= 0; i--)
    if (messages[i]!.role === 'user') return stripped(messages[i]!.content);
  return 0;
}

/** The fewest tokens a text of `length` code units can take, or 0 where no bound is known. */
export function fewestTokens(tokenizer: Tokenizer, length: number): number {
  const per = codeUnitsPerToken(tokenizer);
  return per === undefined ? 0 : Math.ceil(length / per);
}
