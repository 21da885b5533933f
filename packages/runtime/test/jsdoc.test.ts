import { resolve } from 'node:path';
import { describeJsdoc } from '@implicit-it/testkit/jsdoc';

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

// a new export gets a description and an @example too
describeJsdoc({ ...pkg, prelude, exports: 70, timeout: 120_000 });
