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
