import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { shownValue } from '@implicit-it/rules';
import { TokenizerInputError, TokenizerLoadError } from './errors.js';
import { type JsonObject, TOKENIZER_FILE_NAMES, type TokenizerFiles } from './files.js';

// Node only (node:fs): the browser build (src/browser.ts) has src/browser-files.ts in its place.

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new TokenizerLoadError('tokenizers.missing_file', path, `cannot be read (${String(error)})`, {
      cause: error,
    });
  }
}

const LFS_POINTER = 'version https://git-lfs.github.com/spec/';

/**
 * Throws for a Git LFS pointer in place of the file (a clone made without git-lfs): a few lines
 * naming the object, which would otherwise read as invalid JSON or as a one-line chat template.
 */
function refuseLfsPointer(path: string, text: string): void {
  if (!text.startsWith(LFS_POINTER)) return;
  const size = /^size (\d+)$/m.exec(text)?.[1];
  throw new TokenizerLoadError(
    'tokenizers.missing_file',
    path,
    `is a Git LFS pointer${size === undefined ? '' : ` (to a file of ${size} bytes)`}, not the file itself; ` +
      'fetch it (git lfs pull in the clone, or download it from the model repository)',
  );
}

function parseJsonObject(path: string, text: string): JsonObject {
  refuseLfsPointer(path, text);
  if (text.startsWith('\ufeff')) {
    throw new TokenizerLoadError(
      'tokenizers.malformed_file',
      path,
      "starts with a UTF-8 byte order mark, which JSON readers (Python's json, Rust's serde_json) refuse; " +
        'save it as UTF-8 without BOM',
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new TokenizerLoadError(
      'tokenizers.malformed_file',
      path,
      `is not valid JSON (${(error as Error).message}); restore the file from the model's repository`,
      { cause: error },
    );
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TokenizerLoadError(
      'tokenizers.malformed_file',
      path,
      `must hold a JSON object, found ${Array.isArray(value) ? 'an array' : typeof value}`,
    );
  }
  return value as JsonObject;
}

/**
 * Throws the `TokenizerInputError` of a `dir` argument of `fn` that is no path (a string): without it,
 * `undefined` or a `URL` would be reported as a directory that does not exist.
 * @internal
 */
export function checkDirArgument(dir: unknown, fn: string): asserts dir is string {
  if (typeof dir === 'string') return;
  throw new TokenizerInputError(
    dir instanceof URL
      ? `${fn}: dir must be a path (a string), got the URL ${dir.href}: pass fileURLToPath(url) (from node:url)`
      : `${fn}: dir must be a path to a tokenizer directory (a string), got ${shownValue(dir)}`,
  );
}

/**
 * Reads a Hugging Face tokenizer directory from disk (no network): `tokenizer.json` (required),
 * `tokenizer_config.json`, `special_tokens_map.json`, `generation_config.json` and
 * `chat_template.jinja` when present. Throws `TokenizerLoadError` naming the file at fault.
 *
 * @example
 * const files = await readTokenizerFiles('./models/llama2');
 * const tok = createTokenizer(files);
 */
export async function readTokenizerFiles(dir: string): Promise<TokenizerFiles> {
  checkDirArgument(dir, 'readTokenizerFiles');
  let isDir = false;
  try {
    isDir = (await stat(dir)).isDirectory();
  } catch {
    throw new TokenizerLoadError(
      'tokenizers.missing_file',
      dir,
      'the tokenizer directory does not exist; pass a local Hugging Face model or tokenizer directory',
    );
  }
  if (!isDir) {
    throw new TokenizerLoadError(
      'tokenizers.missing_file',
      dir,
      'is a file, not a directory; pass the directory that holds tokenizer.json',
    );
  }
  const path = (name: string) => join(dir, name);
  const names = TOKENIZER_FILE_NAMES;
  const [tokenizerText, configText, specialText, generationText, chatTemplate] = await Promise.all([
    readOptional(path(names.tokenizerJson)),
    readOptional(path(names.tokenizerConfig)),
    readOptional(path(names.specialTokensMap)),
    readOptional(path(names.generationConfig)),
    readOptional(path(names.chatTemplate)),
  ]);
  if (tokenizerText === undefined) {
    throw new TokenizerLoadError(
      'tokenizers.missing_file',
      path(names.tokenizerJson),
      'is missing; only fast-tokenizer directories are supported (convert a slow tokenizer with ' +
        "transformers' AutoTokenizer.from_pretrained(...).save_pretrained(dir) in Python)",
    );
  }
  const files: TokenizerFiles = {
    source: dir,
    tokenizerJson: parseJsonObject(path(names.tokenizerJson), tokenizerText),
  };
  if (configText !== undefined)
    files.tokenizerConfig = parseJsonObject(path(names.tokenizerConfig), configText);
  if (specialText !== undefined) {
    files.specialTokensMap = parseJsonObject(path(names.specialTokensMap), specialText);
  }
  if (generationText !== undefined) {
    files.generationConfig = parseJsonObject(path(names.generationConfig), generationText);
  }
  if (chatTemplate !== undefined) {
    refuseLfsPointer(path(names.chatTemplate), chatTemplate);
    files.chatTemplate = chatTemplate;
  }
  return files;
}
