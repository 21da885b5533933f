import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect, it } from 'vitest';

it("the README's example runs against the built package and prints what it says", () => {
  const pkgDir = resolve(import.meta.dirname, '..');
  const readme = readFileSync(join(pkgDir, 'README.md'), 'utf8');
  const code = /```js\n([\s\S]*?)```/.exec(readme)![1]!;
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
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
