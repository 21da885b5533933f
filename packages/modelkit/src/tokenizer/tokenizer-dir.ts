import { existsSync, readFileSync } from 'node:fs';
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

function readJson(file: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (error) {
    throw new ModelTokenizerError(
      file,
      `is not valid JSON (${(error as Error).message}); fix or replace the file`,
    );
  }
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
 * Reads a Hugging Face tokenizer directory (e.g. `../shared/fixtures/tokenizers/smollm`): its files to
 * copy, its vocabulary size (highest id + 1, added tokens included) and the ids of its special tokens,
 * as `@implicit-it/tokenizers` resolves them. The two files' entries are read as transformers reads
 * them: a `tokenizer_config.json` with `added_tokens_decoder` alone, an older one with
 * `special_tokens_map.json`'s entries in place of its own. EOS: `eos_token`, else the first of {@link CONVENTIONAL_EOS_TOKENS} that tokenizer.json has
 * as a special token (GPT-2's and OLMo's `<|endoftext|>`), else none. BOS: `bos_token` the same way
 * (none where the entry read is `null`), else the special token tokenizer.json's post-processor
 * puts first (Llama's `<s>`, inside a `Sequence` too), else none. PAD: `pad_token`, else the EOS. A directory
 * without `tokenizer_config.json` gets one naming these tokens (transformers.js needs the file).
 *
 * @example
 * readTokenizerDir('../shared/fixtures/tokenizers/smollm').vocabSize; // 49152
 */
export function readTokenizerDir(dir: string, modelMaxLength?: number): TokenizerFiles {
  const tokFile = join(dir, 'tokenizer.json');
  if (!existsSync(tokFile)) {
    throw new ModelTokenizerError(tokFile, 'not found; tokenizerDir must hold a Hugging Face tokenizer.json');
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
  const special = new Set<string>();
  for (const added of (tok.added_tokens as
    | { id: number; content: string; special?: boolean }[]
    | undefined) ?? []) {
    ids.set(added.content, added.id);
    if (added.special === true) special.add(added.content);
  }
  let vocabSize = 0;
  for (const id of ids.values()) vocabSize = Math.max(vocabSize, id + 1);

  const files: TokenizerFiles['files'] = {};
  for (const name of TOKENIZER_FILE_NAMES) {
    const file = join(dir, name);
    if (existsSync(file)) files[name] = { path: file };
  }
  const configFile = join(dir, 'tokenizer_config.json');
  const config = existsSync(configFile) ? readJson(configFile) : undefined;
  const mapFile = join(dir, 'special_tokens_map.json');
  const map = existsSync(mapFile) ? readJson(mapFile) : undefined;
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
  const eos = named('eos_token') ?? byName(CONVENTIONAL_EOS_TOKENS.find((t) => special.has(t)));
  const noBos = entry('bos_token')?.value === null;
  const bos = noBos ? undefined : (named('bos_token') ?? byName(templateBos(tok.post_processor)));
  const pad = named('pad_token') ?? eos;
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
