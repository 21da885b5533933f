import { compileRules, HEWITT2024_UNIFORM } from '@implicit-it/rules';
import { describe, expect, it } from 'vitest';
import { byteLevelDecoder, createTokenizer, detectPieceEncoding, pieceSurface } from '../src/index.js';
import { byteLevelFiles, bytesToUnicode, sentencePieceFiles } from './helpers/build-tokenizer.js';
import { streamDeltas } from './helpers/stream.js';

describe('byte-level BPE vocabulary (built tokenizer)', () => {
  for (const style of ['string', 'pair'] as const) {
    it(`loads ${style} merges and resolves surfaces exactly`, () => {
      const tok = createTokenizer(byteLevelFiles(style));
      const v = tok.vocabulary;
      expect(tok.pieceEncoding).toBe('byte-level');
      expect(v.size).toBe(306);
      expect(tok.eosIds).toEqual([304]);
      expect(tok.eosSource).toBe('tokenizer_config.json eos_token');
      expect(tok.bosId).toBe(303);
      expect(tok.padId).toBe(304);
      expect(v.idsOf(' the')).toEqual([258]);
      expect(v.idsOf('\n')).toEqual([10]);
      expect(v.idsOf(' ')).toEqual([32]);
      // The regular ĠĠĠ piece wins over the non-special added 3-space token (id 305).
      expect(v.idsOf('   ')).toEqual([277]);
      expect(v.surfaceOf(305)).toBe('   ');
      expect(v.surfaceOf(289)).toBe('世');
      expect(v.surfaceOf(231)).toBeUndefined(); // 'ç' is the lone byte 0xE7: no text
      expect(v.surfaceOf(304)).toBeUndefined(); // special <|im_end|>
      expect(v.pieceOf(258)).toBe('Ġthe');
      expect(v.idsOf('no such text')).toEqual([]);
      expect(tok.encode(' the world', { addSpecialTokens: false })).toEqual([258, 286]);
    });
  }

  it('reports hewitt2024 entries the built vocabulary lacks, and resolves the rest', () => {
    const tok = createTokenizer(byteLevelFiles());
    const unresolved = compileRules('hewitt2024', tok.vocabulary).unresolved.map((u) => u.text);
    expect(unresolved).toEqual([]);
    expect(HEWITT2024_UNIFORM.map((e) => tok.vocabulary.idsOf(e.text).length)).toEqual(
      HEWITT2024_UNIFORM.map(() => 1),
    );
  });
});

describe('SentencePiece-style vocabulary with byte fallback (built tokenizer)', () => {
  for (const style of ['pair', 'string'] as const) {
    it(`loads ${style} merges; byte pieces only when no regular piece has the surface`, () => {
      const tok = createTokenizer(sentencePieceFiles(style));
      const v = tok.vocabulary;
      expect(tok.pieceEncoding).toBe('sentencepiece');
      expect(v.size).toBe(352);
      expect([tok.eosIds, tok.bosId, tok.padId]).toEqual([[2], 1, 2]);
      expect(v.idsOf('!')).toEqual([312]); // regular '!', not <0x21> (id 36)
      expect(v.surfaceOf(36)).toBe('!'); // the byte piece still has a surface
      expect(v.idsOf('\n')).toEqual([13]); // <0x0A> is the only newline piece
      expect(v.idsOf(' I')).toEqual([322]);
      expect(v.idsOf('   ')).toEqual([337]);
      expect(v.idsOf(' ')).toEqual([259]);
      expect(v.surfaceOf(3 + 0xe4)).toBeUndefined(); // <0xE4>: part of a character
      expect(v.surfaceOf(1)).toBeUndefined();
      expect(v.pieceOf(338)).toBe('▁<');
      expect(tok.encode('Hello world!')).toEqual([1, 330, 335, 312]);
    });
  }
});

describe('piece surfaces', () => {
  it('inverts the byte-to-unicode table for all 256 bytes', () => {
    const table = bytesToUnicode();
    const decoder = byteLevelDecoder();
    expect(table.map((ch) => decoder.get(ch.codePointAt(0)!))).toEqual([...Array(256).keys()]);
    expect(pieceSurface('ĠĠĠ', 'byte-level', false)).toEqual({ surface: '   ', tier: 0 });
    expect(pieceSurface('Ċ', 'byte-level', false)).toEqual({ surface: '\n', tier: 0 });
    expect(pieceSurface('ä¸', 'byte-level', false)).toBeUndefined();
    expect(pieceSurface('<0x0A>', 'sentencepiece', true)).toEqual({ surface: '\n', tier: 1 });
    expect(pieceSurface('<0x0A>', 'sentencepiece', false)).toEqual({ surface: '<0x0A>', tier: 0 });
    expect(pieceSurface('▁▁▁', 'sentencepiece', true)).toEqual({ surface: '   ', tier: 0 });
    expect(pieceSurface('##ing', 'plain', false)).toEqual({ surface: '##ing', tier: 0 });
  });

  it('a byte-level piece holding U+FEFF keeps the BOM in its surface', () => {
    // 'ï»¿' is EF BB BF, U+FEFF (OLMo's id 41497)
    expect(pieceSurface('ï»¿', 'byte-level', false)).toEqual({ surface: '\uFEFF', tier: 0 });
    expect(pieceSurface('ï»¿Hi', 'byte-level', false)).toEqual({ surface: '\uFEFFHi', tier: 0 });
  });

  it('detects the piece encoding from tokenizer.json', () => {
    expect(detectPieceEncoding(byteLevelFiles().tokenizerJson)).toBe('byte-level');
    expect(detectPieceEncoding(sentencePieceFiles().tokenizerJson)).toBe('sentencepiece');
    expect(
      detectPieceEncoding({ model: { type: 'WordPiece', vocab: {} }, decoder: { type: 'WordPiece' } }),
    ).toBe('plain');
    expect(
      detectPieceEncoding({ model: { type: 'Unigram', vocab: [] }, decoder: { type: 'Metaspace' } }),
    ).toBe('sentencepiece');
  });
});

describe('tokenizer.json with a gap in its ids', () => {
  it('builds the vocabulary: gap ids have no piece and no surface', () => {
    const files = byteLevelFiles();
    const json = files.tokenizerJson as { added_tokens: { id: number }[] };
    const last = Math.max(...json.added_tokens.map((t) => t.id));
    json.added_tokens.push({
      id: last + 10,
      content: '<|pad|>',
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    } as never);
    const tok = createTokenizer(files);
    const v = tok.vocabulary;
    expect(v.size).toBe(last + 11);
    for (let id = last + 1; id < last + 10; id++) {
      expect(v.pieceOf(id)).toBeUndefined();
      expect(v.surfaceOf(id)).toBeUndefined();
    }
    expect(v.pieceOf(last + 10)).toBe('<|pad|>');
    expect(v.idsOf(' the')).toEqual([258]);
    expect(compileRules('hewitt2024', v).unresolved).toEqual([]);
    const ids = [258, last + 3, 286];
    expect(streamDeltas(tok, ids).text).toBe(tok.decode(ids));
  });
});
