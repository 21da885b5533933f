import type { JsonObject } from './files.js';

/**
 * How a tokenizer spells text in its vocabulary pieces:
 * - `sentencepiece`: `▁` stands for a space; with byte fallback, `<0x0A>` pieces stand for one byte
 *   (Llama-2, TinyLlama, Mistral);
 * - `byte-level`: every byte is mapped to a printable character (GPT-2's byte-to-unicode table:
 *   `Ġ` is a space, `Ċ` a newline) (GPT-2, SmolLM, OLMo, Qwen, Llama-3);
 * - `plain`: pieces are the text itself.
 *
 * @example
 * const encoding: PieceEncoding = tok.pieceEncoding; // 'sentencepiece' for Llama-2
 * pieceBytes(tok.idToToken(13)!, encoding, true); // Uint8Array [0x0a]: the piece <0x0A>
 */
export type PieceEncoding = 'sentencepiece' | 'byte-level' | 'plain';

/** Lookup priority of a vocabulary item for a surface text: lower wins (see `TokenizerVocabulary`). */
export const SurfaceTier = { regular: 0, byteFallback: 1, added: 2 } as const;
export type SurfaceTier = (typeof SurfaceTier)[keyof typeof SurfaceTier];

function components(node: unknown): JsonObject[] {
  if (typeof node !== 'object' || node === null) return [];
  const obj = node as JsonObject;
  const children = [obj.decoders, obj.pretokenizers, obj.normalizers].find(Array.isArray) as
    | unknown[]
    | undefined;
  return children ? children.flatMap(components) : [obj];
}

/**
 * Detects the piece encoding from tokenizer.json's pre-tokenizer, decoder, normalizer and model.
 *
 * @example
 * detectPieceEncoding({ model: { type: 'BPE', vocab: {}, merges: [] }, decoder: { type: 'ByteLevel' } }); // 'byte-level'
 */
export function detectPieceEncoding(tokenizerJson: JsonObject): PieceEncoding {
  const parts = [
    ...components(tokenizerJson.pre_tokenizer),
    ...components(tokenizerJson.decoder),
    ...components(tokenizerJson.normalizer),
  ];
  if (parts.some((p) => p.type === 'ByteLevel')) return 'byte-level';
  const model = tokenizerJson.model as JsonObject | undefined;
  const spaceMarker = parts.some(
    (p) =>
      p.type === 'Metaspace' ||
      (p.type === 'Replace' && JSON.stringify(p).includes('\u2581')) ||
      (p.type === 'Prepend' && p.prepend === '\u2581'),
  );
  if (spaceMarker || model?.byte_fallback === true || model?.type === 'Unigram') return 'sentencepiece';
  return 'plain';
}

let byteDecoder: Map<number, number> | undefined;

/**
 * GPT-2's byte-to-unicode table, inverted: code point of a piece character -> the byte it stands for.
 *
 * @example
 * byteLevelDecoder().get('Ġ'.codePointAt(0)!); // 32: a space
 * byteLevelDecoder().get('Ċ'.codePointAt(0)!); // 10: a newline
 */
export function byteLevelDecoder(): Map<number, number> {
  if (byteDecoder) return byteDecoder;
  const table = new Map<number, number>();
  const printable = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let next = 256;
  for (let b = 0; b < 256; b++) table.set(printable(b) ? b : next++, b);
  byteDecoder = table;
  return table;
}

// ignoreBOM: a piece holding U+FEFF (OLMo's 41497) keeps it; by default TextDecoder strips a leading BOM
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

/**
 * The bytes one vocabulary piece adds to decoded text: byte-level pieces through the GPT-2 byte
 * table, SentencePiece byte pieces (`<0xF0>`) as their byte, `▁` as a space. Unlike its text, this is
 * exact for a piece that holds part of a multi-byte character (what OpenAI's logprob `bytes` are for).
 *
 * @example
 * pieceBytes('ðŁ', 'byte-level', false); // Uint8Array [0xf0, 0x9f]
 * pieceBytes('<0xE2>', 'sentencepiece', true); // Uint8Array [0xe2]
 * pieceBytes('▁I', 'sentencepiece', true); // Uint8Array [0x20, 0x49]
 */
export function pieceBytes(piece: string, encoding: PieceEncoding, byteFallback: boolean): Uint8Array {
  if (encoding === 'byte-level') {
    const table = byteLevelDecoder();
    const out: number[] = [];
    for (const ch of piece) {
      const b = table.get(ch.codePointAt(0)!);
      if (b === undefined)
        out.push(...utf8Encoder.encode(ch)); // not a byte-level character: as text
      else out.push(b);
    }
    return Uint8Array.from(out);
  }
  if (encoding === 'sentencepiece') {
    const byte = byteFallback ? BYTE_PIECE.exec(piece) : null;
    if (byte) return Uint8Array.of(Number.parseInt(byte[1]!, 16));
    return utf8Encoder.encode(piece.replaceAll('\u2581', ' '));
  }
  return utf8Encoder.encode(piece);
}
const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;

/**
 * The surface text of one vocabulary piece and its lookup tier, or `undefined` when the piece stands
 * for no complete text: a byte-level piece whose bytes are not valid UTF-8 on their own (part of a
 * multi-byte character), or a SentencePiece byte piece above `<0x7F>`.
 *
 * @example
 * pieceSurface('▁I', 'sentencepiece', true); // { surface: ' I', tier: 0 }
 * pieceSurface('<0x0A>', 'sentencepiece', true); // { surface: '\n', tier: 1 }
 * pieceSurface('ĠI', 'byte-level', false); // { surface: ' I', tier: 0 }
 */
export function pieceSurface(
  piece: string,
  encoding: PieceEncoding,
  byteFallback: boolean,
): { surface: string; tier: SurfaceTier } | undefined {
  if (encoding === 'byte-level') {
    const table = byteLevelDecoder();
    const bytes = new Uint8Array(piece.length);
    let n = 0;
    for (const ch of piece) {
      const b = table.get(ch.codePointAt(0)!);
      if (b === undefined) return { surface: piece, tier: SurfaceTier.regular };
      bytes[n++] = b;
    }
    try {
      return { surface: utf8.decode(bytes.subarray(0, n)), tier: SurfaceTier.regular };
    } catch {
      return undefined;
    }
  }
  if (encoding === 'sentencepiece') {
    const byte = byteFallback ? BYTE_PIECE.exec(piece) : null;
    if (byte) {
      const value = Number.parseInt(byte[1]!, 16);
      return value < 0x80
        ? { surface: String.fromCharCode(value), tier: SurfaceTier.byteFallback }
        : undefined;
    }
    return { surface: piece.replaceAll('\u2581', ' '), tier: SurfaceTier.regular };
  }
  return { surface: piece, tier: SurfaceTier.regular };
}
