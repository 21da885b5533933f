import { fileURLToPath } from 'node:url';

/**
 * The absolute path of the training entry point shipped with this package (`python/train.py`),
 * from both `src/` (tests) and `dist/` (the built package), which sit one level below the root.
 *
 * @example
 * trainEntryPointPath(); // '/…/node_modules/@implicit-it/finetune/python/train.py'
 */
export function trainEntryPointPath(): string {
  return fileURLToPath(new URL('../python/train.py', import.meta.url));
}
