import { closeSync, mkdtempSync, openSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { statedValueFailures } from '@implicit-it/testkit/jsdoc';
import { afterAll, describe, expect, it } from 'vitest';

// The values the CLI's @examples state in comments (`inCliTerms(...); // '...'`, `intArg(1)('0'); //
// throws InvalidArgumentError`) are the values they give. The CLI has no src/index.ts (it is a bin,
// not a library), so its examples are run here with the exports of the src/ modules that hold them
// in scope; there is no entry point for describeJsdoc's export and type checks.
const pkgDir = resolve(import.meta.dirname, '..');

// the modules whose exports the examples use
const modules = () =>
  Promise.all([
    import('../src/flags.js'),
    import('../src/model-fingerprint.js'),
    import('../src/output.js'),
    import('../src/program.js'),
    import('../src/progress.js'),
    import('../src/retry-notes.js'),
    import('../src/side-by-side.js'),
  ]);

// a consumer's 14,221,875,200-byte weights file: as many zero bytes, sparse (no disk written)
const tmp = mkdtempSync(join(tmpdir(), 'implicit-it-cli-jsdoc-'));
const weights = join(tmp, 'model.onnx_data');
closeSync(openSync(weights, 'w'));
truncateSync(weights, 14_221_875_200);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('JSDoc of the CLI', () => {
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
    expect(checked).toBeGreaterThanOrEqual(4);
  });
});
