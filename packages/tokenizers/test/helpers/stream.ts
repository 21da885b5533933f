import type { Tokenizer } from '../../src/index.js';

/** Streams `ids` through a fresh detokenizer; returns every push delta and the flush. */
export function streamDeltas(tok: Tokenizer, ids: readonly number[], skipSpecialTokens = false) {
  const detok = tok.createDetokenizer({ skipSpecialTokens });
  const deltas = ids.map((id) => detok.push(id));
  const rest = detok.flush();
  return { deltas, rest, text: deltas.join('') + rest };
}

/** Texts that stress streaming: emoji (4-byte UTF-8), CJK (3-byte), combining marks, spaces, newlines. */
export const STREAM_TEXTS = [
  'Hello the world! I should 世界 🎉\n\nWhat   x <',
  '🎉🎉 👩‍👩‍👧 flags 🇫🇷 done',
  '日本語のテキスト、中文文本，한국어 텍스트.',
  '  leading spaces and   runs   of spaces  ',
  'e\u0301 cafe\u0301 naïve — “quotes” … ½ ✓',
  '\n\n\tindent\n  - item *bold* #1 ##2',
];

/**
 * The UTF-8 of `tokenBytes` over `ids`, joined; and how many tokens hold part of a character (their
 * own text is U+FFFD, their bytes alone are not UTF-8).
 */
export function joinedTokenBytes(tok: Tokenizer, ids: readonly number[]) {
  const all = ids.flatMap((id) => [...tok.tokenBytes(id)]);
  const fatal = new TextDecoder('utf-8', { fatal: true });
  const partial = ids.filter((id) => {
    try {
      fatal.decode(tok.tokenBytes(id));
      return false;
    } catch {
      return tok.decode([id]) === '\uFFFD';
    }
  }).length;
  return { text: new TextDecoder().decode(Uint8Array.from(all)), partial };
}
