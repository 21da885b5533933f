import { TokenizerLoadError } from './errors.js';
import type { JsonObject, TokenizerFiles } from './files.js';
import { joinPath } from './join-path.js';

/** Special ids of a tokenizer and where each came from (a file and field, for diagnostics). */
export interface SpecialIds {
  eosIds: number[];
  eosSource: string | undefined;
  bosId: number | undefined;
  /** The pad id the files name; undefined where they name none (the tokenizer pads with its first EOS id). */
  padId: number | undefined;
}

/**
 * EOS names tried, in this order, when no config file names the EOS token.
 *
 * @example
 * const eosIds = CONVENTIONAL_EOS_TOKENS.map((t) => tok.tokenToId(t)).filter((id) => id !== undefined);
 */
export const CONVENTIONAL_EOS_TOKENS = ['</s>', '<|endoftext|>', '<|end_of_text|>', '<|im_end|>', '<eos>'];

interface Lookup {
  size: number;
  tokenToId(token: string): number | undefined;
}

type SpecialTokenFile = 'tokenizer_config.json' | 'special_tokens_map.json';

/**
 * The entry for special token `key` (`bos_token`, `eos_token`, ...) and the file it comes from, as
 * transformers' `PreTrainedTokenizerBase._from_pretrained` reads the two files: a tokenizer_config.json
 * with `added_tokens_decoder` (saved by transformers 4.34 or later) is read alone, so its value wins and
 * an explicit `null` there means no such token; an older one (no `added_tokens_decoder`) has its entries
 * replaced by special_tokens_map.json's. A key tokenizer_config.json leaves out is special_tokens_map.json's
 * either way (Python then falls back to its class default, which the map, saved by the same tokenizer,
 * records). undefined where neither file has the key; `value` null where the entry says none.
 */
export function specialTokenEntry(
  files: TokenizerFiles,
  key: string,
): { file: SpecialTokenFile; value: unknown } | undefined {
  const config = files.tokenizerConfig;
  const map = files.specialTokensMap;
  const inConfig = config?.[key] !== undefined;
  const inMap = map?.[key] !== undefined;
  const configAlone = config?.added_tokens_decoder !== undefined;
  if (inConfig && (configAlone || !inMap)) return { file: 'tokenizer_config.json', value: config![key] };
  if (inMap) return { file: 'special_tokens_map.json', value: map![key] };
  return undefined;
}

/** A token entry's text: a string, or an AddedToken object's `content`; undefined for anything else. */
function tokenText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  const content = (value as JsonObject | null | undefined)?.content;
  return typeof value === 'object' && typeof content === 'string' ? content : undefined;
}

/**
 * `additional_special_tokens` as transformers 4.x's `PreTrainedTokenizerBase._from_pretrained` reads
 * them, as texts: a tokenizer_config.json with `added_tokens_decoder` is read alone (its list, or none:
 * special_tokens_map.json is not opened); an older one gets special_tokens_map.json's list appended to
 * its own, each entry `if token not in additional_special_tokens`, where an entry written as an
 * AddedToken object (`{ "content": ... }`, made an `AddedToken`) never equals a string nor a
 * tokenizer_config.json entry (still a dict then), only an AddedToken of the map before it: a map of
 * objects beside a config of strings lists each token twice, as Python's `special_tokens_map` does.
 * undefined where no list is set.
 */
export function additionalSpecialTokens(files: TokenizerFiles): string[] | undefined {
  const config = files.tokenizerConfig;
  const own = config?.additional_special_tokens;
  const fromMap = files.specialTokensMap?.additional_special_tokens;
  let list: unknown = own;
  if (config?.added_tokens_decoder === undefined && fromMap !== undefined) {
    if (Array.isArray(fromMap)) {
      const merged: unknown[] = Array.isArray(own) ? [...own] : [];
      const mapObjects = new Set<string>();
      for (const token of fromMap) {
        if (typeof token === 'string') {
          if (!merged.includes(token)) merged.push(token);
        } else {
          const text = tokenText(token);
          if (text === undefined || !mapObjects.has(text)) merged.push(token);
          if (text !== undefined) mapObjects.add(text);
        }
      }
      list = merged;
    } else list = fromMap; // not a list: set as it is (null: none)
  }
  if (!Array.isArray(list)) return undefined;
  const texts = list.map(tokenText);
  return texts.every((t) => t !== undefined) ? (texts as string[]) : undefined;
}

/**
 * The text of special token `key` as the files name it (see `specialTokenEntry`) and the file naming
 * it: `token` null where the entry says none, undefined where neither file has the key. Throws for
 * an entry that is neither a string nor an object with a string `content`.
 */
export function specialTokenText(
  files: TokenizerFiles,
  key: string,
): { file: SpecialTokenFile; token: string | null } | undefined {
  const entry = specialTokenEntry(files, key);
  if (entry === undefined) return undefined;
  const { file, value } = entry;
  if (value === null) return { file, token: null };
  if (typeof value === 'string') return { file, token: value };
  if (typeof value === 'object' && typeof (value as JsonObject).content === 'string') {
    return { file, token: (value as JsonObject).content as string };
  }
  throw new TokenizerLoadError(
    'tokenizers.malformed_file',
    joinPath(files.source, file),
    `must be a token string or an object with a string "content", found ${JSON.stringify(value)}`,
    { field: key },
  );
}

