import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { expect, it } from 'vitest';

it("the README's example runs against the built package", () => {
  const pkg = resolve(import.meta.dirname, '..');
  const code = /```js\n([\s\S]*?)```/.exec(readFileSync(join(pkg, 'README.md'), 'utf8'))![1]!;
  // run inside the package (so its dependencies resolve), writing the model into a temp dir
  const dir = mkdtempSync(join(pkg, 'test', '.readme-'));
  try {
    const file = join(dir, 'example.mjs');
    writeFileSync(
      file,
      code
        .replace("'@implicit-it/runtime'", JSON.stringify(join(pkg, 'dist/index.js')))
        .replace("'./tiny-llama'", JSON.stringify(join(dir, 'tiny-llama'))),
    );
    const out = execFileSync('node', [file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(out).toMatch(
      /^(stop|length) \{ promptTokens: \d+, completionTokens: \d+, totalTokens: \d+ \} \d+$/m,
    );
    expect(out).toMatch(/\d+\(rank 1\)/); // without rules every greedy token is the base model's top-1
    expect(out).toMatch(/mean log-prob -\d+\.\d+/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);

it("the README's Errors table names every error code the runtime throws", () => {
  const pkg = resolve(import.meta.dirname, '..');
  const readme = readFileSync(join(pkg, 'README.md'), 'utf8');
  const table = readme.slice(readme.indexOf('## Errors'), readme.indexOf('## What it does'));
  const src = join(pkg, 'src');
  const thrown = new Set(
    readdirSync(src)
      .filter((f) => f.endsWith('.ts'))
      .flatMap((f) =>
        [...readFileSync(join(src, f), 'utf8').matchAll(/'(runtime\.[a-z_]+)'/g)].map((m) => m[1]!),
      ),
  );
  // the worker's fallbacks for an error that crossed without a code: never thrown with one
  for (const fallback of ['runtime.error', 'runtime.load_failed']) expect(thrown.delete(fallback)).toBe(true);
  expect(thrown.size).toBeGreaterThan(20);
  expect([...thrown].filter((code) => !table.includes(`\`${code}\``))).toEqual([]);
});
