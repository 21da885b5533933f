/**
 * Small tokenizers the project builds itself, so the default test run covers both tokenizer families
 * without ../shared: a byte-level BPE (GPT-2 style) and a SentencePiece-style BPE with byte fallback
 * (Llama-2 style). Each is a valid tokenizer.json that @huggingface/transformers loads.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JsonObject, TokenizerFiles } from '../../src/index.js';

export type MergeStyle = 'string' | 'pair';

/** GPT-2's byte-to-unicode table: byte -> printable character. */
export function bytesToUnicode(): string[] {
  const printable = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) table[b] = String.fromCodePoint(printable(b) ? b : next++);
  return table;
}

/** Adds left-to-right merges that build each word (already in piece spelling) from its characters. */
function addWords(vocab: Record<string, number>, merges: [string, string][], words: string[]): void {
  for (const word of words) {
    const chars = [...word];
    let left = chars[0]!;
    for (const ch of chars.slice(1)) {
      const merged = left + ch;
      if (!(merged in vocab)) {
        merges.push([left, ch]);
        vocab[merged] = Object.keys(vocab).length;
      }
      left = merged;
    }
  }
}

function serializeMerges(merges: [string, string][], style: MergeStyle): (string | [string, string])[] {
  return style === 'pair' ? merges : merges.map(([a, b]) => `${a} ${b}`);
}

const addedToken = (id: number, content: string, special: boolean) => ({
  id,
  content,
  single_word: false,
  lstrip: false,
  rstrip: false,
  normalized: !special,
  special,
});

/** Words of the byte-level tokenizer, in surface text. */
export const BYTE_LEVEL_WORDS = [
  ' the',
  ' I',
  ' should',
  'What',
  ' We',
  ' <',
  ' *',
  ' -',
  ' #',
  ' ##',
  '   ',
  'hello',
  ' world',
  '\n\n',
  '世',
  ' Give',
  ' me',
  ' recipe',
];

export const CHATML_TEMPLATE =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/**
 * A byte-level BPE tokenizer (GPT-2 style): 256 byte pieces, merges for `BYTE_LEVEL_WORDS`, and
 * added tokens `<|endoftext|>`, `<|im_start|>`, `<|im_end|>` (special) and a non-special 3-space token.
 */
export function byteLevelFiles(style: MergeStyle = 'string'): TokenizerFiles {
  const table = bytesToUnicode();
  const vocab: Record<string, number> = {};
  table.forEach((ch) => {
    vocab[ch] = Object.keys(vocab).length;
  });
  const merges: [string, string][] = [];
  const spell = (text: string) => [...new TextEncoder().encode(text)].map((b) => table[b]).join('');
  addWords(vocab, merges, BYTE_LEVEL_WORDS.map(spell));
  const base = Object.keys(vocab).length;
  const tokenizerJson: JsonObject = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      addedToken(base, '<|endoftext|>', true),
      addedToken(base + 1, '<|im_start|>', true),
      addedToken(base + 2, '<|im_end|>', true),
      addedToken(base + 3, '   ', false),
    ],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: serializeMerges(merges, style),
    },
  };
  return {
    source: `built:byte-level-${style}`,
    tokenizerJson,
    tokenizerConfig: {
      tokenizer_class: 'GPT2Tokenizer',
      bos_token: '<|im_start|>',
      eos_token: '<|im_end|>',
      unk_token: '<|endoftext|>',
      chat_template: CHATML_TEMPLATE,
      clean_up_tokenization_spaces: false,
    },
  };
}

/** Words of the SentencePiece-style tokenizer, in surface text (a space is `▁`). */
export const SENTENCEPIECE_WORDS = [
  ' I',
  ' the',
  ' Hello',
  ' world',
  '   ',
  ' <',
  'What',
  ' should',
  ' Give',
];
const SP_CHARS = [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!<|>.,?*-#'];

/**
 * A SentencePiece-style BPE with byte fallback (Llama-2 style): `<unk>` 0, `<s>` 1, `</s>` 2, byte
 * pieces `<0x00>`..`<0xFF>` at 3..258, `▁`, ASCII letters and some punctuation (including `!`, so `!`
 * has a regular piece and a byte piece), merges for `SENTENCEPIECE_WORDS`. A newline, CJK and emoji
 * are only representable as bytes.
 */
export function sentencePieceFiles(style: MergeStyle = 'pair'): TokenizerFiles {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  for (const ch of ['\u2581', ...SP_CHARS]) vocab[ch] = Object.keys(vocab).length;
  const merges: [string, string][] = [];
  addWords(
    vocab,
    merges,
    SENTENCEPIECE_WORDS.map((w) => w.replaceAll(' ', '\u2581')),
  );
  const tokenizerJson: JsonObject = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [addedToken(0, '<unk>', true), addedToken(1, '<s>', true), addedToken(2, '</s>', true)],
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '\u2581' },
        { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<s>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '\u2581' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges: serializeMerges(merges, style),
    },
  };
  return {
    source: `built:sentencepiece-${style}`,
    tokenizerJson,
    tokenizerConfig: {
      tokenizer_class: 'LlamaTokenizer',
      bos_token: '<s>',
      eos_token: '</s>',
      unk_token: '<unk>',
      add_bos_token: true,
      legacy: false,
    },
  };
}

/** Writes tokenizer files to a fresh temporary directory (or `dir`) in the Hugging Face layout. */
export function writeTokenizerDir(files: TokenizerFiles, dir?: string): string {
  const target = dir ?? mkdtempSync(join(tmpdir(), 'implicit-it-tok-'));
  mkdirSync(target, { recursive: true });
  const write = (name: string, value: unknown) =>
    writeFileSync(join(target, name), typeof value === 'string' ? value : JSON.stringify(value, null, 2));
  write('tokenizer.json', files.tokenizerJson);
  if (files.tokenizerConfig) write('tokenizer_config.json', files.tokenizerConfig);
  if (files.specialTokensMap) write('special_tokens_map.json', files.specialTokensMap);
  if (files.generationConfig) write('generation_config.json', files.generationConfig);
  if (files.chatTemplate !== undefined) write('chat_template.jinja', files.chatTemplate);
  return target;
}
