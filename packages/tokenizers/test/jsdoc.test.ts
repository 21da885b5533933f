import { resolve } from 'node:path';
import { describeJsdoc } from '@implicit-it/testkit/jsdoc';

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

// a new export gets a description and an @example too
describeJsdoc({ ...pkg, prelude, exports: 35 });
