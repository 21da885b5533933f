/**
 * GPT-2's reversible map from bytes to printable characters (`bytes_to_unicode`): printable Latin-1
 * bytes map to themselves, the rest to U+0100 upwards (space becomes `Ġ`).
 */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const table = new Array<string>(256);
  bs.forEach((b, i) => {
    table[b] = String.fromCodePoint(cs[i]!);
  });
  return table;
}

/** The pre-tokenization pattern of Hugging Face's ByteLevel pre-tokenizer (`use_regex: true`). */
export const BYTE_LEVEL_PATTERN =
  /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** Splits text as the ByteLevel pre-tokenizer does and maps each piece's UTF-8 bytes to characters. */
export function byteLevelPieces(text: string, table: string[] = bytesToUnicode()): string[] {
  const encoder = new TextEncoder();
  return (text.match(BYTE_LEVEL_PATTERN) ?? []).map((piece) =>
    Array.from(encoder.encode(piece), (b) => table[b]!).join(''),
  );
}
