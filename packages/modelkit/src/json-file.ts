import { readFileSync } from 'node:fs';
import { ModelFileError } from './errors.js';

/** A JSON file's value, or a {@link ModelFileError} naming the file when it is not JSON. */
export function readJsonFile<T = Record<string, unknown>>(file: string): T {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch (error) {
    throw new ModelFileError(file, `is not JSON (${(error as Error).message})`);
  }
}
