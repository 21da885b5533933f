#!/usr/bin/env node
// Prints a short fingerprint of the shared material (`../shared`, or IMPLICIT_IT_SHARED_DIR): each
// file's path, size and modification time, hashed. `pnpm test` passes it to turbo as
// IMPLICIT_IT_SHARED_STAMP, a variable of the test task's cache key, so tests that skipped without
// the shared material (or ran on other files) are run again instead of replayed from the cache.
import { createHash } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

// as the tests' testkit reads it: a relative IMPLICIT_IT_SHARED_DIR is taken from the repository root
const repo = new URL('..', import.meta.url).pathname;
const root = resolve(repo, process.env.IMPLICIT_IT_SHARED_DIR || join('..', 'shared'));

function* files(dir) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const path = join(dir, e.name);
    if (e.isDirectory()) yield* files(path);
    else if (e.isFile() || e.isSymbolicLink()) yield path;
  }
}

const hash = createHash('sha256').update(root);
let count = 0;
for (const path of files(root)) {
  try {
    const s = statSync(path);
    hash.update(`\n${relative(root, path)}\t${s.size}\t${Math.trunc(s.mtimeMs)}`);
    count++;
  } catch {
    // a dangling link: as if it were not there
  }
}
process.stdout.write(count === 0 ? 'missing' : `${count}-${hash.digest('hex').slice(0, 16)}`);
