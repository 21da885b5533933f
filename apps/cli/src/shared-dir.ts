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
  return sharedDirCandidates().find((dir) => existsSync(dir));
}

/**
 * Where `sharedDir` looks when `$IMPLICIT_IT_SHARED_DIR` is not set: `shared/` beside the repository
 * that holds the working directory, then beside the one that holds this CLI (none outside a clone).
 */
function sharedDirCandidates(): string[] {
  const dirs = [process.cwd(), dirname(fileURLToPath(import.meta.url))].flatMap((from) => {
    const root = upwards(from, 'pnpm-workspace.yaml');
    return root ? [resolve(root, '..', 'shared')] : [];
  });
  return [...new Set(dirs)];
}

/**
 * Why the default file `parts` under the shared directory (`data/alpaca_eval/alpaca_eval.jsonl`) is
 * not there, for an error: the paths looked at, and where each came from (`$IMPLICIT_IT_SHARED_DIR`,
 * or `shared/` beside a repository), or that there was nowhere to look.
 */
export function sharedDefaultMissing(...parts: string[]): string {
  const env = process.env.IMPLICIT_IT_SHARED_DIR;
  if (env) return `no ${join(resolve(env), ...parts)}, IMPLICIT_IT_SHARED_DIR being ${env}`;
  const found = sharedDir();
  if (found) return `no ${join(found, ...parts)}, in the shared/ beside the repository`;
  const tried = sharedDirCandidates();
  return tried.length > 0
    ? `no ${tried.join(' or ')} beside the repository, and IMPLICIT_IT_SHARED_DIR is not set`
    : 'IMPLICIT_IT_SHARED_DIR is not set, and neither the working directory nor the CLI is in a clone of the repository, beside which shared/ is looked for';
}

/**
 * A hint for an error that names a `../shared/...` path which is not there: the READMEs' commands
 * use such paths, which hold only in a clone beside the `shared/` directory. Names the right path
 * when the fixtures are found elsewhere (`IMPLICIT_IT_SHARED_DIR`), else says what the path assumes.
 * The path may be written with either separator (`..\shared\data` as typed on Windows): it names
 * the same file of the shared directory either way.
 */
export function sharedPathHint(message: string): string | undefined {
  // only an error about a path that is not there: a ../shared path in advice is not the cause
  if (!/does not exist|ENOENT|no such file|not found/i.test(message)) return undefined;
  const path = /(?:^|[\s"'(=])(\.\.[\\/]shared[\\/][^\s"'),:;]+)/.exec(message)?.[1];
  // ../shared is there: the path is wrong in its own way, which the error says
  if (!path || existsSync('../shared')) return undefined;
  const shared = sharedDir();
  // join gives the platform's separators: `/` stands for either
  const rest = path.slice('../shared/'.length).replaceAll('\\', '/');
  if (shared && existsSync(join(shared, rest)))
    return `${path} is relative to this directory; the shared fixtures are in ${shared}: give ${join(shared, rest)}`;
  return `the READMEs' ../shared paths assume a clone beside the shared/ directory (tokenizer fixtures, datasets): run from such a clone, or give the full path (IMPLICIT_IT_SHARED_DIR names it for the defaults)`;
}
