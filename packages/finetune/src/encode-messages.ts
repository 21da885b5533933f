import { pythonStrip } from '@implicit-it/rules';
import { ASSISTANT_TAG, concatMessages } from './chat-format.js';
import type { EncodingTokenizer } from './encoding-tokenizer.js';
import { EncodeError } from './errors.js';
import type { ChatExample } from './messages.js';

/**
 * The label of a token that carries no loss (PyTorch's CrossEntropyLoss ignore_index).
 *
 * @example
 * const { inputIds, labels } = encodeMessages(example, tokenizer, { maxSeqLength: 2048 });
 * const response = inputIds.filter((_, i) => labels[i] !== IGNORE_INDEX); // the tokens trained on
 */
export const IGNORE_INDEX = -100;

/**
 * Options of {@link encodeMessages}.
 *
 * @example
 * const olmo = await loadEncodingTokenizer('../shared/fixtures/tokenizers/olmo');
 * const options: EncodeOptions = { maxSeqLength: 2048, addBos: true }; // OLMo adds no BOS of its own
 * encodeMessages(example, olmo, options).inputIds[0]; // 50279, its <|endoftext|> in front
 */
export interface EncodeOptions {
  /** Truncation length in tokens, BOS included (the paper: 2048). */
  maxSeqLength: number;
  /** Force the BOS text in front (open-instruct's `--add_bos`, for tokenizers that add none, e.g. OLMo). Default false. */
  addBos?: boolean | undefined;
}

/**
 * One encoded example: ids and labels of equal length (labels are ids or -100).
 *
 * @example
 * const enc: EncodedExample = encodeMessages(example, tokenizer, { maxSeqLength: 2048 });
 * if (enc.truncated) console.warn(`${enc.id}: cut at 2048 tokens, ${enc.trainedTokens} still trained`);
 */
export interface EncodedExample {
  id: string;
  inputIds: number[];
  labels: number[];
  /** Tokens with a label (not -100). */
  trainedTokens: number;
  /** Whether the text was cut at `maxSeqLength`. */
  truncated: boolean;
}

/**
 * Encodes one example exactly as open-instruct's `encode_with_messages_format` (the paper's
 * training code): the Tulu text of all messages, stripped, tokenized with the tokenizer's own BOS
 * and cut at `maxSeqLength`; labels are -100 on every token of system/user messages and on the
 * `<|assistant|>\n` tag that follows them.
 *
 * Quirks kept on purpose, to train on the same tokens the paper did:
 * - mask boundaries are the token counts of separately tokenized (unstripped) message prefixes, not
 *   offsets into the full tokenization;
 * - with `addBos`, the prefixes are tokenized without the forced BOS, so every boundary sits one
 *   token early (open-instruct only used add_bos for OLMo);
 * - masking stops at the first boundary at or past `maxSeqLength`.
 *
 * @example
 * const enc = encodeMessages(example, tokenizer, { maxSeqLength: 2048 });
 * enc.labels.filter((l) => l !== -100).length === enc.trainedTokens; // true
 */
export function encodeMessages(
  example: ChatExample,
  tokenizer: EncodingTokenizer,
  options: EncodeOptions,
): EncodedExample {
  const { maxSeqLength, addBos = false } = options;
  const { messages } = example;
  if (messages.length === 0)
    throw new EncodeError(example.id, 'messages', 'is empty; an example needs at least one message');
  if (tokenizer.addsBos && tokenizer.bosId === undefined) {
    throw new EncodeError(example.id, 'tokenizer.bosId', 'the tokenizer adds BOS but has no bosId');
  }
  const bos = tokenizer.addsBos ? [tokenizer.bosId!] : [];
  // tokenizer(text, max_length=maxSeqLength, truncation=True) with special tokens on.
  const tokenCount = (text: string) => Math.min(maxSeqLength, bos.length + tokenizer.encode(text).length);

  let text = pythonStrip(concatMessages(messages, tokenizer.eosToken, example.id));
  if (addBos) {
    if (!tokenizer.bosToken)
      throw new EncodeError(example.id, 'addBos', 'the tokenizer has no bos token text');
    text = tokenizer.bosToken + text;
  }
  const full = [...bos, ...tokenizer.encode(text)];
  const inputIds = full.slice(0, maxSeqLength);
  const labels = inputIds.slice();

  for (let i = 0; i < messages.length; i++) {
    if (messages[i]!.role === 'assistant') continue;
    const start =
      i === 0 ? 0 : tokenCount(concatMessages(messages.slice(0, i), tokenizer.eosToken, example.id));
    const upTo = concatMessages(messages.slice(0, i + 1), tokenizer.eosToken, example.id);
    const end = tokenCount(messages[i + 1]?.role === 'assistant' ? upTo + ASSISTANT_TAG : upTo);
    for (let t = start; t < Math.min(end, labels.length); t++) labels[t] = IGNORE_INDEX;
    if (end >= maxSeqLength) break;
  }
  let trainedTokens = 0;
  for (const l of labels) if (l !== IGNORE_INDEX) trainedTokens++;
  return { id: example.id, inputIds, labels, trainedTokens, truncated: full.length > maxSeqLength };
}
