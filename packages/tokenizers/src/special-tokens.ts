import { join } from 'node:path';
import { TokenizerLoadError } from './errors.js';
import type { JsonObject, TokenizerFiles } from './files.js';

/** Special ids of a tokenizer and where each came from (a file and field, for diagnostics). */
export interface SpecialIds {
  eosIds: number[];
  eosSource: string | undefined;
  bosId: number | undefined;
  padId: number;
}

/** EOS names tried, in this order, when no config file names the EOS token. */
export const CONVENTIONAL_EOS_TOKENS = ['</s>', '<|endoftext|>', '<|end_of_text|>', '<|im_end|>', '<eos>'];

interface Lookup {
  size: number;
  tokenToId(token: string): number | undefined;
}

function tokenField(
  files: TokenizerFiles,
  file: 'tokenizer_config.json' | 'special_tokens_map.json',
  key: string,
) {
  const json: JsonObject | undefined =
    file === 'tokenizer_config.json' ? files.tokenizerConfig : files.specialTokensMap;
  const value = json?.[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && typeof (value as JsonObject).content === 'string') {
    return (value as JsonObject).content as string;
  }
  throw new TokenizerLoadError(
    'tokenizers.malformed_file',
    join(files.source, file),
    `must be a token string or an object with a string "content", found ${JSON.stringify(value)}`,
    { field: key },
  );
}

function resolveToken(
  files: TokenizerFiles,
  lookup: Lookup,
  file: 'tokenizer_config.json' | 'special_tokens_map.json',
  key: string,
): number | undefined {
  const token = tokenField(files, file, key);
  if (token === undefined) return undefined;
  const id = lookup.tokenToId(token);
  if (id === undefined) {
    throw new TokenizerLoadError(
      'tokenizers.malformed_file',
      join(files.source, file),
      `names ${JSON.stringify(token)}, which is not a token of tokenizer.json; fix the field or remove it`,
      { field: key },
    );
  }
  return id;
}

function generationIds(files: TokenizerFiles, lookup: Lookup, key: string): number[] | undefined {
  const value = files.generationConfig?.[key];
  if (value === undefined || value === null) return undefined;
  const list = Array.isArray(value) ? value : [value];
  const file = join(files.source, 'generation_config.json');
  for (const id of list) {
    if (!Number.isInteger(id) || (id as number) < 0 || (id as number) >= lookup.size) {
      throw new TokenizerLoadError(
        'tokenizers.malformed_file',
        file,
        `must be a token id or a list of token ids in [0, ${lookup.size}), found ${JSON.stringify(value)}`,
        { field: key },
      );
    }
  }
  return list.length ? (list as number[]) : undefined;
}

function templateBos(files: TokenizerFiles, lookup: Lookup): number | undefined {
  const post = files.tokenizerJson.post_processor as JsonObject | null | undefined;
  const first = Array.isArray(post?.single) ? (post.single[0] as JsonObject | undefined) : undefined;
  const special = first?.SpecialToken as JsonObject | undefined;
  return typeof special?.id === 'string' ? lookup.tokenToId(special.id) : undefined;
}

/**
 * Resolves EOS, BOS and PAD ids. EOS: `generation_config.json` `eos_token_id` (a list gives several),
 * else `tokenizer_config.json` `eos_token`, else `special_tokens_map.json` `eos_token`, else the first
 * of `CONVENTIONAL_EOS_TOKENS` that tokenizer.json has as a special token. BOS: `tokenizer_config.json`,
 * then `special_tokens_map.json`; none where tokenizer_config.json says `bos_token: null`; else the
 * special token tokenizer.json's post-processor puts first, else `generation_config.json`. PAD in the same order, else the
 * first EOS id, else 0 (padded positions are masked, so any id is valid).
 */
export function resolveSpecialIds(
  files: TokenizerFiles,
  lookup: Lookup,
  addedSpecial: Set<string>,
): SpecialIds {
  let eosIds = generationIds(files, lookup, 'eos_token_id');
  let eosSource = eosIds && 'generation_config.json eos_token_id';
  for (const file of ['tokenizer_config.json', 'special_tokens_map.json'] as const) {
    if (eosIds) break;
    const id = resolveToken(files, lookup, file, 'eos_token');
    if (id !== undefined) [eosIds, eosSource] = [[id], `${file} eos_token`];
  }
  if (!eosIds) {
    const name = CONVENTIONAL_EOS_TOKENS.find((t) => addedSpecial.has(t));
    const id = name === undefined ? undefined : lookup.tokenToId(name);
    if (id !== undefined) [eosIds, eosSource] = [[id], `tokenizer.json special token ${name}`];
  }

  // The tokenizer's own files first, as Python's tokenizer: `bos_token: null` there means none, whatever
  // generation_config.json says (Qwen2.5 names bos_token_id 151643 there; its tokenizer has no BOS
  // and tokenizer(prompt) adds none). generation_config.json only where the tokenizer files are
  // silent (GPT-2: Python's class default is <|endoftext|>, which generation_config.json names too).
  const named =
    resolveToken(files, lookup, 'tokenizer_config.json', 'bos_token') ??
    resolveToken(files, lookup, 'special_tokens_map.json', 'bos_token');
  const none = files.tokenizerConfig?.bos_token === null;
  const bosId =
    named ??
    (none ? undefined : (templateBos(files, lookup) ?? generationIds(files, lookup, 'bos_token_id')?.[0]));

  const padId =
    generationIds(files, lookup, 'pad_token_id')?.[0] ??
    resolveToken(files, lookup, 'tokenizer_config.json', 'pad_token') ??
    resolveToken(files, lookup, 'special_tokens_map.json', 'pad_token') ??
    eosIds?.[0] ??
    0;

  return { eosIds: [...new Set(eosIds ?? [])], eosSource, bosId, padId };
}
