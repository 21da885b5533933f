import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ModelTokenizerError } from '../errors.js';
import type { TokenizerFiles } from './tiny-tokenizer.js';

/** Tokenizer files copied from a given directory when present (config.json is never copied). */
export const TOKENIZER_FILE_NAMES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'vocab.json',
  'merges.txt',
  'tokenizer.model',
  'added_tokens.json',
  'chat_template.jinja',
  'chat_template.json',
];

const LFS_POINTER = 'version https://git-lfs.github.com/spec/';

function readJson(file: string): Record<string, unknown> {
  const text = readFileSync(file, 'utf8');
  if (text.startsWith(LFS_POINTER)) {
    const size = /^size (\d+)$/m.exec(text)?.[1];
    throw new ModelTokenizerError(
      file,
      `is a Git LFS pointer${size === undefined ? '' : ` (to a file of ${size} bytes)`}, not the file itself; ` +
        'fetch it (git lfs pull in the clone, or download it from the model repository)',
    );
  }
  if (text.startsWith('\ufeff')) {
    throw new ModelTokenizerError(
      file,
      "starts with a UTF-8 byte order mark, which JSON readers (Python's json, Rust's serde_json) refuse; save it as UTF-8 without BOM",
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ModelTokenizerError(
      file,
      `is not valid JSON (${(error as Error).message}); fix or replace the file`,
    );
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ModelTokenizerError(
      file,
      `must hold a JSON object, found ${JSON.stringify(value).slice(0, 40)}`,
    );
  }
  return value as Record<string, unknown>;
}

function tokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') {
    return (v as { content: string }).content;
  }
  return undefined;
}

/**
 * EOS tokens tried, in this order, when no config file names the EOS token: the first that
 * tokenizer.json has as a special added token (as `@implicit-it/tokenizers` resolves them).
 *
 * @example
 * const special = ['<|endoftext|>', '<|im_start|>', '<|im_end|>']; // Qwen2.5's added tokens
 * CONVENTIONAL_EOS_TOKENS.find((t) => special.includes(t)); // '<|endoftext|>'
 */
export const CONVENTIONAL_EOS_TOKENS = ['</s>', '<|endoftext|>', '<|end_of_text|>', '<|im_end|>', '<eos>'];

/**
 * The Python fast tokenizers whose files may leave their BOS and EOS unnamed: the class's defaults
 * apply then (by `tokenizer_class` without its `Fast`; as `@implicit-it/tokenizers` reads them).
 */
const CLASS_DEFAULTS: Readonly<Record<string, { bos: string; eos: string }>> = {
  LlamaTokenizer: { bos: '<s>', eos: '</s>' },
  CodeLlamaTokenizer: { bos: '<s>', eos: '</s>' },
  GemmaTokenizer: { bos: '<bos>', eos: '<eos>' },
  CohereTokenizer: { bos: '<BOS_TOKEN>', eos: '<|END_OF_TURN_TOKEN|>' },
  GPTNeoXTokenizer: { bos: '<|endoftext|>', eos: '<|endoftext|>' },
};

/**
 * Reads a Hugging Face tokenizer directory (e.g. `../shared/fixtures/tokenizers/smollm`): its files to
 * copy, its vocabulary size (highest id + 1, added tokens included) and the ids of its special tokens,
 * as `@implicit-it/tokenizers` resolves them. The two files' entries are read as transformers reads
 * them: a `tokenizer_config.json` with `added_tokens_decoder` alone, an older one with
 * `special_tokens_map.json`'s entries in place of its own. EOS: `generation_config.json`'s
 * `eos_token_id` (the first of a list), else `eos_token`, else the default of a Llama, Gemma, Cohere
 * or GPT-NeoX `tokenizer_class` where the files leave `eos_token` out, else the first of
 * {@link CONVENTIONAL_EOS_TOKENS} that tokenizer.json has as a special token (GPT-2's and OLMo's
 * `<|endoftext|>`), else none. BOS: none where the `bos_token` entry read is `null`; else
 * `bos_token`, else the class's default, else the special token tokenizer.json's post-processor puts
 * first (Llama's `<s>`, inside a `Sequence` too), else `generation_config.json`'s `bos_token_id`
 * (GPT-2's), else none. PAD: `generation_config.json`'s `pad_token_id` (-1 meaning none), else
 * `pad_token`, else the EOS. A directory without `tokenizer_config.json` gets one naming these tokens
 * (transformers.js needs the file). generation_config.json itself is not copied: the model gets its
 * own, with these ids.
 *
 * @example
 * readTokenizerDir('../shared/fixtures/tokenizers/smollm').vocabSize; // 49152
 */
