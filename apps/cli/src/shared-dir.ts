import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

function upwards(from: string, file: string): string | undefined {
  let dir = resolve(from);
  for (;;) {
    if (existsSync(join(dir, file))) return dir;
    const up = dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

/**
 * The repository's `../shared` directory (tokenizer fixtures, datasets): `$IMPLICIT_IT_SHARED_DIR`, else
 * `shared/` beside the repository that holds the working directory or this CLI. Undefined when absent.
 */
export function sharedDir(): string | undefined {
  if (process.env.IMPLICIT_IT_SHARED_DIR) return resolve(process.env.IMPLICIT_IT_SHARED_DIR);
  for (const from of [process.cwd(), dirname(fileURLToPath(import.meta.url))]) {
    const root = upwards(from, 'pnpm-workspace.yaml');
    if (root && existsSync(join(root, '..', 'shared'))) return resolve(root, '..', 'shared');
  }
  return undefined;
}
