import { readFileSync } from 'node:fs';
import { ModelFileError } from './errors.js';

/** A JSON file's value, or a {@link ModelFileError} naming the file when it is not JSON. */
export function readJsonFile<T = Record<string, unknown>>(file: string): T {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ModelFileError(file, `cannot be read (${(error as Error).message})`);
  }
  if (text.startsWith('\ufeff')) {
    throw new ModelFileError(
      file,
      "starts with a UTF-8 byte order mark, which JSON readers (Python's json, Rust's serde_json) refuse; save it as UTF-8 without BOM",
    );
  }
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    throw new ModelFileError(file, `is not JSON (${(error as Error).message})`);
  }
}