export function readTokenizerDir(dir: string, modelMaxLength?: number): TokenizerFiles {
  const tokFile = join(dir, 'tokenizer.json');
  if (!existsSync(tokFile)) {
    const what = existsSync(dir) ? (statSync(dir).isDirectory() ? undefined : 'a file') : 'missing';
    throw new ModelTokenizerError(
      what === undefined ? tokFile : dir,
      what === undefined
        ? 'not found; tokenizerDir must hold a Hugging Face tokenizer.json'
        : `is ${what}; tokenizerDir must be a directory holding a Hugging Face tokenizer.json`,
    );
  }
  const tok = readJson(tokFile);
  const ids = new Map<string, number>();
  const model = tok.model as { vocab?: unknown } | undefined;
  if (model && Array.isArray(model.vocab)) {
    model.vocab.forEach((entry, id) => {
      if (Array.isArray(entry) && typeof entry[0] === 'string') ids.set(entry[0], id);
    });
  } else if (model?.vocab && typeof model.vocab === 'object') {
    for (const [token, id] of Object.entries(model.vocab as Record<string, number>)) ids.set(token, id);
  } else {
    throw new ModelTokenizerError(
      tokFile,
      'has no model.vocab; use a BPE, WordPiece or Unigram tokenizer.json',
    );
  }
  const added = tok.added_tokens ?? [];
  if (!Array.isArray(added)) {
    throw new ModelTokenizerError(
      tokFile,
      `added_tokens must be a list of { id, content, special } entries, found ${JSON.stringify(added).slice(0, 40)}`,
    );
  }
  const special = new Set<string>();
  for (const entry of added as { id?: unknown; content?: unknown; special?: unknown }[]) {
    if (typeof entry?.content !== 'string' || !Number.isInteger(entry.id) || (entry.id as number) < 0) {
      throw new ModelTokenizerError(
        tokFile,
        `added_tokens entries must have a string content and an integer id, found ${JSON.stringify(entry).slice(0, 60)}`,
      );
    }
    ids.set(entry.content, entry.id as number);
    if (entry.special === true) special.add(entry.content);
  }
  let vocabSize = 0;
  for (const id of ids.values()) vocabSize = Math.max(vocabSize, id + 1);

  const files: TokenizerFiles['files'] = {};
  for (const name of TOKENIZER_FILE_NAMES) {
    const file = join(dir, name);
    if (existsSync(file)) files[name] = { path: file };
  }
  const optionalJson = (name: string) => {
    const file = join(dir, name);
    return { file, json: existsSync(file) ? readJson(file) : undefined };
  };
  const { file: configFile, json: config } = optionalJson('tokenizer_config.json');
  const { file: mapFile, json: map } = optionalJson('special_tokens_map.json');
  const { file: generationFile, json: generation } = optionalJson('generation_config.json');
  // the entry for a role as transformers' `_from_pretrained` reads the two files (as
  // @implicit-it/tokenizers does): a tokenizer_config.json with `added_tokens_decoder` (transformers
  // 4.34 or later) alone, so an explicit null there means none; an older one with
  // special_tokens_map.json's entries in place of its own; a key the config leaves out, the map's
  const entry = (key: string): { file: string; value: unknown } | undefined => {
    const inConfig = config?.[key] !== undefined;
    const inMap = map?.[key] !== undefined;
    if (inConfig && (config?.added_tokens_decoder !== undefined || !inMap)) {
      return { file: configFile, value: config![key] };
    }
    return inMap ? { file: mapFile, value: map![key] } : undefined;
  };
  // the token the files name for a role, and its id (a token tokenizer.json lacks is refused)
  const named = (key: string): { token: string; id: number } | undefined => {
    const found = entry(key);
    const token = tokenContent(found?.value);
    if (found === undefined || token === undefined) return undefined;
    const id = ids.get(token);
    if (id === undefined) {
      throw new ModelTokenizerError(
        found.file,
        `${key} ${JSON.stringify(token)} is not a token of tokenizer.json; fix the field or remove it`,
      );
    }
    return { token, id };
  };
  const byName = (token: string | undefined) =>
    token === undefined || ids.get(token) === undefined ? undefined : { token, id: ids.get(token)! };
  // generation_config.json's id for a role (the first of a list); -1 (LLaMA-1 conversions' pad) is none
  const generationId = (key: string): { token: string | null; id: number } | undefined => {
    const value = generation?.[key];
    if (value === undefined || value === null || value === -1) return undefined;
    const list = Array.isArray(value) ? value : [value];
    for (const id of list) {
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
        throw new ModelTokenizerError(
          generationFile,
          `${key} must be a token id or a list of token ids in [0, ${vocabSize}), found ${JSON.stringify(value)}`,
        );
      }
    }
    if (list.length === 0) return undefined;
    // the id's token, for a tokenizer_config.json written here: looked up only for the ids used
    const token = [...ids].find(([, id]) => id === list[0])?.[0] ?? null;
    return { token, id: list[0] };
  };
  const className = String(config?.tokenizer_class ?? '').replace(/Fast$/, '');
  const defaults = Object.hasOwn(CLASS_DEFAULTS, className) ? CLASS_DEFAULTS[className] : undefined;
  const eos =
    generationId('eos_token_id') ??
    named('eos_token') ??
    (entry('eos_token') === undefined ? byName(defaults?.eos) : undefined) ??
    byName(CONVENTIONAL_EOS_TOKENS.find((t) => special.has(t)));
  const noBos = entry('bos_token')?.value === null;
  const bos = noBos
    ? undefined
    : (named('bos_token') ??
      byName(defaults?.bos) ??
      byName(templateBos(tok.post_processor)) ??
      generationId('bos_token_id'));
  const pad = generationId('pad_token_id') ?? named('pad_token') ?? eos;
  if (config === undefined) {
    // as the tiny tokenizer's: transformers.js' AutoTokenizer reads tokenizer_config.json
    const written = {
      bos_token: bos?.token ?? null,
      eos_token: eos?.token ?? null,
      pad_token: pad?.token ?? null,
      clean_up_tokenization_spaces: false,
      ...(modelMaxLength === undefined ? {} : { model_max_length: modelMaxLength }),
      tokenizer_class: 'PreTrainedTokenizerFast',
    };
    files['tokenizer_config.json'] = `${JSON.stringify(written, null, 2)}\n`;
  }
  return {
    files,
    vocabSize,
    bosTokenId: bos?.id ?? null,
    noBos: noBos || bos === undefined,
    eosTokenId: eos?.id ?? null,
    padTokenId: pad?.id ?? null,
  };
}

/**
 * The special token tokenizer.json's post-processor puts first (Llama's `<s>`), if any, looked for
 * inside a `Sequence` post-processor too (Llama-3: `[ByteLevel, TemplateProcessing]`); of several
 * templates that start with one, the last, which prepends its token before the earlier ones' output.
 */
function templateBos(post: unknown): string | undefined {
  const processor = post as { type?: unknown; processors?: unknown; single?: unknown } | null | undefined;
  if (processor?.type === 'Sequence' && Array.isArray(processor.processors)) {
    let found: string | undefined;
    for (const inner of processor.processors) found = templateBos(inner) ?? found;
    return found;
  }
  const first = Array.isArray(processor?.single)
    ? (processor.single[0] as Record<string, unknown> | undefined)
    : undefined;
  const special = first?.SpecialToken as { id?: unknown } | undefined;
  return typeof special?.id === 'string' ? special.id : undefined;
}
