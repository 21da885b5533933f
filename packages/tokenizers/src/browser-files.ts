import type { TokenizerOptions } from './create-tokenizer.js';
import { TokenizerLoadError } from './errors.js';
import type { TokenizerFiles } from './files.js';
import type { Tokenizer } from './tokenizer.js';

// The browser build's loadTokenizer and readTokenizerFiles (src/browser.ts): a browser has no file
// system to read a directory from, so they reject, saying what to do instead. The Node build's are in
// src/load-tokenizer.ts and src/read-files.ts; the signatures are the same, so the declarations are too.

function noFileSystem(fn: string, dir: string): TokenizerLoadError {
  return new TokenizerLoadError(
    'tokenizers.unsupported',
    String(dir),
    `${fn} reads a directory from disk, which the browser build of @implicit-it/tokenizers cannot; ` +
      'fetch tokenizer.json (and tokenizer_config.json, special_tokens_map.json, generation_config.json, ' +
      'chat_template.jinja where the model has them) and pass them to createTokenizer({ source, tokenizerJson, ... })',
  );
}

/**
 * In a browser, rejects with a `TokenizerLoadError` (`tokenizers.unsupported`): fetch the files and
 * call `createTokenizer` instead (see the README, "In a browser").
 *
 * @example
 * const tok = await loadTokenizer('./models/llama2'); // in Node; a browser build rejects
 */
export async function loadTokenizer(dir: string, _options?: TokenizerOptions): Promise<Tokenizer> {
  throw noFileSystem('loadTokenizer', dir);
}

/**
 * In a browser, rejects with a `TokenizerLoadError` (`tokenizers.unsupported`): fetch the files and
 * call `createTokenizer` instead (see the README, "In a browser").
 *
 * @example
 * const files = await readTokenizerFiles('./models/llama2'); // in Node; a browser build rejects
 */
export async function readTokenizerFiles(dir: string): Promise<TokenizerFiles> {
  throw noFileSystem('readTokenizerFiles', dir);
}
