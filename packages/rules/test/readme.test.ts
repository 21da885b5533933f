import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseRuleSetConfig } from '../src/index.js';

const pkgDir = resolve(import.meta.dirname, '..');
const readme = readFileSync(join(pkgDir, 'README.md'), 'utf8');
const blocks = (lang: string) =>
  [...readme.matchAll(new RegExp(`\`\`\`${lang}\\n([\\s\\S]*?)\`\`\``, 'g'))].map((m) => m[1]!);
// the transformers.js example needs @huggingface/transformers and a model: the runtime's tests run it
// (packages/runtime/test/rules-readme-transformers.test.ts), against the runtime's own tokens
const usesTransformers = (code: string) => code.includes("from '@huggingface/transformers'");
const ownBlocks = () => blocks('js').filter((code) => !usesTransformers(code));

// a project outside the package whose node_modules holds it: the examples import it by name, verbatim
const app = mkdtempSync(join(tmpdir(), 'rules-readme-'));
mkdirSync(join(app, 'node_modules', '@implicit-it'), { recursive: true });
symlinkSync(pkgDir, join(app, 'node_modules', '@implicit-it', 'rules'), 'dir');
afterAll(() => rmSync(app, { recursive: true, force: true }));

describe("the README's examples", () => {
  it('has the three js examples (usage, changing the weights, custom rules), the transformers.js one and the rule-set JSON', () => {
    expect(ownBlocks().length).toBe(3);
    expect(blocks('js').filter(usesTransformers).length).toBe(1);
    expect(blocks('json').length).toBe(1);
  });

  it.each(ownBlocks().map((code, i) => [i, code] as const))(
    'js example %i runs verbatim against the built package and prints what its "// prints" comments say',
    (i, code) => {
      const want = [...code.matchAll(/\/\/ prints (.*)$/gm)].map((m) => m[1]!);
      expect(want.length, 'each example says what it prints').toBeGreaterThan(0);
      const file = join(app, `example-${i}.mjs`);
      writeFileSync(file, code);
      const out = execFileSync('node', [file], { cwd: app, encoding: 'utf8' });
      expect(out.split('\n').slice(0, -1)).toEqual(want);
    },
  );

  it("the API table names every export the package's entry point has at run time", async () => {
    const table = readme.slice(readme.indexOf('## API'), readme.indexOf('### Rule-set JSON'));
    const named = new Set([...table.matchAll(/`([A-Za-z_][\w]*)/g)].map((m) => m[1]!));
    const exported = Object.keys(await import('../src/index.js'));
    expect(exported.length).toBe(27);
    expect(exported.filter((name) => !named.has(name))).toEqual([]);
  });

  it('the rule-set JSON is a valid rule set, kept as written', () => {
    const json = JSON.parse(blocks('json')[0]!);
    expect(parseRuleSetConfig(json)).toEqual(json);
  });
});
