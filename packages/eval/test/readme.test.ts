import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { typecheckConsumer } from '@implicit-it/testkit';
import ts from 'typescript';
import { expect, it } from 'vitest';

const pkgDir = resolve(import.meta.dirname, '..');
const readme = readFileSync(join(pkgDir, 'README.md'), 'utf8');
// every code example of the README is TypeScript, pasted by readers into their own strict files
const examples = [...readme.matchAll(/```(\w+)\n([\s\S]*?)```/g)]
  .filter(([, lang]) => lang === 'ts' || lang === 'js')
  .map(([, lang, code]) => ({ lang: lang!, code: code! }));

it('every example of the README is TypeScript that type-checks under strict settings', () => {
  // the toy example and the one with a real model (which imports @implicit-it/runtime)
  expect(examples.map((e) => e.lang)).toEqual(['ts', 'ts']);
  for (const { code } of examples) expect(typecheckConsumer(pkgDir, code)).toBe('');
}, 120_000);

it("the README's first example runs against the built package and prints what it says", () => {
  // its types stripped, as a consumer's build would
  const code = ts.transpileModule(examples[0]!.code, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  }).outputText;
  const dir = mkdtempSync(join(tmpdir(), 'eval-readme-'));
  try {
    const file = join(dir, 'example.mjs');
    writeFileSync(file, code.replace("'@implicit-it/eval'", JSON.stringify(join(pkgDir, 'dist/index.js'))));
    const out = execFileSync('node', [file], { encoding: 'utf8', cwd: dir });
    // each judgement is 1.75 (model shown second) or 1.25 (model shown first): the mean is near 50
    const m = /win rate (\d+\.\d+) ± (\d+\.\d+) over 40/.exec(out);
    expect(m, out).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(35);
    expect(Number(m![1])).toBeLessThan(65);
    expect(out).toContain('report: example-run/report.md');
    expect(existsSync(join(dir, 'example-run/charts/win-rates.svg'))).toBe(true);
    const annotations = JSON.parse(readFileSync(join(dir, 'example-run/annotations/toy.json'), 'utf8'));
    for (const a of annotations) expect(a.preference).toBe(a.is_switched_outputs ? 1.25 : 1.75);
    const outputs = JSON.parse(readFileSync(join(dir, 'example-run/outputs/toy.json'), 'utf8'));
    expect(outputs[3].output).toBe('Sure! Question 3?');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);
