import { resolve } from 'node:path';
import { describeJsdoc } from '@implicit-it/testkit/jsdoc';

// Every export of the package carries a description and an @example (style.md), and every @example
// in src/ type-checks against the package's own API, as a consumer would write it.
const pkgDir = resolve(import.meta.dirname, '..');

const pkg = { pkgDir, name: '@implicit-it/finetune' };
// what the examples name without defining: a consumer's own examples, tokenizer and encoded rows
const prelude = `declare const examples: ChatExample[];
declare const example: ChatExample;
declare const tokenizer: EncodingTokenizer;
declare const encoded: EncodedExample[];
`;
const EXPORTS = 92;
// pythonStrip and ImplicitItError are @implicit-it/rules' exports: their examples are in its src/
const REEXPORTED = 2;

// a new export gets a description and an @example too
describeJsdoc({ ...pkg, prelude, exports: EXPORTS, minExamples: EXPORTS - REEXPORTED });
