import { resolve } from 'node:path';
import { exampleTypeErrors, missingJsdoc } from '@implicit-it/testkit/jsdoc';
import { describe, expect, it } from 'vitest';

// Every export of the package carries a description and an @example (style.md), and every @example
// in src/ type-checks against the package's own API, as a consumer would write it.
const pkgDir = resolve(import.meta.dirname, '..');

const pkg = { pkgDir, name: '@implicit-it/modelkit' };
// what the examples name without defining: a consumer's own model directory, config, weights, text
const prelude = `declare const out: string;
declare const dir: string;
declare const config: DecoderConfig;
declare const weights: ModelWeights;
declare const weight: Float32Array;
declare const rows: number;
declare const cols: number;
declare const text: string;
declare const bpe: ByteLevelBpe;
declare function argmax(row: Float32Array): number;
`;

describe('JSDoc of the public API', () => {
  it('every export has a description and an @example', () => {
    const { exports, missing } = missingJsdoc(pkg);
    expect(exports).toBe(82); // a new export gets a description and an @example too
    expect(missing).toEqual([]);
  });

  it('every @example in src/ type-checks against the package', () => {
    const { examples, errors } = exampleTypeErrors({ ...pkg, prelude });
    expect(examples).toBeGreaterThanOrEqual(82);
    expect(errors).toEqual([]);
  }, 60_000);
});
