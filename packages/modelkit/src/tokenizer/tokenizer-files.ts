import type { ByteLevelBpe } from './train-bpe.js';

/**
 * The Tulu chat template (`<|user|>\n...\n<|assistant|>\n`), the format of the paper's models.
 *
 * @example
 * import { readFileSync } from 'node:fs';
 * const { chat_template } = JSON.parse(readFileSync(`${dir}/tokenizer_config.json`, 'utf8'));
 * chat_template === TULU_CHAT_TEMPLATE; // true for a model with the built-in tokenizer
 */
export const TULU_CHAT_TEMPLATE =
  "{% for message in messages %}{% if message['role'] == 'system' %}{{ '<|system|>\\n' + message['content'] + '\\n' }}" +
  "{% elif message['role'] == 'user' %}{{ '<|user|>\\n' + message['content'] + '\\n' }}" +
  "{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\\n' + message['content'] + eos_token + '\\n' }}{% endif %}" +
  "{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}{% endfor %}";

/** Roles of the tiny tokenizer's special tokens. */
export interface SpecialTokenRoles {
  bos: string;
  eos: string;
  pad: string;
  unk: string;
}

const BYTE_LEVEL = { add_prefix_space: false, trim_offsets: true, use_regex: true };

/**
 * The Hugging Face `tokenizer.json` of a trained byte-level BPE (loads in `tokenizers` and
 * transformers.js): ByteLevel pre-tokenizer and decoder, BPE model, special tokens as added tokens.
 *
 * @example
 * import { writeFileSync } from 'node:fs';
 * writeFileSync('tokenizer.json', JSON.stringify(tokenizerJson(trainByteLevelBpe(text))));
 */
export function tokenizerJson(bpe: ByteLevelBpe): Record<string, unknown> {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: bpe.specialTokens.map((content) => ({
      id: bpe.vocab.get(content),
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', ...BYTE_LEVEL },
    post_processor: null,
    decoder: { type: 'ByteLevel', ...BYTE_LEVEL },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(bpe.vocab),
      merges: bpe.merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}

/**
 * The `tokenizer_config.json` beside {@link tokenizerJson}: GPT-2 style (no BOS added), the Tulu chat
 * template, special tokens by role.
 *
 * @example
 * tokenizerConfigJson(bpe, { bos: '<s>', eos: '</s>', pad: '<|endoftext|>', unk: '<|endoftext|>' }, 512);
 */
export function tokenizerConfigJson(
  bpe: ByteLevelBpe,
  roles: SpecialTokenRoles,
  modelMaxLength: number,
): Record<string, unknown> {
  return {
    add_bos_token: false,
    add_eos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: Object.fromEntries(
      bpe.specialTokens.map((content) => [
        String(bpe.vocab.get(content)),
        { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true },
      ]),
    ),
    bos_token: roles.bos,
    eos_token: roles.eos,
    pad_token: roles.pad,
    unk_token: roles.unk,
    chat_template: TULU_CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    model_max_length: modelMaxLength,
    tokenizer_class: 'GPT2Tokenizer',
  };
}
