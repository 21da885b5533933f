import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describeShared, SHARED_DIR } from '@implicit-it/testkit';
import { expect, it } from 'vitest';
import * as api from '../src/index.js';

describeShared("the README's examples", ['fixtures/tokenizers/llama2/tokenizer.json'], () => {
  it('run against the built package and print what their comments say', () => {
    const pkgDir = resolve(import.meta.dirname, '..');
    const readme = readFileSync(join(pkgDir, 'README.md'), 'utf8');
    const all = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
    // the In a browser example fetches its files: test/browser.test.ts runs it in Chromium
    const blocks = all.filter((code) => !code.includes('fetch('));
    expect(all.length - blocks.length).toBe(1);
    expect(blocks.length).toBe(2);
    // the second block goes on from the first (it uses its `tok`)
    const code =
      `${blocks[0]}\nprocess.stdout.write('\\n');\n${blocks[1]!.replace(/^(p\.ids\.includes\(.*\));.*$/m, 'console.log($1);')}`
        .replace("'@implicit-it/tokenizers'", JSON.stringify(join(pkgDir, 'dist/index.js')))
        .replace("'@implicit-it/rules'", JSON.stringify(join(pkgDir, '../rules/dist/index.js')))
        .replaceAll("'../shared/", `'${SHARED_DIR}/`);
    const dir = mkdtempSync(join(tmpdir(), 'tokenizers-readme-'));
    try {
      const file = join(dir, 'example.mjs');
      writeFileSync(file, code);
      const lines = execFileSync('node', [file], { encoding: 'utf8' }).split('\n');
      expect(lines[0]).toBe('[]'); // rules.unresolved for Llama-2
      expect(lines.slice(1, 6).join('\n')).toMatch(/^\[\n\s+1,\s+529, 29989,[\s\S]*\] 7 26$/);
      expect(lines).toContain('Sure! 🎉 Here it is.');
      expect(lines[lines.length - 2]).toBe('false'); // " </s>" in an instruction is text
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

it('the README names every runtime export of the package', () => {
  const readme = readFileSync(resolve(import.meta.dirname, '../README.md'), 'utf8');
  const missing = Object.keys(api).filter((name) => !new RegExp(`\`${name}[(\`]`).test(readme));
  expect(missing).toEqual([]);
});
