// Adapts @implicit-it/tokenizers' loadTokenizer to the encoder's EncodingTokenizer. Python parity
// for Llama's legacy=false text after special tokens lives in the tokenizers package.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { loadTokenizer, type Tokenizer } from '@implicit-it/tokenizers';
import type { EncodingTokenizer } from './encoding-tokenizer.js';
import { TokenizerLoadError } from './errors.js';

/**
 * sha256 over the tokenizer files that determine encoding (tokenizer.json, tokenizer_config.json, special_tokens_map.json).
 *
 * @example
 * const { manifest } = await readEncodedShard('jobs/res/data/train');
 * const sameTokenizer = manifest.tokenizer.hash === tokenizerDirHash('../shared/fixtures/tokenizers/llama2');
 */
export function tokenizerDirHash(dir: string): string {
  const h = createHash('sha256');
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
    const p = join(dir, f);
    if (existsSync(p)) h.update(f).update(readFileSync(p));
  }
  return h.digest('hex');
}

/**
 * Loads a local Hugging Face tokenizer directory (tokenizer.json + tokenizer_config.json) offline
 * as an {@link EncodingTokenizer}.
 *
 * @example
 * const tok = await loadEncodingTokenizer('../shared/fixtures/tokenizers/llama2');
 * tok.encode('<|user|>\n'); // [529, 29989, 1792, 29989, 29958, 13]
 */
export async function loadEncodingTokenizer(dir: string): Promise<EncodingTokenizer> {
  const abs = resolve(dir);
  if (existsSync(abs) && !statSync(abs).isDirectory())
    throw new TokenizerLoadError(
      abs,
      `is a file; pass the directory that holds the tokenizer files (${dirname(abs)})`,
    );
  if (!existsSync(join(abs, 'tokenizer.json'))) {
    throw new TokenizerLoadError(
      abs,
      'tokenizer.json not found; pass a local Hugging Face model or tokenizer directory',
    );
  }
  let tok: Tokenizer;
  try {
    tok = await loadTokenizer(abs);
  } catch (cause) {
    throw new TokenizerLoadError(abs, `cannot load the tokenizer (${(cause as Error).message})`, { cause });
  }
  const config = readJson(join(abs, 'tokenizer_config.json'));
  const bosId = tok.bosId;
  // Whether tokenizer(text) adds BOS: the config's add_bos_token when present, else what the
  // tokenizer actually does with special tokens on (the default of the runtime's tulu prompts).
  const addsBos = typeof config.add_bos_token === 'boolean' ? config.add_bos_token : tok.addsBos;
  // the eos_token Python's tokenizer has: tokenizer_config.json's, else special_tokens_map.json's
  const eosToken =
    tokenText(config.eos_token) ||
    tokenText(readJson(join(abs, 'special_tokens_map.json')).eos_token) ||
    (tok.eosIds[0] !== undefined ? tok.idToToken(tok.eosIds[0]) : undefined) ||
    eosFromModelConfig(abs);
  if (!eosToken)
    throw new TokenizerLoadError(
      abs,
      'the tokenizer has no eos_token; set eos_token in tokenizer_config.json',
    );
  return {
    encode: (text) => tok.encode(text, { addSpecialTokens: false }),
    addsBos,
    bosId,
    // no BOS (OLMo): addBos prepends the EOS token, as open-instruct does (`tokenizer.bos_token = tokenizer.eos_token`)
    bosToken: bosId !== undefined ? tok.idToToken(bosId) : eosToken,
    eosToken,
    hash: tokenizerDirHash(abs),
    name: basename(abs),
  };
}

/** A special token's text: a string, or an AddedToken object's `content`. */
function tokenText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  const content = (value as { content?: unknown } | null | undefined)?.content;
  return typeof content === 'string' ? content : undefined;
}

/** The eos token text from config.json's eos_token_id and tokenizer.json's added tokens (GPT-2 dirs often lack it in tokenizer_config.json). */
function eosFromModelConfig(dir: string): string | undefined {
  const eosId = readJson(join(dir, 'config.json')).eos_token_id;
  const added = readJson(join(dir, 'tokenizer.json')).added_tokens as
    | { id: number; content: string }[]
    | undefined;
  return added?.find((t) => t.id === eosId)?.content;
}

function readJson(path: string): Record<string, unknown> {
  try {
    return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
