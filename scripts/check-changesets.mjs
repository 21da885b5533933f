#!/usr/bin/env node
// Every .changeset/*.md must parse as a changeset (front matter naming packages and bumps): a
// formatter that rewrites the front matter would otherwise drop the release silently.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import parse from '@changesets/parse';

const dir = new URL('../.changeset/', import.meta.url).pathname;
const names = new Set(
  ['packages', 'apps'].flatMap((top) => {
    const root = join(dir, '..', top);
    try {
      return readdirSync(root).flatMap((d) => {
        try {
          return [JSON.parse(readFileSync(join(root, d, 'package.json'), 'utf8')).name];
        } catch {
          return [];
        }
      });
    } catch {
      return [];
    }
  }),
);
let bad = 0;
for (const file of readdirSync(dir).filter((f) => f.endsWith('.md') && f !== 'README.md')) {
  try {
    const { releases } = parse(readFileSync(join(dir, file), 'utf8'));
    if (releases.length === 0) throw new Error('names no package');
    for (const r of releases) if (!names.has(r.name)) throw new Error(`names unknown package ${r.name}`);
  } catch (e) {
    bad++;
    console.error(`.changeset/${file}: ${e.message.split('\n')[0]}`);
  }
}
if (bad) process.exit(1);
console.log('changesets: all parse');
