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

/**
 * A hint for an error that names a `../shared/...` path which is not there: the READMEs' commands
 * use such paths, which hold only in a clone beside the `shared/` directory. Names the right path
 * when the fixtures are found elsewhere (`IMPLICIT_IT_SHARED_DIR`), else says what the path assumes.
 */
export function sharedPathHint(message: string): string | undefined {
  const path = /(?:^|[\s"'(=])(\.\.\/shared\/[^\s"'),:;]+)/.exec(message)?.[1];
  // ../shared is there: the path is wrong in its own way, which the error says
  if (!path || existsSync('../shared')) return undefined;
  const shared = sharedDir();
  const rest = path.slice('../shared/'.length);
  if (shared && existsSync(join(shared, rest)))
    return `${path} is relative to this directory; the shared fixtures are in ${shared}: give ${join(shared, rest)}`;
  return `the READMEs' ../shared paths assume a clone beside the shared/ directory (tokenizer fixtures, datasets): run from such a clone, or give the full path (IMPLICIT_IT_SHARED_DIR names it for the defaults)`;
}
