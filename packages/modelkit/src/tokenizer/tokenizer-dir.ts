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
 * Reads a Hugging Face tokenizer directory (e.g. `../shared/fixtures/tokenizers/smollm`): its files to
 * copy, its vocabulary size (highest id + 1, added tokens included) and the ids of its BOS/EOS/PAD tokens
 * named in `tokenizer_config.json`.
 *
 * @example
 * readTokenizerDir('../shared/fixtures/tokenizers/smollm').vocabSize; // 49152
 */
export function readTokenizerDir(dir: string): TokenizerFiles {
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
  for (const added of (tok.added_tokens as { id: number; content: string }[] | undefined) ?? []) {
    ids.set(added.content, added.id);
  }
  let vocabSize = 0;
  for (const id of ids.values()) vocabSize = Math.max(vocabSize, id + 1);

  const files: TokenizerFiles['files'] = {};
  for (const name of TOKENIZER_FILE_NAMES) {
    const file = join(dir, name);
    if (existsSync(file)) files[name] = { path: file };
  }
  const configFile = join(dir, 'tokenizer_config.json');
  const config = existsSync(configFile) ? readJson(configFile) : {};
  const idOf = (key: string): number | null => {
    const content = tokenContent(config[key]);
    return content !== undefined ? (ids.get(content) ?? null) : null;
  };
  return {
    files,
    vocabSize,
    bosTokenId: idOf('bos_token'),
    noBos: config.bos_token === null,
    eosTokenId: idOf('eos_token'),
    padTokenId: idOf('pad_token') ?? idOf('eos_token'),
  };
}
