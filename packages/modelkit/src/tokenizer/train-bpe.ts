import { ModelConfigError } from '../errors.js';
import { byteLevelPieces, bytesToUnicode } from './byte-level.js';

/**
 * A trained byte-level BPE tokenizer: special tokens first, then the 256 byte symbols, then merges.
 *
 * @example
 * const bpe: ByteLevelBpe = trainByteLevelBpe(BUILTIN_CORPUS);
 * bpe.vocab.get('<s>'); // 1
 */
export interface ByteLevelBpe {
  /** Token string (byte-level characters) to id, special tokens included. */
  vocab: Map<string, number>;
  /** Merges in rank order, each as the two symbols merged. */
  merges: [string, string][];
  /** Special tokens (added tokens), with ids 0..n-1. */
  specialTokens: string[];
}

/**
 * Options of {@link trainByteLevelBpe}.
 *
 * @example
 * const options: TrainBpeOptions = { merges: 1000, specialTokens: ['<pad>', '</s>'] };
 * const bpe = trainByteLevelBpe(text, options);
 */
export interface TrainBpeOptions {
  /** Number of merges to learn (fewer when no pair occurs twice any more); default 253 (512 ids with 3 specials). */
  merges?: number | undefined;
  /** Added special tokens, ids 0..n-1; default `<|endoftext|>`, `<s>`, `</s>`. */
  specialTokens?: string[] | undefined;
}

/**
 * The default special tokens of the tiny tokenizer.
 *
 * @example
 * trainByteLevelBpe(text, { specialTokens: [...DEFAULT_SPECIAL_TOKENS, '<|user|>'] });
 */
export const DEFAULT_SPECIAL_TOKENS = ['<|endoftext|>', '<s>', '</s>'];

/**
 * Trains a byte-level BPE tokenizer (GPT-2 style, as Hugging Face `tokenizers` does) on `text`:
 * deterministic (ties broken by the pair's text). Special tokens are removed from the training text.
 *
 * @example
 * const bpe = trainByteLevelBpe('hello hello world', { merges: 5 });
 * bpe.vocab.size; // 263: 3 special tokens, 256 bytes and 4 merges (then no pair occurs twice)
 */
export function trainByteLevelBpe(text: string, options: TrainBpeOptions = {}): ByteLevelBpe {
  const specialTokens = options.specialTokens ?? DEFAULT_SPECIAL_TOKENS;
  const target = options.merges ?? 253;
  if (!Number.isInteger(target) || target < 0) {
    throw new ModelConfigError('merges', `must be a non-negative integer, got ${target}`);
  }
  let clean = text;
  for (const s of specialTokens) clean = clean.split(s).join('\n');
  const table = bytesToUnicode();
  const vocab = new Map<string, number>();
  for (const s of specialTokens) vocab.set(s, vocab.size);
  for (let b = 0; b < 256; b++) vocab.set(table[b]!, vocab.size);

  const counts = new Map<string, number>();
  for (const piece of byteLevelPieces(clean, table)) counts.set(piece, (counts.get(piece) ?? 0) + 1);
  const words = [...counts.entries()].map(([w, count]) => ({ symbols: Array.from(w), count }));

  const merges: [string, string][] = [];
  while (merges.length < target) {
    const pairs = new Map<string, number>();
    for (const { symbols, count } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = `${symbols[i]} ${symbols[i + 1]}`;
        pairs.set(key, (pairs.get(key) ?? 0) + count);
      }
    }
    let best: string | undefined;
    let bestCount = 1;
    for (const [key, count] of pairs) {
      if (count > bestCount || (count === bestCount && best !== undefined && key < best)) {
        best = key;
        bestCount = count;
      }
    }
    if (best === undefined) break;
    const [a, b] = best.split(' ') as [string, string];
    const merged = a + b;
    merges.push([a, b]);
    if (!vocab.has(merged)) vocab.set(merged, vocab.size);
    for (const word of words) {
      const s = word.symbols;
      const out: string[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          out.push(merged);
          i++;
        } else out.push(s[i]!);
      }
      word.symbols = out;
    }
  }
  return { vocab, merges, specialTokens };
}
