/**
 * A JSON object as parsed from a tokenizer file.
 *
 * @example
 * const files = await readTokenizerFiles('./models/llama2');
 * const config: JsonObject = files.tokenizerConfig ?? {};
 * const noBos = createTokenizer({ ...files, tokenizerConfig: { ...config, add_bos_token: false } });
 */
export type JsonObject = Record<string, unknown>;

/**
 * The contents of a Hugging Face tokenizer directory: `source` (what errors name it by) and
 * `tokenizerJson` are required; the other files refine special tokens and the chat template when
 * present. JSON files are given parsed, `chatTemplate` as text.
 *
 * @example
 * const files: TokenizerFiles = {
 *   source: 'inline',
 *   tokenizerJson,
 *   generationConfig: { eos_token_id: [2, 32000] },
 * };
 * const tok = createTokenizer(files);
 */
export interface TokenizerFiles {
  /** Where the files came from (a directory path, or any label); used in error messages. */
  source: string;
  /** `tokenizer.json`: the fast-tokenizer serialization (`model`, `added_tokens`, ...). */
  tokenizerJson: JsonObject;
  /** `tokenizer_config.json`: special tokens, `chat_template`, `tokenizer_class`. */
  tokenizerConfig?: JsonObject | undefined;
  /** `special_tokens_map.json`. */
  specialTokensMap?: JsonObject | undefined;
  /** `generation_config.json`: `eos_token_id` (number or list), `bos_token_id`, `pad_token_id`. */
  generationConfig?: JsonObject | undefined;
  /** `chat_template.jinja` (newer layout); takes precedence over `tokenizer_config.json`'s field. */
  chatTemplate?: string | undefined;
}

/**
 * The file names `readTokenizerFiles` reads.
 *
 * @example
 * import { existsSync } from 'node:fs';
 * import { join } from 'node:path';
 *
 * const present = Object.values(TOKENIZER_FILE_NAMES).filter((name) => existsSync(join(dir, name)));
 */
export const TOKENIZER_FILE_NAMES = {
  tokenizerJson: 'tokenizer.json',
  tokenizerConfig: 'tokenizer_config.json',
  specialTokensMap: 'special_tokens_map.json',
  generationConfig: 'generation_config.json',
  chatTemplate: 'chat_template.jinja',
} as const;
