import { createTokenizer, type TokenizerOptions } from './create-tokenizer.js';
import { checkDirArgument, readTokenizerFiles } from './read-files.js';
import type { Tokenizer } from './tokenizer.js';

/**
 * Loads a local Hugging Face tokenizer directory (tokenizer.json, and tokenizer_config.json,
 * special_tokens_map.json, generation_config.json, chat_template.jinja when present). Offline: the
 * files are read from disk and handed to `@huggingface/tokenizers`; nothing is fetched.
 *
 * @example
 * import { compileRules } from '@implicit-it/rules';
 * import { loadTokenizer } from '@implicit-it/tokenizers';
 *
 * const tok = await loadTokenizer('./models/smollm');
 * const rules = compileRules('hewitt2024', tok.vocabulary);
 * const prompt = tok.buildPrompt({ format: 'tulu', instruction: 'Name three colors.' });
 */
export async function loadTokenizer(dir: string, options?: TokenizerOptions): Promise<Tokenizer> {
  checkDirArgument(dir, 'loadTokenizer');
  return createTokenizer(await readTokenizerFiles(dir), options);
}
