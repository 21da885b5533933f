import { resolve } from 'node:path';
import { describeJsdoc } from '@implicit-it/testkit/jsdoc';

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

// a new export gets a description and an @example too
describeJsdoc({ ...pkg, prelude, exports: 82 });
