import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { exampleTypeErrors, statedValueFailures } from '@implicit-it/testkit/jsdoc';
import { afterAll, describe, expect, it } from 'vitest';

// The CLI's @examples type-check, and the values they state in comments (`inCliTerms(...); // '...'`,
// `intArg(1)('0'); // throws InvalidArgumentError`) are the values they give. The CLI has no
// src/index.ts (it is a bin, not a library), so its examples are checked with the exports of the src/
// modules that hold them in scope; its exports are internal, so not every one needs an @example.
const pkgDir = resolve(import.meta.dirname, '..');
// the src/ modules that have @examples (commands/ and cli.ts, which runs the program, have none)
const sources = readdirSync(join(pkgDir, 'src')).filter(
  (f) => f.endsWith('.ts') && readFileSync(join(pkgDir, 'src', f), 'utf8').includes('@example'),
);
// their exports, loaded through vitest (which compiles them)
const modules = () => Promise.all(sources.map((f) => import(`../src/${f.replace(/\.ts$/, '.js')}`)));

// a consumer's 14,221,875,200-byte weights file: as many zero bytes, sparse (no disk written)
const tmp = mkdtempSync(join(tmpdir(), 'implicit-it-cli-jsdoc-'));
const weights = join(tmp, 'model.onnx_data');
closeSync(openSync(weights, 'w'));
truncateSync(weights, 14_221_875_200);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('JSDoc of the CLI', () => {
  it('every @example in src/ type-checks against the modules it documents', () => {
    const { examples, errors } = exampleTypeErrors({ pkgDir, name: '@implicit-it/cli', modules: sources });
    expect(sources).toHaveLength(9);
    expect(errors).toEqual([]);
    expect(examples).toBeGreaterThanOrEqual(11);
  }, 60_000);

  it('every value an @example states (`expr; // value`, `// throws Error`) is what it gives', async () => {
    const { checked, failures } = await statedValueFailures({
      pkgDir,
      name: '@implicit-it/cli',
      module: Object.assign({}, ...(await modules())),
      importer: (s) => import(s),
      rewrite: { "'m/onnx/model.onnx_data'": JSON.stringify(weights) },
    });
    expect(failures).toEqual([]);
    // a lost stated value fails: as many as src/ states
    expect(checked).toBeGreaterThanOrEqual(6);
  });
});
