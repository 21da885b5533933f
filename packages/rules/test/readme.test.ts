import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect, it } from 'vitest';

it("the README's example runs against the built package and prints what it says", () => {
  const pkgDir = resolve(import.meta.dirname, '..');
  const readme = readFileSync(join(pkgDir, 'README.md'), 'utf8');
  const code = /```js\n([\s\S]*?)```/.exec(readme)![1]!;
  const dir = mkdtempSync(join(tmpdir(), 'rules-readme-'));
  try {
    const file = join(dir, 'example.mjs');
    writeFileSync(file, code.replace("'@implicit-it/rules'", JSON.stringify(join(pkgDir, 'dist/index.js'))));
    const out = execFileSync('node', [file], { encoding: 'utf8' });
    // ' Sure' (id 4) was picked: it is now used (-1.5); ' should' (5) is used and scored -6 - 1.5
    expect(out).toContain("'4': -1.5");
    expect(out).toContain("'5': -7.5");
    expect(out).toContain("'   '"); // the three-space entry is reported unresolved
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