/** The id of special token `key` (see `specialTokenEntry`) and the file naming it; undefined for none. */
function resolveToken(
  files: TokenizerFiles,
  lookup: Lookup,
  key: string,
): { file: SpecialTokenFile; id: number } | undefined {
  const field = specialTokenText(files, key);
  if (field?.token == null) return undefined;
  const id = lookup.tokenToId(field.token);
  if (id === undefined) {
    throw new TokenizerLoadError(
      'tokenizers.malformed_file',
      joinPath(files.source, field.file),
      `names ${JSON.stringify(field.token)}, which is not a token of tokenizer.json; fix the field or remove it`,
      { field: key },
    );
  }
  return { file: field.file, id };
}

function generationIds(files: TokenizerFiles, lookup: Lookup, key: string): number[] | undefined {
  const value = files.generationConfig?.[key];
  if (value === undefined || value === null) return undefined;
  const list = Array.isArray(value) ? value : [value];
  const file = joinPath(files.source, 'generation_config.json');
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

/**
 * generation_config.json's `pad_token_id`. -1 means none: LLaMA-1 conversions (transformers 4.28's
 * convert_llama_weights_to_hf) write it in config.json, and generation_config.json copies it.
 */
function generationPad(files: TokenizerFiles, lookup: Lookup): number | undefined {
  if (files.generationConfig?.pad_token_id === -1) return undefined;
  return generationIds(files, lookup, 'pad_token_id')?.[0];
}

/**
 * The special token a `TemplateProcessing` post-processor puts first, looked for inside a `Sequence`
 * post-processor too (Llama-3: `Sequence [ByteLevel, TemplateProcessing]`). Of several templates
 * that start with one, the last: each prepends its token before what the earlier ones wrote.
 */
function templateBos(files: TokenizerFiles, lookup: Lookup): number | undefined {
  const leading = (post: JsonObject | null | undefined): string | undefined => {
    if (post?.type === 'Sequence' && Array.isArray(post.processors)) {
      let found: string | undefined;
      for (const inner of post.processors as JsonObject[]) found = leading(inner) ?? found;
      return found;
    }
    const head = Array.isArray(post?.single) ? (post.single[0] as JsonObject | undefined) : undefined;
    const id = (head?.SpecialToken as JsonObject | undefined)?.id;
    return typeof id === 'string' ? id : undefined;
  };
  const token = leading(files.tokenizerJson.post_processor as JsonObject | null | undefined);
  return token === undefined ? undefined : lookup.tokenToId(token);
}

/** The BOS and EOS a Python tokenizer class has where the files name none (see post-processor.ts). */
export interface ClassDefaults {
  /** e.g. `LlamaTokenizer`, for `eosSource`. */
  className: string;
  bos: string;
  eos: string;
}

/**
 * Resolves EOS, BOS and PAD ids. The special-token fields (`eos_token`, ...) are read from
 * tokenizer_config.json and special_tokens_map.json as transformers reads them (see
 * `specialTokenEntry`). EOS: `generation_config.json` `eos_token_id` (a list gives several), else the
 * `eos_token` field, else the class default (`defaults`, where tokenizer.json has it), else the first
 * of `CONVENTIONAL_EOS_TOKENS` that tokenizer.json has as a special token. BOS: the `bos_token` field;
 * none where it is null; else the class default, else the special token tokenizer.json's
 * post-processor puts first, else `generation_config.json`. PAD: `generation_config.json` (where it
 * is not -1, "none"), then the `pad_token` field, else undefined (the tokenizer then pads with its
 * first EOS id, the caller's where given, as transformers' generate pads with its EOS).
 */
export function resolveSpecialIds(
  files: TokenizerFiles,
  lookup: Lookup,
  addedSpecial: Set<string>,
  defaults?: ClassDefaults,
): SpecialIds {
  let eosIds = generationIds(files, lookup, 'eos_token_id');
  let eosSource = eosIds && 'generation_config.json eos_token_id';
  if (!eosIds) {
    const named = resolveToken(files, lookup, 'eos_token');
    if (named !== undefined) [eosIds, eosSource] = [[named.id], `${named.file} eos_token`];
  }
  if (!eosIds && defaults !== undefined && specialTokenEntry(files, 'eos_token') === undefined) {
    const id = lookup.tokenToId(defaults.eos);
    if (id !== undefined) [eosIds, eosSource] = [[id], `${defaults.className} default eos_token`];
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
  const none = specialTokenEntry(files, 'bos_token')?.value === null;
  const bosId = none
    ? undefined
    : (resolveToken(files, lookup, 'bos_token')?.id ??
      (defaults === undefined ? undefined : lookup.tokenToId(defaults.bos)) ??
      templateBos(files, lookup) ??
      generationIds(files, lookup, 'bos_token_id')?.[0]);

  const padId = generationPad(files, lookup) ?? resolveToken(files, lookup, 'pad_token')?.id;

  return { eosIds: [...new Set(eosIds ?? [])], eosSource, bosId, padId };
}
