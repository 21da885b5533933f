// Stopgap: loads a tokenizer with @huggingface/transformers until @implicit-it/tokenizers lands on
// main; then this file switches to that package's loadTokenizer and nothing else changes.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { EncodingTokenizer } from './encoding-tokenizer.js';
import { TokenizerLoadError } from './errors.js';

/** sha256 over the tokenizer files that determine encoding (tokenizer.json, tokenizer_config.json, special_tokens_map.json). */
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
  if (!existsSync(join(abs, 'tokenizer.json'))) {
    throw new TokenizerLoadError(
      abs,
      'tokenizer.json not found; pass a local Hugging Face model or tokenizer directory',
    );
  }
  let tok: HfTokenizer;
  try {
    const { AutoTokenizer, env } = await import('@huggingface/transformers');
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = `${dirname(abs)}/`;
    tok = (await AutoTokenizer.from_pretrained(basename(abs))) as unknown as HfTokenizer;
  } catch (cause) {
    throw new TokenizerLoadError(abs, `cannot load the tokenizer (${(cause as Error).message})`, { cause });
  }
  const config = readJson(join(abs, 'tokenizer_config.json'));
  const bosId = tok.bos_token_id ?? undefined;
  // Whether tokenizer(text) adds BOS: the config's add_bos_token when present, else what the
  // tokenizer actually does with special tokens on.
  const probe = tok.encode('a', { add_special_tokens: true });
  const addsBos =
    typeof config.add_bos_token === 'boolean'
      ? config.add_bos_token
      : bosId !== undefined && probe[0] === bosId;
  const eosToken = tok.eos_token;
  if (!eosToken)
    throw new TokenizerLoadError(
      abs,
      'the tokenizer has no eos_token; set eos_token in tokenizer_config.json',
    );
  return {
    encode: (text) => tok.encode(text, { add_special_tokens: false }),
    addsBos,
    bosId,
    bosToken: tok.bos_token ?? undefined,
    eosToken,
    hash: tokenizerDirHash(abs),
    name: basename(abs),
  };
}

interface HfTokenizer {
  encode(text: string, options?: { add_special_tokens?: boolean }): number[];
  bos_token_id?: number | null;
  bos_token?: string | null;
  eos_token: string;
}

function readJson(path: string): Record<string, unknown> {
  try {
    return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
