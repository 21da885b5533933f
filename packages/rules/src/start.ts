import { RuleInputError } from './errors.js';
import { shownValue } from './option-names.js';
import type { Vocabulary } from './vocabulary.js';

// the reference code's list, character for character: Python's string.punctuation less `_` (a token
// starting with `_` scores 0, as there)
const PUNCTUATION = new Set('.,:;!?<>[]{}()"\'`~@#$%^&*-=+\\|/');
const CASED = /^[\p{Uppercase}\p{Lowercase}]/u;

/**
 * The start rule's score of one surface string (rules-spec.md, rule 4; `score_string` in the
 * reference code): one leading space is stripped (a bare space scores 0); `Okay` +10, `I` -3, a
 * first character that is a cased letter or CJK / Cyrillic / kana / Hangul +1, ASCII punctuation -1,
 * anything else 0.
 *
 * @example
 * scoreString(' Hello'); // 1
 * scoreString('I'); // -3
 */
export function scoreString(surface: string): number {
  if (typeof surface !== 'string')
    throw new RuleInputError(
      `scoreString: expected a token's surface text (a string), got ${shownValue(surface)}`,
    );
  if (surface === ' ' || surface === '') return 0;
  const s = surface.startsWith(' ') ? surface.slice(1) : surface;
  if (s === 'I') return -3;
  if (s === 'Okay') return 10;
  const cp = s.codePointAt(0)!;
  if (CASED.test(s)) return 1;
  if (cp >= 0x4e00 && cp <= 0x9fff) return 1;
  if ((cp >= 0x0400 && cp <= 0x04ff) || (cp >= 0x3040 && cp <= 0x30ff) || (cp >= 0xac00 && cp <= 0xd7af))
    return 1;
  if (PUNCTUATION.has(s[0]!)) return -1;
  return 0;
}

const BYTE_PIECE = /^<0x[0-9A-Fa-f]{2}>$/;

/**
 * The text the start rule scores for `id`. The reference code scores its vocabulary's raw pieces
 * (Llama-2's, with one leading `▁` stripped); the rules read surface text, which is the same string
 * for a regular piece (`▁Hello` is ` Hello`), so the surface is scored. Where they differ, the piece
 * is scored as the reference does: a byte-fallback piece (`<0x41>` scores as `<`, not as `A`) and a
 * token with no surface text (special tokens such as `</s>`, pieces holding part of a character).
 * A vocabulary without `pieceOf` gives surfaces only.
 * @internal
 */
export function startText(vocab: Vocabulary, id: number): string | undefined {
  const surface = vocab.surfaceOf(id);
  const piece = vocab.pieceOf?.(id);
  if (piece !== undefined && (surface === undefined || BYTE_PIECE.test(piece))) return piece;
  return surface;
}
