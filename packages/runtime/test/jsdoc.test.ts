import { resolve } from 'node:path';
import { exampleTypeErrors, missingJsdoc } from '@implicit-it/testkit/jsdoc';
import { describe, expect, it } from 'vitest';

// Every export of the package carries a description and an @example (style.md), and every @example
// in src/ type-checks against the package's own API, as a consumer would write it. The examples are
// type-checked, not run: they name a loaded model and its files without building one.
const pkgDir = resolve(import.meta.dirname, '..');

const pkg = { pkgDir, name: '@implicit-it/runtime' };
// what the examples name without defining: a consumer's loaded model, its directory and ONNX file,
// prompts and responses, a logits row, rule sets and prompts from the lower packages, and a
// transformers.js model with its input ids
const prelude = `declare const model: Model;
declare const modelDir: string;
declare const onnxFile: string;
declare const prompts: string[];
declare const instruction: string;
declare const responses: string[];
declare const logits: Float32Array;
declare const digitIds: number[];
declare const rules: import('@implicit-it/rules').RuleSet;
declare const prompt: import('@implicit-it/tokenizers').Prompt;
declare const hfModel: import('@huggingface/transformers').PreTrainedModel;
declare const inputIds: import('@huggingface/transformers').Tensor;
`;

describe('JSDoc of the public API', () => {
  it('every export has a description and an @example', () => {
    const { exports, missing } = missingJsdoc(pkg);
    expect(exports).toBe(70); // a new export gets a description and an @example too
    expect(missing).toEqual([]);
  });

  it('every @example in src/ type-checks against the package', () => {
    const { examples, errors } = exampleTypeErrors({ ...pkg, prelude });
    expect(examples).toBeGreaterThanOrEqual(70);
    expect(errors).toEqual([]);
  }, 120_000);
});
