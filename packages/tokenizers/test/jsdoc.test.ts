import { resolve } from 'node:path';
import { exampleTypeErrors, missingJsdoc } from '@implicit-it/testkit/jsdoc';
import { describe, expect, it } from 'vitest';

// Every export of the package carries a description and an @example (style.md), and every @example
// in src/ type-checks against the package's own API, as a consumer would write it.
const pkgDir = resolve(import.meta.dirname, '..');

const pkg = { pkgDir, name: '@implicit-it/tokenizers' };
// what the examples name without defining: a consumer's loaded tokenizer, a parsed tokenizer.json,
// the ids a model generated, a tokenizer directory
const prelude = `declare const tok: Tokenizer;
declare const tokenizerJson: JsonObject;
declare const generatedIds: number[];
declare const dir: string;
`;

describe('JSDoc of the public API', () => {
  it('every export has a description and an @example', () => {
    const { exports, missing } = missingJsdoc(pkg);
    expect(exports).toBe(35); // a new export gets a description and an @example too
    expect(missing).toEqual([]);
  });

  it('every @example in src/ type-checks against the package', () => {
    const { examples, errors } = exampleTypeErrors({ ...pkg, prelude });
    expect(examples).toBeGreaterThanOrEqual(35);
    expect(errors).toEqual([]);
  }, 60_000);
});
