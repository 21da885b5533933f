import { type EncodedExample, encodeMessages } from './encode-messages.js';
import { type ShardManifest, writeEncodedShard } from './encoded-shard.js';
import type { EncodingTokenizer } from './encoding-tokenizer.js';
import { FinetuneOptionError } from './errors.js';
import type { ChatExample } from './messages.js';

/**
 * Options of {@link encodeDataset}.
 *
 * @example
 * const options: EncodeDatasetOptions = { examples, tokenizer, recipe: 'mbpp', split: 'validation', maxSeqLength: 1024 };
 * const { dropped, truncated } = await encodeDataset(options);
 */
export interface EncodeDatasetOptions {
  examples: ChatExample[];
  tokenizer: EncodingTokenizer;
  /** Recipe name recorded in the manifest. */
  recipe: string;
  split?: 'train' | 'validation' | undefined;
  /** Default 2048 (the paper). */
  maxSeqLength?: number | undefined;
  addBos?: boolean | undefined;
  /** Write a shard here; nothing is written when omitted. */
  outDir?: string | undefined;
  /** Called every 100 examples and at the end. */
  onProgress?: ((done: number, total: number) => void) | undefined;
}

/**
 * What {@link encodeDataset} produced.
 *
 * @example
 * const result: EncodeDatasetResult = await encodeDataset({ examples, tokenizer, recipe: 'gsm' });
 * console.log(`${result.trainedTokens} of ${result.tokens} tokens carry loss; ${result.dropped.length} dropped`);
 */
export interface EncodeDatasetResult {
  /** Kept examples (at least one trained token), in input order. */
  encoded: EncodedExample[];
  /** Ids dropped because truncation left no trained token. */
  dropped: string[];
  tokens: number;
  trainedTokens: number;
  truncated: number;
  manifest?: ShardManifest;
}

/**
 * Encodes examples with loss masks, drops those without any trained token (open-instruct filters
 * `(labels != -100).any()`), and optionally writes a shard with its manifest.
 *
 * @example
 * const { encoded } = await encodeDataset({ examples, tokenizer, recipe: 'gsm', outDir: 'out/gsm' });
 */
export async function encodeDataset(options: EncodeDatasetOptions): Promise<EncodeDatasetResult> {
  const { examples, tokenizer, recipe, split = 'train', maxSeqLength = 2048, addBos = false } = options;
  if (!Number.isInteger(maxSeqLength) || maxSeqLength < 2) {
    throw new FinetuneOptionError('maxSeqLength', `must be an integer >= 2, got ${maxSeqLength}`);
  }
  const encoded: EncodedExample[] = [];
  const dropped: string[] = [];
  examples.forEach((ex, i) => {
    const e = encodeMessages(ex, tokenizer, { maxSeqLength, addBos });
    if (e.trainedTokens > 0) encoded.push(e);
    else dropped.push(e.id);
    if ((i + 1) % 100 === 0 || i + 1 === examples.length) options.onProgress?.(i + 1, examples.length);
  });
  const result: EncodeDatasetResult = {
    encoded,
    dropped,
    tokens: encoded.reduce((n, e) => n + e.inputIds.length, 0),
    trainedTokens: encoded.reduce((n, e) => n + e.trainedTokens, 0),
    truncated: encoded.filter((e) => e.truncated).length,
  };
  if (options.outDir) {
    result.manifest = await writeEncodedShard(options.outDir, encoded, {
      recipe,
      split,
      dropped,
      maxSeqLength,
      addBos,
      tokenizer: {
        name: tokenizer.name,
        hash: tokenizer.hash,
        addsBos: tokenizer.addsBos,
        bosId: tokenizer.bosId,
        eosToken: tokenizer.eosToken,
      },
    });
  }
  return result;
}
