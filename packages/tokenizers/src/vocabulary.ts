import type { Vocabulary } from '@implicit-it/rules';
import { type PieceEncoding, pieceSurface, SurfaceTier } from './surfaces.js';

/**
 * One added token of tokenizer.json (`added_tokens`).
 *
 * @example
 * const added: AddedTokenInfo[] = [
 *   { id: 0, content: '<unk>', special: true },
 *   { id: 1, content: '</s>', special: true },
 * ];
 * const vocab = new TokenizerVocabulary({
 *   size: 4, eosIds: [1], added, vocab: new Map([['▁a', 2], ['▁b', 3]]), encoding: 'sentencepiece', byteFallback: false,
 * });
 * vocab.idsOf(' a'); // [2]
 */
export interface AddedTokenInfo {
  id: number;
  content: string;
  special: boolean;
}

/**
 * The rules' `Vocabulary` for a Hugging Face tokenizer: the surface text of every id and the ids of
 * every surface text.
 *
 * Surface text: SentencePiece `▁` becomes a space and a byte piece `<0xNN>` below `<0x80>` the byte
 * it stands for; byte-level BPE pieces are mapped back through the byte-to-unicode table and decoded
 * as UTF-8. Special tokens, and pieces that hold only part of a UTF-8 character, have no surface text.
 * A non-special added token's surface is its content.
 *
 * Lookup priority: `idsOf(text)` returns the regular vocabulary pieces with that surface; only when
 * there is none, the byte-fallback pieces; only when there is none of those either, the non-special
 * added tokens. So Llama-2's `!` is 29991 (not the byte piece `<0x21>`, id 36), `\n` is 13 (`<0x0A>`,
 * the only piece for a newline), and OLMo's three spaces are 341 (`ĠĠĠ`, not the added 3-space token).
 *
 * @example
 * const tok = await loadTokenizer('fixtures/llama2');
 * tok.vocabulary.idsOf('!'); // [29991]
 * tok.vocabulary.surfaceOf(13); // '\n'
 */
export class TokenizerVocabulary implements Vocabulary {
  readonly size: number;
  readonly eosIds: readonly number[];
  private readonly surfaces: (string | undefined)[];
  private readonly pieces: (string | undefined)[];
  private readonly index = new Map<string, { tier: SurfaceTier; ids: number[] }>();

  constructor(options: {
    size: number;
    eosIds: readonly number[];
    /** Model vocabulary: piece -> id (entries whose piece is not a string, as for id gaps, are skipped). */
    vocab: ReadonlyMap<string | undefined, number>;
    added: readonly AddedTokenInfo[];
    encoding: PieceEncoding;
    byteFallback: boolean;
  }) {
    const { size, vocab, added, encoding, byteFallback } = options;
    this.size = size;
    this.eosIds = Object.freeze([...options.eosIds]);
    this.surfaces = new Array<string | undefined>(size).fill(undefined);
    this.pieces = new Array<string | undefined>(size).fill(undefined);
    const addedIds = new Set(added.map((t) => t.id));
    for (const [piece, id] of vocab) {
      // ids missing from tokenizer.json (a gap before an added token) come back without a piece:
      // they have no piece and no surface
      if (typeof piece !== 'string' || !Number.isInteger(id) || id < 0 || id >= size) continue;
      this.pieces[id] = piece;
      if (addedIds.has(id)) continue;
      const s = pieceSurface(piece, encoding, byteFallback);
      if (s) this.put(id, s.surface, s.tier);
    }
    for (const token of added) {
      this.pieces[token.id] = token.content;
      if (!token.special) this.put(token.id, token.content, SurfaceTier.added);
    }
  }

  private put(id: number, surface: string, tier: SurfaceTier): void {
    this.surfaces[id] = surface;
    const entry = this.index.get(surface);
    if (!entry || tier < entry.tier) this.index.set(surface, { tier, ids: [id] });
    else if (tier === entry.tier) entry.ids.push(id);
  }

  idsOf(surface: string): readonly number[] {
    return this.index.get(surface)?.ids ?? [];
  }

  surfaceOf(id: number): string | undefined {
    return this.surfaces[id];
  }

  /** The raw vocabulary piece of `id` as tokenizer.json spells it (`▁I`, `ĠI`, `<0x0A>`, `</s>`). */
  pieceOf(id: number): string | undefined {
    return this.pieces[id];
  }
}
